//! `posbridge ledger verify|export` as a technician runs them: on the
//! database the configuration names, which must exist, opened read-only.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{BIN, Daemon};
use nix::sys::signal::Signal;

/// `posbridge --config CONFIG ledger ARGS` with a private home, so the
/// built-in defaults point inside `home` and never at the machine's files.
fn ledger(config: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("ledger")
        .args(args)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env_remove("STATE_DIRECTORY")
        .env_remove("POSBRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run posbridge ledger")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_a_database_verify_and_export_name_the_path_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    // A file with nothing in it: the built-in defaults, as on a machine
    // where the tool is run without the till's configuration.
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "# nothing here\n").unwrap();
    let default_db = home.join("data/posbridge/posbridge.sqlite3");
    for args in [&["verify"][..], &["export", "--format", "json"][..]] {
        let out = ledger(&config, &home, args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(!stdout.contains("invariant holds"), "{stdout}");
        assert!(
            stderr.contains(&format!("no ledger database at {}", default_db.display())),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--config PATH"), "names the fix: {stderr}");
        assert!(
            stderr.contains(&config.display().to_string()),
            "names the configuration it used: {stderr}"
        );
        assert!(
            !home.join("data/posbridge").exists(),
            "{args:?} created the state dir"
        );
    }

    // A configuration whose state dir holds no database: the same, naming
    // that path.
    let state = dir.path().join("state");
    let config = dir.path().join("till.toml");
    std::fs::write(
        &config,
        format!("[daemon]\nstate_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    let out = ledger(&config, &home, &["verify"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let db = state.join("posbridge.sqlite3");
    assert!(
        stderr.contains(&format!("no ledger database at {}", db.display())),
        "{stderr}"
    );
    assert!(!state.exists(), "verify created {}", state.display());
}

#[test]
fn verify_and_export_read_the_daemons_database_and_leave_it_as_it_was() {
    let mut d = Daemon::start("", "");
    let home = d.dir.path().join("home");
    // Beside the running daemon (WAL, one writer): a read-only reader.
    let out = ledger(&d.config, &home, &["verify"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let db = d.dir.path().join("state/posbridge.sqlite3");
    assert!(
        stdout.contains(&format!("{}: every invariant holds", db.display())),
        "{stdout}"
    );

    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    let before = std::fs::read(&db).unwrap();
    let out = ledger(&d.config, &home, &["export"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("txn_id,kind,created_at,"), "{stdout}");
    assert!(ledger(&d.config, &home, &["verify"]).status.success());
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database changed");

    // A file an older posbridge wrote is not migrated by a tool that only
    // reads: it says so and leaves the schema version alone.
    let old = d.dir.path().join("old.sqlite3");
    rusqlite::Connection::open(&old)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1; CREATE TABLE meta (key TEXT, value TEXT);")
        .unwrap();
    let config = d.dir.path().join("old.toml");
    std::fs::write(&config, format!("[ledger]\npath = \"{}\"\n", old.display())).unwrap();
    let out = ledger(&config, &home, &["verify"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("schema version 1, older than this build's"),
        "{stderr}"
    );
    let version: i64 = rusqlite::Connection::open(&old)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
}
