//! The fault proxy of `support::netfault` against a tiny loopback HTTP
//! upstream, mode by mode; and the harness the offline-till tests build on
//! (a till behind the proxy, killed and restarted).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::netfault::{Mode, Proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: upstream\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// An HTTP/1.1 keep-alive responder: answers every request (headers only,
/// no body) with `200 ok` and counts them.
struct Upstream {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        assert!(buf.len() < 64 * 1024, "runaway request");
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            seen.fetch_add(1, Ordering::SeqCst);
                            if s.write_all(RESPONSE).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Upstream { addr, requests }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

async fn get(c: &reqwest::Client, p: &Proxy) -> reqwest::Result<String> {
    c.get(p.url())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// Waits up to `within` for `s` to be closed or reset (true) or to deliver
/// data (false); `None` if nothing happened.
async fn closed(s: &mut TcpStream, within: Duration) -> Option<bool> {
    let mut buf = [0u8; 1024];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(0) | Err(_)) => Some(true),
        Ok(Ok(_)) => Some(false),
    }
}

/// A raw keep-alive connection through the proxy that has had one answer
/// (reqwest's pool may or may not reuse a connection: these always do).
async fn open(p: &Proxy) -> TcpStream {
    let mut s = TcpStream::connect(p.addr()).await.unwrap();
    ask(&mut s).await;
    s
}

/// One request on `s` and its whole answer.
async fn ask(s: &mut TcpStream) {
    s.write_all(REQUEST).await.unwrap();
    let mut buf = vec![0u8; RESPONSE.len()];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, RESPONSE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_delivers() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let c = client(Duration::from_secs(5));
    assert_eq!(get(&c, &p).await.unwrap(), "ok");
    assert_eq!(get(&c, &p).await.unwrap(), "ok");
    let mut live = open(&p).await;
    ask(&mut live).await;
    assert_eq!(up.requests(), 4);
    assert_eq!(p.lost_responses(), 0);
}

/// From a current-thread runtime too: the proxy has its own.
#[tokio::test]
async fn works_from_a_current_thread_runtime() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    assert_eq!(
        get(&client(Duration::from_secs(5)), &p).await.unwrap(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_errors_and_cuts_live_connections() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let mut live = open(&p).await;
    let c = client(Duration::from_secs(5));
    assert_eq!(get(&c, &p).await.unwrap(), "ok");

    p.set(Mode::Refuse);
    assert_eq!(closed(&mut live, Duration::from_secs(5)).await, Some(true));
    let e = get(&c, &p).await.unwrap_err();
    assert!(!e.is_timeout(), "refused, not timed out: {e:?}");
    assert!(get(&client(Duration::from_secs(5)), &p).await.is_err());
    assert_eq!(up.requests(), 2, "nothing refused reached the upstream");

    p.set(Mode::Pass);
    assert_eq!(get(&c, &p).await.unwrap(), "ok");
    assert_eq!(up.requests(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_never_answers() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let mut live = open(&p).await;

    p.set(Mode::Blackhole);
    let e = get(&client(Duration::from_millis(300)), &p)
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    // A live connection stops forwarding too.
    live.write_all(REQUEST).await.unwrap();
    assert_eq!(closed(&mut live, Duration::from_millis(300)).await, None);
    assert_eq!(up.requests(), 1, "only the request before the blackhole");

    // cut_all drops the half-open ones.
    p.cut_all();
    assert_eq!(closed(&mut live, Duration::from_secs(5)).await, Some(true));

    p.set(Mode::Pass);
    assert_eq!(
        get(&client(Duration::from_secs(5)), &p).await.unwrap(),
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_still_delivers() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let c = client(Duration::from_secs(5));
    assert_eq!(get(&c, &p).await.unwrap(), "ok");
    let mut live = open(&p).await;

    let delay = Duration::from_millis(200);
    p.set(Mode::Delay(delay));
    let t = Instant::now();
    assert_eq!(get(&c, &p).await.unwrap(), "ok");
    assert!(t.elapsed() >= delay, "answered in {:?}", t.elapsed());
    // On a connection opened before the switch too.
    let t = Instant::now();
    ask(&mut live).await;
    assert!(t.elapsed() >= delay, "answered in {:?}", t.elapsed());
    assert_eq!(up.requests(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_request_loses_the_response() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    p.set(Mode::ResetAfterRequest);
    let e = get(&client(Duration::from_secs(5)), &p).await.unwrap_err();
    assert!(!e.is_timeout(), "reset, not timed out: {e:?}");
    assert_eq!(up.requests(), 1, "the upstream saw the request");
    assert_eq!(p.lost_responses(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_after_request_applies_to_a_kept_alive_connection() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let mut live = open(&p).await;

    p.set(Mode::ResetAfterRequest);
    live.write_all(REQUEST).await.unwrap();
    assert_eq!(closed(&mut live, Duration::from_secs(5)).await, Some(true));
    assert_eq!(up.requests(), 2);
    assert_eq!(p.lost_responses(), 1);
    assert_eq!(p.connections(), 1, "the open connection was the one reset");

    p.set(Mode::Pass);
    assert_eq!(
        get(&client(Duration::from_secs(5)), &p).await.unwrap(),
        "ok"
    );
    assert_eq!(p.lost_responses(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_all_drops_live_connections_only() {
    let up = Upstream::start().await;
    let p = Proxy::start(up.addr);
    let mut a = open(&p).await;
    let mut b = open(&p).await;
    p.cut_all();
    assert_eq!(closed(&mut a, Duration::from_secs(5)).await, Some(true));
    assert_eq!(closed(&mut b, Duration::from_secs(5)).await, Some(true));
    assert_eq!(p.mode(), Mode::Pass);
    let _c = open(&p).await;
    assert_eq!(p.connections(), 3);
}

/// The harness: a till issued by the chain, talking through the proxy,
/// SIGKILLed and restarted on the same config and state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn till_via_proxy_survives_kill9_and_restart() {
    let chain = support::Chain::start(1, support::PROGRAMME);
    let addr = chain.centrals[0].url.trim_start_matches("http://");
    let p = Proxy::start(addr.parse().unwrap());
    let mut till = chain.till_via("T1", "S1", &p.url(), "");

    let card = "6035000011113333";
    till.client()
        .await
        .call(
            "account.register",
            json!({"phone": "+79990001122", "name": "Мария", "card_number": card, "secret": "4711"}),
        )
        .await
        .unwrap();
    assert!(p.connections() >= 1, "the till went through the proxy");

    till.kill9();
    assert!(till.child.is_none());
    till.restart();
    let r = till
        .client()
        .await
        .call("card.resolve", json!({"number": card}))
        .await
        .unwrap();
    assert_eq!(r["account"]["balance"], "0", "{r}");
    assert!(till.log().contains("--- restart ---"));
}
