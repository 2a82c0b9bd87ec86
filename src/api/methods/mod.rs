//! The methods, one file per family, and the table that says who may call
//! what.

mod accounts;
mod adjust;
mod auth;
mod cards;
mod certificates;
mod devices;
mod events;
mod fiscal;
mod groups;
mod history;
mod people;
pub(crate) mod print;
mod programme;
mod sale;
pub(crate) mod sync;
mod system;
pub(crate) mod tiers;
pub(crate) use people::{birthday_daily, burning_daily};

use std::sync::Arc;

use serde_json::{Value, json};

use super::rpc::{RpcError, code};
use super::session::Session;
use crate::app::App;
use crate::auth::Role;

/// A method's entry in the table.
pub struct MethodSpec {
    /// Wire name.
    pub name: &'static str,
    /// Lowest role allowed to call it.
    pub role: Role,
    /// Whether a TCP client may call it before logging in.
    pub before_login: bool,
    /// One line for `system.methods` and the docs.
    pub summary: &'static str,
}

const fn m(name: &'static str, role: Role, summary: &'static str) -> MethodSpec {
    MethodSpec {
        name,
        role,
        before_login: false,
        summary,
    }
}

/// Every method, in documentation order.
pub const METHODS: &[MethodSpec] = &[
    MethodSpec {
        before_login: true,
        ..m(
            "auth.login",
            Role::Cashier,
            "present a token; the reply names the role granted",
        )
    },
    m(
        "system.ping",
        Role::Cashier,
        "liveness check; answers \"pong\"",
    ),
    m(
        "system.info",
        Role::Cashier,
        "version, uptime, configuration path, socket, device summary, your role",
    ),
    m(
        "system.methods",
        Role::Cashier,
        "the methods and the role each needs",
    ),
    m(
        "system.reload",
        Role::Admin,
        "re-read the configuration file, as SIGHUP does",
    ),
    m(
        "card.enter",
        Role::Cashier,
        "a card typed by the cashier: validated, tokenised and announced as card.read",
    ),
    m(
        "devices.list",
        Role::Cashier,
        "every configured device and its status",
    ),
    m(
        "devices.restart",
        Role::Admin,
        "close and reopen one device",
    ),
    m(
        "account.register",
        Role::Cashier,
        "a customer with a card and its secret code; the welcome bonus lands",
    ),
    m(
        "account.get",
        Role::Cashier,
        "an account by id, card number, phone or e-mail, with its cards (masked)",
    ),
    m(
        "account.activate",
        Role::Cashier,
        "confirm a pending account with the code sent to the customer; the welcome bonus lands once",
    ),
    m(
        "account.confirmation.resend",
        Role::Cashier,
        "a new confirmation code for a pending account, at most once a minute",
    ),
    m(
        "account.update",
        Role::Cashier,
        "change name, phone, e-mail, code word (status: admin), all or nothing",
    ),
    m(
        "account.verify_code_word",
        Role::Cashier,
        "whether a customer's code word is right",
    ),
    m(
        "account.groups.set",
        Role::Admin,
        "replace an account's groups",
    ),
    m(
        "card.issue",
        Role::Admin,
        "another card for an account (virtual or physical), its secret returned once",
    ),
    m("group.create", Role::Admin, "a customer group"),
    m(
        "group.list",
        Role::Cashier,
        "the customer groups with their member counts",
    ),
    m(
        "group.delete",
        Role::Admin,
        "delete a group; one with members only with force",
    ),
    m(
        "card.block",
        Role::Admin,
        "block a card (blocked or lost): it can neither earn nor spend",
    ),
    m(
        "card.unblock",
        Role::Admin,
        "unblock a card, lifting a wrong-secret lock too",
    ),
    m(
        "card.secret.regenerate",
        Role::Admin,
        "a new secret code for a card, returned once",
    ),
    m(
        "card.resolve",
        Role::Cashier,
        "the account behind a card token or number: balance, next expiry, status",
    ),
    m(
        "programme.info",
        Role::Cashier,
        "the loyalty programme's switches: active now, its window, the agreement link",
    ),
    m(
        "sale.quote",
        Role::Cashier,
        "rates, caps, the most redeemable and the expected accrual for a sale",
    ),
    m(
        "sale.redeem_code.send",
        Role::Cashier,
        "a one-time code to the customer, to spend points for an account without the card",
    ),
    m(
        "sale.commit",
        Role::Cashier,
        "a paid sale: redeem and accrue, once per idempotency key",
    ),
    m(
        "sale.refund",
        Role::Cashier,
        "a whole or partial return: the accrual's share back, spent points returned",
    ),
    m(
        "account.history",
        Role::Cashier,
        "an account's transactions with their entries, newest first, paginated by cursor",
    ),
    m(
        "ledger.adjust",
        Role::Admin,
        "a manual accrual or deduction, with the reason and operator recorded",
    ),
    m(
        "ledger.sync.status",
        Role::Cashier,
        "central mode: whether the central ledger answers, and the offline outbox's figures",
    ),
    m(
        "ledger.sync.failed",
        Role::Admin,
        "central mode: the offline operations the central ledger refused (dead-letter list)",
    ),
    m(
        "ledger.sync.retry",
        Role::Admin,
        "central mode: a refused offline operation goes back in the queue",
    ),
    m(
        "ledger.sync.drop",
        Role::Admin,
        "central mode: a refused offline operation is given up for good",
    ),
    m(
        "account.overrides.set",
        Role::Admin,
        "an account's own accrual and cap percentages, flat and per category",
    ),
    m(
        "tiers.evaluate",
        Role::Admin,
        "re-evaluate loyalty tiers now, for one account or all (optionally as of a time)",
    ),
    m(
        "account.tier_history",
        Role::Cashier,
        "an account's loyalty tier and its changes, newest first",
    ),
    m(
        "certificate.issue",
        Role::Cashier,
        "sell a gift certificate (a balance in money): its code, shown once",
    ),
    m(
        "certificate.get",
        Role::Cashier,
        "a gift certificate's balance, expiry and state, by code",
    ),
    m(
        "certificate.redeem",
        Role::Cashier,
        "pay with a gift certificate, in part or whole, once per idempotency key",
    ),
    m(
        "certificate.refund",
        Role::Cashier,
        "a return puts a redemption's money back on its certificate",
    ),
    m(
        "certificate.block",
        Role::Admin,
        "block a gift certificate: it can no longer pay",
    ),
    m(
        "certificate.unblock",
        Role::Admin,
        "unblock a gift certificate",
    ),
    m(
        "print.document",
        Role::Cashier,
        "queue a receipt document on a printer, once per job_id",
    ),
    m("print.status", Role::Cashier, "a print job's state"),
    m(
        "print.preview",
        Role::Cashier,
        "a document drawn as a printer would print it, as a PNG",
    ),
    m(
        "print.cancel",
        Role::Cashier,
        "withdraw a queued or held job",
    ),
    m(
        "printers.list",
        Role::Cashier,
        "printers, their status and queue depth",
    ),
    m(
        "drawer.open",
        Role::Cashier,
        "kick the cash drawer through a printer",
    ),
    m(
        "fiscal.receipt",
        Role::Cashier,
        "a fiscal receipt on a Shtrih-M register, never printed twice for one job_id",
    ),
    m("fiscal.shift.open", Role::Cashier, "open the fiscal shift"),
    m(
        "fiscal.shift.close",
        Role::Cashier,
        "close the shift (Z report)",
    ),
    m("fiscal.x_report", Role::Cashier, "the X report"),
    m(
        "fiscal.status",
        Role::Cashier,
        "the register's last status, and a fiscal job's state",
    ),
    m(
        "fiscal.cash_in",
        Role::Cashier,
        "put cash into the drawer (50h), once per job_id",
    ),
    m(
        "fiscal.cash_out",
        Role::Cashier,
        "take cash out of the drawer (51h), once per job_id",
    ),
    m(
        "fiscal.correction",
        Role::Cashier,
        "a correction receipt with its basis (FF4Ah), once per job_id",
    ),
    m(
        "events.subscribe",
        Role::Cashier,
        "receive event notifications for the given topics",
    ),
    m(
        "events.unsubscribe",
        Role::Cashier,
        "stop receiving some or all topics",
    ),
    m(
        "reader.enable",
        Role::Cashier,
        "a reader delivers its reads again (UnifiedPOS DeviceEnabled)",
    ),
    m(
        "reader.disable",
        Role::Cashier,
        "a reader's reads are dropped until reader.enable, e.g. goods scans during payment",
    ),
    m(
        "promo.list",
        Role::Admin,
        "the programme's promo codes with their uses and what is left of them",
    ),
    m(
        "bonuses.birthday.run",
        Role::Admin,
        "credit the birthday bonuses due now (optionally as of a time); the daily job runs it",
    ),
    m(
        "account.consent.set",
        Role::Cashier,
        "record a customer's consent (personal data, messages) given or withdrawn, how and by whom",
    ),
    m(
        "account.consents",
        Role::Cashier,
        "a customer's consents in force and their log",
    ),
    m(
        "account.erase",
        Role::Admin,
        "erase a customer's personal data on request (152-FZ); the books stay, anonymised",
    ),
    m(
        "messages.burning.run",
        Role::Admin,
        "queue the points-burning-soon reminders due now (optionally as of a time); the daily job runs it",
    ),
];

/// Runs one call after checking the caller may make it; every transport
/// comes through here, so this is where requests are counted and timed.
pub async fn dispatch(
    app: &Arc<App>,
    session: &Arc<Session>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let start = std::time::Instant::now();
    let out = dispatch_checked(app, session, method, params).await;
    let outcome = match &out {
        Ok(_) => "ok",
        Err(e) => crate::metrics::outcome_of(e.code),
    };
    crate::metrics::global().request(method, outcome, start.elapsed());
    // Every transport's errors reach the cashier in the configured language.
    out.map_err(|e| crate::api::i18n::localize(e, app.config().daemon.language))
}

async fn dispatch_checked(
    app: &Arc<App>,
    session: &Arc<Session>,
    method: &str,
    params: Option<Value>,
) -> Result<Value, RpcError> {
    let Some(spec) = METHODS.iter().find(|s| s.name == method) else {
        return Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("unknown method \"{method}\""),
        )
        .with_data(json!({ "method": method })));
    };
    match session.role() {
        None if !spec.before_login => {
            return Err(RpcError::new(
                code::LOGIN_REQUIRED,
                "log in first: call auth.login with your token",
            ));
        }
        Some(role) if role < spec.role => {
            return Err(RpcError::new(
                code::FORBIDDEN,
                format!("{method} needs the {:?} role", spec.role).to_lowercase(),
            )
            .with_data(json!({ "required": spec.role, "role": role })));
        }
        _ => {}
    }
    match method {
        "auth.login" => auth::login(app, session, params),
        "system.ping" => Ok(json!("pong")),
        "system.info" => system::info(app, session),
        "system.methods" => Ok(system::methods()),
        "system.reload" => system::reload(app).await,
        "card.enter" => cards::enter(app, params).await,
        "account.register" => accounts::register(app, session, params).await,
        "account.get" => accounts::get(app, params).await,
        "account.activate" => accounts::activate(app, params).await,
        "account.confirmation.resend" => accounts::resend(app, params).await,
        "account.update" => accounts::update(app, session, params).await,
        "account.verify_code_word" => accounts::verify_code_word(app, params).await,
        "account.groups.set" => groups::set(app, params).await,
        "card.issue" => accounts::issue(app, params).await,
        "group.create" => groups::create(app, params).await,
        "group.list" => groups::list(app, params).await,
        "group.delete" => groups::delete(app, params).await,
        "card.block" => accounts::block(app, params).await,
        "card.unblock" => accounts::unblock(app, params).await,
        "card.secret.regenerate" => accounts::regenerate(app, params).await,
        "card.resolve" => sale::resolve(app, params).await,
        "programme.info" => programme::info(app),
        "sale.quote" => sale::quote(app, session, params).await,
        "sale.redeem_code.send" => accounts::send_redeem_code(app, params).await,
        "sale.commit" => sale::commit(app, session, params).await,
        "sale.refund" => sale::refund(app, params).await,
        "account.history" => history::history(app, params).await,
        "ledger.adjust" => adjust::adjust(app, session, params).await,
        "account.overrides.set" => sale::set_overrides(app, params).await,
        "ledger.sync.status" => sync::status(app).await,
        "ledger.sync.failed" => sync::failed(app, params).await,
        "ledger.sync.retry" => sync::retry(app, params).await,
        "ledger.sync.drop" => sync::drop_item(app, params).await,
        "tiers.evaluate" => tiers::evaluate(app, params).await,
        "account.tier_history" => tiers::history(app, params).await,
        "certificate.issue" => certificates::issue(app, params).await,
        "certificate.get" => certificates::get(app, params).await,
        "certificate.redeem" => certificates::redeem(app, params).await,
        "certificate.refund" => certificates::refund(app, params).await,
        "certificate.block" => certificates::block(app, params, true).await,
        "certificate.unblock" => certificates::block(app, params, false).await,
        "print.document" => print::document(app, params).await,
        "print.status" => print::status(app, params).await,
        "print.preview" => print::preview(app, params).await,
        "print.cancel" => print::cancel(app, params).await,
        "printers.list" => print::printers(app).await,
        "drawer.open" => print::drawer(app, params).await,
        "fiscal.receipt" => fiscal::receipt(app, params).await,
        "fiscal.shift.open" => fiscal::shift_open(app, params).await,
        "fiscal.shift.close" => fiscal::shift_close(app, params).await,
        "fiscal.x_report" => fiscal::x_report(app, params).await,
        "fiscal.status" => fiscal::status(app, params).await,
        "fiscal.cash_in" => fiscal::cash(app, params, "cash_in").await,
        "fiscal.cash_out" => fiscal::cash(app, params, "cash_out").await,
        "fiscal.correction" => fiscal::correction(app, params).await,
        "devices.list" => devices::list(app),
        "devices.restart" => devices::restart(app, params),
        "reader.enable" => devices::set_enabled(app, params, true),
        "reader.disable" => devices::set_enabled(app, params, false),
        "events.subscribe" => events::subscribe(app, session, params),
        "events.unsubscribe" => events::unsubscribe(session, params),
        "promo.list" => sale::promo_list(app, params).await,
        "bonuses.birthday.run" => people::birthday_run(app, params).await,
        "account.consent.set" => people::consent_set(app, params).await,
        "account.consents" => people::consents(app, params).await,
        "account.erase" => people::erase(app, params).await,
        "messages.burning.run" => people::burning_run(app, params).await,
        other => Err(RpcError::internal(
            "method in table without a handler",
            other,
        )),
    }
}
