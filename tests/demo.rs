//! `posbridge demo --once` plays its story against the real daemon and
//! exits 0.

#[test]
fn the_demo_runs_its_story_and_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["demo", "--once"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "card.read",
        "\"has_secret\":true",
        "Начислено бонусов",
        "Списано бонусов",
        "sale.refund",
        "\"source\":\"qr\"",
        "fiscal.receipt",
        "КАССОВЫЙ ЧЕК",
        "\"symbology\":\"ean13\"",
        "\"gtin\":\"04601662000016\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("6035000011112222\""),
        "full card number printed"
    );
}

// `posbridge demo --chain`: PostgreSQL, posbridge-central and two tills, all
// children of the demo. The central binary is built beside this package's
// by `cargo test --workspace` (and `cargo build --workspace`).

use std::path::Path;
use std::time::{Duration, Instant};

fn central_beside() {
    let bin = Path::new(env!("CARGO_BIN_EXE_posbridge")).with_file_name("posbridge-central");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace` first)",
        bin.display()
    );
}

/// The pids the demo printed on its `processes:` line and the directories
/// on its `files:` line.
fn started(stdout: &str) -> (Vec<(String, i32)>, Vec<String>) {
    let pids = stdout
        .lines()
        .find_map(|l| l.strip_prefix("processes: "))
        .unwrap_or_else(|| panic!("no processes line in:\n{stdout}"))
        .split_whitespace()
        .map(|kv| {
            let (name, pid) = kv.split_once('=').unwrap();
            (name.to_owned(), pid.parse().unwrap())
        })
        .collect::<Vec<_>>();
    let files = stdout
        .lines()
        .find_map(|l| l.strip_prefix("files: "))
        .unwrap_or_else(|| panic!("no files line in:\n{stdout}"));
    let dirs = files
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .map(str::to_owned)
        .collect();
    (pids, dirs)
}

/// None of the demo's processes runs and its directories are gone. A pid
/// the kernel has since given to someone else is not one of ours.
fn nothing_left(stdout: &str) {
    let (pids, dirs) = started(stdout);
    assert_eq!(pids.len(), 4, "{pids:?}");
    for (name, pid) in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        assert!(
            !cmdline.contains("posbridge") && !cmdline.contains("postgres"),
            "{name} ({pid}) still runs: {cmdline}"
        );
    }
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    for d in dirs {
        assert!(!Path::new(&d).exists(), "{d} left behind");
    }
}

#[test]
fn the_chain_demo_tells_its_story_and_leaves_nothing_behind() {
    central_beside();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["demo", "--chain", "--once"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        // Registered at till 1; the welcome bonus seen from both tills.
        "till 1 account.register: {\"account\":1,",
        "\"welcome_bonus\":\"100\"",
        "balance at till 1: 100, at till 2: 100",
        // 5 % of 1000 at till 1.
        "till 1 sale.commit: {\"accrued\":\"50\",\"balance_after\":\"150\"",
        "balance at till 1: 150, at till 2: 150",
        // 100 points spent at till 2, 5 % of the 600 paid in money earned.
        "till 2 sale.commit: {\"accrued\":\"30\",\"balance_after\":\"80\",\"money_paid\":\"600\"",
        "\"redeemed\":\"100\"",
        "balance at till 1: 80, at till 2: 80",
        // The return at till 2 takes back till 1's accrual.
        "till 2 sale.refund of R-0001: {\"balance_after\":\"30\",\"clawback\":\"50\"",
        "balance at till 1: 30, at till 2: 30",
        "sale     till-1  accrue 50",
        "refund   till-2  clawback -50",
        "posbridge-central verify: ledger consistent",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("6035000011112222"),
        "full card number printed"
    );
    assert!(!stdout.contains('\x1b'), "colour codes in a pipe");
    nothing_left(&stdout);
}

#[test]
fn ctrl_c_stops_the_running_chain_demo_and_everything_it_started() {
    use std::io::{BufRead, BufReader};
    central_beside();
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .args(["demo", "--chain"])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read the story on a thread: a hung demo then fails the deadline below
    // instead of hanging the test.
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("Ctrl-C stops it all") {
                let _ = tx.send(all.clone());
            }
        }
        all
    });
    let running = rx.recv_timeout(Duration::from_secs(240));
    // The chain's back office is the central one, and it answers (checked
    // while the chain runs; a failure is reported after the stop).
    let office = running
        .clone()
        .map(|r| std::panic::catch_unwind(move || backoffice_answers(&r)));
    let pid = nix::unistd::Pid::from_raw(demo.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = demo.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = demo.kill();
            panic!("the demo did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let all = reader.join().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    let running = running.unwrap_or_else(|_| panic!("the chain never ran:\n{all}\n{stderr}"));
    assert!(running.contains("ledger consistent"), "{running}");
    assert!(running.contains("/v1/health"), "{running}");
    if let Ok(Err(e)) = office {
        std::panic::resume_unwind(e);
    }
    assert!(status.success(), "{status}:\n{all}\n{stderr}");
    nothing_left(&all);
}

/// One HTTP/1.1 exchange on `addr` (the connection closed after it).
fn http(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The back office the demo printed answers its login page, and the
/// printed login and password open a session.
fn backoffice_answers(stdout: &str) {
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("The back office: "))
        .unwrap_or_else(|| panic!("no back office address in:\n{stdout}"));
    let addr = url
        .trim()
        .strip_prefix("http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("not an http://HOST:PORT/ address: {url}"));
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    let creds = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("login: "))
        .unwrap_or_else(|| panic!("no login line in:\n{stdout}"));
    let (login, password) = creds
        .split_once("  password: ")
        .unwrap_or_else(|| panic!("{creds}"));
    let page = http(
        addr,
        "GET /login HTTP/1.1\r\nHost: demo\r\nAccept-Language: en\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("name=\"password\""), "{page}");
    let cookie = page
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: bo_login="))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no login token cookie in:\n{page}"));
    let marker = "name=\"csrf\" value=\"";
    let at = page.find(marker).unwrap() + marker.len();
    let token = &page[at..at + page[at..].find('"').unwrap()];
    let body = format!("name={login}&password={password}&csrf={token}");
    let r = http(
        addr,
        &format!(
            "POST /login HTTP/1.1\r\nHost: demo\r\nCookie: bo_login={cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(r.starts_with("HTTP/1.1 303"), "{r}");
    assert!(r.contains("set-cookie: bo_session="), "{r}");
}

#[test]
fn the_demo_prints_a_back_office_that_answers() {
    use std::io::{BufRead, BufReader};
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_posbridge"))
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("Ctrl-C stops it") {
                let _ = tx.send(all.clone());
            }
        }
    });
    let running = rx.recv_timeout(Duration::from_secs(120));
    let checked = running
        .clone()
        .map(|r| std::panic::catch_unwind(move || backoffice_answers(&r)));
    let pid = nix::unistd::Pid::from_raw(demo.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while demo.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = demo.kill();
            panic!("the demo did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = reader.join();
    running.expect("the demo never got to running");
    if let Ok(Err(e)) = checked {
        std::panic::resume_unwind(e);
    }
}
