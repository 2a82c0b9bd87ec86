//! `card.resolve`, `sale.quote`, `sale.commit`: where a sale meets the
//! ledger.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::amount;
use crate::api::rpc::{self, RpcError, code};
use crate::api::session::Session;
use crate::app::App;
use crate::auth::Role;
use crate::ledger::CommitResult;
use crate::ledger::rules::{AccountOverrides, CategoryOverride, OrderTerms, SaleLine};
use crate::receipt::bonus;
use crate::redact::CardNumber;

/// A resolved card: the number, and whether a secret came with the read
/// (the proof of presence that redemption needs).
pub(super) struct Card {
    pub(super) number: CardNumber,
    present_with_secret: bool,
    /// The secret that came with the read, checked before points are spent.
    secret: Option<crate::redact::Secret>,
}

/// Who the sale is for: a card token from a read, or a typed number.
pub(super) fn card(
    app: &App,
    token: Option<String>,
    number: Option<CardNumber>,
) -> Result<Card, RpcError> {
    match (token, number) {
        (Some(t), None) => {
            let entry = app.cards.resolve(&t).ok_or_else(|| {
                RpcError::new(code::CARD_TOKEN_INVALID, "card token unknown or expired")
                    .with_data(json!({ "field": "card_token" }))
            })?;
            Ok(Card {
                number: entry.number,
                present_with_secret: entry.secret.is_some(),
                secret: entry.secret,
            })
        }
        (None, Some(n)) => {
            let digits = n.expose();
            if !(4..=32).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(RpcError::invalid_params(
                    "number",
                    "a card number is 4 to 32 digits",
                ));
            }
            Ok(Card {
                number: n,
                present_with_secret: false,
                secret: None,
            })
        }
        _ => Err(RpcError::invalid_params(
            "card_token",
            "give exactly one of card_token and number",
        )),
    }
}

/// A sale for a customer identified by account (phone or e-mail at the
/// till, no card): booked on the account's first active card. Its proof of
/// presence for spending is a one-time code, not a secret.
async fn account_card(app: &App, account: i64) -> Result<Card, RpcError> {
    let number = app
        .ledger
        .booking_card(account)
        .await
        .map_err(super::accounts::account_error)?;
    Ok(Card {
        number: CardNumber::new(number),
        present_with_secret: false,
        secret: None,
    })
}

/// `card_token`, `number` or `account`: exactly one.
async fn sale_card(
    app: &App,
    token: Option<String>,
    number: Option<CardNumber>,
    account: Option<i64>,
) -> Result<Card, RpcError> {
    match (account, token.is_some() || number.is_some()) {
        (Some(a), false) => account_card(app, a).await,
        (Some(_), true) => Err(RpcError::invalid_params(
            "account",
            "give exactly one of card_token, number and account",
        )),
        (None, _) => card(app, token, number),
    }
}

pub(super) use crate::api::errors::ledger_error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveParams {
    card_token: Option<String>,
    number: Option<CardNumber>,
}

pub(super) async fn resolve(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ResolveParams = rpc::params(params)?;
    let card = card(app, p.card_token, p.number)?;
    let summary = app
        .ledger
        .resolve(card.number.expose().to_owned())
        .await
        .map_err(ledger_error)?;
    match summary {
        Some(s) => {
            let mut out = json!({ "card_masked": card.number.masked(), "account": s });
            // The customer agreement, where the POS shows the account.
            if let Some(url) = &app.ledger.programme().agreement_url {
                out["agreement_url"] = json!(url);
            }
            Ok(out)
        }
        None => Err(
            RpcError::new(code::UNKNOWN_CARD, "no account holds this card")
                .with_data(json!({ "card_masked": card.number.masked() })),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteParams {
    card_token: Option<String>,
    number: Option<CardNumber>,
    account: Option<i64>,
    lines: Vec<WireLine>,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    redeem: Option<Decimal>,
    /// The order's own accrual percentage, set by the cashier.
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    accrual_percent: Option<Decimal>,
    /// The order's own redemption cap (percent of each line).
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    cap_percent: Option<Decimal>,
    /// A promo code the cashier typed.
    promo_code: Option<String>,
}

/// The order's own terms from a quote's or commit's params, checked
/// against `[ledger.programme.cashier_limits]`: a cashier stays within
/// them, an admin connection (seed 001's "bonus settings" right) may set
/// any percentage.
fn order_terms(
    app: &App,
    session: &Session,
    accrual_percent: Option<Decimal>,
    cap_percent: Option<Decimal>,
) -> Result<OrderTerms, RpcError> {
    let terms = OrderTerms {
        accrual_percent,
        cap_percent,
    };
    let unlimited = session.role().is_some_and(|r| r >= Role::Admin);
    terms
        .check(&app.ledger.programme().cashier_limits, unlimited)
        .map_err(|e| ledger_error(e.into()))?;
    Ok(terms)
}

/// Checks the optional promo code's length (the programme judges it). A
/// code does not combine with the order's own terms: the cashier's
/// percentage and a code's multiplier would each claim the last word.
fn check_promo(code: Option<&str>, terms: &OrderTerms) -> Result<(), RpcError> {
    use crate::ledger::rules::campaigns::MAX_PROMO_CODE;
    if code.is_some() && !terms.is_empty() {
        return Err(RpcError::invalid_params(
            "promo_code",
            "a promo code does not combine with accrual_percent or cap_percent",
        ));
    }
    match code {
        Some(c) if c.trim().is_empty() || c.chars().count() > MAX_PROMO_CODE => Err(
            RpcError::invalid_params("promo_code", format!("1 to {MAX_PROMO_CODE} characters")),
        ),
        _ => Ok(()),
    }
}

/// Longest `sku` and `category` of a sale line, in characters.
pub(crate) const MAX_SKU: usize = 64;
/// Longest `name` of a sale line (a fiscal register prints 128).
pub(crate) const MAX_LINE_NAME: usize = 128;

/// A sale line as the client sends it: amounts read strictly, text capped.
/// The ledger's [`SaleLine`] is what it becomes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WireLine {
    sku: String,
    name: String,
    category: String,
    #[serde(deserialize_with = "amount::qty")]
    qty: Decimal,
    #[serde(deserialize_with = "amount::unsigned")]
    price: Decimal,
    #[serde(default, deserialize_with = "amount::unsigned")]
    discount: Decimal,
}

/// At least one line, each within the text caps.
pub(super) fn sale_lines(lines: Vec<WireLine>) -> Result<Vec<SaleLine>, RpcError> {
    if lines.is_empty() {
        return Err(RpcError::invalid_params(
            "lines",
            "a sale has at least one line",
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            amount::check_text(&format!("lines[{i}].sku"), &l.sku, MAX_SKU)?;
            amount::check_text(&format!("lines[{i}].name"), &l.name, MAX_LINE_NAME)?;
            amount::check_text(&format!("lines[{i}].category"), &l.category, MAX_SKU)?;
            Ok(SaleLine {
                sku: l.sku,
                name: l.name,
                category: l.category,
                qty: l.qty,
                price: l.price,
                discount: l.discount,
            })
        })
        .collect()
}

pub(super) async fn quote(
    app: &Arc<App>,
    session: &Session,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: QuoteParams = rpc::params(params)?;
    let terms = order_terms(app, session, p.accrual_percent, p.cap_percent)?;
    let lines = sale_lines(p.lines)?;
    check_promo(p.promo_code.as_deref(), &terms)?;
    let by_account = p.account.is_some();
    let card = sale_card(app, p.card_token, p.number, p.account).await?;
    // A customer without the card proves presence with a one-time code
    // only at the commit; a card's checks are the commit's own.
    if !by_account {
        may_spend(app, &card, p.redeem.unwrap_or_default()).await?;
    }
    let number = card.number.expose().to_owned();
    let redeem = p.redeem.unwrap_or_default();
    let (summary, q) = match p.promo_code {
        Some(code) => app.ledger.quote_promo(number, lines, redeem, code).await,
        None => app.ledger.quote_terms(number, lines, redeem, terms).await,
    }
    .map_err(ledger_error)?;
    Ok(json!({
        "card_masked": card.number.masked(),
        "account": summary,
        "balance": summary.as_ref().map_or(Decimal::ZERO, |s| s.balance).to_string(),
        "quote": q,
        // For an account: spending needs a code, if the programme takes
        // codes at all.
        "redeem_allowed": card.present_with_secret
            || (by_account && app.ledger.account_settings().redeem_code.is_some()),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrintTarget {
    printer: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitParams {
    idempotency_key: String,
    /// Print the bonus block on this receipt printer.
    print: Option<PrintTarget>,
    card_token: Option<String>,
    number: Option<CardNumber>,
    /// A customer without the card; spending then needs `redeem_code`.
    account: Option<i64>,
    /// The one-time code sent by `sale.redeem_code.send`.
    redeem_code: Option<crate::redact::Secret>,
    receipt_id: String,
    /// The lines as sent; checked into `lines`.
    #[serde(rename = "lines")]
    wire_lines: Vec<WireLine>,
    #[serde(skip)]
    lines: Vec<SaleLine>,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    redeem: Option<Decimal>,
    /// Who sold: a name or an id, recorded on the sale for the history.
    cashier: Option<String>,
    /// The order's own accrual percentage, set by the cashier.
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    accrual_percent: Option<Decimal>,
    /// The order's own redemption cap (percent of each line).
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    cap_percent: Option<Decimal>,
    /// Checked from the two above.
    #[serde(skip)]
    terms: OrderTerms,
    /// A promo code the cashier typed; its use is counted with the sale.
    promo_code: Option<String>,
}

/// Checks the optional `cashier` of a sale or return
/// ([`crate::ledger::cashier::check`]), naming the field.
fn check_cashier(cashier: Option<&str>) -> Result<(), RpcError> {
    crate::ledger::cashier::check_opt(cashier).map_err(|e| ledger_error(e.into()))
}

pub(super) async fn commit(
    app: &Arc<App>,
    session: &Session,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let mut p: CommitParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    check_cashier(p.cashier.as_deref())?;
    p.terms = order_terms(app, session, p.accrual_percent, p.cap_percent)?;
    check_promo(p.promo_code.as_deref(), &p.terms)?;
    p.lines = sale_lines(std::mem::take(&mut p.wire_lines))?;
    if p.receipt_id.is_empty() || p.receipt_id.len() > 128 {
        return Err(RpcError::invalid_params(
            "receipt_id",
            "1 to 128 characters",
        ));
    }
    if let Some(t) = &p.print
        && app.devices.printer_kind(&t.printer) != Some(crate::config::PrinterKind::Escpos)
    {
        // Refused before anything is committed.
        return Err(RpcError::new(
            code::DEVICE_NOT_FOUND,
            format!("no receipt printer named \"{}\"", t.printer),
        )
        .with_data(json!({ "name": t.printer })));
    }
    let key = p.idempotency_key.clone();
    let redeem = p.redeem.unwrap_or_default();
    if p.promo_code.is_some() && p.redeem_code.is_some() {
        // The code sale is one ledger call of its own; not combined yet.
        return Err(RpcError::invalid_params(
            "promo_code",
            "a promo code cannot go with a redeem_code sale",
        ));
    }
    if p.redeem_code.is_some() && p.account.is_none() {
        return Err(RpcError::invalid_params(
            "redeem_code",
            "a redemption code goes with account, not with a card",
        ));
    }
    let ready = match p.account {
        Some(account) => by_account(app, &p, account, p.redeem_code.clone(), redeem, &key).await?,
        None => by_card(app, &p, redeem, &key).await?,
    };
    let card = match ready {
        Ready::Card(card) => card,
        Ready::Done(number, r) => {
            return respond(app, &CardNumber::new(number), *r, p.print, &key).await;
        }
    };
    let number = card.number.expose().to_owned();
    let r = match p.promo_code {
        Some(code) => {
            crate::metrics::timed_commit(app.ledger.commit_promo(
                p.idempotency_key,
                number,
                p.receipt_id,
                p.lines,
                redeem,
                p.cashier,
                code,
            ))
            .await
        }
        None => {
            crate::metrics::timed_commit(app.ledger.commit_terms(
                p.idempotency_key,
                number,
                p.receipt_id,
                p.lines,
                redeem,
                p.cashier,
                p.terms,
            ))
            .await
        }
    }
    .map_err(ledger_error)?;
    respond(app, &card.number, r, p.print, &key).await
}

/// Who a commit is for, once the proof of presence checked out; or the
/// sale already committed: stored, for a retry that needs no proof any
/// more, or just now together with its proof (a one-time code).
enum Ready {
    Card(Card),
    Done(String, Box<CommitResult>),
}

/// A customer without the card: booked on the account's card; spending
/// uses up a one-time code.
async fn by_account(
    app: &Arc<App>,
    p: &CommitParams,
    account: i64,
    redeem_code: Option<crate::redact::Secret>,
    redeem: Decimal,
    key: &str,
) -> Result<Ready, RpcError> {
    // Checks that no card came with the account, and finds the card to
    // book on (one trip), only where no code is spent: with a code, the
    // ledger finds it in the sale's transaction.
    if redeem <= Decimal::ZERO || p.card_token.is_some() || p.number.is_some() {
        let card = sale_card(app, p.card_token.clone(), p.number.clone(), Some(account)).await?;
        return Ok(Ready::Card(card));
    }
    if app.ledger.account_settings().redeem_code.is_none() {
        return Err(super::accounts::account_error(
            crate::ledger::accounts::AccountError::RedeemByCodeOff,
        ));
    }
    let Some(code) = redeem_code else {
        return Err(RpcError::new(
            code::CARD_NOT_PRESENT,
            "spending points for an account needs the redeem_code sent to the customer",
        )
        .with_data(json!({ "field": "redeem_code" })));
    };
    // One ledger call: a retry of a committed sale is answered without a
    // code (the first one used it up); otherwise the code is checked,
    // consumed and the sale committed in one transaction, so a sale the
    // rules refuse keeps the code and a code pays for this sale only.
    let (number, r) = crate::metrics::timed_commit(app.ledger.commit_with_code(
        key.to_owned(),
        account,
        code,
        p.receipt_id.clone(),
        p.lines.clone(),
        redeem,
        p.cashier.clone(),
        p.terms.clone(),
    ))
    .await
    .map_err(spend_error)?;
    Ok(Ready::Done(number, Box::new(r)))
}

/// A refusal of a sale spending with a code: the code's or the sale's.
fn spend_error(e: crate::ledger::SpendError) -> RpcError {
    match e {
        crate::ledger::SpendError::Account(e) => super::accounts::account_error(e),
        crate::ledger::SpendError::Ledger(e) => ledger_error(e),
    }
}

/// A card token or a typed number: spending needs a read with the card's
/// secret, checked against its hash.
async fn by_card(
    app: &Arc<App>,
    p: &CommitParams,
    redeem: Decimal,
    key: &str,
) -> Result<Ready, RpcError> {
    let card = match card(app, p.card_token.clone(), p.number.clone()) {
        Ok(c) => c,
        Err(e) if e.code == code::CARD_TOKEN_INVALID => {
            // A retry after the token's lifetime: if the sale was committed
            // under this key, the stored result is the answer. The lookup
            // happens only here, so a first commit pays no extra trip.
            return match app
                .ledger
                .replay_commit(
                    key.to_owned(),
                    p.receipt_id.clone(),
                    p.lines.clone(),
                    redeem,
                )
                .await
                .map_err(ledger_error)?
            {
                // The stored sale had these terms, or the key is reused.
                Some((_, r)) if r.terms.clone().unwrap_or_default() != p.terms => {
                    Err(ledger_error(crate::ledger::LedgerError::KeyReused))
                }
                Some((number, r)) => Ok(Ready::Done(number, Box::new(r))),
                None => Err(e),
            };
        }
        Err(e) => return Err(e),
    };
    may_spend(app, &card, redeem).await?;
    Ok(Ready::Card(card))
}

/// What spending `redeem` from a card needs before the ledger weighs the
/// balance: the card present with its secret, and the secret right. The
/// quote and the commit both ask, in this order, so the same request gets
/// the same verdict from both.
async fn may_spend(app: &Arc<App>, card: &Card, redeem: Decimal) -> Result<(), RpcError> {
    if redeem <= Decimal::ZERO {
        return Ok(());
    }
    if !card.present_with_secret {
        return Err(RpcError::new(
            code::CARD_NOT_PRESENT,
            "redeeming points needs a card_token from a read that carried the card's secret",
        )
        .with_data(json!({ "field": "card_token" })));
    }
    if let Some(secret) = card.secret.clone() {
        verify_secret(app, &card.number, secret).await?;
    }
    Ok(())
}

/// The answer to a commit, first or repeated: the stored result with its
/// bonus block (built only from stored values, so a repeat gets the same
/// block), the print job, and the event on the first execution only.
async fn respond(
    app: &Arc<App>,
    number: &CardNumber,
    r: CommitResult,
    print: Option<PrintTarget>,
    key: &str,
) -> Result<Value, RpcError> {
    let mut result = reply(&r);
    let config = app.config();
    let masked = number.masked();
    let facts = bonus::BonusFacts {
        card_masked: &masked,
        before: r.balance_before,
        redeemed: r.redeemed,
        accrued: r.accrued,
        after: r.balance_after,
        next_expiry: r
            .next_expiry
            .as_ref()
            .map(|n| (n.amount, n.at.get(..10).unwrap_or(&n.at))),
        tier: r.tier.as_deref(),
        pending: r.pending.is_some(),
        agreement_url: app.ledger.programme().agreement_url.as_deref(),
        held: r
            .next_available
            .as_ref()
            .map(|n| (r.held, n.at.get(..10).unwrap_or(&n.at))),
    };
    let block = bonus::block(&facts, &config.receipt);
    result["bonus_lines"] = json!(bonus::lines(&block, config.receipt.width));
    // A repeat whose block was queued already gets that job back as it is:
    // after a reload of [receipt] the block would be laid out anew, differ,
    // and the queue would refuse it (1202) although the sale stands.
    let queued = match &print {
        Some(t) if r.replayed => match app.devices.queue.get(format!("bonus-{key}")).await {
            Ok(job) if job.printer == t.printer => Some(job),
            _ => None,
        },
        _ => None,
    };
    if let Some(job) = queued {
        result["print_job"] = json!(job);
    } else if let Some(t) = print {
        // On paper the rows are columns, so the printer's own width and
        // font decide the layout. The job id derives from the sale's key:
        // a retried commit queues the block once.
        let text = |t: &str| json!({"type": "text", "text": t, "align": "center"});
        let mut blocks = vec![json!({"type": "separator", "char": "-"})];
        blocks.extend(block.header.iter().map(|h| text(h)));
        if let Some(title) = &block.title {
            blocks.push(json!({"type": "text", "text": title, "bold": true, "align": "center"}));
        }
        blocks.extend(block.rows.iter().map(|(label, value)| {
            json!({"type": "columns", "cells": [
                {"text": label, "align": "left"},
                {"text": value, "align": "right", "width": value.chars().count() + 1}
            ]})
        }));
        blocks.extend(block.footer.iter().map(|f| text(f)));
        blocks.push(json!({"type": "separator", "char": "-"}));
        blocks.push(json!({"type": "cut", "partial": true}));
        let job = super::print::enqueue(
            app,
            t.printer,
            format!("bonus-{key}"),
            json!({ "blocks": blocks }),
        )
        .await?;
        result["print_job"] = job;
    }
    if !r.replayed {
        let mut event = json!({
            "kind": "sale",
            "transaction": r.transaction,
            "account": r.account,
            "card_masked": masked,
            "redeemed": r.redeemed.to_string(),
            "accrued": r.accrued.to_string(),
            "balance_after": r.balance_after.to_string(),
        });
        if let Some(p) = &r.pending {
            event["pending"] = json!(p);
        }
        app.bus.publish("ledger.transaction", event);
        if let Some(ch) = &r.tier_change {
            super::tiers::publish_one(app, ch);
        }
        if config.ledger.messages.balance_after_sale {
            app.messages.enqueue(crate::notify::messages::Job {
                account: r.account,
                card_masked: masked.clone(),
                balance: r.balance_after,
                accrued: r.accrued,
                language: config.receipt.language,
                kind: crate::notify::messages::MessageKind::Balance,
                last_day: String::new(),
            });
        }
    }
    Ok(result)
}

/// The sale a refund is for.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundParams {
    idempotency_key: String,
    transaction: Option<i64>,
    receipt_id: Option<String>,
    /// Money refunded; absent: whatever of the sale is not refunded yet.
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    amount: Option<Decimal>,
    /// Who took the return back: a name or an id.
    cashier: Option<String>,
    /// A return by lines: the lines returned (instead of `amount`).
    lines: Option<Vec<WireReturnLine>>,
}

/// A returned line as the client sends it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReturnLine {
    sku: String,
    #[serde(deserialize_with = "amount::qty")]
    qty: Decimal,
    /// The sale line's 0-based index, when its SKU is on several lines.
    line: Option<usize>,
}

/// The lines of a return by lines: 1 to [`crate::ledger::rules::MAX_LINES`], SKUs within
/// the sale lines' cap.
fn return_lines(
    lines: Vec<WireReturnLine>,
) -> Result<Vec<crate::ledger::rules::lines::ReturnLine>, RpcError> {
    if lines.is_empty() || lines.len() > crate::ledger::rules::MAX_LINES {
        return Err(RpcError::invalid_params(
            "lines",
            format!(
                "a return by lines names 1 to {} lines",
                crate::ledger::rules::MAX_LINES
            ),
        ));
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            amount::check_text(&format!("lines[{i}].sku"), &l.sku, MAX_SKU)?;
            Ok(crate::ledger::rules::lines::ReturnLine {
                sku: l.sku,
                qty: l.qty,
                line: l.line,
            })
        })
        .collect()
}

/// Prefixes of the keys the ledger writes itself (the welcome bonus, expiry,
/// overrides set without a key, tier changes). A client key with one of them could take
/// such a row's place, and then, say, an activation could not credit its
/// welcome bonus.
const RESERVED_KEY_PREFIXES: &[&str] = &[
    "welcome:",
    "expire:",
    "overrides:",
    "tier:",
    "birthday:",
    "referral:",
];

pub(super) fn check_key(key: &str) -> Result<(), RpcError> {
    if key.is_empty() || key.len() > 128 {
        return Err(RpcError::invalid_params(
            "idempotency_key",
            "1 to 128 characters",
        ));
    }
    if let Some(p) = RESERVED_KEY_PREFIXES.iter().find(|p| key.starts_with(**p)) {
        return Err(RpcError::invalid_params(
            "idempotency_key",
            format!("keys starting with \"{p}\" are posbridge's own"),
        ));
    }
    Ok(())
}

pub(super) async fn refund(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    use crate::ledger::embedded::SaleRef;
    let p: RefundParams = rpc::params(params)?;
    check_key(&p.idempotency_key)?;
    check_cashier(p.cashier.as_deref())?;
    let sale = match (p.transaction, p.receipt_id) {
        (Some(t), None) => SaleRef::Transaction(t),
        (None, Some(r)) => SaleRef::Receipt(r),
        _ => {
            return Err(RpcError::invalid_params(
                "transaction",
                "give exactly one of transaction and receipt_id",
            ));
        }
    };
    let lines = match p.lines {
        Some(_) if p.amount.is_some() => {
            return Err(RpcError::invalid_params(
                "lines",
                "give either amount or lines, not both",
            ));
        }
        Some(l) => Some(return_lines(l)?),
        None => None,
    };
    let r = crate::metrics::timed_commit(app.ledger.refund(
        p.idempotency_key,
        sale,
        p.amount,
        p.cashier,
        lines,
    ))
    .await
    .map_err(ledger_error)?;
    if r.replayed {
        return Ok(reply(&r));
    }
    let mut event = json!({
        "kind": "refund",
        "transaction": r.transaction,
        "account": r.account,
        "clawback": r.clawback.to_string(),
        "clawback_debt": r.clawback_debt.to_string(),
        "returned": r.returned.to_string(),
        "balance_after": r.balance_after.to_string(),
    });
    if let Some(p) = &r.pending {
        event["pending"] = json!(p);
    }
    app.bus.publish("ledger.transaction", event);
    if let Some(ch) = &r.tier_change {
        super::tiers::publish_one(app, ch);
    }
    Ok(reply(&r))
}

/// Checks the secret a read carried against the card's stored hash.
async fn verify_secret(
    app: &Arc<App>,
    number: &CardNumber,
    secret: crate::redact::Secret,
) -> Result<(), RpcError> {
    use crate::ledger::accounts::AccountError;
    match app
        .ledger
        .verify_secret(number.expose().to_owned(), secret)
        .await
    {
        Ok(()) => Ok(()),
        Err(AccountError::Locked { until, just_locked }) => {
            if just_locked {
                app.bus.publish(
                    "card.locked",
                    json!({ "card_masked": number.masked(), "until": until }),
                );
            }
            Err(super::accounts::account_error(AccountError::Locked {
                until,
                just_locked,
            }))
        }
        Err(AccountError::UnknownCard) => Err(RpcError::new(code::UNKNOWN_CARD, "unknown card")),
        Err(e) => {
            let mut e = super::accounts::account_error(e);
            // The central ledger says which attempt locked the card.
            let just_locked = e.code == code::CARD_LOCKED
                && e.data
                    .as_mut()
                    .and_then(Value::as_object_mut)
                    .and_then(|d| d.remove("just_locked"))
                    == Some(Value::Bool(true));
            if just_locked {
                let until = e.data.as_ref().map_or(Value::Null, |d| d["until"].clone());
                app.bus.publish(
                    "card.locked",
                    json!({ "card_masked": number.masked(), "until": until }),
                );
            }
            Err(e)
        }
    }
}

/// One category of `account.overrides.set`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryParams {
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    cap_percent: Option<Decimal>,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    accrual_percent: Option<Decimal>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverridesParams {
    idempotency_key: Option<String>,
    account: i64,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    accrual_percent: Option<Decimal>,
    #[serde(default, deserialize_with = "amount::unsigned_opt")]
    cap_percent: Option<Decimal>,
    #[serde(default)]
    categories: std::collections::BTreeMap<String, CategoryParams>,
}

/// `account.overrides.set`: replaces an account's own percentages (an
/// absent one is unset, falling back to the programme).
pub(super) async fn set_overrides(
    app: &Arc<App>,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let p: OverridesParams = rpc::params(params)?;
    if let Some(k) = &p.idempotency_key {
        check_key(k)?;
    }
    let overrides = AccountOverrides {
        accrual_percent: p.accrual_percent,
        cap_percent: p.cap_percent,
        categories: p
            .categories
            .into_iter()
            .map(|(name, c)| {
                (
                    name,
                    CategoryOverride {
                        cap_percent: c.cap_percent,
                        accrual_percent: c.accrual_percent,
                    },
                )
            })
            .collect(),
    };
    let r = app
        .ledger
        .set_overrides(p.idempotency_key, p.account, overrides)
        .await
        .map_err(|e| params_field(ledger_error(e)))?;
    Ok(reply(&r))
}

/// The field names of the rules are `overrides.x`; the method's are the
/// params' own. Done on the mapped error, so a refusal the central ledger
/// already mapped (it arrives as a remote error) is renamed the same way.
fn params_field(mut e: RpcError) -> RpcError {
    if e.code == code::INVALID_PARAMS
        && let Some(field) = e.data.as_mut().and_then(|d| d.get_mut("field"))
        && let Some(own) = field.as_str().and_then(|f| f.strip_prefix("overrides."))
    {
        *field = Value::String(own.to_owned());
    }
    e
}

/// A ledger result as the POS gets it: `replayed` (set on a repeat, and
/// carried over the central ledger's wire) is the till's business; a
/// repeat answers exactly as the first call did.
pub(super) fn reply<T: serde::Serialize>(r: &T) -> Value {
    let mut v = json!(r);
    if let Some(o) = v.as_object_mut() {
        o.remove("replayed");
    }
    v
}

/// `promo.list`: every promo code of the programme with its settings, its
/// uses counted in the ledger and the uses left in all (`null`: no limit).
/// The codes are configuration; this shows what the books hold of them.
pub(super) async fn promo_list(app: &Arc<App>, params: Option<Value>) -> Result<Value, RpcError> {
    use crate::ledger::rules::campaigns::normalize_code;
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NoParams {}
    let _: NoParams = rpc::params(params)?;
    let uses: std::collections::BTreeMap<String, i64> = app
        .ledger
        .promo_uses()
        .await
        .map_err(ledger_error)?
        .into_iter()
        .collect();
    let codes: Vec<Value> = app
        .ledger
        .programme()
        .promo_codes
        .iter()
        .map(|c| {
            let code = normalize_code(&c.code);
            let used = uses.get(&code).copied().unwrap_or(0);
            let mut v = json!(c);
            v["code"] = json!(code);
            v["used"] = json!(used);
            v["left"] = json!(c.total.map(|t| (i64::from(t) - used).max(0)));
            v["disabled"] = json!(c.disabled);
            v
        })
        .collect();
    Ok(json!({ "codes": codes }))
}
