//! Another package's binary of this workspace, for tests that run it (the
//! till's tests run `posbridge-central`, the central's tests run
//! `posbridge`). Shared by `tests/common` and `central/tests/support`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Binary `bin` of package `package`: the one `cargo test --workspace`
/// built beside the running test binary; if there is none (only one package
/// is tested), built once into `fallback_target` (the workspace's target
/// dir is locked by the running `cargo test`).
pub fn workspace_bin(package: &str, bin: &str, fallback_target: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let beside = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(bin))
        .expect("target dir");
    if beside.exists() {
        return beside;
    }
    eprintln!(
        "{} missing: building {bin} into {}",
        beside.display(),
        fallback_target.display()
    );
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", package, "--bin", bin, "--target-dir"])
        .arg(fallback_target)
        .status()
        .unwrap_or_else(|e| panic!("cargo build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    fallback_target.join("debug").join(bin)
}
