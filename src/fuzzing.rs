//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer)
//! that live in this crate: the JSON-RPC line handler and the
//! configuration loader. The drivers' parsers have theirs in
//! `posbridge_drivers::fuzzing`.
//!
//! Each takes arbitrary bytes and returns nothing: what it can show is a
//! panic, a hang or unbounded memory. `tests/fuzz_corpus.rs` replays the
//! committed corpora through these functions on stable. Not part of the
//! crate's supported API.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::api::conn::{OUT_QUEUE, handle_line};
use crate::api::rpc::MAX_LINE;
use crate::api::session::{Peer, Session};
use crate::app::App;
use crate::auth::Role;
use crate::config::{Config, Source};
use crate::store::Store;

/// The daemon's state for the line handler: default configuration (no
/// devices), an in-memory database, built once per process because
/// opening and migrating the store per input would be most of the work.
struct Harness {
    runtime: tokio::runtime::Runtime,
    app: Arc<App>,
    // Kept for the process's life: the store's directory.
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let dir = tempfile::tempdir().expect("a scratch directory");
        let app = runtime.block_on(async {
            // A throwaway file: the store is always a file (WAL), and one
            // named ":memory:" would land in the fuzzer's working directory.
            let store = Store::open(&dir.path().join("fuzz.sqlite3")).expect("a scratch store");
            App::start(
                Config::default(),
                Source::Defaults,
                store,
                "/nonexistent/posbridge.sock".into(),
            )
            .expect("the default configuration starts")
        });
        Harness {
            runtime,
            app,
            _dir: dir,
        }
    })
}

/// `rpc_line`: one request line (as read from the socket, without its
/// newline) through the connection's line handler, on a fresh admin
/// session so every method's parameter parsing is reachable. A reply, when
/// there is one, must be one line of JSON.
pub fn rpc_line(data: &[u8]) {
    // The connection cuts lines at '\n' and refuses longer ones.
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    if line.len() > MAX_LINE {
        return;
    }
    let h = harness();
    let session = Arc::new(Session::new(
        0,
        Peer::Unix { uid: None },
        Some(Role::Admin),
        OUT_QUEUE,
    ));
    h.runtime.block_on(async {
        let reply = handle_line(&h.app, &session, Bytes::copy_from_slice(line)).await;
        if let Some(reply) = reply {
            assert!(!reply.contains('\n'), "a reply spans lines");
            serde_json::from_str::<serde_json::Value>(&reply).expect("a reply is JSON");
        }
        // Stops an event forwarder an `events.subscribe` may have started.
        session.closed.cancel();
    });
}

/// `config`: arbitrary text through [`Config::parse`]; an error must name
/// where it is.
pub fn config(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(src, Path::new("fuzz.toml")) {
        let _ = e.to_string();
    }
}

/// `customer_csv`: arbitrary bytes through the back office's customer
/// import reader; every good row must carry a card and a contact, every
/// refusal a row number past the header.
pub fn customer_csv(data: &[u8]) {
    if let Ok(p) = crate::backoffice::import::parse(data) {
        for r in &p.rows {
            assert!(r.row >= 2 && !r.card.is_empty());
            assert!(r.phone.is_some() || r.email.is_some());
        }
        assert!(p.refused.iter().all(|(n, _)| *n >= 2));
    }
}
