//! `posbridge devices` judges access for the daemon's user, not for the
//! one running it (the tests run as root, for whom everything opens).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::BIN;

#[test]
fn a_root_only_node_is_denied_to_the_daemon_user_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let node = dir.path().join("ttyFAKE0");
    std::fs::write(&node, b"").unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("posbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[reader]]\nname = \"msr\"\ntype = \"msr\"\n[reader.serial]\nport = \"{}\"\nbaud = 9600\n",
            node.display()
        ),
    )
    .unwrap();
    let run = |lang: &str| {
        Command::new(BIN)
            .args(["devices", "--as", "nobody", "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang)
            .output()
            .unwrap()
    };
    let out = run("C.UTF-8");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("access judged as user nobody"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("configured msr:"))
        .unwrap_or_else(|| panic!("no line for the configured reader:\n{stdout}"));
    assert!(line.contains("permission denied for user nobody"), "{line}");
    assert!(line.contains("60-posbridge.rules"), "{line}");

    // Under a Russian locale the summary is in Russian.
    let out = run("ru_RU.UTF-8");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("доступ оценён для пользователя nobody"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("настроено msr:"))
        .unwrap_or_else(|| panic!("no line for the configured reader:\n{stdout}"));
    assert!(
        line.contains("нет доступа (permission denied for user nobody"),
        "{line}"
    );
}
