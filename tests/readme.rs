//! The README's walkthroughs work when pasted: the shell blocks of
//! "Selling with points" run, as written, against a daemon started on its
//! built-in defaults (no configuration file; runtime and data directories
//! of a throwaway home), and every stable field the README shows in the
//! output after a block is in what that block printed.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A README section's blocks: `(is_shell, text)` in order.
fn blocks(readme: &str, section: &str) -> Vec<(bool, String)> {
    let start = readme
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {section:?}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut out = Vec::new();
    let mut current: Option<(bool, String)> = None;
    for line in rest[..end].lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim() == "sh", String::new())),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, text)), None) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block in {section:?}");
    out
}

/// The `"key": value` pairs of a shown output that must come out the same
/// on any day: times, tokens and ids of the moment are left out.
fn stable_pairs(shown: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `"key": value` where value is a string, a number, true, false or null.
    for (i, _) in shown.match_indices("\": ") {
        let Some(open) = shown[..i].rfind('"') else {
            continue;
        };
        let key = &shown[open + 1..i];
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let after = &shown[i + 3..];
        let value = if let Some(body) = after.strip_prefix('"') {
            match body.find('"') {
                Some(end) => &after[..end + 2],
                None => continue,
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(after.len());
            &after[..end]
        };
        let scalar = value.starts_with('"')
            || matches!(value, "true" | "false" | "null")
            || (!value.is_empty()
                && value
                    .trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit()));
        let moment = key == "at"
            || key.ends_with("_at")
            || key == "card_token"
            || key == "terminal_id"
            || key == "token_expires_in_s";
        if scalar && !moment {
            out.push(format!("\"{key}\": {value}"));
        }
    }
    out
}

/// The daemon as a newcomer starts it: `posbridge run`, no configuration.
struct Defaults {
    home: tempfile::TempDir,
    child: Child,
}

impl Defaults {
    fn env(&self, cmd: &mut Command) {
        let h = self.home.path();
        cmd.env("HOME", h)
            .env("XDG_RUNTIME_DIR", h.join("run"))
            .env("XDG_DATA_HOME", h.join("data"))
            .env("XDG_CONFIG_HOME", h.join("config"))
            .env_remove("POSBRIDGE_CONFIG")
            .env_remove("POSBRIDGE_SOCKET")
            .env_remove("POSBRIDGE_TOKEN")
            .env_remove("RUST_LOG");
    }

    fn start() -> Defaults {
        assert!(
            !Path::new("/etc/posbridge/posbridge.toml").exists(),
            "/etc/posbridge/posbridge.toml exists: the README's walkthrough assumes built-in defaults"
        );
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("run")).unwrap();
        let mut cmd = Command::new(common::BIN);
        cmd.arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(home.path().join("daemon.log")).unwrap());
        let mut d = Defaults {
            child: Command::new("true").spawn().unwrap(),
            home,
        };
        d.env(&mut cmd);
        d.child = cmd.spawn().unwrap();
        let socket = d.home.path().join("run/posbridge/posbridge.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "no socket; log:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Defaults {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_selling_with_points_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = blocks(&readme, "Selling with points");
    let d = Defaults::start();
    // `posbridge` on the PATH, as `cargo install --path .` leaves it.
    let bin_dir = d.home.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(common::BIN, bin_dir.join("posbridge")).unwrap();

    // One shell runs every block in order (later blocks use the variables
    // of earlier ones); a marker after each block splits what it printed.
    let mut script = String::from("set -euo pipefail\n");
    let mut shells = 0;
    for (is_shell, text) in &blocks {
        if *is_shell {
            script.push_str(text);
            script.push_str(&format!("echo '@@block {shells}@@'\n"));
            shells += 1;
        }
    }
    assert!(shells >= 5, "the walkthrough lost its commands");
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).env(
        "PATH",
        format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    d.env(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the walkthrough failed:\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{}\n--- daemon\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );

    // Each shown output against what its block printed.
    let mut printed = Vec::new();
    let mut rest: &str = &stdout;
    for i in 0..shells {
        let marker = format!("@@block {i}@@\n");
        let at = rest.find(&marker).expect("every block ran");
        printed.push(&rest[..at]);
        rest = &rest[at + marker.len()..];
    }
    let mut shell = 0;
    let mut checked = 0;
    for (is_shell, text) in &blocks {
        if *is_shell {
            shell += 1;
            continue;
        }
        assert!(shell > 0, "an output block before any command");
        for pair in stable_pairs(text) {
            assert!(
                printed[shell - 1].contains(&pair),
                "README shows {pair} after command block {shell}, but it printed:\n{}",
                printed[shell - 1]
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} shown fields were checked");
}
