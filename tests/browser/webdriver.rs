//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! Chromium through its chromedriver, over loopback HTTP with the reqwest
//! the crate already has: open a page, fill and click, read text, take a
//! screenshot. Debian's `chromium` and `chromium-driver` packages are
//! installed when missing (as root), as the PostgreSQL tests do.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// One installer at a time across the test binaries cargo runs.
const INSTALL_LOCK: &str = "/tmp/posbridge-apt.lock";
/// The W3C name of an element reference in a response.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and chromedriver, installed from Debian when missing.
pub fn ensure_chromium() {
    let present = || Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file();
    if present() {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the browser tests need Debian's chromium and chromium-driver: \
         apt-get install chromium chromium-driver (we are not root, so cannot)"
    );
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(INSTALL_LOCK)
        .unwrap();
    lock.lock().unwrap();
    if present() {
        return;
    }
    for args in [
        &["update"][..],
        &[
            "install",
            "-y",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ][..],
    ] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .expect("run apt-get");
        assert!(
            out.status.success(),
            "apt-get {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        present(),
        "installing chromium did not provide {CHROMIUM} and {CHROMEDRIVER}"
    );
}

/// A chromedriver process and one headless browser session in it.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a session of
    /// a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, None).await
    }

    /// [`Browser::start`], saving downloads without asking into
    /// `downloads` when given.
    pub async fn start_with(width: u32, height: u32, downloads: Option<&Path>) -> Browser {
        ensure_chromium();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // Its own process group: the browsers it starts go with it.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let root = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{root}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // The flags a closed network needs: no background fetches that
        // would be refused, no first-run or sync.
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut options = json!({"binary": CHROMIUM, "args": args});
        if let Some(dir) = downloads {
            options["prefs"] = json!({
                "download.default_directory": dir,
                "download.prompt_for_download": false,
            });
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options
        }}});
        let r: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Browser {
            driver,
            http,
            base: format!("{root}/session/{id}"),
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.expect("webdriver").json().await.unwrap();
        if let Some(e) = r["value"].get("error") {
            panic!("webdriver {path}: {e}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    /// Opens `url` and waits for it to load.
    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The page's address now.
    pub async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// The first element `css` selects now, if any.
    async fn lookup(&self, css: &str) -> Option<String> {
        let r: Value = self
            .http
            .post(format!("{}/element", self.base))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .unwrap();
        r["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// The first element `css` selects, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(id) = self.lookup(css).await {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} on {}:\n{}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the element `css` selects.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element `css` selects.
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks the element `css` selects and waits for the page it leads
    /// to: a click returns before a form's answer has replaced the page, and
    /// an element read then would be the old page's (or stale).
    pub async fn submit(&self, css: &str) {
        self.script("window.__posbridge_old_page = true;").await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = "return !window.__posbridge_old_page && document.readyState === 'complete';";
        while self.script(ready).await != Value::Bool(true) {
            assert!(
                Instant::now() < deadline,
                "{css}: no new page after the click"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the element `css` selects ("" when none does).
    /// A page that navigates or re-renders between the lookup and the
    /// read leaves the element stale: it is looked up again (a few times).
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..10 {
            let Some(e) = self.lookup(css).await else {
                return String::new();
            };
            let url = format!("{}/element/{e}/text", self.base);
            let r: Value = self
                .http
                .get(url)
                .send()
                .await
                .expect("webdriver")
                .json()
                .await
                .unwrap();
            match r["value"].get("error").and_then(Value::as_str) {
                Some("stale element reference") => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Some(err) => panic!("webdriver text of {css}: {err}: {}", r["value"]["message"]),
                None => return r["value"].as_str().unwrap_or_default().to_owned(),
            }
        }
        panic!("webdriver text of {css}: the element kept going stale")
    }

    /// Runs `script` in the page (a function body) and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> PathBuf {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        std::fs::write(path, png).unwrap();
        path.to_owned()
    }
}

impl Browser {
    /// Closes the browser, then the driver.
    pub async fn quit(self) {
        let _ = self.http.delete(&self.base).send().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser left running.
        let pgid = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}
