//! Third-party drivers against `posbridge sim shtrih`, as a new user would
//! try them: pyshtrih (PyPI, pinned) drives the emulator on a
//! pseudo-terminal through a whole shift. The driver is installed into a
//! virtualenv under `target/`; if Python or pip cannot provide it the test
//! fails and says why (it never skips).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::BIN;

/// The pinned third-party driver.
const PYSHTRIH: &str = "pyshtrih==2.0.6";

/// A virtualenv with `packages` installed, made once under the target dir.
fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = dir.join("bin/python");
    let stamp = dir.join(format!("installed-{}", packages.join("+")));
    if stamp.exists() {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run it ({e}); install python3 with venv"));
        assert!(
            out.status.success(),
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "python3 -m venv",
    );
    run(
        Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install {packages:?} (needs PyPI)"),
    );
    std::fs::write(&stamp, b"").expect("venv stamp");
    python
}

/// `posbridge sim shtrih --pty`; stdout lines arrive on a channel; killed on
/// drop.
struct Emulator {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Emulator {
    fn start(extra: &[&str]) -> (Emulator, String) {
        let mut child = Command::new(BIN)
            .args(["sim", "shtrih", "--pty"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn posbridge sim shtrih");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut emu = Emulator {
            child,
            lines,
            seen: Vec::new(),
        };
        let line = emu.wait_line("emulator on pty ");
        let path = line
            .rsplit(' ')
            .next()
            .expect("pty path on the line")
            .to_string();
        (emu, path)
    }

    /// Waits up to 20 s for a stdout line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; stdout so far: {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_script(python: &Path, script: &str, pty: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/thirdparty")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .arg(pty)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .expect("run the driver script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn pyshtrih_runs_a_whole_shift_on_the_emulator() {
    let python = venv("pyshtrih-venv", &[PYSHTRIH]);
    // pyshtrih uses only the classic commands: they work on an emulator
    // that behaves as an older firmware without FF45h/FF46h.
    let (mut emu, pty) = Emulator::start(&["--legacy"]);
    emu.wait_line("legacy firmware: FF45h/FF46h answer 37h");
    let out = run_script(&python, "pyshtrih_shift.py", &pty);
    assert!(out.contains("model: 250 ШТРИХ-М-01Ф"), "{out}");
    assert!(out.contains("change: 1910"), "{out}");
    assert!(out.contains("pyshtrih shift ok"), "{out}");
    // The emulator's own account: the text line, both items, the change and
    // the three fiscal documents of the shift.
    emu.wait_line("fiscal document 3: shift closed, shift 1, total 180.90");
    for needle in [
        "| ТЕСТ PYSHTRIH",
        "| Молоко 3,2%",
        "| 2 X 45.50 = 91.00",
        "| ИТОГ: =180.90",
        "| СДАЧА: =19.10",
        "| ОТЧЕТ БЕЗ ГАШЕНИЯ",
        "fiscal document 1: shift opened, shift 1",
        "fiscal document 2: receipt (Sale), shift 1, total 180.90",
    ] {
        emu.wait_line(needle);
    }
}

/// python-escpos, pinned as in `drivers/benches/compare-python-escpos.sh`.
const PYTHON_ESCPOS: &str = "python-escpos==3.1";

#[test]
fn python_escpos_rp326_cyrillic_decodes_in_the_simulator() {
    use posbridge_drivers::sim::escpos::EscPosParser;
    let python = venv("python-escpos-venv", &[PYTHON_ESCPOS]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/thirdparty/escpos_rp326.py");
    let out = Command::new(&python)
        .arg(&script)
        .output()
        .expect("run the python-escpos script");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // python-escpos picks page 28 (CP855 on the RP326) for this text.
    assert_eq!(&out.stdout[..3], &[0x1B, b't', 28], "{:02X?}", out.stdout);
    let mut p = EscPosParser::new()
        .with_db_profile("RP326")
        .expect("RP326 in the database");
    p.feed(&out.stdout);
    assert_eq!(p.errors(), &[], "no code page fallback");
    let lines: Vec<&str> = p.receipts()[0]
        .lines
        .iter()
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(lines[..2], ["ПРИВЕТ, МИР", "Ёлка и щётка"]);
}

/// A Python 2.7 interpreter: shtrihm-fr refuses Python 3. pyenv's 2.7 (as
/// on the project's machines) or `python2.7` on the PATH.
fn python27() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(home) = std::env::var("HOME")
        && let Ok(dir) = std::fs::read_dir(Path::new(&home).join(".pyenv/versions"))
    {
        let mut found: Vec<PathBuf> = dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("2.7"))
            .map(|e| e.path().join("bin/python"))
            .collect();
        found.sort();
        candidates.extend(found);
    }
    candidates.push(PathBuf::from("python2.7"));
    candidates
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import sys; assert sys.version_info[:2] == (2, 7)"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("shtrihm-fr needs Python 2.7: install it (e.g. `pyenv install 2.7.18`)")
}

#[test]
fn shtrihm_fr_runs_a_whole_shift_on_the_emulator() {
    let python = python27();
    let lib = Path::new(env!("CARGO_TARGET_TMPDIR")).join("shtrihmfr-py27");
    let stamp = lib.join("installed-shtrihm-fr-0.2.0");
    if !stamp.exists() {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&lib)
            .args(["shtrihm-fr==0.2.0", "six==1.17.0", "pyserial==3.5"])
            .output()
            .expect("run pip for Python 2.7");
        assert!(
            out.status.success(),
            "pip install shtrihm-fr (needs PyPI) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, b"").expect("stamp");
    }
    let (mut emu, pty) = Emulator::start(&[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/thirdparty/shtrihmfr_shift.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&pty)
        .env("PYTHONPATH", &lib)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .expect("run the shtrihm-fr script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "shtrihm-fr script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("change: 19.1"), "{stdout}");
    assert!(stdout.contains("shtrihm-fr shift ok"), "{stdout}");
    emu.wait_line("fiscal document 3: shift closed, shift 1, total 180.90");
    for needle in [
        "| ТЕСТ SHTRIHM-FR",
        "| СДАЧА: =19.10",
        "fiscal document 2: receipt (Sale), shift 1, total 180.90",
    ] {
        emu.wait_line(needle);
    }
}
