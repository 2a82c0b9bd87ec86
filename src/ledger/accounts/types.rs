//! The types of the accounts interface: what a till asks and what it is
//! answered. Each is `Serialize` and `Deserialize`, because the central
//! service sends them to tills over HTTP; the helpers in `wire` spell the
//! fields derive cannot (secrets in clear where they must travel, an
//! update's null apart from its absence, the known words of a status).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::wire;
use crate::redact::Secret;

/// A confirmation code to deliver; `Debug` hides the code. Serialised
/// with the code in clear: the central service sends it to the till whose
/// notifier delivers it, and nothing else may serialise it (the till's API
/// takes it out of a reply first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingCode {
    /// The account waiting for it.
    pub account: i64,
    /// `phone` (preferred when the account has one) or `email`.
    #[serde(deserialize_with = "wire::channel")]
    pub channel: wire::Known,
    /// The phone number or e-mail address.
    pub contact: String,
    /// The code.
    #[serde(with = "wire::secret")]
    pub code: Secret,
}

/// What registration created. The secret is shown here once and never again.
#[derive(Debug, Serialize, Deserialize)]
pub struct Registered {
    /// Account id.
    pub account: i64,
    /// `active`, or `pending` until confirmed.
    #[serde(deserialize_with = "wire::status")]
    pub status: wire::Known,
    /// The card.
    pub card_number: String,
    /// `physical` or `virtual`.
    #[serde(deserialize_with = "wire::kind")]
    pub kind: wire::Known,
    /// The secret code when it was generated here (shown once).
    pub secret: Option<String>,
    /// True when the card had joined through a sale and its account (with
    /// its points) became this customer's.
    pub adopted: bool,
    /// Groups.
    pub groups: Vec<String>,
    /// Welcome bonus credited now (`None` while pending).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub welcome_bonus: Option<Decimal>,
    /// When it expires.
    pub welcome_expires_at: Option<String>,
    /// The code to deliver, with confirmation on. It travels from the
    /// central service to the till that delivers it; a till answering its
    /// POS takes it out first, so a cashier never sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingCode>,
}

/// A registration request.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Registration {
    /// Phone, any common notation.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// A physical card's number; absent: a virtual card is generated.
    pub card_number: Option<String>,
    /// The card's secret; absent: one is generated.
    #[serde(default, with = "wire::opt_secret")]
    pub secret: Option<Secret>,
    /// Groups to join (each must exist).
    #[serde(default)]
    pub groups: Vec<String>,
    /// A word the customer can give a cashier instead of the card.
    #[serde(default, with = "wire::opt_secret")]
    pub code_word: Option<Secret>,
    /// A customer brought over from another system (the back office's
    /// import): the programme's welcome bonus is not credited, since the
    /// customer is not new and brings a balance of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_welcome: bool,
    /// Birth date, `YYYY-MM-DD` (the birthday bonus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<String>,
    /// Who invited the customer: the inviter's card number or phone (the
    /// referral bonus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The programme the account opens under (its name); absent: the one
    /// the card's range routes to, else the till's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub programme: Option<String>,
}

/// What `account.activate` did.
#[derive(Debug, Serialize, Deserialize)]
pub struct Activated {
    /// Account id.
    pub account: i64,
    /// Always `active`.
    #[serde(deserialize_with = "wire::status")]
    pub status: wire::Known,
    /// The welcome bonus credited at activation (the same on a repeat).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub welcome_bonus: Option<Decimal>,
    /// When it expires.
    pub welcome_expires_at: Option<String>,
    /// True only for the call that activated; a repeat (or a race loser)
    /// gets the same reply with `false`. Serialised for the central
    /// ledger's wire (the till publishes `account.activated` by it); the
    /// API takes it out of its reply.
    #[serde(default)]
    pub newly: bool,
}

/// A card added to an account. The secret is shown here once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Issued {
    /// Account id.
    pub account: i64,
    /// The card.
    pub card_number: String,
    /// `physical` or `virtual`.
    #[serde(deserialize_with = "wire::kind")]
    pub kind: wire::Known,
    /// The secret code when it was generated here (shown once).
    pub secret: Option<String>,
}

/// A group as `group.list` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct GroupView {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Accounts in it.
    pub members: i64,
    /// RFC 3339.
    pub created_at: String,
}

/// An `account.update`: each field `None` = unchanged, `Some(None)` =
/// cleared. On the wire an unchanged field is absent and a cleared one
/// null.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Update {
    /// Name.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub name: Option<Option<String>>,
    /// Phone.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub phone: Option<Option<String>>,
    /// E-mail.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub email: Option<Option<String>>,
    /// Code word.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::update_secret"
    )]
    pub code_word: Option<Option<Secret>>,
    /// `active` or `blocked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Birth date, `YYYY-MM-DD`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire::present"
    )]
    pub birth_date: Option<Option<String>>,
}

/// The answer of [`Accounts::verify_code_word`].
#[derive(Debug, Serialize, Deserialize)]
pub struct CodeWordCheck {
    /// Whether the word is the account's.
    pub matches: bool,
    /// After a wrong word: tries left before the code word locks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<i64>,
}

/// An account as `account.get` shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccountView {
    /// Account id.
    pub account: i64,
    /// Status: `active`, `pending` (awaiting confirmation) or `blocked`.
    pub status: String,
    /// Name.
    pub name: Option<String>,
    /// Phone (E.164).
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Whether a code word is set (never the word).
    pub has_code_word: bool,
    /// Groups, by name.
    pub groups: Vec<String>,
    /// Cards, masked, with kind, status and whether a secret is set.
    pub cards: Vec<serde_json::Value>,
    /// Birthday (day and month), consents and erasure.
    #[serde(flatten)]
    pub person: crate::ledger::people::PersonView,
}

/// Who `account.get` is about. On the wire: `{"account": 7}`,
/// `{"card": "…"}`, `{"phone": "…"}` or `{"email": "…"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// By id.
    Account(i64),
    /// By card number.
    Card(String),
    /// By phone, any notation.
    Phone(String),
    /// By e-mail.
    Email(String),
}
