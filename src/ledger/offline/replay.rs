//! The replayer: books the outbox's operations on the central ledger, in
//! order, each at its own time, and keeps the link's state fresh with a
//! heartbeat while there is nothing to send.
//!
//! An operation leaves the outbox only after the central ledger answered
//! it. A crash, a `kill -9` or a lost answer between the booking and the
//! delete sends it again; the central ledger finds its key and returns
//! what it booked (the request it compares leaves the time out). A refusal
//! (a card blocked meanwhile, a return of a sale it never saw, a time out
//! of bounds) moves the operation to the dead-letter list and the queue
//! goes on; a refusal that says nothing about the operation (the service
//! busy or failing, this till's credential refused) is retried like
//! silence, so nothing is put aside for a fault that will pass.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::outbox::{Item, Kind};
use super::{Link, Offline, Refused, parse_time};
use crate::api::rpc::code;
use crate::ledger::embedded::ts;
use crate::ledger::rules::SaleLine;
use crate::ledger::types::{LedgerError, SaleRef};
use crate::ledger::{Ledger, RemoteError};

/// The first wait after a failed attempt; doubled up to `retry_max`.
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// How one attempt at an operation went.
enum Outcome {
    /// Booked (now or before): it leaves the outbox.
    Booked,
    /// Refused for good: the dead-letter list.
    Refused(i64, String),
    /// No answer, or a passing fault: try again later.
    Later(String),
}

#[derive(Deserialize)]
struct SaleArgs {
    number: String,
    receipt_id: String,
    lines: Vec<SaleLine>,
    #[serde(with = "rust_decimal::serde::str")]
    redeem: Decimal,
}

#[derive(Deserialize)]
struct RefundArgs {
    sale: SaleRef,
    #[serde(default, with = "rust_decimal::serde::str_option")]
    amount: Option<Decimal>,
    /// A return by lines (absent from a return by amount's request).
    #[serde(default)]
    lines: Option<Vec<crate::ledger::rules::lines::ReturnLine>>,
}

impl Offline {
    /// Replays the outbox until `cancel` fires.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        self.refresh().await;
        let mut wait = FIRST_WAIT;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let next = match self.outbox.next().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the offline outbox");
                    self.pause(&cancel, self.policy.retry_max).await;
                    continue;
                }
            };
            let Some(item) = next else {
                wait = FIRST_WAIT;
                self.pause(&cancel, self.policy.heartbeat).await;
                if !cancel.is_cancelled() {
                    self.heartbeat().await;
                }
                continue;
            };
            match self.send(&item).await {
                Outcome::Booked => {
                    wait = FIRST_WAIT;
                    if let Err(e) = self.outbox.done(item.id).await {
                        tracing::error!(error = %e, "cannot remove a booked operation from the outbox");
                        self.pause(&cancel, self.policy.retry_max).await;
                    }
                    self.status.send_modify(|s| {
                        s.last_success = Some(ts(time::OffsetDateTime::now_utc()));
                    });
                    self.set_link(Link::Online);
                }
                Outcome::Refused(code, reason) => {
                    tracing::warn!(id = item.id, key = %item.key, code, reason = %reason,
                        "the central ledger refused an offline operation: on the dead-letter list");
                    if let Err(e) = self.outbox.fail(item.id, code, reason.clone()).await {
                        tracing::error!(error = %e, "cannot move a refused operation to the dead-letter list");
                        self.pause(&cancel, self.policy.retry_max).await;
                    } else {
                        let mut failed = item.clone();
                        failed.code = Some(code);
                        failed.reason = Some(reason);
                        failed.failed_at = Some(ts(time::OffsetDateTime::now_utc()));
                        let _ = self.refused.send(Refused { item: failed });
                    }
                    self.set_link(Link::Online);
                }
                Outcome::Later(why) => {
                    tracing::debug!(id = item.id, reason = %why, "replay deferred");
                    let _ = self.outbox.attempted(item.id).await;
                    self.pause(&cancel, wait).await;
                    wait = (wait * 2).min(self.policy.retry_max);
                }
            }
            self.refresh().await;
        }
    }

    /// Sleeps `d`, or less when woken or cancelled.
    async fn pause(&self, cancel: &CancellationToken, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wake.notified() => {}
            _ = cancel.cancelled() => {}
        }
    }

    /// Asks whether the central service answers; keeps the last contact
    /// fresh so the one-hour rule counts from a real answer.
    async fn heartbeat(&self) {
        match self.central.ping().await {
            Ok(()) => self.set_link(Link::Online),
            Err(RemoteError::Unreachable(_)) => self.set_link(Link::Offline),
            // An answer, even a refusal, is a contact.
            Err(RemoteError::Remote { .. }) => self.set_link(Link::Online),
        }
    }

    /// One attempt at `item`.
    async fn send(&self, item: &Item) -> Outcome {
        let Some(at) = parse_time(&item.at) else {
            return Outcome::Refused(
                code::INTERNAL_ERROR,
                format!("unreadable time {:?}", item.at),
            );
        };
        let answer = match item.kind {
            Kind::Sale => match serde_json::from_str::<SaleArgs>(&item.request) {
                Ok(a) => self
                    .central
                    .commit_at(
                        item.key.clone(),
                        a.number.clone(),
                        a.receipt_id,
                        a.lines,
                        a.redeem,
                        at,
                        item.cashier.clone(),
                    )
                    .await
                    .map(|r| Some((a.number, r.balance_after))),
                Err(e) => {
                    return Outcome::Refused(
                        code::INTERNAL_ERROR,
                        format!("unreadable request: {e}"),
                    );
                }
            },
            Kind::Refund => match serde_json::from_str::<RefundArgs>(&item.request) {
                Ok(a) => self
                    .central
                    .refund_at(
                        item.key.clone(),
                        a.sale,
                        a.amount,
                        at,
                        item.cashier.clone(),
                        a.lines,
                    )
                    .await
                    .map(|_| None),
                Err(e) => {
                    return Outcome::Refused(
                        code::INTERNAL_ERROR,
                        format!("unreadable request: {e}"),
                    );
                }
            },
        };
        match answer {
            Ok(card) => {
                if let Some((number, balance)) = card
                    && let Err(e) = self.outbox.rebalance(number, balance).await
                {
                    tracing::warn!(error = %e, "cannot update the card's offline copy");
                }
                Outcome::Booked
            }
            Err(LedgerError::Remote(RemoteError::Unreachable(why))) => {
                self.set_link(Link::Offline);
                Outcome::Later(why)
            }
            Err(LedgerError::Remote(RemoteError::Remote { code, message, .. })) => {
                if passing(code) {
                    Outcome::Later(message)
                } else {
                    Outcome::Refused(code, message)
                }
            }
            Err(e) => Outcome::Later(e.to_string()),
        }
    }
}

/// Refusals that say nothing about the operation itself: the service busy,
/// stopping or failing inside, or this till's credential refused or
/// throttled (an operator re-issues it; the queue waits).
fn passing(c: i64) -> bool {
    matches!(
        c,
        code::INTERNAL_ERROR
            | code::BUSY
            | code::SHUTTING_DOWN
            | code::LOGIN_THROTTLED
            | code::BAD_TOKEN
            | code::LOGIN_REQUIRED
            | code::FORBIDDEN
    )
}
