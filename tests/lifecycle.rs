//! Daemon life: signals, reload, sockets, roles over TCP, systemd protocol.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::{BIN, Daemon, eventually, file_printer};
use nix::sys::signal::Signal;
use posbridge::client::{Client, ClientError};
use serde_json::{Value, json};

async fn devices(d: &Daemon) -> Vec<Value> {
    let mut c = d.client().await;
    let r = c.call("devices.list", json!({})).await.unwrap();
    r["devices"].as_array().unwrap().clone()
}

fn instance(devs: &[Value], name: &str) -> Option<u64> {
    devs.iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["instance"].as_u64())
}

#[tokio::test]
async fn sigterm_exits_zero_and_removes_the_socket() {
    let mut d = Daemon::start("", "");
    let mut c = d.client().await;
    c.call("system.ping", json!({})).await.unwrap();
    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "log:\n{}", d.log());
    assert!(!d.socket.exists(), "socket file must be removed");
    // The open connection was closed, not left hanging.
    assert!(matches!(
        c.call("system.ping", json!({})).await,
        Err(ClientError::Closed | ClientError::Io(_))
    ));
}

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    let printers = format!(
        "{}{}",
        file_printer("p1", dir.path()),
        file_printer("p2", dir.path())
    );
    let d = Daemon::start("", &printers);
    let before = devices(&d).await;
    assert_eq!(before.len(), 2);

    d.write_config(
        "",
        &format!("{printers}\n[[printer]]\nname = \"p3\"\ncolour = 1\n"),
    );
    d.signal(Signal::SIGHUP);
    eventually("the refusal in the log", || async {
        d.log().contains("reload refused").then_some(())
    })
    .await;
    assert!(d.log().contains("colour"), "the log names the bad key");
    let after = devices(&d).await;
    assert_eq!(after.len(), 2);
    assert_eq!(instance(&after, "p1"), instance(&before, "p1"));
    assert_eq!(instance(&after, "p2"), instance(&before, "p2"));
    let mut c = d.client().await;
    assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
}

#[tokio::test]
async fn sighup_restarts_only_the_devices_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = file_printer("p1", dir.path());
    let p2 = file_printer("p2", dir.path());
    let p3 = file_printer("p3", dir.path());
    let d = Daemon::start("", &format!("{p1}{p2}{p3}"));
    let before = devices(&d).await;

    // p2 moves to another file, p3 goes away, p4 arrives; p1 is untouched.
    let p2_changed = p2.replace("p2.bin", "p2-new.bin");
    let p4 = file_printer("p4", dir.path());
    d.write_config("", &format!("{p1}{p2_changed}{p4}"));
    d.signal(Signal::SIGHUP);
    let after = eventually("p4 to appear", || async {
        let devs = devices(&d).await;
        instance(&devs, "p4").map(|_| devs)
    })
    .await;
    assert_eq!(
        instance(&after, "p1"),
        instance(&before, "p1"),
        "p1 untouched"
    );
    assert_ne!(
        instance(&after, "p2"),
        instance(&before, "p2"),
        "p2 restarted"
    );
    assert_eq!(instance(&after, "p3"), None, "p3 stopped");
    let names: Vec<_> = after.iter().map(|d| d["name"].clone()).collect();
    assert_eq!(names, vec![json!("p1"), json!("p2"), json!("p4")]);
    eventually("p2 to write its new file", || async {
        dir.path().join("p2-new.bin").exists().then_some(())
    })
    .await;
}

#[tokio::test]
async fn system_reload_reports_what_changed_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = file_printer("p1", dir.path());
    let d = Daemon::start("", &p1);
    let mut c = d.client().await;
    d.write_config("", &format!("{p1}{}", file_printer("p2", dir.path())));
    let r = c.call("system.reload", json!({})).await.unwrap();
    assert_eq!(r["devices"]["started"], json!(["p2"]));
    assert_eq!(r["devices"]["unchanged"], json!(["p1"]));

    d.write_config("", "[[printer]]\nname = 1\n");
    let ClientError::Rpc { error } = c.call("system.reload", json!({})).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(error["code"], 1101);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(":7:8: printer #1, name"), "{error}");
    assert_eq!(devices(&d).await.len(), 2);
}

/// `posbridge reload ARGS` against `d`'s configuration file, as the
/// unit's ExecReload= runs it.
fn reload_command(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(&d.config)
        .arg("reload")
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("POSBRIDGE_SOCKET")
        .env_remove("POSBRIDGE_TOKEN")
        .output()
        .expect("run posbridge reload")
}

#[tokio::test]
async fn the_reload_command_fails_with_the_reason_on_a_refused_file_and_applies_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let p1 = file_printer("p1", dir.path());
    let d = Daemon::start("", &p1);
    let before = devices(&d).await;

    // A refused file: exit 1 and the daemon's reason (file:line:col and key)
    // on stderr, the old configuration still in force. The client cannot
    // take the socket from the broken file, so it is named here; the unit
    // relies on the default path the socket unit listens on.
    d.write_config(
        "",
        &format!("{p1}\n[[printer]]\nname = \"p2\"\ncolour = 1\n"),
    );
    let socket = d.socket.to_str().unwrap();
    let out = reload_command(&d, &["--socket", socket]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("reload refused"), "{stderr}");
    assert!(stderr.contains("colour"), "names the bad key: {stderr}");
    assert!(
        stderr.contains(&d.config.display().to_string()),
        "names the file: {stderr}"
    );
    let after = devices(&d).await;
    assert_eq!(after.len(), 1);
    assert_eq!(instance(&after, "p1"), instance(&before, "p1"));

    // A good file: exit 0, the change applied and reported. The socket comes
    // from the (now valid) configuration file.
    d.write_config("", &format!("{p1}{}", file_printer("p2", dir.path())));
    let out = reload_command(&d, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("started p2; restarted -; stopped -; unchanged p1"),
        "{stdout}"
    );
    let after = devices(&d).await;
    assert_eq!(after.len(), 2);
    assert_eq!(instance(&after, "p1"), instance(&before, "p1"));

    // A daemon that is not there is a failure too, not a silent success.
    let out = reload_command(
        &d,
        &["--socket", dir.path().join("nobody.sock").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is the daemon running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_is_not_stolen() {
    // A stale socket file: bound, then the listener is gone.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("posbridge.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let mut d = Daemon::start("", "");
    // Daemon::start uses its own dir; point a second daemon at the stale one.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, common::config_text(dir.path(), "", "")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut c = eventually("the daemon on the stale path", || async {
        Client::unix(&stale).await.ok()
    })
    .await;
    assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    assert!(child.wait().unwrap().success());

    // A live socket: a second daemon on d's socket must refuse to start.
    let out = Command::new(BIN)
        .args(["--config", d.config.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already listens"), "{err}");
    let mut c = d.client().await;
    assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(20)).success());
}

use common::{ADMIN_TOKEN as ADMIN, CASHIER_TOKEN as CASHIER};

fn code(r: Result<Value, ClientError>) -> i64 {
    match r {
        Err(ClientError::Rpc { error }) => error["code"].as_i64().unwrap(),
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[tokio::test]
async fn tcp_clients_log_in_and_roles_are_enforced() {
    let tcp = common::TcpTokens::new();
    let d = Daemon::start(&tcp.daemon_extra, "");
    let addr = tcp.addr.clone();

    let mut anon = Client::tcp(&addr).await.unwrap();
    assert_eq!(code(anon.call("system.ping", json!({})).await), 1001);
    assert_eq!(
        code(
            anon.call("auth.login", json!({"token": "wrong-token-000000000"}))
                .await
        ),
        1003
    );
    assert_eq!(code(anon.call("devices.list", json!({})).await), 1001);

    let mut cashier = Client::tcp(&addr).await.unwrap();
    let r = cashier
        .call("auth.login", json!({"token": CASHIER}))
        .await
        .unwrap();
    assert_eq!(r["role"], "cashier");
    assert_eq!(
        cashier.call("system.ping", json!({})).await.unwrap(),
        "pong"
    );
    cashier.call("devices.list", json!({})).await.unwrap();
    assert_eq!(code(cashier.call("system.reload", json!({})).await), 1002);
    assert_eq!(
        code(cashier.call("devices.restart", json!({"name": "x"})).await),
        1002
    );
    let info = cashier.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["role"], "cashier");

    let mut admin = Client::tcp(&addr).await.unwrap();
    let r = admin
        .call("auth.login", json!({"token": ADMIN}))
        .await
        .unwrap();
    assert_eq!(r["role"], "admin");
    admin.call("system.reload", json!({})).await.unwrap();

    // The token itself never reaches the log.
    assert!(!d.log().contains(CASHIER) && !d.log().contains(ADMIN));
}

#[tokio::test]
async fn tcp_needs_a_token_file_and_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[daemon.tcp]\nlisten = \"0.0.0.0:7450\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2:10: daemon.tcp.listen"), "{err}");
}

#[tokio::test]
async fn socket_activation_and_the_notify_protocol() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("activated.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let fd = listener.as_raw_fd();
    let mut d = Daemon::start("", "");
    // Stop the helper's own daemon; reuse its config dir for a second one
    // whose socket comes from "systemd".
    d.signal(Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ WATCHDOG_PID=$$ exec \"$0\" --config \"$1\" run")
        .arg(BIN)
        .arg(&d.config)
        .env("LISTEN_FDS", "1")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .stderr(std::fs::File::create(d.log_path()).unwrap());
    // SAFETY: dup2 is async-signal-safe; the child has one thread here.
    unsafe {
        cmd.pre_exec(move || {
            use std::os::fd::{BorrowedFd, IntoRawFd};
            let fd = BorrowedFd::borrow_raw(fd);
            if fd.as_raw_fd() != 3 {
                // dup2 leaves close-on-exec clear on the new descriptor;
                // it must stay open into the exec, so it is not dropped.
                let _ = nix::unistd::dup2_raw(fd, 3)?.into_raw_fd();
            } else {
                // Clear close-on-exec on fd 3 itself.
                let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD)?;
                let flags =
                    nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC;
                nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags))?;
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();

    let mut buf = [0u8; 4096];
    let mut seen = String::new();
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = notify
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notify ({e}); got {seen:?}; log:\n{}", d.log()));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    let mut c = Client::unix(&sock_path).await.unwrap();
    assert_eq!(c.call("system.ping", json!({})).await.unwrap(), "pong");
    let info = c.call("system.info", json!({})).await.unwrap();
    assert_eq!(info["socket"], json!(sock_path));
    assert!(
        !d.socket.exists(),
        "with activation the daemon binds nothing itself"
    );

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    assert!(child.wait().unwrap().success());
    assert!(sock_path.exists(), "systemd's socket is left in place");
    drop(listener);
}

#[tokio::test]
async fn a_serial_reader_connects_and_reports_a_hang_up() {
    // The daemon opens the port by path; the test keeps only the device end.
    let (device, path) = common::pty_pair();
    let reader =
        format!("[[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{path}\"\n");
    let d = Daemon::start("", &reader);
    let mut sub = d.client().await;
    sub.call("events.subscribe", json!({"topics": ["device.status"]}))
        .await
        .unwrap();
    eventually("connected", || async {
        let devs = devices(&d).await;
        (devs[0]["status"] == "connected").then_some(())
    })
    .await;
    drop(device);
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), sub.next_notification())
            .await
            .expect("a status event")
            .unwrap();
        if n["params"]["status"] == "disconnected" {
            assert_eq!(n["params"]["device"], "msr");
            break;
        }
    }
}

#[test]
fn config_check_reports_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[daemon]\nmax_clients = 4\n\n  colour = \"red\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:4:3: daemon.colour: "), "{err}");

    // `run` refuses the same file with the same message.
    let out = Command::new(BIN)
        .args(["--config", bad.to_str().unwrap(), "run"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:4:3"));

    // Wrong type.
    std::fs::write(&bad, "[daemon]\nmax_clients = \"many\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:15: daemon.max_clients: "), "{err}");
}

#[test]
fn the_example_config_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let example = dir.path().join("example.toml");
    std::fs::write(&example, &out.stdout).unwrap();
    let check = Command::new(BIN)
        .args(["config", "check", example.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_call_command_prints_results_and_fails_on_errors() {
    let d = Daemon::start("", "");
    let sock = d.socket.to_str().unwrap().to_owned();
    let out = Command::new(BIN)
        .args(["call", "--socket", &sock, "system.ping"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"pong\"");

    let out = Command::new(BIN)
        .args([
            "call",
            "--socket",
            &sock,
            "devices.restart",
            "{\"name\":\"nope\"}",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1201"));

    // The socket from the config file, no --socket.
    let out = Command::new(BIN)
        .args([
            "--config",
            d.config.to_str().unwrap(),
            "call",
            "system.info",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["socket"], json!(d.socket));
}

#[tokio::test]
async fn the_socket_file_gets_the_configured_mode_and_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = Daemon::start("", "");
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    drop(d);
    // Group "root" exists everywhere.
    let d = Daemon::start("socket_mode = \"0600\"\nsocket_group = \"root\"", "");
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid(), 0);
}

#[tokio::test]
async fn the_events_command_prints_events_as_they_arrive() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start("", &file_printer("p1", dir.path()));
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "events",
            "--raw",
            "--socket",
            d.socket.to_str().unwrap(),
            "device.*",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut c = d.client().await;
    // The subscription is set up asynchronously: restart until an event shows.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        assert!(std::time::Instant::now() < deadline, "no event line");
        c.call("devices.restart", json!({"name": "p1"}))
            .await
            .unwrap();
        if let Ok(Ok(Some(l))) =
            tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await
        {
            break l;
        }
    };
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["params"]["topic"], "device.status");
    assert_eq!(v["params"]["device"], "p1");

    // `posbridge events | head -1`: the reader goes away; the next event
    // ends the command quietly (it panicked with "Broken pipe", exit 101).
    drop(lines);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        assert!(std::time::Instant::now() < deadline, "events kept running");
        c.call("devices.restart", json!({"name": "p1"}))
            .await
            .unwrap();
        if let Ok(s) = tokio::time::timeout(Duration::from_millis(300), child.wait()).await {
            break s.unwrap();
        }
    };
    assert!(status.success(), "{status}");
    let mut err = String::new();
    use tokio::io::AsyncReadExt;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
