//! Customer messages (issue 21 item 13): the balance after a sale, sent to
//! accounts that consented to messages, through the same notifier as the
//! confirmation codes.
//!
//! A sale only enqueues a job on a bounded queue; one background task looks
//! the account up (consent, contact), words the text and delivers it with a
//! timeout and retries. A full queue drops the job with a warning: a
//! message is a courtesy and never holds up or fails a sale.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rust_decimal::Decimal;

use super::{Channel, Notifier};
use crate::config::Language;
use crate::ledger::Ledger;
use crate::ledger::accounts::Lookup;

/// Jobs waiting for delivery at most; beyond, new ones are dropped.
pub const QUEUE: usize = 256;
/// One delivery attempt at most.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts after the first, with a doubling pause from [`BACKOFF`].
const RETRIES: u32 = 2;
/// The first pause between attempts.
const BACKOFF: Duration = Duration::from_millis(500);

/// What a message is about, sent to gateways as `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// The balance after a sale.
    Balance,
    /// Points that burn soon (`burning_within_days`).
    Burning,
}

impl MessageKind {
    /// `balance` or `burning`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Balance => "balance",
            MessageKind::Burning => "burning",
        }
    }
}

/// One message to a customer. Its text never holds a full card number.
#[derive(Debug, Clone)]
pub struct CustomerMessage {
    /// The account.
    pub account: i64,
    /// What it is about.
    pub kind: MessageKind,
    /// Phone or e-mail.
    pub channel: Channel,
    /// The phone number or address.
    pub contact: String,
    /// The text, in `[receipt] language`.
    pub text: String,
}

/// The balance message: `card_masked` is `****1234`, never the number.
pub fn balance_text(
    lang: Language,
    card_masked: &str,
    balance: Decimal,
    accrued: Decimal,
) -> String {
    let (balance, accrued) = (balance.normalize(), accrued.normalize());
    match lang {
        Language::Ru => {
            format!("Карта {card_masked}: начислено {accrued} баллов, баланс {balance} баллов.")
        }
        Language::En => {
            format!("Card {card_masked}: {accrued} points accrued, balance {balance} points.")
        }
    }
}

/// The reminder: `amount` points can be spent up to and including
/// `last_day` (`YYYY-MM-DD`, programme time), then they burn.
pub fn burning_text(lang: Language, amount: Decimal, last_day: &str) -> String {
    let amount = amount.normalize();
    match lang {
        Language::Ru => {
            let d = match (last_day.get(8..10), last_day.get(5..7), last_day.get(..4)) {
                (Some(d), Some(m), Some(y)) => format!("{d}.{m}.{y}"),
                _ => last_day.to_owned(),
            };
            format!("{amount} баллов можно потратить до {d} включительно, потом они сгорят.")
        }
        Language::En => {
            format!("{amount} points can be spent until {last_day} inclusive; then they expire.")
        }
    }
}

/// A message to word once the account's consent and contact are known.
#[derive(Debug, Clone)]
pub struct Job {
    /// The account.
    pub account: i64,
    /// The card, masked.
    pub card_masked: String,
    /// The balance after the sale.
    pub balance: Decimal,
    /// Points the sale accrued.
    pub accrued: Decimal,
    /// The language at the time of the sale.
    pub language: Language,
    /// What it is about; for [`MessageKind::Burning`], `accrued` is the
    /// points that burn and `last_day` their last day.
    pub kind: MessageKind,
    /// The burning points' last day (`YYYY-MM-DD`); empty for a balance.
    pub last_day: String,
}

/// The bounded queue in front of the delivery task.
#[derive(Debug)]
pub struct Outbox {
    tx: tokio::sync::mpsc::Sender<Job>,
    dropped: AtomicU64,
}

impl Outbox {
    /// Starts the delivery task; call inside the runtime.
    pub fn start(ledger: Arc<dyn Ledger>, notifier: Arc<dyn Notifier>) -> Arc<Outbox> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                deliver(&*ledger, &*notifier, job).await;
            }
        });
        Arc::new(Outbox {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a job without waiting; a full queue drops it with a warning.
    pub fn enqueue(&self, job: Job) {
        if self.tx.try_send(job).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped = n, "customer message queue full: message dropped");
        }
    }

    /// Jobs dropped since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Looks the account up and delivers, if it consented and has a contact.
async fn deliver(ledger: &dyn Ledger, notifier: &dyn Notifier, job: Job) {
    let view = match ledger.get_account(Lookup::Account(job.account)).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(account = job.account, error = %e, "customer message: account lookup failed");
            return;
        }
    };
    if view.person.consents.messages.is_none() || view.person.erased_at.is_some() {
        return;
    }
    let (channel, contact) = match (view.phone, view.email) {
        (Some(p), _) => (Channel::Phone, p),
        (None, Some(e)) => (Channel::Email, e),
        (None, None) => return,
    };
    let m = CustomerMessage {
        account: job.account,
        kind: job.kind,
        channel,
        contact,
        text: match job.kind {
            MessageKind::Balance => {
                balance_text(job.language, &job.card_masked, job.balance, job.accrued)
            }
            MessageKind::Burning => burning_text(job.language, job.accrued, &job.last_day),
        },
    };
    let mut pause = BACKOFF;
    for attempt in 0..=RETRIES {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, notifier.deliver(&m)).await {
            Ok(Ok(())) => return,
            Ok(Err(e @ super::NotifyError::Unsupported { .. })) => {
                tracing::warn!(account = m.account, error = %e, "customer message not sent");
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(account = m.account, attempt, error = %e, "customer message: attempt failed")
            }
            Err(_) => {
                tracing::warn!(
                    account = m.account,
                    attempt,
                    "customer message: attempt timed out"
                )
            }
        }
        if attempt < RETRIES {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_the_masked_card_and_the_figures() {
        let ru = balance_text(
            Language::Ru,
            "****1234",
            Decimal::new(12500, 2),
            Decimal::new(25, 0),
        );
        assert_eq!(
            ru,
            "Карта ****1234: начислено 25 баллов, баланс 125 баллов."
        );
        let en = balance_text(
            Language::En,
            "****1234",
            Decimal::new(1255, 1),
            Decimal::ZERO,
        );
        assert_eq!(en, "Card ****1234: 0 points accrued, balance 125.5 points.");
    }
}
