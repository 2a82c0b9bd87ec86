//! Errors a POS shows the cashier come in the configured language
//! (`[daemon] language`) with the other one in `data`, and the CLI's
//! error line follows the technician's locale.

mod common;

use std::process::Command;

use common::{BIN, Daemon};
use posbridge::client::ClientError;
use serde_json::{Value, json};

async fn error_of(d: &Daemon, method: &str, params: Value) -> Value {
    let mut c = d.client().await;
    match c.call(method, params).await {
        Err(ClientError::Rpc { error }) => error,
        other => panic!("expected an RPC error from {method}, got {other:?}"),
    }
}

#[tokio::test]
async fn russian_in_message_english_in_data_when_the_language_is_ru() {
    let d = Daemon::start("language = \"ru\"\n", "");
    let e = error_of(&d, "account.history", json!({"number": "6035000099998888"})).await;
    assert_eq!(e["code"], 2001, "{e}");
    assert_eq!(e["message"], "карта не найдена", "{e}");
    assert_eq!(e["data"]["message_en"], "unknown card", "{e}");
    let e = error_of(&d, "devices.restart", json!({"name": "nope"})).await;
    assert_eq!(e["code"], 1201, "{e}");
    assert_eq!(
        e["message"], "устройство не найдено или не подключено",
        "{e}"
    );
    assert_eq!(e["data"]["name"], "nope", "{e}");
    assert!(
        e["data"]["message_en"].as_str().unwrap().contains("nope"),
        "{e}"
    );
}

#[tokio::test]
async fn english_in_message_russian_in_data_by_default() {
    let d = Daemon::start("", "");
    let e = error_of(&d, "account.history", json!({"number": "6035000099998888"})).await;
    assert_eq!(e["message"], "unknown card", "{e}");
    assert_eq!(e["data"]["message_ru"], "карта не найдена", "{e}");
    assert_eq!(e["data"]["message_en"], "unknown card", "{e}");
}

#[test]
fn the_call_command_speaks_russian_under_a_russian_locale() {
    let d = Daemon::start("", "");
    let sock = d.socket.to_str().unwrap().to_owned();
    let run = |lang: &str| {
        let out = Command::new(BIN)
            .args([
                "call",
                "--socket",
                &sock,
                "devices.restart",
                "{\"name\":\"nope\"}",
            ])
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ru = run("ru_RU.UTF-8");
    let last = ru.lines().last().unwrap_or_default();
    assert!(
        last.contains("ошибка") && last.contains("устройство не найдено"),
        "{ru}"
    );
    let en = run("C.UTF-8");
    let last = en.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: devices.restart failed:") && last.contains("nope"),
        "{en}"
    );
}

#[test]
fn config_check_gives_its_verdict_in_the_locales_language() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("posbridge.toml");
    std::fs::write(
        &file,
        format!("[daemon]\nstate_dir = \"{}\"\n", dir.path().display()),
    )
    .unwrap();
    let run = |lang: &str| {
        let out = Command::new(BIN)
            .args(["config", "check", file.to_str().unwrap()])
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", lang)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ru = run("ru_RU.UTF-8");
    assert!(ru.contains(": в порядке") && ru.contains("база:"), "{ru}");
    let en = run("C.UTF-8");
    assert!(en.contains(": ok") && en.contains("database:"), "{en}");
}
