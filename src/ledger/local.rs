//! The books on this till's own store: [`Embedded`] (the money path),
//! [`Accounts`] and [`Tiers`] behind one [`Ledger`]. The central service
//! serves the same type over its own store, one per authenticated till
//! ([`Local::with_origin`]).

use std::sync::Arc;

use rust_decimal::Decimal;
use time::OffsetDateTime;

use super::accounts::{
    AccountError, AccountView, Accounts, Activated, CardRow, CodeWordCheck, GroupView, Issued,
    Lookup, LotView, PendingCode, Registered, Registration, SaleFound, SearchPage, Settings,
    Update,
};
use super::certs::{CertError, CertIssued, CertMoved, CertRef, CertView, Certs, Validity};
use super::db::{Books, args};
use super::embedded::{
    AccountRef, AccountSummary, AdjustResult, CommitResult, Embedded, HistoryPage, OverridesResult,
    RefundResult, SaleRef,
};
use super::origin::Origin;
use super::people::{BirthdayRun, ConsentChange, ConsentView, Erased, People};
use super::programmes::{ProgrammeError, Programmes};
use super::report::{Report, ReportQuery};
use super::rules::lines::ReturnLine;
use super::rules::{AccountOverrides, OrderTerms, Programme, Quote, SaleLine};
use super::tiers::{TierChange, TierError, TierView, Tiers};
use super::{Ledger, LedgerFuture, SpendError};
use crate::redact::Secret;
use crate::store::Store;

/// Money, accounts and tiers on one store.
#[derive(Clone)]
pub struct Local {
    embedded: Embedded,
    accounts: Accounts,
    tiers: Tiers,
    programmes: Arc<Programmes>,
    origin: Origin,
    certs: Certs,
}

impl Local {
    /// The books on `store`, with `programme`'s rules and the registration
    /// `settings`.
    pub fn new(store: Store, programme: Programme, settings: Settings) -> Self {
        Local::with_programmes(store, Programmes::single(programme), settings)
    }

    /// The books on `store` with several programmes, each account priced
    /// by its own, serving those `programmes` names.
    pub fn with_programmes(store: Store, programmes: Programmes, settings: Settings) -> Self {
        let origin = Origin::new("", store.terminal_id());
        Local {
            embedded: Embedded::with_programmes(
                Books::sqlite(store.clone()),
                programmes.clone(),
                origin.clone(),
            ),
            accounts: Accounts::new(store.clone(), settings),
            certs: Certs::new(Books::sqlite(store.clone()), origin.clone()),
            tiers: Tiers::new(store),
            programmes: Arc::new(programmes),
            origin,
        }
    }

    /// Money, accounts and tiers on `books` (the central service's
    /// PostgreSQL), writing as `origin`.
    pub fn with_books(
        books: Books,
        programmes: Programmes,
        settings: Settings,
        origin: Origin,
    ) -> Self {
        Local {
            embedded: Embedded::with_programmes(books.clone(), programmes.clone(), origin.clone()),
            accounts: Accounts::with_books(books.clone(), settings, origin.clone()),
            certs: Certs::new(books.clone(), origin.clone()),
            tiers: Tiers::with_books(books),
            programmes: Arc::new(programmes),
            origin,
        }
    }

    /// The same books, recording `origin` as the store and terminal of
    /// what it writes (the central service: the authenticated till). The
    /// cores share their books, hash gate and key locks with `self`.
    pub fn with_origin(&self, origin: Origin) -> Local {
        Local {
            embedded: self.embedded.with_origin(origin.clone()),
            accounts: self.accounts.with_origin(origin.clone()),
            tiers: self.tiers.clone(),
            programmes: self.programmes.clone(),
            certs: self.certs.with_origin(origin.clone()),
            origin,
        }
    }

    /// The same books serving `programmes` (the central service narrows
    /// its chain's set to the programmes a till names).
    pub fn with_served(&self, programmes: Programmes) -> Local {
        let programmes = Arc::new(programmes);
        Local {
            embedded: self.embedded.with_served(programmes.clone()),
            accounts: self.accounts.clone(),
            tiers: self.tiers.clone(),
            programmes,
            certs: self.certs.clone(),
            origin: self.origin.clone(),
        }
    }

    /// Every programme, and the ones this ledger serves.
    pub fn programmes(&self) -> &Arc<Programmes> {
        &self.programmes
    }

    /// The rules of `account`'s programme, if this ledger serves it.
    async fn programme_of(&self, account: i64) -> Result<Arc<Programme>, AccountError> {
        let ps = self.programmes.clone();
        self.embedded
            .books()
            .read(move |db| {
                let exists: Option<i64> = db.query_opt(
                    "SELECT id FROM accounts WHERE id = ?1",
                    args![account],
                    |r| r.get(0),
                )?;
                if exists.is_none() {
                    return Ok(Err(AccountError::UnknownAccount));
                }
                Ok(ps.of_account(db, account)?.map_err(AccountError::from))
            })
            .await?
    }

    /// Where this ledger's writes say they come from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Birthdays, consents and erasure on the same books, as this origin.
    fn people(&self) -> People {
        People::new(self.embedded.books().clone(), self.origin.clone())
    }

    /// The tier evaluator, for the daily job (which announces each batch
    /// as it commits, something a call through [`Ledger`] cannot do).
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }
}

/// Maps a card status word to the fixed words [`Accounts`] stores.
fn card_status(s: &str) -> Result<&'static str, AccountError> {
    match s {
        "active" => Ok("active"),
        "blocked" => Ok("blocked"),
        "lost" => Ok("lost"),
        _ => Err(AccountError::BadStatus("active, blocked or lost")),
    }
}

impl Ledger for Local {
    fn programme(&self) -> &Programme {
        self.programmes.first()
    }
    fn programmes(&self) -> Arc<Programmes> {
        self.programmes.clone()
    }
    fn account_settings(&self) -> &Settings {
        self.accounts.settings()
    }
    fn resolve(&self, number: String) -> LedgerFuture<'_, Option<AccountSummary>> {
        Box::pin(self.embedded.resolve(number))
    }
    fn quote(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        Box::pin(self.embedded.quote(number, lines, redeem))
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
        Box::pin(
            self.embedded
                .commit(key, number, receipt_id, lines, redeem, cashier),
        )
    }
    fn replay_commit(
        &self,
        key: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    ) -> LedgerFuture<'_, Option<(String, CommitResult)>> {
        Box::pin(self.embedded.replay_commit(key, receipt_id, lines, redeem))
    }
    fn quote_terms(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        Box::pin(self.embedded.quote_terms(number, lines, redeem, terms))
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
        Box::pin(
            self.embedded
                .commit_terms(key, number, receipt_id, lines, redeem, None, cashier, terms),
        )
    }
    fn set_overrides(
        &self,
        key: Option<String>,
        account: i64,
        overrides: AccountOverrides,
    ) -> LedgerFuture<'_, OverridesResult> {
        Box::pin(self.embedded.set_overrides(key, account, overrides))
    }
    fn refund(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> LedgerFuture<'_, RefundResult> {
        Box::pin(self.embedded.refund(key, sale, amount, cashier, lines))
    }
    fn commit_at(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        at: OffsetDateTime,
        cashier: Option<String>,
    ) -> LedgerFuture<'_, CommitResult> {
        Box::pin(
            self.embedded
                .commit_at(key, number, receipt_id, lines, redeem, Some(at), cashier),
        )
    }
    fn refund_at(
        &self,
        key: String,
        sale: SaleRef,
        amount: Option<Decimal>,
        at: OffsetDateTime,
        cashier: Option<String>,
        lines: Option<Vec<ReturnLine>>,
    ) -> LedgerFuture<'_, RefundResult> {
        Box::pin(
            self.embedded
                .refund_at(key, sale, amount, Some(at), cashier, lines),
        )
    }
    fn accrue_missed(
        &self,
        key: String,
        number: String,
        receipt: String,
        lines: Vec<SaleLine>,
        sold_at: OffsetDateTime,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> LedgerFuture<'_, AdjustResult> {
        Box::pin(self.embedded.accrue_missed(
            key, number, receipt, lines, sold_at, reason, operator, expires_at,
        ))
    }
    fn adjust(
        &self,
        key: String,
        number: String,
        amount: Decimal,
        reason: String,
        operator: String,
        expires_at: Option<OffsetDateTime>,
    ) -> LedgerFuture<'_, AdjustResult> {
        Box::pin(
            self.embedded
                .adjust(key, number, amount, reason, operator, expires_at),
        )
    }
    fn history(
        &self,
        who: AccountRef,
        cursor: Option<i64>,
        limit: u32,
    ) -> LedgerFuture<'_, HistoryPage> {
        Box::pin(self.embedded.history(who, cursor, limit))
    }
    fn register(&self, r: Registration) -> LedgerFuture<'_, Registered, AccountError> {
        Box::pin(async move {
            let (key, p) = self
                .programmes
                .for_new(r.programme.as_deref(), r.card_number.as_deref())?;
            match self.accounts.register_in(&p, &key, r).await {
                // The default programme is stored as "": say its name.
                Err(AccountError::Programme(ProgrammeError::NotServed(k))) if k.is_empty() => Err(
                    ProgrammeError::NotServed(self.programmes.default_programme().name.clone())
                        .into(),
                ),
                r => r,
            }
        })
    }
    fn code_delivered(&self, account: i64) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(self.accounts.code_delivered(account))
    }
    fn new_code(&self, account: i64) -> LedgerFuture<'_, PendingCode, AccountError> {
        Box::pin(self.accounts.new_code(account))
    }
    fn activate(&self, account: i64, code: Secret) -> LedgerFuture<'_, Activated, AccountError> {
        Box::pin(async move {
            let p = self.programme_of(account).await?;
            self.accounts.activate(&p, account, code).await
        })
    }
    fn update_account(
        &self,
        account: i64,
        u: Update,
    ) -> LedgerFuture<'_, AccountView, AccountError> {
        Box::pin(self.accounts.update(account, u))
    }
    fn verify_code_word(
        &self,
        account: i64,
        word: Secret,
    ) -> LedgerFuture<'_, CodeWordCheck, AccountError> {
        Box::pin(self.accounts.verify_code_word(account, word))
    }
    fn issue_card(
        &self,
        account: i64,
        card_number: Option<String>,
        secret: Option<Secret>,
    ) -> LedgerFuture<'_, Issued, AccountError> {
        Box::pin(self.accounts.issue_card(account, card_number, secret))
    }
    fn get_account(&self, by: Lookup) -> LedgerFuture<'_, AccountView, AccountError> {
        Box::pin(self.accounts.get(by))
    }
    fn search_accounts(
        &self,
        query: String,
        cursor: Option<i64>,
        limit: u32,
    ) -> LedgerFuture<'_, SearchPage, AccountError> {
        Box::pin(self.accounts.search(query, cursor, limit))
    }
    fn lots(&self, account: i64) -> LedgerFuture<'_, Vec<LotView>, AccountError> {
        Box::pin(self.accounts.lots(account))
    }
    fn find_sale(&self, receipt_id: String) -> LedgerFuture<'_, Option<SaleFound>, AccountError> {
        Box::pin(self.accounts.find_sale(receipt_id))
    }
    fn account_cards(&self, account: i64) -> LedgerFuture<'_, Vec<CardRow>, AccountError> {
        Box::pin(self.accounts.cards(account))
    }
    fn set_card_status(
        &self,
        number: String,
        status: String,
    ) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(async move {
            let status = card_status(&status)?;
            self.accounts.set_card_status(number, status).await
        })
    }
    fn regenerate_secret(&self, number: String) -> LedgerFuture<'_, String, AccountError> {
        Box::pin(self.accounts.regenerate_secret(number))
    }
    fn verify_secret(
        &self,
        number: String,
        presented: Secret,
    ) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(self.accounts.verify_secret(number, presented))
    }
    fn new_redeem_code(&self, account: i64) -> LedgerFuture<'_, PendingCode, AccountError> {
        Box::pin(self.accounts.new_redeem_code(account))
    }
    fn redeem_code_delivered(&self, account: i64) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(self.accounts.redeem_code_delivered(account))
    }
    fn use_redeem_code(&self, account: i64, code: Secret) -> LedgerFuture<'_, (), AccountError> {
        Box::pin(self.accounts.use_redeem_code(account, code))
    }
    fn commit_with_code(
        &self,
        key: String,
        account: i64,
        code: Secret,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        terms: OrderTerms,
    ) -> LedgerFuture<'_, (String, CommitResult), SpendError> {
        Box::pin(self.accounts.commit_with_code(
            self.programmes.clone(),
            key,
            account,
            code,
            receipt_id,
            lines,
            redeem,
            cashier,
            terms,
        ))
    }
    fn booking_card(&self, account: i64) -> LedgerFuture<'_, String, AccountError> {
        Box::pin(self.accounts.booking_card(account))
    }
    fn create_group(
        &self,
        name: String,
        description: Option<String>,
    ) -> LedgerFuture<'_, GroupView, AccountError> {
        Box::pin(async move { self.accounts.create_group(&name, description).await })
    }
    fn list_groups(&self) -> LedgerFuture<'_, Vec<GroupView>, AccountError> {
        Box::pin(self.accounts.list_groups())
    }
    fn groups_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> LedgerFuture<'_, super::accounts::GroupPage, AccountError> {
        Box::pin(async move { self.accounts.groups_page(after, limit).await })
    }
    fn delete_group(&self, name: String, force: bool) -> LedgerFuture<'_, i64, AccountError> {
        Box::pin(async move { self.accounts.delete_group(&name, force).await })
    }
    fn set_groups(
        &self,
        account: i64,
        groups: Vec<String>,
    ) -> LedgerFuture<'_, Vec<String>, AccountError> {
        Box::pin(self.accounts.set_groups(account, groups))
    }
    fn evaluate_tiers(
        &self,
        account: Option<i64>,
        now: OffsetDateTime,
    ) -> LedgerFuture<'_, (usize, Vec<TierChange>), TierError> {
        Box::pin(
            self.tiers
                .evaluate_in(self.programmes.clone(), account, now, "admin", |_| {}),
        )
    }
    fn tier_history(
        &self,
        account: i64,
        limit: u32,
        now: OffsetDateTime,
    ) -> LedgerFuture<'_, (TierView, Vec<TierChange>), TierError> {
        Box::pin(async move {
            let p = self.tiers.programme_of(&self.programmes, account).await?;
            self.tiers.history(p, account, limit, now).await
        })
    }
    fn report(&self, q: ReportQuery, now: OffsetDateTime) -> LedgerFuture<'_, Report> {
        // The report's clock and figures are the till's own programme's.
        let p = self.programmes.first().clone();
        Box::pin(async move {
            self.embedded
                .books()
                .read(move |db| super::report::report(db, &p, &q, now))
                .await?
        })
    }
    fn cert_issue(
        &self,
        key: String,
        nominal: Decimal,
        validity: Validity,
        code: Option<Secret>,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertIssued, CertError> {
        Box::pin(self.certs.issue(key, nominal, validity, code, receipt_id))
    }
    fn cert_get(&self, by: CertRef) -> LedgerFuture<'_, CertView, CertError> {
        Box::pin(self.certs.get(by))
    }
    fn cert_redeem(
        &self,
        key: String,
        by: CertRef,
        amount: Decimal,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertMoved, CertError> {
        Box::pin(self.certs.redeem(key, by, amount, receipt_id))
    }
    fn cert_refund(
        &self,
        key: String,
        redemption: i64,
        amount: Option<Decimal>,
        receipt_id: Option<String>,
    ) -> LedgerFuture<'_, CertMoved, CertError> {
        Box::pin(self.certs.refund(key, redemption, amount, receipt_id))
    }
    fn cert_block(
        &self,
        key: String,
        by: CertRef,
        blocked: bool,
    ) -> LedgerFuture<'_, CertView, CertError> {
        Box::pin(self.certs.block(key, by, blocked))
    }
    fn quote_promo(
        &self,
        number: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        promo_code: String,
    ) -> LedgerFuture<'_, (Option<AccountSummary>, Quote)> {
        Box::pin(
            self.embedded
                .quote_promo(number, lines, redeem, Some(promo_code)),
        )
    }
    fn commit_promo(
        &self,
        key: String,
        number: String,
        receipt_id: String,
        lines: Vec<SaleLine>,
        redeem: Decimal,
        cashier: Option<String>,
        promo_code: String,
    ) -> LedgerFuture<'_, CommitResult> {
        Box::pin(self.embedded.commit_promo_at(
            key,
            number,
            receipt_id,
            lines,
            redeem,
            None,
            cashier,
            Some(promo_code),
        ))
    }
    fn burning(
        &self,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> LedgerFuture<'_, Vec<super::people::Burning>> {
        Box::pin(async move {
            Ok(self
                .embedded
                .books()
                .read(move |db| super::people::burning_tx(db, from, until))
                .await?)
        })
    }
    fn promo_uses(&self) -> LedgerFuture<'_, Vec<(String, i64)>> {
        Box::pin(async move {
            Ok(self
                .embedded
                .books()
                .read(super::embedded::promo::uses)
                .await?)
        })
    }
    fn birthday_run(&self, now: OffsetDateTime) -> LedgerFuture<'_, BirthdayRun> {
        Box::pin(async move {
            self.people()
                .birthday_run(self.programmes.first(), now)
                .await
        })
    }
    fn set_consent(
        &self,
        account: i64,
        change: ConsentChange,
    ) -> LedgerFuture<'_, ConsentView, AccountError> {
        Box::pin(async move { self.people().set_consent(account, change).await })
    }
    fn consents(&self, account: i64) -> LedgerFuture<'_, ConsentView, AccountError> {
        Box::pin(async move { self.people().consents(account).await })
    }
    fn erase_account(
        &self,
        account: i64,
        operator: String,
    ) -> LedgerFuture<'_, Erased, AccountError> {
        Box::pin(async move { self.people().erase(account, operator).await })
    }
}
