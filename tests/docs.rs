//! The documentation cannot drift from the code: the example configurations
//! pass `posbridge config check`, every configuration key that the samples
//! use is described in `docs/config.md`, every error code is in
//! `docs/protocol.md`, and the Python example client completes a sale
//! against a real daemon.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `examples/*.toml`, sorted.
fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the example configurations in examples/"
    );
    files
}

#[test]
fn every_example_passes_config_check() {
    for file in example_files() {
        let out = Command::new(common::BIN)
            .arg("config")
            .arg("check")
            .arg(&file)
            .env_remove("RUST_LOG")
            .output()
            .expect("run posbridge config check");
        assert!(
            out.status.success(),
            "{} fails `posbridge config check`:\nstdout: {}\nstderr: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
    }
}

/// `src/config/example.toml` with every commented `key = value` and
/// `[table]` line uncommented, exactly as `src/config/tests.rs` does it.
fn uncommented_example() -> String {
    read("src/config/example.toml")
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
        .join("\n")
}

/// Dotted paths of every key with a value that is not a table. Arrays of
/// tables contribute their elements' keys without an index
/// (`reader.serial.port`).
fn key_paths(prefix: &str, v: &toml::Value, out: &mut BTreeSet<String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match v {
                    toml::Value::Table(_) => key_paths(&path, v, out),
                    toml::Value::Array(items)
                        if !items.is_empty() && items.iter().all(toml::Value::is_table) =>
                    {
                        for item in items {
                            key_paths(&path, item, out);
                        }
                    }
                    _ => {
                        out.insert(path);
                    }
                }
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn config_md_describes_every_key_of_the_samples() {
    let doc = read("docs/config.md");
    let mut sources = vec![(
        "src/config/example.toml (uncommented)".to_owned(),
        uncommented_example(),
    )];
    for f in example_files() {
        sources.push((
            f.display().to_string(),
            std::fs::read_to_string(&f).unwrap(),
        ));
    }
    let mut missing = Vec::new();
    let mut total = 0;
    for (name, text) in sources {
        let value: toml::Value =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{name} is not TOML: {e}"));
        let mut paths = BTreeSet::new();
        key_paths("", &value, &mut paths);
        assert!(!paths.is_empty(), "{name} has no keys");
        for p in paths {
            total += 1;
            if !doc.contains(&format!("`{p}`")) {
                missing.push(format!("{p} (from {name})"));
            }
        }
    }
    assert!(total > 40, "only {total} keys found: the walk is broken");
    assert!(
        missing.is_empty(),
        "docs/config.md does not describe these keys (write each as its full dotted path in backticks):\n{}",
        missing.join("\n")
    );
}

/// `(NAME, N)` for every `pub const NAME: i64 = N;` in `src/api/rpc.rs`.
fn error_codes() -> Vec<(String, i64)> {
    read("src/api/rpc.rs")
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": i64 = ")?;
            let n = rest.strip_suffix(';')?.trim().parse().ok()?;
            Some((name.trim().to_owned(), n))
        })
        .collect()
}

#[test]
fn protocol_md_lists_every_error_code() {
    let doc = read("docs/protocol.md");
    let start = doc
        .find("## 5. Error codes")
        .expect("docs/protocol.md has section 5. Error codes");
    let section = &doc[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    let codes = error_codes();
    assert!(
        codes.len() >= 20,
        "only {} codes read from rpc.rs",
        codes.len()
    );
    let missing: Vec<String> = codes
        .iter()
        .filter(|(name, n)| {
            !section
                .lines()
                .any(|l| l.starts_with(&format!("| {n} | `{name}` |")))
        })
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/protocol.md's error table lacks rows `| N | `NAME` | ...` for:\n{}",
        missing.join("\n")
    );
}

fn python3() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("python3"))
        .find(|p| p.is_file())
}

#[tokio::test]
async fn the_python_example_client_completes_a_sale() {
    // Never skipped: .ci/run installs python3; elsewhere the failure says
    // what to install.
    let python = python3().expect("python3 is not installed: apt-get install python3");
    let d = Daemon::start("", "");
    let mut child = Command::new(python)
        .arg(root().join("docs/example_client.py"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("--timeout")
        .arg("30")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    // Read the client's stdout on a thread, line by line.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.trim() == "subscribed";
                lines.push(l);
                if done {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the client did not subscribe ({e}); stdout so far: {lines:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    // The cashier types the card: the daemon announces it as card.read.
    let mut c = d.client().await;
    let r = c
        .call("card.enter", json!({"number": "6035000011112222"}))
        .await
        .expect("card.enter");
    assert_eq!(r["card_masked"], "****2222");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not finish; stdout: {lines:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        status.success(),
        "the client failed ({status}); stdout: {lines:?}; stderr: {stderr}"
    );
    let committed = lines
        .iter()
        .find_map(|l| l.strip_prefix("committed: "))
        .unwrap_or_else(|| panic!("no `committed:` line in {lines:?}"));
    let v: Value = serde_json::from_str(committed).expect("committed: JSON");
    assert!(v["transaction"].is_i64(), "{v}");
    assert!(v["balance_after"].is_string(), "{v}");
    // The built-in programme: 5 % of 1000.00 in whole points.
    assert_eq!(v["accrued"], "50", "{v}");
    assert_eq!(v["balance_after"], "50", "{v}");
}
