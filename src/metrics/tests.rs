//! The exposition text, as a scraper reads it.

use std::time::Duration;

use super::*;

fn line_with<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

#[test]
fn requests_are_counted_by_method_and_outcome() {
    let m = Metrics::new();
    m.request("system.ping", "ok", Duration::from_millis(2));
    m.request("system.ping", "ok", Duration::from_millis(3));
    m.request(
        "sale.commit",
        outcome_of(code::INSUFFICIENT_BALANCE),
        Duration::ZERO,
    );
    let t = m.render();
    assert!(t.contains("# TYPE posbridge_requests counter"), "{t}");
    assert!(
        t.contains(r#"posbridge_requests_total{method="system.ping",outcome="ok"} 2"#),
        "{t}"
    );
    assert!(
        t.contains(r#"posbridge_requests_total{method="sale.commit",outcome="refused"} 1"#),
        "{t}"
    );
    assert!(t.contains("# TYPE posbridge_request_duration_seconds histogram"));
    assert!(
        t.contains(r#"posbridge_request_duration_seconds_count{method="system.ping"} 2"#),
        "{t}"
    );
    // 2 ms and 3 ms both fall under the 5 ms bucket, neither under 1 ms.
    assert!(
        t.contains(
            r#"posbridge_request_duration_seconds_bucket{le="0.005",method="system.ping"} 2"#
        ) || t.contains(
            r#"posbridge_request_duration_seconds_bucket{method="system.ping",le="0.005"} 2"#
        ),
        "{t}"
    );
    assert!(t.trim_end().ends_with("# EOF"));
}

#[test]
fn made_up_method_names_share_one_label() {
    let m = Metrics::new();
    for i in 0..100 {
        m.request(&format!("x.{i}"), "unknown_method", Duration::ZERO);
    }
    let t = m.render();
    assert!(
        t.contains(r#"posbridge_requests_total{method="other",outcome="unknown_method"} 100"#),
        "{t}"
    );
    assert_eq!(t.matches("posbridge_requests_total{").count(), 1, "{t}");
}

#[test]
fn error_codes_fall_into_bounded_classes() {
    assert_eq!(outcome_of(code::PARSE_ERROR), "invalid");
    assert_eq!(outcome_of(code::INVALID_PARAMS), "invalid");
    assert_eq!(outcome_of(code::METHOD_NOT_FOUND), "unknown_method");
    assert_eq!(outcome_of(code::FORBIDDEN), "denied");
    assert_eq!(outcome_of(code::BUSY), "busy");
    assert_eq!(outcome_of(code::DEVICE_NOT_FOUND), "device");
    assert_eq!(outcome_of(code::CARD_TOKEN_INVALID), "card");
    assert_eq!(outcome_of(code::UNKNOWN_CARD), "refused");
    assert_eq!(outcome_of(code::INTERNAL_ERROR), "internal");
    assert_eq!(outcome_of(123_456), "internal");
}

#[test]
fn jobs_reads_and_commits_render() {
    let m = Metrics::new();
    m.print_job("receipt", "done");
    m.print_job("receipt", "printing"); // not final: not counted
    m.print_job("receipt", "failed");
    m.fiscal_job("kkt", true);
    m.reader_read("msr");
    m.reader_read("msr");
    m.reader_error("msr");
    m.ledger_commit(Duration::from_millis(20));
    m.ledger_up.set(1);
    let t = m.render();
    for want in [
        r#"posbridge_print_jobs_total{printer="receipt",outcome="done"} 1"#,
        r#"posbridge_print_jobs_total{printer="receipt",outcome="failed"} 1"#,
        r#"posbridge_fiscal_jobs_total{register="kkt",outcome="done"} 1"#,
        r#"posbridge_reader_reads_total{reader="msr"} 2"#,
        r#"posbridge_reader_errors_total{reader="msr"} 1"#,
        "posbridge_ledger_commit_duration_seconds_count 1",
        "posbridge_ledger_up 1",
    ] {
        assert!(t.contains(want), "missing {want}:\n{t}");
    }
    assert!(
        line_with(
            &t,
            r#"posbridge_print_jobs_total{printer="receipt",outcome="printing"}"#
        )
        .is_none()
    );
}

#[test]
fn gauges_render_with_their_labels() {
    let m = Metrics::new();
    m.device_up
        .get_or_create(&[("device", "msr".into()), ("kind", "msr".into())])
        .set(1);
    m.device_state
        .get_or_create(&[("device", "msr".into()), ("state", "connected".into())])
        .set(1);
    m.printer_paper_out
        .get_or_create(&[("printer", "receipt".into())])
        .set(1);
    m.print_queue_depth
        .get_or_create(&[("printer", "receipt".into())])
        .set(3);
    m.fiscal_unsent
        .get_or_create(&[("register", "kkt".into())])
        .set(7);
    m.fiscal_oldest_unsent
        .get_or_create(&[("register", "kkt".into())])
        .set(90_000);
    m.fiscal_queue_depth
        .get_or_create(&[("register", "kkt".into())])
        .set(0);
    let t = m.render();
    for want in [
        "# TYPE posbridge_device_up gauge",
        r#"posbridge_device_up{device="msr",kind="msr"} 1"#,
        r#"posbridge_device_state{device="msr",state="connected"} 1"#,
        r#"posbridge_printer_paper_out{printer="receipt"} 1"#,
        r#"posbridge_print_queue_depth{printer="receipt"} 3"#,
        r#"posbridge_fiscal_unsent_documents{register="kkt"} 7"#,
        r#"posbridge_fiscal_oldest_unsent_seconds{register="kkt"} 90000"#,
        r#"posbridge_fiscal_queue_depth{register="kkt"} 0"#,
    ] {
        assert!(t.contains(want), "missing {want}:\n{t}");
    }
}

/// One sample in every series, as a daemon with a printer, a register and
/// a reader has after a while.
pub(crate) fn filled() -> Metrics {
    let m = Metrics::new();
    m.request("system.ping", "ok", Duration::ZERO);
    m.print_job("receipt", "done");
    m.fiscal_job("kkt", false);
    m.reader_read("msr");
    m.reader_error("msr");
    m.ledger_commit(Duration::ZERO);
    let one = |k: &'static str, v: &str| [(k, v.to_owned())];
    let two = |k: &'static str, v: &str, k2: &'static str, v2: &str| {
        [(k, v.to_owned()), (k2, v2.to_owned())]
    };
    m.device_up
        .get_or_create(&two("device", "msr", "kind", "msr"))
        .set(1);
    m.device_state
        .get_or_create(&two("device", "msr", "state", "connected"))
        .set(1);
    m.print_queue_depth
        .get_or_create(&one("printer", "receipt"))
        .set(0);
    m.printer_paper_out
        .get_or_create(&one("printer", "receipt"))
        .set(0);
    m.fiscal_queue_depth
        .get_or_create(&one("register", "kkt"))
        .set(0);
    m.fiscal_unsent
        .get_or_create(&one("register", "kkt"))
        .set(0);
    m.fiscal_oldest_unsent
        .get_or_create(&one("register", "kkt"))
        .set(0);
    m
}

#[test]
fn every_series_has_help_and_type() {
    let t = filled().render();
    for name in SERIES {
        assert!(
            t.contains(&format!("# TYPE {name} ")),
            "no TYPE for {name}:\n{t}"
        );
        assert!(
            t.contains(&format!("# HELP {name} ")),
            "no HELP for {name}:\n{t}"
        );
    }
    let families = t.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(families, SERIES.len(), "SERIES is not the whole list:\n{t}");
}

#[test]
fn protocol_md_documents_every_series_and_its_alerts_use_real_ones() {
    let doc = include_str!("../../docs/protocol.md");
    let at = doc.find("## 10. Health and metrics").expect("the section");
    let section = &doc[at..];
    let mut named = std::collections::BTreeSet::new();
    for (i, _) in section.match_indices("posbridge_") {
        let word: String = section[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        named.insert(word);
    }
    let rendered = filled().render();
    for name in &named {
        if name == "posbridge_console" {
            continue; // the console's cookie
        }
        // Every name in the docs (tables and alert rules alike) is a
        // sample the endpoint really writes (a histogram by its _count).
        assert!(
            rendered.contains(&format!("\n{name}{{"))
                || rendered.contains(&format!("\n{name} "))
                || rendered.contains(&format!("\n{name}_count")),
            "docs/protocol.md names {name}, which /metrics does not write"
        );
    }
    for family in SERIES {
        assert!(
            named.iter().any(|n| n.starts_with(family)),
            "docs/protocol.md does not document {family}"
        );
    }
}
