//! Registration: a customer, a card (physical, or a generated virtual one)
//! and its secret, in one transaction; a card that joined through a sale
//! is adopted with its points.

use time::OffsetDateTime;

use super::words::reindex;
use super::{
    AccountError, Accounts, PendingCode, Registered, Registration, check_card_number, check_secret,
    code_expiry, code_word_of, contact_of, credit_welcome, duplicate, email_of, group_name,
    groups_of, missing_group, phone_of, random_digits, ts, unused_virtual, welcome_now,
};
use crate::ledger::db::{DbError, args};
use crate::ledger::programmes::ProgrammeError;
use crate::ledger::rules::Programme;
use crate::redact::Secret;

impl Accounts {
    /// Registers a customer with a card, all in one transaction. Without
    /// confirmation the welcome bonus is credited in it; with confirmation
    /// the account is `pending` and [`Registered::pending`] holds the code
    /// to deliver.
    ///
    /// A physical card that joined through a sale (an account with no
    /// contact yet) is adopted: its account, with its points, becomes the
    /// customer's. A card whose account has a customer is refused.
    ///
    /// The account opens under the default programme, `p`.
    pub async fn register(
        &self,
        p: &Programme,
        r: Registration,
    ) -> Result<Registered, AccountError> {
        self.register_in(p, "", r).await
    }

    /// [`Accounts::register`] under `programme` (its stored key, `""` for
    /// the default one) with `p` its rules; a card that joined another
    /// programme through a sale is refused.
    pub async fn register_in(
        &self,
        p: &Programme,
        programme: &str,
        r: Registration,
    ) -> Result<Registered, AccountError> {
        let phone = r.phone.as_deref().map(phone_of).transpose()?;
        let email = r.email.as_deref().map(email_of).transpose()?;
        if phone.is_none() && email.is_none() {
            return Err(AccountError::NoContact);
        }
        if let Some(n) = &r.card_number {
            check_card_number(n)?;
            self.check_range(n)?;
        }
        if let Some(s) = &r.secret {
            check_secret(s)?;
        }
        let code_word = r.code_word.as_ref().map(code_word_of).transpose()?;
        let birth_date = r
            .birth_date
            .as_deref()
            .map(crate::ledger::people::checked_birth_date)
            .transpose()?;
        let mut groups = r
            .groups
            .iter()
            .map(|g| group_name(g))
            .collect::<Result<Vec<_>, _>>()?;
        groups.sort();
        groups.dedup();
        let (secret, generated) = match &r.secret {
            Some(s) => (s.expose().to_owned(), false),
            None => (
                self.random_from(&self.settings.secret.alphabet, self.settings.secret.length)?,
                true,
            ),
        };
        // The slow hashes run before the transaction begins.
        let hash = self.hash(secret.clone()).await?;
        let word_hash = match code_word {
            Some(w) => Some(self.hash(w).await?),
            None => None,
        };
        let code = match &self.settings.confirm {
            Some(c) => {
                let code = random_digits(self.random, c.code_length)?;
                let h = self.hash(code.clone()).await?;
                Some((code, h, c.ttl))
            }
            None => None,
        };
        let now = OffsetDateTime::now_utc();
        let (welcome, welcome_expiry) = if r.no_welcome {
            (None, None)
        } else {
            welcome_now(p, now)?
        };
        let card_format = self.settings.card.clone();
        let source = self.random;
        let origin = self.origin.clone();
        let (name, card_number, referrer) = (r.name, r.card_number, r.referrer);
        let programme = programme.to_owned();
        // The closure may run again on a conflict: it reads what it needs
        // afresh and clones what it hands out.
        let out = self
            .books
            .write(move |db| {
                if let Some(field) = duplicate(db, phone.as_deref(), email.as_deref(), 0)? {
                    return Ok(Err(AccountError::Duplicate(field)));
                }
                if let Some(g) = missing_group(db, &groups)? {
                    return Ok(Err(AccountError::UnknownGroup(g)));
                }
                let stamp = ts(now);
                let status = if code.is_some() { "pending" } else { "active" };
                // An existing card: adopt its account if nobody owns it.
                let existing: Option<(i64, String, bool, String)> = match &card_number {
                    Some(n) => db.query_opt(
                        "SELECT a.id,
                                CASE WHEN c.status != 'active' THEN c.status ELSE a.status END,
                                a.phone IS NOT NULL OR a.email IS NOT NULL, a.programme
                         FROM cards c JOIN accounts a ON a.id = c.account_id
                         WHERE c.number = ?1",
                        args![n],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )?,
                    None => None,
                };
                // A card that joined another programme through a sale
                // keeps its points there: it cannot be adopted here.
                if let Some((_, _, false, other)) = &existing
                    && *other != programme
                {
                    // The stored key ("" is the default programme, which
                    // the caller names).
                    return Ok(Err(AccountError::Programme(ProgrammeError::NotServed(
                        other.clone(),
                    ))));
                }
                let existing = existing.map(|(a, s, owned, _)| (a, s, owned));
                let (account, number, kind, adopted) = match (existing, &card_number) {
                    (Some((_, _, true)), _) => return Ok(Err(AccountError::CardTaken)),
                    (Some((_, card_status, _)), _) if card_status != "active" => {
                        return Ok(Err(AccountError::CardInactive(card_status)));
                    }
                    (Some((account, _, false)), Some(n)) => {
                        let kind: String = db.query_row(
                            "SELECT kind FROM cards WHERE number = ?1",
                            args![n],
                            |r| r.get(0),
                        )?;
                        db.execute(
                            "UPDATE accounts SET name = ?2, phone = ?3, email = ?4,
                             code_word_hash = ?5, status = ?6 WHERE id = ?1",
                            args![account, name, phone, email, word_hash, status],
                        )?;
                        reindex(db, account)?;
                        db.execute(
                            "UPDATE cards SET secret_hash = ?2, failed_attempts = 0,
                             locked_until = NULL WHERE number = ?1",
                            args![n, hash],
                        )?;
                        let kind = if kind == "virtual" { "virtual" } else { "physical" };
                        (account, n.clone(), kind, true)
                    }
                    (_, physical) => {
                        let (number, kind) = match physical {
                            Some(n) => (n.clone(), "physical"),
                            None => match unused_virtual(db, &card_format, source)? {
                                Ok(n) => (n, "virtual"),
                                Err(e) => return Ok(Err(e)),
                            },
                        };
                        let account = db.insert(
                            "INSERT INTO accounts (created_at, name, phone, email, code_word_hash, status, programme)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                            args![stamp, name, phone, email, word_hash, status, programme],
                        )?;
                        reindex(db, account)?;
                        db.execute(
                            "INSERT INTO cards (number, account_id, kind, secret_hash)
                             VALUES (?1, ?2, ?3, ?4)",
                            args![number, account, kind, hash],
                        )?;
                        (account, number, kind, false)
                    }
                };
                crate::ledger::people::set_birth_date(db, account, &Some(birth_date.clone()))?;
                if let Some(raw) = &referrer {
                    match crate::ledger::people::referrer_of(db, raw)? {
                        Some(inviter) if inviter != account => {
                            db.execute(
                                "UPDATE accounts SET referred_by = ?2
                                 WHERE id = ?1 AND referred_by IS NULL",
                                args![account, inviter],
                            )?;
                        }
                        Some(_) => {
                            return Ok(Err(crate::ledger::people::bad(
                                "referrer",
                                "a customer cannot invite themselves",
                            )));
                        }
                        None => {
                            return Ok(Err(crate::ledger::people::bad(
                                "referrer",
                                "no active customer has this card or phone",
                            )));
                        }
                    }
                }
                for g in &groups {
                    db.execute(
                        "INSERT INTO account_groups (account_id, group_name) VALUES (?1, ?2)
                         ON CONFLICT DO NOTHING",
                        args![account, g],
                    )?;
                }
                let (bonus, expiry, pending) = match &code {
                    Some((code, code_hash, ttl)) => {
                        db.execute(
                            "INSERT INTO confirmations (account_id, code_hash, expires_at, attempts, sent_at)
                             VALUES (?1, ?2, ?3, 0, NULL)
                             ON CONFLICT(account_id) DO UPDATE SET code_hash = ?2, expires_at = ?3,
                             attempts = 0, sent_at = NULL",
                            args![account, code_hash, code_expiry(now, *ttl)],
                        )?;
                        let Some((channel, contact)) = contact_of(db, account)? else {
                            return Err(DbError::Invariant("a registered account has no contact"));
                        };
                        let pending = PendingCode {
                            account,
                            channel,
                            contact,
                            code: Secret::new(code.clone()),
                        };
                        (None, None, Some(pending))
                    }
                    None => {
                        let (b, e) = credit_welcome(
                            db,
                            account,
                            welcome,
                            welcome_expiry.as_deref(),
                            &stamp,
                            &origin,
                        )?;
                        (b, e, None)
                    }
                };
                let groups = groups_of(db, account)?;
                Ok(Ok(Registered {
                    account,
                    status,
                    card_number: number,
                    kind,
                    secret: generated.then(|| secret.clone()),
                    adopted,
                    groups,
                    welcome_bonus: bonus,
                    welcome_expires_at: expiry,
                    pending,
                }))
            })
            .await??;
        Ok(out)
    }
}
