//! A big ledger without going through the service: `INSERT … SELECT
//! generate_series` straight into the tables, consistent with the
//! invariants `verify` checks, and the plans of the statements every sale
//! and card resolution runs. Shared by `tests/plans.rs` and the chain
//! bench (`benches/chain.rs`), which includes this file by path.

#![allow(dead_code)]

use postgres::Client;

/// What every loaded lot was given and what is left of it (units: 1/10,000
/// of a point): 10 points accrued, 2 redeemed, 8 left.
pub const LOT_AMOUNT: i64 = 100_000;
/// Units redeemed from every loaded lot.
pub const LOT_SPENT: i64 = 20_000;

/// The card number of loaded account `account`: 16 digits, a prefix no
/// test or till uses.
pub fn card(account: i64) -> String {
    format!("7{account:015}")
}

/// Accounts `first..first + count`, each with one card and `sales` sale
/// transactions; each sale accrued a lot of [`LOT_AMOUNT`] (an `accrue`
/// entry) of which [`LOT_SPENT`] was redeemed (a `redeem` entry): two
/// entries and one lot per sale, so balance = Σ entries = Σ lot remainders
/// and every lot's remainder is the sum of its entries. Expiries lie in the
/// future (nothing expires during a bench). Ids are given explicitly and the
/// identity sequences moved past them, so the service's own inserts follow.
/// Loaded in chunks of `chunk` accounts, one transaction each; `progress`
/// hears the accounts loaded so far.
pub fn load(
    c: &mut Client,
    first: i64,
    count: i64,
    sales: i64,
    chunk: i64,
    mut progress: impl FnMut(i64),
) -> Result<(), postgres::Error> {
    let sales = sales.max(1);
    let mut done = 0;
    while done < count {
        let n = chunk.min(count - done);
        let lo = first + done;
        let hi = lo + n - 1;
        let mut tx = c.transaction()?;
        let txn0: i64 = tx
            .query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM txns", &[])?
            .get(0);
        let lot0: i64 = tx
            .query_one("SELECT COALESCE(MAX(id), 0) + 1 FROM lots", &[])?
            .get(0);
        // The maintained balance and next expiry are what the lots below
        // add up to (the first sale's lot expires in January).
        tx.execute(
            &format!(
                "INSERT INTO accounts (id, created_at, balance, next_expiry)
                 SELECT a, '2025-01-01T00:00:00Z', $3::bigint * ({LOT_AMOUNT} - {LOT_SPENT}),
                        '2099-01-01T00:00:00Z'
                 FROM generate_series($1::bigint, $2::bigint) a"
            ),
            &[&lo, &hi, &sales],
        )?;
        tx.execute(
            "INSERT INTO cards (number, account_id)
             SELECT '7' || lpad(a::text, 15, '0'), a FROM generate_series($1::bigint, $2::bigint) a",
            &[&lo, &hi],
        )?;
        // One row per (account, sale): the sale's txn and lot share its index.
        let series = "FROM generate_series($1::bigint, $2::bigint) a,
                           generate_series(0::bigint, $3::bigint - 1) j";
        tx.execute(
            &format!(
                "INSERT INTO txns (id, idempotency_key, kind, account_id, receipt_id, request,
                                   result, created_at, store_id, terminal_id)
                 SELECT $4::bigint + (a - $1) * $3 + j, 'load:' || a || ':' || j, 'sale', a,
                        'L' || a || '-' || j, '{{}}', '{{}}', '2025-06-01T00:00:00Z', 'S1', 'LOAD'
                 {series}"
            ),
            &[&lo, &hi, &sales, &txn0],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO lots (id, account_id, txn_id, amount, remaining, expires_at, created_at)
                 SELECT $5::bigint + (a - $1) * $3 + j, a, $4::bigint + (a - $1) * $3 + j,
                        {LOT_AMOUNT}, {LOT_AMOUNT} - {LOT_SPENT},
                        '2099-' || lpad((j % 12 + 1)::text, 2, '0') || '-01T00:00:00Z',
                        '2025-06-01T00:00:00Z'
                 {series}"
            ),
            &[&lo, &hi, &sales, &txn0, &lot0],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
                 SELECT $4::bigint + (a - $1) * $3 + j, a, $5::bigint + (a - $1) * $3 + j,
                        k.kind, k.amount, '2025-06-01T00:00:00Z'
                 {series},
                 (VALUES ('accrue', {LOT_AMOUNT}::bigint), ('redeem', -{LOT_SPENT}::bigint))
                     AS k(kind, amount)"
            ),
            &[&lo, &hi, &sales, &txn0, &lot0],
        )?;
        tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('accounts', 'id'), (SELECT MAX(id) FROM accounts));
             SELECT setval(pg_get_serial_sequence('txns', 'id'), (SELECT MAX(id) FROM txns));
             SELECT setval(pg_get_serial_sequence('lots', 'id'), (SELECT MAX(id) FROM lots));",
        )?;
        tx.commit()?;
        done += n;
        progress(done);
    }
    Ok(())
}

/// The statements a `sale.commit` (with a redemption) and a card
/// resolution run, as the core writes them (`src/ledger/embedded.rs`,
/// `embedded/book.rs`; `?N` became `$N`), with a name and the arguments
/// of a sale to `account`'s card, which spends from `lot` and stores its
/// result on `txn`.
pub fn hot_statements(account: i64, lot: i64, txn: i64) -> Vec<(&'static str, String)> {
    let card = card(account);
    let now = "'2026-12-07T00:00:00Z'";
    vec![
        (
            "replay (txns by idempotency key)",
            "SELECT request, result FROM txns WHERE idempotency_key = 'bench:none'".into(),
        ),
        (
            "card_account (cards ⋈ accounts)",
            format!(
                "SELECT a.id, CASE WHEN c.status != 'active' THEN c.status ELSE a.status END
                 FROM cards c JOIN accounts a ON a.id = c.account_id WHERE c.number = '{card}'"
            ),
        ),
        (
            "card_account_locked (take the account: UPDATE accounts ⋈ cards RETURNING)",
            format!(
                "UPDATE accounts a SET balance = a.balance FROM cards c
                 WHERE c.number = '{card}' AND a.id = c.account_id
                 RETURNING a.id, CASE WHEN c.status != 'active' THEN c.status ELSE a.status END,
                        a.programme, a.balance, a.debt, a.next_expiry,
                        a.accrual_pct, a.cap_pct, a.category_overrides"
            ),
        ),
        (
            "held_units (lots in the accrual window)",
            format!(
                "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT) FROM lots
                 WHERE account_id = {account} AND remaining > 0 AND available_at IS NOT NULL
                   AND available_at > {now}"
            ),
        ),
        (
            "entry (INSERT entry and UPDATE balance in one statement)",
            format!(
                "WITH e AS (INSERT INTO entries (txn_id, account_id, lot_id, kind, amount, created_at)
                            VALUES ({txn}, {account}, {lot}, 'redeem', -1, {now}))
                 UPDATE accounts SET balance = balance - 1 WHERE id = {account}"
            ),
        ),
        (
            "summary_known (the next expiry's amount)",
            format!(
                "SELECT CAST(SUM(remaining) AS BIGINT) FROM lots
                 WHERE account_id = {account} AND remaining > 0
                   AND expires_at = (SELECT next_expiry FROM accounts WHERE id = {account})"
            ),
        ),
        (
            "expire_due (lots due)",
            format!(
                "SELECT id, remaining,
                        CASE WHEN expires_at < created_at THEN created_at ELSE expires_at END
                 FROM lots
                 WHERE account_id = {account} AND remaining > 0 AND expires_at IS NOT NULL
                   AND expires_at <= {now} ORDER BY expires_at, id"
            ),
        ),
        (
            "balance_units (maintained column)",
            format!("SELECT balance FROM accounts WHERE id = {account}"),
        ),
        (
            "overrides_of (account)",
            format!(
                "SELECT accrual_pct, cap_pct, category_overrides FROM accounts WHERE id = {account}"
            ),
        ),
        (
            "take_from_lots (open lots in expiry order)",
            format!(
                "SELECT id, remaining FROM lots
                 WHERE account_id = {account} AND remaining > 0 AND expires_at IS NOT NULL
                 ORDER BY expires_at, id LIMIT 16"
            ),
        ),
        (
            "take_from_lots (UPDATE lot)",
            format!("UPDATE lots SET remaining = remaining - 1 WHERE id = {lot}"),
        ),
        (
            "entry (UPDATE maintained balance)",
            format!("UPDATE accounts SET balance = balance - 1 WHERE id = {account}"),
        ),
        (
            "refresh_next_expiry (MIN over open lots)",
            format!(
                "UPDATE accounts SET next_expiry =
                    (SELECT MIN(expires_at) FROM lots
                     WHERE account_id = {account} AND remaining > 0 AND expires_at IS NOT NULL)
                 WHERE id = {account}"
            ),
        ),
        (
            "debt_units (account)",
            format!("SELECT debt FROM accounts WHERE id = {account}"),
        ),
        (
            "summary_with (next expiry)",
            format!(
                "SELECT expires_at, CAST(SUM(remaining) AS BIGINT) FROM lots
                 WHERE account_id = {account} AND remaining > 0 AND expires_at > {now}
                 GROUP BY expires_at ORDER BY expires_at LIMIT 1"
            ),
        ),
        (
            "store_result (UPDATE txn)",
            format!("UPDATE txns SET result = '{{}}' WHERE id = {txn}"),
        ),
    ]
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of every [`hot_statements`] entry, each in
/// a transaction rolled back afterwards: (name, plan text).
pub fn plans(c: &mut Client, account: i64) -> Result<Vec<(&'static str, String)>, postgres::Error> {
    let lot: i64 = c
        .query_one(
            "SELECT id FROM lots WHERE account_id = $1 AND remaining > 0 LIMIT 1",
            &[&account],
        )?
        .get(0);
    let txn: i64 = c
        .query_one(
            "SELECT id FROM txns WHERE account_id = $1 LIMIT 1",
            &[&account],
        )?
        .get(0);
    let mut out = Vec::new();
    for (name, sql) in hot_statements(account, lot, txn) {
        let mut tx = c.transaction()?;
        let rows = tx.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"), &[])?;
        let plan = rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n");
        tx.rollback()?;
        out.push((name, plan));
    }
    Ok(out)
}
