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
