use std::path::Path;

use super::*;

fn parse(src: &str) -> Result<Config, ConfigError> {
    Config::parse(src, Path::new("test.toml"))
}

fn invalid(src: &str) -> (usize, usize, String, String) {
    match parse(src) {
        Err(ConfigError::Invalid {
            line,
            column,
            path,
            message,
            ..
        }) => (line, column, path, message),
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn empty_file_is_the_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn the_example_parses() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.daemon.socket_mode_bits(), 0o660);
    assert!(c.readers.is_empty());
}

#[test]
fn the_example_with_every_comment_removed_still_parses() {
    // The commented entries are what technicians copy: uncomment them all
    // and the result must be a valid file.
    let uncommented: String = EXAMPLE
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.starts_with('[')
                    || rest.contains(" = ") && !rest.starts_with(' ') && !rest.contains("::") =>
            {
                rest.split("  #").next().unwrap_or(rest)
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = parse(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(c.readers.len(), 2);
    assert_eq!(c.printers.len(), 2);
    assert!(c.daemon.tcp.is_some());
}

#[test]
fn unknown_key_names_line_column_and_path() {
    let (line, column, path, message) = invalid("[daemon]\nsocket_mode = \"0660\"\n  colour = 1\n");
    assert_eq!((line, column), (3, 3));
    assert_eq!(path, "daemon.colour");
    assert!(message.contains("colour"), "{message}");
}

#[test]
fn wrong_type_in_a_device_names_the_index() {
    let src = "[[printer]]\nname = \"a\"\ntype = \"escpos\"\n[printer.file]\npath = \"/tmp/a\"\n\n\
               [[printer]]\nname = \"b\"\ntype = \"escpos\"\n[printer.tcp]\nhost = \"h\"\nport = \"x\"\n";
    let (line, column, path, _) = invalid(src);
    assert_eq!(path, "printer[1].tcp.port");
    assert_eq!((line, column), (12, 8));
}

#[test]
fn bad_enum_value_is_rejected() {
    let (line, _, path, message) = invalid("[[reader]]\nname = \"r\"\ntype = \"laser\"\n");
    assert_eq!(line, 3);
    assert_eq!(path, "reader[0].type");
    assert!(message.contains("msr"), "{message}");
}

#[test]
fn syntax_error_has_a_position() {
    let (line, _, path, _) = invalid("[daemon]\nsocket_mode = \n");
    assert_eq!(line, 2);
    assert_eq!(path, "");
}

#[test]
fn two_devices_on_one_port_are_rejected() {
    let src = "[[reader]]\nname = \"a\"\ntype = \"msr\"\n[reader.serial]\nport = \"/dev/ttyS9\"\n\
               [[printer]]\nname = \"b\"\ntype = \"escpos\"\n[printer.serial]\nport = \"/dev/ttyS9\"\n";
    let (line, _, path, message) = invalid(src);
    assert_eq!(line, 7);
    assert_eq!(path, "printer[0]");
    assert!(message.contains("already used by \"a\""), "{message}");
}

#[test]
fn usb_id_without_serial_overlaps_one_with_serial() {
    let src = "[[reader]]\nname = \"a\"\ntype = \"msr\"\n[reader.hid]\nusb = \"0801:0011:AB12\"\n\
               [[reader]]\nname = \"b\"\ntype = \"scanner\"\n[reader.evdev]\nusb = \"0801:0011\"\n";
    let (_, _, path, _) = invalid(src);
    assert_eq!(path, "reader[1]");
    let ok = src.replace("usb = \"0801:0011\"", "usb = \"0801:0011:CD34\"");
    assert_eq!(parse(&ok).unwrap().readers.len(), 2);
}

#[test]
fn tcp_printers_on_one_address_conflict() {
    let src = "[[printer]]\nname = \"a\"\ntype = \"escpos\"\n[printer.tcp]\nhost = \"Printer\"\n\
               [[printer]]\nname = \"b\"\ntype = \"shtrih\"\n[printer.tcp]\nhost = \"printer\"\nport = 9100\n";
    assert_eq!(invalid(src).2, "printer[1]");
}

#[test]
fn bad_usb_id_is_explained() {
    let (_, _, path, message) =
        invalid("[[reader]]\nname = \"a\"\ntype = \"msr\"\n[reader.hid]\nusb = \"zz:01\"\n");
    assert_eq!(path, "reader[0].hid.usb");
    assert!(message.contains("hex"), "{message}");
}

#[test]
fn duplicate_names_and_missing_transport() {
    let dup = "[[reader]]\nname = \"x\"\ntype = \"msr\"\n[reader.serial]\nport = \"/dev/a\"\n\
               [[printer]]\nname = \"x\"\ntype = \"escpos\"\n[printer.file]\npath = \"/tmp/x\"\n";
    let (_, _, path, message) = invalid(dup);
    assert_eq!(path, "printer[0].name");
    assert!(message.contains("reader[0]"), "{message}");

    let none = "[[printer]]\nname = \"p\"\ntype = \"escpos\"\n";
    assert!(invalid(none).3.contains("exactly one"));
    let two = "[[printer]]\nname = \"p\"\ntype = \"escpos\"\n[printer.file]\npath = \"/a\"\n\
               [printer.usb]\ndevice = \"/dev/usb/lp0\"\n";
    assert!(invalid(two).3.contains("exactly one"));
}

#[test]
fn remote_tcp_needs_consent_and_tokens() {
    let remote = "[daemon]\ntoken_file = \"/t\"\n[daemon.tcp]\nlisten = \"0.0.0.0:7450\"\n";
    let (line, _, path, _) = invalid(remote);
    assert_eq!((line, path.as_str()), (4, "daemon.tcp.listen"));
    let ok = format!("{remote}allow_remote = true\n");
    assert!(parse(&ok).is_ok());
    let no_tokens = "[daemon.tcp]\nlisten = \"127.0.0.1:7450\"\n";
    assert_eq!(invalid(no_tokens).2, "daemon.token_file");
}

#[test]
fn socket_mode_must_be_octal() {
    let (line, column, path, _) = invalid("[daemon]\n  socket_mode = \"rw-rw----\"\n");
    assert_eq!((line, column, path.as_str()), (2, 3, "daemon.socket_mode"));
}

#[test]
fn error_display_is_file_line_column_path() {
    let e = parse("[ledger]\nbackend = \"postgres\"\n").unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("test.toml:2:11: ledger.backend: "), "{s}");
}

#[test]
fn a_reader_regex_without_a_number_group_is_rejected_at_load() {
    let src = "[[reader]]\nname = \"q\"\ntype = \"scanner\"\n[reader.serial]\nport = \"/dev/q\"\n\
               [reader.card]\nregex = \"(?P<code>\\\\d+)\"\n";
    let (line, column, path, message) = invalid(src);
    assert_eq!((line, column, path.as_str()), (7, 1, "reader[0]"));
    assert!(message.contains("card.regex"), "{message}");
}

#[test]
fn a_bad_framing_prefix_is_rejected_at_load() {
    let src = "[[reader]]\nname = \"q\"\ntype = \"msr\"\n[reader.serial]\nport = \"/dev/q\"\n\
               [reader.framing]\nprefix_hex = \"zz\"\n";
    let (line, _, _, message) = invalid(src);
    assert_eq!(line, 7);
    assert!(message.contains("prefix_hex"), "{message}");
}

#[test]
fn a_printer_profile_can_come_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mine.toml");
    std::fs::write(&good, include_str!("../../drivers/profiles/xprinter.toml")).unwrap();
    let entry = |path: &std::path::Path| {
        format!(
            "[[printer]]\nname = \"p\"\ntype = \"escpos\"\nprofile_file = \"{}\"\n[printer.file]\npath = \"/tmp/p\"\n",
            path.display()
        )
    };
    let c = parse(&entry(&good)).unwrap();
    assert!(c.printers[0].load_profile().is_ok());
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = 1\n").unwrap();
    let (_, _, path, message) = invalid(&entry(&bad));
    assert_eq!(path, "printer[0].profile");
    assert!(message.contains("bad.toml"), "{message}");
}

#[test]
fn the_hashing_gate_is_bounded_and_named_when_wrong() {
    let c = parse("[ledger]\nhash_concurrency = 4\nhash_queue_timeout_ms = 2000\n").unwrap();
    assert_eq!(c.ledger.hash_concurrency, 4);
    assert_eq!(c.ledger.hash_queue_timeout(), Duration::from_secs(2));
    assert_eq!(parse("").unwrap().ledger.hash_concurrency, 2);
    for bad in ["0", "65"] {
        let (line, _, path, message) = invalid(&format!("[ledger]\nhash_concurrency = {bad}\n"));
        assert_eq!((line, path.as_str()), (2, "ledger.hash_concurrency"));
        assert!(message.contains("1 to 64"), "{message}");
    }
    let (line, _, path, _) = invalid("[ledger]\n\nhash_queue_timeout_ms = 0\n");
    assert_eq!((line, path.as_str()), (3, "ledger.hash_queue_timeout_ms"));
}

#[test]
fn printer_taxes_map_2026_names_and_refuse_the_old_ones() {
    let entry = |taxes: &str| {
        format!(
            "[[printer]]\nname = \"fiscal\"\ntype = \"shtrih\"\n[printer.tcp]\nhost = \"127.0.0.1\"\nport = 7778\n[printer.taxes]\n{taxes}"
        )
    };
    let c = parse(&entry("vat22 = 1\nvat5_105 = 8\n")).unwrap();
    let map = c.printers[0].tax_map().unwrap();
    use crate::devices::ffd::Tax;
    assert_eq!(map.position(Tax::Vat22), Some(1));
    assert_eq!(map.position(Tax::Vat5_105), Some(8));
    assert_eq!(
        map.position(Tax::Vat10),
        None,
        "a table replaces the default"
    );
    let (_, _, path, message) = invalid(&entry("vat20 = 1\n"));
    assert_eq!(path, "printer[0].taxes.vat20");
    assert!(message.contains("\"vat22\""), "{message}");
    let (_, _, path, message) = invalid(&entry("vat22 = 9\n"));
    assert_eq!(path, "printer[0].taxes.vat22");
    assert!(message.contains("1 to 8"), "{message}");
    let (_, _, _, message) = invalid(&entry("vat22 = 1\nvat10 = 1\n"));
    assert!(message.contains("already"), "{message}");
    // Without the table: the 2026 factory mapping.
    let (_, _, path, _) = invalid(&entry(""));
    assert_eq!(path, "printer[0].taxes");
    let plain = entry("").replace("[printer.taxes]\n", "");
    let c = parse(&plain).unwrap();
    assert_eq!(
        c.printers[0].tax_map().unwrap().position(Tax::Vat7),
        Some(8)
    );
}

const CENTRAL: &str = "[ledger]\nbackend = \"central\"\n[ledger.central]\n\
                       url = \"https://ledger.example.com:7460\"\nterminal = \"till-1\"\n\
                       key_file = \"/etc/posbridge/central.key\"\n";

#[test]
fn the_central_backend_reads_its_table_with_default_timeouts() {
    let c = parse(CENTRAL).unwrap();
    assert_eq!(c.ledger.backend, LedgerBackend::Central);
    let central = c.ledger.central.unwrap();
    assert_eq!(central.url, "https://ledger.example.com:7460");
    assert_eq!(central.terminal, "till-1");
    assert_eq!(
        central.key_file,
        std::path::PathBuf::from("/etc/posbridge/central.key")
    );
    assert_eq!(
        (central.connect_timeout_ms, central.request_timeout_ms),
        (2000, 5000)
    );
}

#[test]
fn the_central_backend_needs_its_table() {
    let (line, _, path, message) = invalid("[ledger]\nbackend = \"central\"\n");
    assert_eq!((line, path.as_str()), (2, "ledger.central"));
    assert!(message.contains("[ledger.central]"), "{message}");
}

#[test]
fn bad_central_settings_name_their_key() {
    let cases = [
        ("https://ledger.example.com:7460", "ftp://ledger", "url"),
        ("https://ledger.example.com:7460", "not a url", "url"),
        ("terminal = \"till-1\"", "terminal = \"\"", "terminal"),
        ("terminal = \"till-1\"", "terminal = \"till 1\"", "terminal"),
    ];
    for (from, to, key) in cases {
        let src = CENTRAL.replace(from, to);
        let (_, _, path, _) = invalid(&src);
        assert_eq!(path, format!("ledger.central.{key}"), "{src}");
    }
    let slow = format!("{CENTRAL}connect_timeout_ms = 99\n");
    assert_eq!(invalid(&slow).2, "ledger.central.connect_timeout_ms");
    let slow = format!("{CENTRAL}request_timeout_ms = 300001\n");
    assert_eq!(invalid(&slow).2, "ledger.central.request_timeout_ms");
    // Unknown keys are refused by name, like everywhere else.
    let typo = format!("{CENTRAL}timeout = 5\n");
    assert!(parse(&typo).is_err());
}

#[test]
fn every_wrong_key_is_reported_in_one_pass_in_file_order() {
    let src = "[daemon]\nmax_clients = \"many\"\nlog_json = 1\nsocket_mode = 660\n\n[[printer]]\nname = \"r\"\nwidth = \"x\"\n";
    let Err(ConfigError::Several(errors)) = parse(src) else {
        panic!("expected several errors");
    };
    let at: Vec<(usize, String)> = errors
        .iter()
        .map(|e| match e {
            ConfigError::Invalid { line, path, .. } => (*line, path.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        at,
        [
            (2, "daemon.max_clients".to_owned()),
            (3, "daemon.log_json".to_owned()),
            (4, "daemon.socket_mode".to_owned()),
            (6, "printer[0]".to_owned()),
            (8, "printer[0].width".to_owned()),
        ]
    );
    let text = ConfigError::Several(errors).to_string();
    assert!(
        text.contains(
            "daemon.max_clients: expected a whole number (0 or more), found the text \"many\""
        ),
        "{text}"
    );
    assert!(
        text.contains("printer #1, width: unknown key `width`"),
        "{text}"
    );
    assert!(!text.contains("usize"), "{text}");
}

#[test]
fn a_programme_value_out_of_range_points_at_its_key() {
    let src = "[ledger.programme]\nname = \"x\"\n\n[[ledger.programme.categories]]\ncategory = \"otc\"\n\n[[ledger.programme.categories]]\ncategory = \"rx\"\ncap_percent = \"150\"\n";
    let (line, column, path, message) = invalid(src);
    assert_eq!((line, column), (9, 1));
    assert_eq!(path, "ledger.programme.categories[1].cap_percent");
    assert!(message.contains("150"), "{message}");
    let (line, _, path, _) = invalid("[ledger.programme]\nname = \"x\"\ncap_percent = \"150\"\n");
    assert_eq!((line, path.as_str()), (3, "ledger.programme.cap_percent"));
}

#[test]
fn a_duplicate_key_is_named() {
    let (line, _, _, message) = invalid("[daemon]\nlog_level = \"info\"\nlog_level = \"debug\"\n");
    assert_eq!(line, 3);
    assert!(message.contains("`log_level` appears twice"), "{message}");
}
