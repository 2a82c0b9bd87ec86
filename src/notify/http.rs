//! The `http` notifier: POSTs `{account, channel, contact, code}` as JSON to
//! a configured URL, with a timeout per attempt and retries with a doubling
//! pause. Any 2xx answer means delivered.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use super::messages::CustomerMessage;
use super::{Message, Notifier, NotifyError};
use crate::config::HttpNotifierConfig;

/// First pause between attempts; doubled after each.
const BACKOFF: Duration = Duration::from_millis(200);

/// POSTs codes to one URL.
#[derive(Debug, Clone)]
pub struct HttpNotifier {
    url: String,
    timeout_ms: u64,
    retries: u32,
    // Built once; a TLS set-up failure is reported on every send rather
    // than stopping the daemon, whose other functions do not need it.
    client: Result<reqwest::Client, String>,
}

impl HttpNotifier {
    /// From `[ledger.registration.http]`.
    pub fn new(c: &HttpNotifierConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(c.timeout_ms))
            // The URL is configured; a redirect elsewhere would carry the
            // code to a host nobody chose.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string());
        HttpNotifier {
            url: c.url.clone(),
            timeout_ms: c.timeout_ms,
            retries: c.retries,
            client,
        }
    }

    async fn attempt(
        &self,
        client: &reqwest::Client,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let res = client.post(&self.url).json(body).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(format!("HTTP {}", r.status())),
            // Without the URL's query, which might hold a key.
            Err(e) if e.is_timeout() => Err(format!("no answer within {} ms", self.timeout_ms)),
            Err(e) if e.is_connect() => Err("cannot connect".into()),
            Err(e) => Err(e.without_url().to_string()),
        }
    }
}

impl Notifier for HttpNotifier {
    fn name(&self) -> &'static str {
        "http"
    }

    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), NotifyError>> {
        let body = json!({
            "account": m.account,
            "purpose": m.purpose.as_str(),
            "channel": m.channel.as_str(),
            "contact": m.contact,
            "code": m.code.expose(),
        });
        Box::pin(self.post(m.account, body))
    }

    /// `{account, purpose: "message", kind, channel, contact, text}`.
    fn deliver<'a>(&'a self, m: &'a CustomerMessage) -> BoxFuture<'a, Result<(), NotifyError>> {
        let body = json!({
            "account": m.account,
            "purpose": "message",
            "kind": m.kind.as_str(),
            "channel": m.channel.as_str(),
            "contact": m.contact,
            "text": m.text,
        });
        Box::pin(self.post(m.account, body))
    }
}

impl HttpNotifier {
    /// POSTs `body` with the configured retries and a doubling pause.
    async fn post(&self, account: i64, body: serde_json::Value) -> Result<(), NotifyError> {
        let client = match &self.client {
            Ok(c) => c,
            Err(e) => {
                return Err(NotifyError::Http {
                    attempts: 0,
                    last: e.clone(),
                });
            }
        };
        let mut pause = BACKOFF;
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(client, &body).await {
                Ok(()) => return Ok(()),
                Err(last) if attempts > self.retries => {
                    return Err(NotifyError::Http { attempts, last });
                }
                Err(last) => {
                    tracing::warn!(
                        account,
                        attempt = attempts,
                        error = %last,
                        "http notifier: attempt failed, retrying"
                    );
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
            }
        }
    }
}
