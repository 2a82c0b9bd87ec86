//! A till in central mode that keeps selling while the central ledger is
//! out of reach (no answer: connect failure, timeout, 5xx).
//!
//! [`Offline`] is the till's [`Ledger`]: every call goes to the central
//! ledger ([`Central`]) first. When it gets no answer, a sale or a return
//! is accepted here instead: written to the till's SQLite outbox (fsync)
//! under its idempotency key before the POS hears of it, answered with a
//! `pending` result, and replayed in order by [`replay`] until the central
//! ledger has booked it at the operation's own time (`offline/commit`,
//! `offline/refund`). The key makes a replay after a crash, or after a lost
//! answer, harmless: the central ledger returns what it booked the first
//! time.
//!
//! What a till decides alone: a card it has seen resolves to its last copy
//! (`as_of`); spending points is refused (2051) unless the programme allows
//! a per-card amount, and then only within `max_offline` of the last
//! answer by the monotonic clock ([`clock`]). Everything else (accounts,
//! codes, adjustments, history) needs the central ledger and answers 2050.

pub mod clock;
pub mod outbox;
pub mod replay;
mod secret;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast, watch};

use super::accounts::{
    AccountError, AccountView, Activated, CardRow, CodeWordCheck, GroupPage, GroupView, Issued,
    Lookup, LotView, PendingCode, Registered, Registration, SaleFound, SearchPage, Settings,
    Update,
};
use super::cashier;
use super::certs::{CertError, CertIssued, CertMoved, CertRef, CertView, Validity};
use super::embedded::{
    AccountRef, HistoryPage, OverridesResult, commit_request, commit_request_full, refund_request,
    ts,
};
use super::people::{BirthdayRun, ConsentChange, ConsentView, Erased};
use super::remote::Central;
use super::report::{Report, ReportQuery};
use super::rules::lines::ReturnLine;
use super::rules::{self, AccountOverrides, OrderTerms, Programme, Quote, SaleLine};
use super::tiers::{TierChange, TierError, TierView};
use super::types::{
    AccountSummary, AdjustResult, CommitResult, LedgerError, Pending, RefundResult, Replayable,
    SaleRef,
};
use super::{Ledger, LedgerFuture, RemoteError, SpendError};
use crate::redact::Secret;
use crate::store::Store;
use clock::{Clock, SystemClock};
use outbox::{Enqueued, Kind, NewItem, Outbox};

/// What the till may do alone (`[ledger.offline]`, read by the app).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Accept sales and returns offline at all.
    pub enabled: bool,
    /// Spending offline ends this long after the last answer.
    pub max_offline: Duration,
    /// Points one card may spend offline in all (0: none).
    pub redeem_limit: Decimal,
    /// How far the wall clock may stray from the carried time.
    pub clock_tolerance: Duration,
    /// How often the central service is asked whether it answers.
    pub heartbeat: Duration,
    /// The longest wait between two replay attempts.
    pub retry_max: Duration,
    /// The most operations queued.
    pub queue_limit: u64,
}

/// Whether the central ledger answers, as the till last saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// Not asked yet.
    Unknown,
    /// It answered.
    Online,
    /// It did not.
    Offline,
}

/// The outbox's state, published as `ledger.sync` whenever it changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    /// Whether the central ledger answers.
    pub link: Link,
    /// Operations waiting to be booked.
    pub queued: u64,
    /// Operations the central ledger refused (the dead-letter list).
    pub failed: u64,
    /// When the oldest waiting one was queued.
    pub oldest_queued_at: Option<String>,
    /// When the central ledger last booked a queued operation.
    pub last_success: Option<String>,
    /// The central service's time at its last answer.
    pub last_contact: Option<String>,
}

/// An operation the central ledger refused on replay, published as
/// `ledger.sync.failed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    /// The operation, as `ledger.sync.failed` lists it.
    #[serde(flatten)]
    pub item: outbox::Item,
}

/// Why the outbox could not be worked on.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The till's store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// No failed operation has this id.
    #[error("no failed operation {0} on the dead-letter list")]
    UnknownItem(i64),
}

/// The till's ledger in central mode (see the module's notes).
pub struct Offline {
    central: Central,
    outbox: Outbox,
    policy: Policy,
    clock: Arc<dyn Clock>,
    /// Offline sales that spend points one at a time: the per-card limit is
    /// checked and the sale queued as one step.
    offline_turn: tokio::sync::Mutex<()>,
    wake: Notify,
    /// Offline secret checks and the hashes kept for them, one at a time
    /// (argon2id, about 19 MiB each).
    hash_gate: Arc<tokio::sync::Semaphore>,
    status: watch::Sender<SyncStatus>,
    refused: broadcast::Sender<Refused>,
}

impl Offline {
    /// The central ledger `central`, with the outbox on `store`.
    pub fn new(central: Central, store: Store, policy: Policy) -> Offline {
        Offline::with_clock(central, store, policy, Arc::new(SystemClock))
    }

    /// [`Offline::new`] reading `clock` (tests move it by hand).
    pub fn with_clock(
        central: Central,
        store: Store,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Offline {
        let outbox = Outbox::new(store, policy.queue_limit);
        let (status, _) = watch::channel(SyncStatus {
            link: Link::Unknown,
            queued: 0,
            failed: 0,
            oldest_queued_at: None,
            last_success: None,
            last_contact: None,
        });
        let (refused, _) = broadcast::channel(64);
        Offline {
            central,
            outbox,
            policy,
            clock,
            offline_turn: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            hash_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            status,
            refused,
        }
    }

    /// The outbox's state now, and every change after.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    /// Each operation the central ledger refuses from now on.
    pub fn refusals(&self) -> broadcast::Receiver<Refused> {
        self.refused.subscribe()
    }

    /// The dead-letter list, oldest first.
    pub async fn failed(&self, limit: u32) -> Result<Vec<outbox::Item>, OfflineError> {
        Ok(self.outbox.failed(limit).await?)
    }

    /// Puts failed operation `id` back in the queue.
    pub async fn retry(&self, id: i64) -> Result<(), OfflineError> {
        if !self.outbox.retry(id).await? {
            return Err(OfflineError::UnknownItem(id));
        }
        self.refresh().await;
        self.wake.notify_one();
        Ok(())
    }

    /// Gives failed operation `id` up: the central ledger never books it.
    pub async fn drop_failed(&self, id: i64) -> Result<outbox::Item, OfflineError> {
        let item = self
            .outbox
            .drop_failed(id)
            .await?
            .ok_or(OfflineError::UnknownItem(id))?;
        tracing::warn!(id, key = %item.key, kind = ?item.kind, "an operator dropped a refused offline operation");
        self.refresh().await;
        Ok(item)
    }

    /// Re-reads the queue's figures into the published status.
    async fn refresh(&self) {
        match self.outbox.depth().await {
            Ok(d) => self.status.send_if_modified(|s| {
                let new = (d.queued, d.failed, d.oldest.clone());
                let old = (s.queued, s.failed, s.oldest_queued_at.clone());
                if new == old {
                    return false;
                }
                (s.queued, s.failed, s.oldest_queued_at) = new;
                true
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the offline outbox");
                false
            }
        };
    }

    /// Records whether the central ledger answered.
    fn set_link(&self, link: Link) {
        let contact = self.central.last_contact().map(|c| ts(c.central_time));
        self.status.send_if_modified(|s| {
            let changed = s.link != link || (link == Link::Online && s.last_contact != contact);
            s.link = link;
            if link == Link::Online {
                s.last_contact = contact;
            }
            changed
        });
    }

    /// The link is known to be down: calls decide here at once instead of
    /// waiting out the client's timeouts and retries at every sale. The
    /// replayer and its heartbeat find out when it is back.
    fn link_down(&self) -> bool {
        self.policy.enabled && self.status.borrow().link == Link::Offline
    }

    /// The central ledger's answer, or `None` when there was none and the
    /// till may decide alone.
    fn offline<T>(&self, r: Result<T, LedgerError>) -> Result<Option<T>, LedgerError> {
        match r {
            Err(LedgerError::Remote(RemoteError::Unreachable(why))) if self.policy.enabled => {
                tracing::warn!(reason = %why, "the central ledger is out of reach: deciding offline");
                self.set_link(Link::Offline);
                Ok(None)
            }
            Ok(v) => {
                self.set_link(Link::Online);
                Ok(Some(v))
            }
            Err(e) => Err(e),
        }
    }

    /// The card's last copy with what this till has spent since taken off,
    /// and that spending (points in queued sales).
    async fn recall(&self, number: &str) -> Result<(Option<AccountSummary>, Decimal), LedgerError> {
        let Some(mut s) = self.outbox.recall(number.to_owned()).await? else {
            return Ok((None, Decimal::ZERO));
        };
        let spent = self.outbox.pending_redeem(number.to_owned()).await?;
        s.balance -= spent;
        Ok((Some(s), spent))
    }

    /// What the clocks say now, against the last answer.
    fn trust(&self) -> clock::Trust {
        clock::assess(
            self.central.last_contact(),
            &*self.clock,
            self.policy.clock_tolerance,
        )
    }

    /// The till's expectation of a sale on `card`'s copy: the programme's
    /// own rates (the account's own percentages and level are applied by
    /// the central ledger when it books the sale).
    fn expect(
        &self,
        card: Option<&AccountSummary>,
        lines: &[SaleLine],
        redeem: Decimal,
    ) -> Result<Quote, LedgerError> {
        // The till's copy of the programme decides while the central
        // ledger is out of reach: off or out of its window, no sale.
        rules::switches::check_active(self.central.programme(), OffsetDateTime::now_utc())?;
        let balance = card.map_or(Decimal::ZERO, |c| c.balance);
        Ok(rules::quote(
            self.central.programme(),
            &AccountOverrides::default(),
            lines,
            balance.max(Decimal::ZERO),
            redeem,
        )?)
    }

    /// Whether a card may spend `redeem` offline now, given its copy and
    /// what it `spent` offline already ([`Offline::recall`]); the reason if
    /// not.
    fn check_offline_redeem(
        &self,
        redeem: Decimal,
        cached: Option<&AccountSummary>,
        spent: Decimal,
    ) -> Result<(), LedgerError> {
        let refuse = |why: String| Err(LedgerError::OfflineRedeem(why));
        if self.policy.redeem_limit.is_zero() {
            return refuse(
                "this programme spends no points while the central ledger is out of reach".into(),
            );
        }
        let trust = self.trust();
        if let Err(why) = trust.may_redeem(self.policy.max_offline) {
            return refuse(why);
        }
        let Some(card) = cached else {
            return refuse("this till has no copy of the card's balance".into());
        };
        if spent + redeem > self.policy.redeem_limit {
            return refuse(format!(
                "at most {} points per card while offline; {spent} already spent",
                self.policy.redeem_limit
            ));
        }
        if redeem > card.balance {
            return Err(LedgerError::InsufficientBalance {
                balance: card.balance.max(Decimal::ZERO),
            });
        }
        Ok(())
    }

    /// Queues `item`, answering with `result` (or the stored one).
    async fn enqueue<T>(&self, item: NewItem, result: T) -> Result<T, LedgerError>
    where
        T: serde::de::DeserializeOwned + Replayable,
    {
        let queued = self.outbox.enqueue(item).await?;
        self.refresh().await;
        self.wake.notify_one();
        match queued {
            Enqueued::New => Ok(result),
            Enqueued::Repeat(stored) => repeat_of(&stored),
            Enqueued::KeyReused => Err(LedgerError::KeyReused),
            Enqueued::Full => Err(LedgerError::Remote(RemoteError::Unreachable(format!(
                "and the offline queue is full ({} operations)",
                self.policy.queue_limit
            )))),
        }
    }

    /// The stored result of `key` if it is still queued: `Some` for the
    /// same request, [`LedgerError::KeyReused`] for another.
    async fn queued<T>(&self, key: &str, request: &str) -> Result<Option<T>, LedgerError>
    where
        T: serde::de::DeserializeOwned + Replayable,
    {
        match self.outbox.find(key.to_owned()).await? {
            None => Ok(None),
            Some(f) if f.request != request => Err(LedgerError::KeyReused),
            Some(f) => match f.refused {
                // The POS asking again learns of the refusal.
                Some((code, message)) => Err(refusal(code, message)),
                None => repeat_of(&f.result).map(Some),
            },
        }
    }

    async fn commit_offline(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
    ) -> Result<CommitResult, LedgerError> {
        // Spending is checked against what this till already spent offline
        // and queued as one step; a sale that spends nothing need not wait.
        let _turn = if redeem > Decimal::ZERO {
            Some(self.offline_turn.lock().await)
        } else {
            None
        };
        let (cached, spent) = self.recall(&number).await?;
        if let Some(c) = &cached
            && c.status != "active"
        {
            return Err(LedgerError::Inactive(c.status.clone()));
        }
        if redeem > Decimal::ZERO {
            self.check_offline_redeem(redeem, cached.as_ref(), spent)?;
        }
        let trust = self.trust();
        let at = trust.booking_time(&*self.clock);
        let balance = cached.as_ref().map_or(Decimal::ZERO, |c| c.balance);
        let q = self.expect(cached.as_ref(), &lines, redeem)?;
        // The dates the central ledger will give the accrual when it books
        // the sale at `at` (held by the accrual window, valid from then).
        // The card copy's level dates them, as the central will.
        let p = self.central.programme();
        let level = rules::levels::named(p, cached.as_ref().and_then(|c| c.tier.as_deref()));
        let dates = rules::hold::accrual_dates(p, level, at)?;
        let result = CommitResult {
            transaction: 0,
            account: cached.as_ref().map_or(0, |c| c.account),
            receipt_id: receipt_id.clone(),
            total: q.total,
            redeemed: q.redeem,
            money_paid: q.money_paid,
            accrued: q.accrual,
            debt_repaid: Decimal::ZERO,
            accrued_expires_at: if q.accrual > Decimal::ZERO {
                dates.expires_at.map(ts)
            } else {
                None
            },
            accrued_available_at: if q.accrual > Decimal::ZERO {
                dates.available_at.map(ts)
            } else {
                None
            },
            balance_before: balance,
            balance_after: balance - q.redeem,
            // The till's copy's held points (this sale's are not counted:
            // the queued `accrued` row says they come with the booking).
            held: cached.as_ref().map_or(Decimal::ZERO, |c| c.held),
            next_available: cached.as_ref().and_then(|c| c.next_available.clone()),
            next_expiry: cached.as_ref().and_then(|c| c.next_expiry.clone()),
            tier: cached.as_ref().and_then(|c| c.tier.clone()),
            tier_change: None,
            replayed: false,
            pending: Some(Pending {
                at: ts(at),
                as_of: cached.as_ref().and_then(|c| c.as_of.clone()),
            }),
            terms: None,
            campaigns: Vec::new(),
            promo_code: None,
        };
        let item = NewItem {
            key,
            kind: Kind::Sale,
            number: Some(number.clone()),
            redeem,
            request: commit_request(&number, &receipt_id, &lines, redeem),
            at: ts(at),
            result: serde_json::to_string(&result).unwrap_or_default(),
            cashier,
        };
        self.enqueue(item, result).await
    }

    async fn refund_offline(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> Result<RefundResult, LedgerError> {
        let at = self.trust().booking_time(&*self.clock);
        let result = RefundResult {
            transaction: 0,
            sale_transaction: match &sale {
                SaleRef::Transaction(id) => *id,
                SaleRef::Receipt(_) => 0,
            },
            account: 0,
            refunded: amount.unwrap_or(Decimal::ZERO),
            clawback: Decimal::ZERO,
            clawback_shortfall: Decimal::ZERO,
            clawback_debt: Decimal::ZERO,
            returned: Decimal::ZERO,
            returned_expired: Decimal::ZERO,
            balance_before: Decimal::ZERO,
            balance_after: Decimal::ZERO,
            tier_change: None,
            replayed: false,
            pending: Some(Pending {
                at: ts(at),
                as_of: None,
            }),
            // The lines' figures come with the central ledger's booking.
            lines: Vec::new(),
        };
        let item = NewItem {
            key,
            kind: Kind::Refund,
            number: None,
            redeem: Decimal::ZERO,
            request: refund_request(&sale, amount, lines.as_deref()),
            at: ts(at),
            result: serde_json::to_string(&result).unwrap_or_default(),
            cashier,
        };
        self.enqueue(item, result).await
    }
}

/// The central ledger's refusal of a queued operation, as it came.
fn refusal(code: i64, message: String) -> LedgerError {
    LedgerError::Remote(RemoteError::Remote {
        code,
        message,
        data: serde_json::json!({ "offline": "refused when replayed" }),
    })
}

/// A stored pending result, marked as a repeat.
fn repeat_of<T>(stored: &str) -> Result<T, LedgerError>
where
    T: serde::de::DeserializeOwned + Replayable,
{
    let mut r: T = serde_json::from_str(stored).map_err(|_| {
        LedgerError::Db(super::db::DbError::Invariant(
            "a queued operation's stored result is unreadable",
        ))
    })?;
    r.mark_replayed();
    Ok(r)
}

/// The methods that need the central ledger: passed through (2050 when it
/// does not answer). The ones an offline till answers itself are left out
/// by name and written below.
macro_rules! pass_through {
    ($( $wire:literal $class:ident $method:ident (
        $( $(#[$attr:meta])* $arg:ident : $ty:ty ),* $(,)?
    ) -> $ret:ty, $err:ty; )*) => {
        $( pass_one! { $method ($($arg : $ty),*) -> $ret, $err } )*
    };
}

macro_rules! pass_one {
    (resolve $($t:tt)*) => {};
    (quote $($t:tt)*) => {};
    (commit $($t:tt)*) => {};
    (replay_commit $($t:tt)*) => {};
    (quote_terms $($t:tt)*) => {};
    (commit_terms $($t:tt)*) => {};
    (refund $($t:tt)*) => {};
    (verify_secret $($t:tt)*) => {};
    ($method:ident ($($arg:ident : $ty:ty),*) -> $ret:ty, $err:ty) => {
        fn $method(&self, $($arg: $ty),*) -> LedgerFuture<'_, $ret, $err> {
            self.central.$method($($arg),*)
        }
    };
}

impl Ledger for Offline {
    fn programme(&self) -> &Programme {
        self.central.programme()
    }
    fn programmes(&self) -> std::sync::Arc<super::programmes::Programmes> {
        self.central.programmes()
    }
    fn account_settings(&self) -> &Settings {
        self.central.account_settings()
    }
    super::wire::ledger_methods!(pass_through);

    fn resolve(&self, number: String) -> LedgerFuture<'_, Option<AccountSummary>> {
        Box::pin(async move {
            let online = if self.link_down() {
                None
            } else {
                self.offline(self.central.resolve(number.clone()).await)?
            };
            match online {
                Some(Some(s)) => {
                    if let Err(e) = self.outbox.remember(number, &s).await {
                        tracing::warn!(error = %e, "cannot keep the card's copy for offline use");
                    }
                    Ok(Some(s))
                }
                Some(None) => Ok(None),
                None => match self.recall(&number).await?.0 {
                    Some(s) => Ok(Some(s)),
                    // Not seen here: no balance to show, but a sale can
                    // still earn on it (the central ledger enrols it).
                    None => Err(RemoteError::Unreachable(
                        "and this till has no copy of the card".into(),
                    )
                    .into()),
                },
            }
        })
    }

    fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        Box::pin(async move {
            if !self.link_down() {
                let online = self
                    .central
                    .quote(number.clone(), lines.clone(), redeem)
                    .await;
                if let Some(q) = self.offline(online)? {
                    return Ok(q);
                }
            }
            let (cached, spent) = self.recall(&number).await?;
            if redeem > Decimal::ZERO {
                self.check_offline_redeem(redeem, cached.as_ref(), spent)?;
            }
            let q = self.expect(cached.as_ref(), &lines, redeem)?;
            Ok((cached, q))
        })
    }

    fn commit(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
    ) -> LedgerFuture<'_, CommitResult> {
        Box::pin(async move {
            // Checked before it is queued: the central ledger would
            // refuse it only at replay, long after the POS moved on.
            cashier::check_opt(cashier.as_deref())?;
            let request = commit_request(&number, &receipt_id, &lines, redeem);
            if let Some(r) = self.queued(&key, &request).await? {
                return Ok(r);
            }
            if self.link_down() {
                return self
                    .commit_offline(key, number, receipt_id, lines, redeem, cashier)
                    .await;
            }
            let online = self
                .central
                .commit(
                    key.clone(),
                    number.clone(),
                    receipt_id.clone(),
                    lines.clone(),
                    redeem,
                    cashier.clone(),
                )
                .await;
            match self.offline(online)? {
                Some(r) => {
                    if let Err(e) = self.outbox.rebalance(number, r.balance_after).await {
                        tracing::warn!(error = %e, "cannot update the card's offline copy");
                    }
                    Ok(r)
                }
                None => {
                    self.commit_offline(key, number, receipt_id, lines, redeem, cashier)
                        .await
                }
            }
        })
    }

    fn quote_terms(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        if terms.is_empty() {
            return self.quote(number, lines, redeem);
        }
        // An order's own terms are the central ledger's to apply: without
        // it such a sale is neither quoted nor queued (2050).
        self.central.quote_terms(number, lines, redeem, terms)
    }

    fn commit_terms(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, CommitResult> {
        if terms.is_empty() {
            return self.commit(key, number, receipt_id, lines, redeem, cashier);
        }
        Box::pin(async move {
            cashier::check_opt(cashier.as_deref())?;
            // A key queued here for another request is refused as reused.
            let request = commit_request_full(&number, &receipt_id, &lines, redeem, &terms, None);
            if let Some(r) = self.queued(&key, &request).await? {
                return Ok(r);
            }
            let r = self
                .central
                .commit_terms(
                    key,
                    number.clone(),
                    receipt_id,
                    lines,
                    redeem,
                    cashier,
                    terms,
                )
                .await?;
            if let Err(e) = self.outbox.rebalance(number, r.balance_after).await {
                tracing::warn!(error = %e, "cannot update the card's offline copy");
            }
            Ok(r)
        })
    }

    fn replay_commit(
        &self,
        key: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, Option<(String, CommitResult)>> {
        Box::pin(async move {
            if let Some(found) = self.outbox.find(key.clone()).await? {
                let request = found.request;
                let number = serde_json::from_str::<serde_json::Value>(&request)
                    .ok()
                    .and_then(|v| v.get("number")?.as_str().map(str::to_owned));
                let Some(number) = number else {
                    return Err(LedgerError::KeyReused);
                };
                if commit_request(&number, &receipt_id, &lines, redeem) != request {
                    return Err(LedgerError::KeyReused);
                }
                if let Some((code, message)) = found.refused {
                    return Err(refusal(code, message));
                }
                return Ok(Some((number, repeat_of(&found.result)?)));
            }
            self.central
                .replay_commit(key, receipt_id, lines, redeem)
                .await
        })
    }

    fn verify_secret(
        &self,
        number: String,
        presented: Secret,
    ) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(async move {
            if self.link_down() {
                return self.verify_secret_offline(number, presented).await;
            }
            match self
                .central
                .verify_secret(number.clone(), presented.clone())
                .await
            {
                Ok(()) => {
                    self.set_link(Link::Online);
                    self.keep_secret(number, presented).await;
                    Ok(())
                }
                Err(AccountError::Remote(RemoteError::Unreachable(why))) if self.policy.enabled => {
                    tracing::warn!(reason = %why, "the central ledger is out of reach: checking the secret offline");
                    self.set_link(Link::Offline);
                    self.verify_secret_offline(number, presented).await
                }
                Err(e) => Err(e),
            }
        })
    }

    fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> LedgerFuture<'_, RefundResult> {
        Box::pin(async move {
            cashier::check_opt(cashier.as_deref())?;
            let request = refund_request(&sale, amount, lines.as_deref());
            if let Some(r) = self.queued(&key, &request).await? {
                return Ok(r);
            }
            // Behind queued operations, a return waits its turn: the sale
            // it returns may be one of them.
            if self.link_down() || (self.policy.enabled && self.outbox.has_queued().await?) {
                return self.refund_offline(key, sale, amount, cashier, lines).await;
            }
            let online = self
                .central
                .refund(
                    key.clone(),
                    sale.clone(),
                    amount,
                    cashier.clone(),
                    lines.clone(),
                )
                .await;
            match self.offline(online)? {
                Some(r) => Ok(r),
                None => self.refund_offline(key, sale, amount, cashier, lines).await,
            }
        })
    }
}

/// The sale a time string names, for the replayer.
pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}
