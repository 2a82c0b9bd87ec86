//! The API over HTTP and WebSocket on the `[daemon.tcp]` port (src/web):
//! `POST /rpc`, `GET /ws`, the origin check and CORS, and JSON-lines
//! clients on the same port.

mod common;

use std::time::Duration;

use common::{ADMIN_TOKEN, CASHIER_TOKEN, Daemon, TcpTokens};
use futures::{SinkExt, StreamExt};
use posbridge::client::Client;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ALLOWED: &str = "http://127.0.0.1:8080";

fn start() -> (Daemon, TcpTokens) {
    let tcp = TcpTokens::new();
    let d = Daemon::start(
        &tcp.daemon_extra,
        &format!("[web]\norigins = [\"{ALLOWED}\"]\n"),
    );
    (d, tcp)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn post(tcp: &TcpTokens, body: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http()
        .post(format!("http://{}/rpc", tcp.addr))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
async fn http_rpc_with_and_without_token() {
    let (_d, tcp) = start();
    let ping = r#"{"jsonrpc":"2.0","id":7,"method":"system.ping"}"#;

    let (status, body) = post(&tcp, ping, None).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["error"]["code"], 1001, "{body}");

    let (status, body) = post(&tcp, ping, Some(CASHIER_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body), json!({"jsonrpc":"2.0","id":7,"result":"pong"}));

    // The token's role applies: system.reload is admin's.
    let reload = r#"{"jsonrpc":"2.0","id":1,"method":"system.reload"}"#;
    let (_, body) = post(&tcp, reload, Some(CASHIER_TOKEN)).await;
    assert_eq!(json(&body)["error"]["code"], 1002, "{body}");
    let (_, body) = post(&tcp, reload, Some(ADMIN_TOKEN)).await;
    assert!(json(&body)["result"].is_object(), "{body}");

    let (status, body) = post(&tcp, ping, Some("wrong-token-wrong-token")).await;
    assert_eq!(status, 401);
    assert_eq!(json(&body)["error"]["code"], 1003, "{body}");

    // A notification has no answer.
    let (status, body) = post(
        &tcp,
        r#"{"jsonrpc":"2.0","method":"system.ping"}"#,
        Some(CASHIER_TOKEN),
    )
    .await;
    assert_eq!((status, body.as_str()), (204, ""));
}

#[tokio::test]
async fn http_rpc_batch_and_bad_json() {
    let (_d, tcp) = start();
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"system.ping"},
        {"jsonrpc":"2.0","method":"system.ping"},
        {"jsonrpc":"2.0","id":"b","method":"no.such"}]"#;
    let (status, body) = post(&tcp, batch, Some(CASHIER_TOKEN)).await;
    assert_eq!(status, 200);
    let v = json(&body);
    let items = v.as_array().unwrap();
    assert_eq!(items.len(), 2, "{body}");
    assert_eq!(items[0]["result"], "pong");
    assert_eq!(items[1]["error"]["code"], -32601);

    let (_, body) = post(&tcp, "{not json", Some(CASHIER_TOKEN)).await;
    assert_eq!(json(&body)["error"]["code"], -32700, "{body}");
}

#[tokio::test]
async fn oversize_body_is_refused() {
    let (_d, tcp) = start();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"system.ping","params":{{"x":"{}"}}}}"#,
        "a".repeat(1024 * 1024 + 10)
    );
    let r = http()
        .post(format!("http://{}/rpc", tcp.addr))
        .bearer_auth(CASHIER_TOKEN)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let body = r.text().await.unwrap();
    assert_eq!(json(&body)["error"]["data"]["limit"], 1024 * 1024, "{body}");
}

#[tokio::test]
async fn json_lines_clients_still_work_on_the_same_port() {
    let (_d, tcp) = start();
    let mut c = tcp.login(CASHIER_TOKEN).await;
    assert_eq!(c.call("system.ping", Value::Null).await.unwrap(), "pong");
    // And HTTP right beside it.
    let (_, body) = post(
        &tcp,
        r#"{"jsonrpc":"2.0","id":1,"method":"system.ping"}"#,
        Some(CASHIER_TOKEN),
    )
    .await;
    assert_eq!(json(&body)["result"], "pong");
    // A raw line, as before the port spoke HTTP.
    let mut raw = Client::tcp(&tcp.addr).await.unwrap();
    let r = raw.call("system.ping", Value::Null).await.unwrap_err();
    assert!(format!("{r}").contains("log in"), "{r}");
}

async fn ws_connect(
    tcp: &TcpTokens,
    origin: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    let mut req = format!("ws://{}/ws", tcp.addr)
        .into_client_request()
        .unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req).await.map(|(s, _)| s)
}

async fn ws_next<S>(ws: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket open")
            .unwrap();
        if let Message::Text(t) = m {
            return json(&t);
        }
    }
}

#[tokio::test]
async fn websocket_login_call_and_event() {
    let (_d, tcp) = start();
    let mut ws = ws_connect(&tcp, Some(ALLOWED)).await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());

    ws.send(send(json!({"jsonrpc":"2.0","id":1,"method":"system.ping"})))
        .await
        .unwrap();
    assert_eq!(ws_next(&mut ws).await["error"]["code"], 1001);

    ws.send(send(
        json!({"jsonrpc":"2.0","id":2,"method":"auth.login","params":{"token":CASHIER_TOKEN}}),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["result"]["role"], "cashier");

    ws.send(send(json!({"jsonrpc":"2.0","id":3,"method":"events.subscribe","params":{"topics":["card.read"]}})))
        .await
        .unwrap();
    assert!(ws_next(&mut ws).await["result"].is_object());

    // Another client's typed card reaches this socket as an event.
    let mut other = tcp.login(CASHIER_TOKEN).await;
    other
        .call("card.enter", json!({"number": "6035123412341234"}))
        .await
        .unwrap();
    let ev = ws_next(&mut ws).await;
    assert_eq!(ev["method"], "event", "{ev}");
    assert_eq!(ev["params"]["topic"], "card.read");
    assert_eq!(ev["params"]["card_masked"], "****1234");

    // A batch in one message, answered in one message.
    ws.send(Message::Text(
        r#"[{"jsonrpc":"2.0","id":4,"method":"system.ping"},{"jsonrpc":"2.0","id":5,"method":"system.ping"}]"#.into(),
    ))
    .await
    .unwrap();
    let v = ws_next(&mut ws).await;
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
}

#[tokio::test]
async fn websocket_oversize_message_closes_it() {
    let (_d, tcp) = start();
    let mut ws = ws_connect(&tcp, None).await.unwrap();
    let big = "x".repeat(1024 * 1024 + 10);
    let _ = ws.send(Message::Text(big.into())).await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the socket stayed open");
}

#[tokio::test]
async fn origins_allowed_get_cors_and_others_are_refused() {
    let (_d, tcp) = start();
    let url = format!("http://{}/rpc", tcp.addr);
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"system.ping"}"#;

    let r = http()
        .post(&url)
        .header("origin", ALLOWED)
        .bearer_auth(CASHIER_TOKEN)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(r.headers()["vary"], "Origin");

    let r = http()
        .post(&url)
        .header("origin", "http://evil.example")
        .bearer_auth(CASHIER_TOKEN)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body = r.text().await.unwrap();
    assert_eq!(json(&body)["error"]["code"], "origin_not_allowed");

    // Without Origin (curl): no CORS headers, but served.
    let r = http()
        .post(&url)
        .bearer_auth(CASHIER_TOKEN)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The daemon's own pages: Origin is http:// + its address.
    let r = http()
        .post(&url)
        .header("origin", format!("http://{}", tcp.addr))
        .bearer_auth(CASHIER_TOKEN)
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    // Preflight.
    let pre = |origin: &'static str| {
        http()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let r = pre(ALLOWED).await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    let allowed_headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let r = pre("http://evil.example").await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The WebSocket upgrade: refused for a foreign page, served for a listed one.
    let err = ws_connect(&tcp, Some("http://evil.example"))
        .await
        .unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status().as_u16(), 403),
        e => panic!("expected 403, got {e}"),
    }
    ws_connect(&tcp, Some(ALLOWED)).await.unwrap();
}

#[tokio::test]
async fn pages_and_client_are_served() {
    let (_d, tcp) = start();
    let js = http()
        .get(format!("http://{}/posbridge.js", tcp.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status().as_u16(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert!(js.text().await.unwrap().contains("class PosBridge"));
    let page = http()
        .get(format!("http://{}/pos/", tcp.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers().contains_key("content-security-policy"));
    assert!(page.text().await.unwrap().contains("/posbridge.js"));
}

#[tokio::test]
async fn websockets_close_with_going_away_on_shutdown() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let (mut d, tcp) = start();
    let mut ws = ws_connect(&tcp, None).await.unwrap();
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":1,"method":"auth.login","params":{"token":CASHIER_TOKEN}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["result"]["role"], "cashier");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame within 10 s");
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[tokio::test]
async fn a_websocket_holds_its_client_slot() {
    let tcp = TcpTokens::new();
    let _d = Daemon::start(&format!("max_clients = 2\n{}", tcp.daemon_extra), "");
    let ws1 = ws_connect(&tcp, None).await.unwrap();
    // The start-up check's connection may still be closing.
    let _ws2 = common::eventually("a second WebSocket", || async {
        ws_connect(&tcp, None).await.ok()
    })
    .await;
    // Both slots are the WebSockets' although their HTTP requests are over.
    let mut c = Client::tcp(&tcp.addr).await.unwrap();
    let err = c.call("system.ping", Value::Null).await.unwrap_err();
    assert!(format!("{err}").contains("too many clients"), "{err}");
    drop(ws1);
    common::eventually("a slot freed by the closed WebSocket", || async {
        let mut c = Client::tcp(&tcp.addr).await.ok()?;
        let r = c.call("system.ping", Value::Null).await;
        match r {
            Err(e) if format!("{e}").contains("too many clients") => None,
            _ => Some(()),
        }
    })
    .await;
}
