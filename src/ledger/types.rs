//! The ledger interface's types: what the money path takes and returns,
//! whichever store keeps the books. They live apart from the store code
//! so the embedded ledger, the accounts and tiers modules and the central
//! service share them without importing one another; every type that
//! crosses the interface is `Serialize + Deserialize` because the central
//! service sends it over HTTP.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::db::DbError;
use super::rules::{AccountOverrides, RulesError};
use crate::store::StoreError;

/// Ledger errors; each maps to a stable API code.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The rules refused (bad line, redemption over a limit).
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// No account holds this card.
    #[error("unknown card")]
    UnknownCard,
    /// The card or account is blocked.
    #[error("the card is {0}")]
    Inactive(String),
    /// The key was used before for a different request.
    #[error("idempotency key already used for a different request")]
    KeyReused,
    /// The sale to refund does not exist.
    #[error("no such sale")]
    UnknownSale,
    /// No account has this id.
    #[error("no such account")]
    UnknownAccount,
    /// A deduction larger than the balance.
    #[error("insufficient balance: {balance} available")]
    InsufficientBalance {
        /// What there is.
        balance: Decimal,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The books failed (a statement, a conflict that outlived its
    /// retries, an unreachable store).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The central ledger refused (its own code) or could not be reached.
    #[error(transparent)]
    Remote(#[from] crate::ledger::RemoteError),
    /// A late booking (a till's offline sale or return, replayed) whose
    /// time the ledger will not book: in the future beyond the clock
    /// tolerance, or older than the oldest late booking accepted.
    #[error("the operation's time {at} is refused: {reason}")]
    SaleTime {
        /// The time the till gave (RFC 3339).
        at: String,
        /// Why.
        reason: String,
    },
    /// A redemption while the central ledger is out of reach, refused by
    /// the till's offline policy.
    #[error("points cannot be spent offline: {0}")]
    OfflineRedeem(String),
    /// The promo code typed on the sale is refused.
    #[error("promo_code: {0}")]
    Promo(#[from] super::rules::campaigns::PromoRefusal),
    /// The account's programme is not one this till serves (or a name no
    /// programme has).
    #[error(transparent)]
    Programme(#[from] crate::ledger::programmes::ProgrammeError),
}

/// What a card resolves to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccountSummary {
    /// Account id.
    pub account: i64,
    /// Status (`active`, `blocked`).
    pub status: String,
    /// Points that can be spent now: what the lots hold minus the debt and
    /// the points still `held`, so negative while a refund's unpaid
    /// clawback is owed (nothing can be redeemed then).
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// Points accrued but still held by the accrual window
    /// (`hold_days`): the customer's, not yet spendable. 0 without a
    /// window.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub held: Decimal,
    /// The soonest held points to become spendable: amount and when (RFC
    /// 3339, UTC); absent when nothing is held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_available: Option<NextExpiry>,
    /// Points owed from refunds under the `debt` policy; later accruals pay
    /// it first.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt: Decimal,
    /// The soonest-expiring points: amount and when (RFC 3339, UTC).
    pub next_expiry: Option<NextExpiry>,
    /// The loyalty level held; absent when the programme has no levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// How far the next level is; absent at the top or without levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_progress: Option<super::rules::tiers::Progress>,
    /// Set when the central ledger was out of reach and this is the
    /// till's copy from its last contact (RFC 3339, UTC): the balance as
    /// of then, before anything queued here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

/// An operation the till accepted while the central ledger was out of
/// reach: queued on the till's disk and booked there later, at `at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Pending {
    /// The operation's own time, the one it is booked at (RFC 3339, UTC).
    pub at: String,
    /// The card's balance this result starts from is as of this time
    /// (the till's last copy), if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

/// The next points to expire (or, as `next_available`, to come out of the
/// accrual window).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NextExpiry {
    /// How many points.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// When they are gone (or spendable).
    pub at: String,
}

/// The result of a committed sale, stored with its key and returned again
/// on a repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommitResult {
    /// Transaction id.
    pub transaction: i64,
    /// Account id.
    pub account: i64,
    /// The POS's receipt id.
    pub receipt_id: String,
    /// Sale total.
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    /// Points spent.
    #[serde(with = "rust_decimal::serde::str")]
    pub redeemed: Decimal,
    /// Money paid.
    #[serde(with = "rust_decimal::serde::str")]
    pub money_paid: Decimal,
    /// Points accrued (including the part that paid a debt).
    #[serde(with = "rust_decimal::serde::str")]
    pub accrued: Decimal,
    /// Of `accrued`, the points that paid the account's debt instead of
    /// becoming spendable.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt_repaid: Decimal,
    /// When the accrued points expire (RFC 3339, UTC), if they do.
    pub accrued_expires_at: Option<String>,
    /// When the accrued points can be spent (RFC 3339, UTC) when the
    /// accrual window holds them; absent when they are spendable at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accrued_available_at: Option<String>,
    /// Spendable balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Spendable balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// Points held by the accrual window right after the sale (this sale's
    /// and earlier ones'), as the bonus block prints them; 0 without a
    /// window.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub held: Decimal,
    /// The soonest held points to become spendable right after the sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_available: Option<NextExpiry>,
    /// The soonest-expiring points right after the sale, as the bonus block
    /// prints them. Stored with the result so a repeat prints the same block.
    #[serde(default)]
    pub next_expiry: Option<NextExpiry>,
    /// The level held right after the sale (the bonus block's `tier` row);
    /// absent when the programme has no levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The level this sale moved the account to, if it did (published as
    /// `account.tier_changed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_change: Option<super::tiers::TierChange>,
    /// True when this is the stored result of an earlier call with the same
    /// key (nothing was written now). Never stored (a stored result is a
    /// first one); on the central ledger's wire only when true; the API
    /// leaves it out of its reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Present when the central ledger was out of reach: the operation is
    /// queued on the till and booked later; the figures are the till's
    /// expectation, the central ledger's own come with the booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// The order's own accrual percentage and cap, when the cashier set
    /// them (`sale.commit`'s `accrual_percent`, `cap_percent`): recorded
    /// with the sale, shown by `account.history`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms: Option<super::rules::OrderTerms>,
    /// The campaigns that raised the accrual (names; see
    /// [`super::rules::campaigns`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<String>,
    /// The promo code the sale used (upper case), counted once for its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo_code: Option<String>,
}

/// A stored result a repeated key gets back.
pub(crate) trait Replayable {
    /// Marks the result as the stored answer of an earlier call.
    fn mark_replayed(&mut self);
}

impl Replayable for CommitResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for RefundResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for AdjustResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}
impl Replayable for OverridesResult {
    fn mark_replayed(&mut self) {
        self.replayed = true;
    }
}

/// Whose history: a card number or an account id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRef {
    /// The account holding this card number.
    Number(String),
    /// The account with this id.
    Account(i64),
}

/// The most transactions one history page returns.
pub const HISTORY_MAX_LIMIT: u32 = 500;

/// One page of an account's history ([`super::Ledger::history`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryPage {
    /// Account id.
    pub account: i64,
    /// Spendable points now (after posting what was due to expire).
    #[serde(with = "rust_decimal::serde::str")]
    pub balance: Decimal,
    /// Points still held by the accrual window (not in `balance`).
    #[serde(default, with = "rust_decimal::serde::str")]
    pub held: Decimal,
    /// Newest first.
    pub transactions: Vec<HistoryTxn>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// One transaction of a history page.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryTxn {
    /// Transaction id.
    pub transaction: i64,
    /// `sale`, `refund`, `adjust`, `expire`, `welcome`, `overrides` (a
    /// change of the account's percentages) or `tier` (a change of its
    /// level); the last two post no entries.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// The POS's receipt id, for sales.
    pub receipt_id: Option<String>,
    /// For refunds: the sale's transaction id.
    pub refund_of: Option<i64>,
    /// The store the posting happened in, where it was recorded (a
    /// chain's central ledger; a single till records none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The terminal (till) the posting came from, where it was recorded
    /// (transactions older than the column have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    /// For `adjust`: the reason given (from the stored request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `adjust`: who made it (from the stored request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// For `sale` and `refund`: the cashier the POS named (`cashier` of
    /// `sale.commit` / `sale.refund`), if it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashier: Option<String>,
    /// For `refund` under the `clamp` policy: the points of the clawback
    /// that were forgiven because the customer had already spent them
    /// (from the refund's stored result); absent when nothing was.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "rust_decimal::serde::str_option"
    )]
    pub clawback_shortfall: Option<Decimal>,
    /// The postings, in order.
    pub entries: Vec<HistoryEntry>,
    /// What changed, for `overrides` (the percentages now) and `tier`
    /// (`from`, `to`, `reason`, `trigger`); for a `sale` the order's own
    /// `accrual_percent` / `cap_percent` when the cashier set them; absent
    /// for the others, whose entries say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// One posting of a history transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryEntry {
    /// `accrue`, `redeem`, `clawback`, `refund_return`, `adjust`, `expire`,
    /// `debt` (a clawback booked as debt) or `debt_repay` (an accrual that
    /// paid it); the last two have no lot.
    pub kind: String,
    /// Signed points: positive adds to the balance.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// The lot posted to.
    pub lot: Option<i64>,
    /// When that lot expires (RFC 3339, UTC), if it does.
    pub lot_expires_at: Option<String>,
    /// When that lot's points became (or become) spendable, if the accrual
    /// window held them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lot_available_at: Option<String>,
}

/// Which sale a refund is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaleRef {
    /// By transaction id.
    Transaction(i64),
    /// By the POS's receipt id (the latest sale with it).
    Receipt(String),
}

/// The result of a refund, stored with its key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RefundResult {
    /// This refund's transaction id.
    pub transaction: i64,
    /// The sale refunded.
    pub sale_transaction: i64,
    /// Account id.
    pub account: i64,
    /// Money refunded by this refund.
    #[serde(with = "rust_decimal::serde::str")]
    pub refunded: Decimal,
    /// Accrued points taken back.
    #[serde(with = "rust_decimal::serde::str")]
    pub clawback: Decimal,
    /// Points the clawback could not take because they were already spent
    /// (policy `clamp`: the balance stops at zero; the shortfall is only
    /// recorded here).
    #[serde(with = "rust_decimal::serde::str")]
    pub clawback_shortfall: Decimal,
    /// Of `clawback`, the points booked as debt because they were already
    /// spent (policy `debt`).
    #[serde(default, with = "rust_decimal::serde::str")]
    pub clawback_debt: Decimal,
    /// Spent points given back to their lots.
    #[serde(with = "rust_decimal::serde::str")]
    pub returned: Decimal,
    /// Of those, points whose lot had already expired: they expire at once.
    #[serde(with = "rust_decimal::serde::str")]
    pub returned_expired: Decimal,
    /// Balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// The level the refund moved the account to, if it did (its spend
    /// fell below the level's threshold); published as
    /// `account.tier_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_change: Option<super::tiers::TierChange>,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Present when the central ledger was out of reach: the operation is
    /// queued on the till and booked later; the figures are the till's
    /// expectation, the central ledger's own come with the booking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// A return by lines: what it gave back for each line it named (their
    /// sums are `refunded`, `clawback` before the shortfall, and
    /// `returned` before expiry). Empty for a return by amount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<super::rules::lines::ReturnedLine>,
}

/// The result of a manual adjustment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AdjustResult {
    /// Transaction id.
    pub transaction: i64,
    /// Account id.
    pub account: i64,
    /// Points added (positive) or deducted (negative).
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// When added points expire, if they do.
    pub expires_at: Option<String>,
    /// Of the points added, those that paid the account's debt.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub debt_repaid: Decimal,
    /// Balance before.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_before: Decimal,
    /// Balance after.
    #[serde(with = "rust_decimal::serde::str")]
    pub balance_after: Decimal,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// The result of [`super::Ledger::set_overrides`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OverridesResult {
    /// Account id.
    pub account: i64,
    /// The account's percentages now.
    pub overrides: AccountOverrides,
    /// A repeat of the key (nothing written). Not stored or sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// One row of [`super::embedded::export`]: a transaction with one of its
/// entries (or with none, for a transaction that posted nothing).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportRow {
    /// Transaction id.
    pub txn: i64,
    /// Transaction kind.
    pub kind: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// Account id.
    pub account: i64,
    /// As stored: the POS's receipt id for sales, `refund-of:<id>` for
    /// refunds.
    pub receipt_id: Option<String>,
    /// The entry's kind; `None` when the transaction has no entries.
    pub entry_kind: Option<String>,
    /// The entry's signed points.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub amount: Option<Decimal>,
    /// The entry's lot.
    pub lot: Option<i64>,
    /// For `adjust`: the reason given. Like the fields below it is the
    /// transaction's, repeated on each of its entries' rows.
    #[serde(default)]
    pub reason: Option<String>,
    /// For `adjust`: who made it.
    #[serde(default)]
    pub operator: Option<String>,
    /// For `sale` and `refund`: the cashier the POS named.
    #[serde(default)]
    pub cashier: Option<String>,
    /// For `refund` under the `clamp` policy: the clawback points forgiven
    /// because they were already spent; `None` when nothing was.
    #[serde(default, with = "rust_decimal::serde::str_option")]
    pub clawback_shortfall: Option<Decimal>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: &T) {
        let text = serde_json::to_string(v).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, v, "{text}");
    }

    #[test]
    fn the_interface_types_travel_as_json() {
        let page = HistoryPage {
            account: 1,
            balance: Decimal::new(-125, 1),
            held: Decimal::new(5, 0),
            transactions: vec![HistoryTxn {
                transaction: 3,
                kind: "refund".into(),
                created_at: "2026-03-01T12:00:00Z".into(),
                receipt_id: None,
                refund_of: Some(2),
                store: Some("shop-2".into()),
                terminal: Some("till-7".into()),
                reason: None,
                operator: None,
                cashier: None,
                clawback_shortfall: Some(Decimal::new(40, 0)),
                entries: vec![HistoryEntry {
                    kind: "debt".into(),
                    amount: Decimal::new(-4, 0),
                    lot: None,
                    lot_expires_at: None,
                    lot_available_at: Some("2026-03-14T21:00:00Z".into()),
                }],
                detail: None,
            }],
            next_cursor: Some(3),
        };
        round_trip(&page);
        let row = ExportRow {
            txn: 1,
            kind: "overrides".into(),
            created_at: "2026-03-01T12:00:00Z".into(),
            account: 1,
            receipt_id: None,
            entry_kind: None,
            amount: None,
            lot: None,
            reason: None,
            operator: None,
            cashier: Some("Анна".into()),
            clawback_shortfall: Some(Decimal::new(45, 1)),
        };
        round_trip(&row);
        assert_eq!(
            serde_json::to_value(&row).unwrap()["clawback_shortfall"],
            "4.5"
        );
        round_trip(&NextExpiry {
            amount: Decimal::new(3333, 2),
            at: "2026-09-01T21:00:00Z".into(),
        });
        // Amounts are decimal strings on the wire, never floats.
        let json = serde_json::to_value(&page).unwrap();
        assert_eq!(json["balance"], "-12.5");
        assert_eq!(json["transactions"][0]["entries"][0]["amount"], "-4");
        assert_eq!(json["transactions"][0]["clawback_shortfall"], "40");
        for r in [SaleRef::Transaction(7), SaleRef::Receipt("R 1".into())] {
            let back: SaleRef = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{r:?}"));
        }
        let who: AccountRef = serde_json::from_str(r#"{"number":"6035000011112222"}"#).unwrap();
        assert!(matches!(who, AccountRef::Number(n) if n == "6035000011112222"));
    }
}
