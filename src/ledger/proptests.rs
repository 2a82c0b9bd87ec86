//! Random operation sequences against the embedded ledger on a fresh
//! database, with the clock under the test's control, checking the
//! invariants after every step.

use proptest::prelude::*;
use rusqlite::Connection;
use rust_decimal::{Decimal, RoundingStrategy};
use time::{Duration, OffsetDateTime};

use super::db::{Books, Db};
use super::embedded::{
    AccountSummary, LedgerError, SaleRef, TxResult, adjust_tx, commit_tx, refund_tx, resolve_tx,
    verify,
};
use super::origin::Origin;
use super::rules::{self, AccountOverrides, AccrualRounding, Programme, RefundShortfall, SaleLine};
use crate::store::Store;

/// The books under test, run as the daemon runs them (each call in its
/// own transaction through the runner), and a second plain connection for
/// the test's own SQL checks.
struct Till {
    books: Books,
    origin: Origin,
    raw: Connection,
}

impl Till {
    /// `f` in a write transaction; a database error fails the test.
    fn run<T>(&self, mut f: impl FnMut(&dyn Db, &Origin) -> TxResult<T>) -> Result<T, LedgerError> {
        self.books.write_blocking(|db| f(db, &self.origin)).unwrap()
    }

    /// Resolves a card, posting due expiries (what a card read does).
    fn resolve(&self, card: &str, now: OffsetDateTime) -> Option<AccountSummary> {
        self.run(|db, o| resolve_tx(db, card, now, o).map(Ok))
            .unwrap()
    }
}

const CARDS: [&str; 2] = ["6035000011112222", "6035000033334444"];

#[derive(Debug, Clone)]
enum Op {
    /// A sale of (price in kopecks, qty) lines redeeming `redeem_pct` % of
    /// what the quote allows.
    Commit {
        card: usize,
        lines: Vec<(u32, u8)>,
        redeem_pct: u8,
    },
    /// A refund of an earlier sale (picked modulo the sales so far): the
    /// whole rest (`None`) or that percentage of what is left.
    Refund { pick: usize, pct: Option<u8> },
    /// A manual adjustment in hundredths of a point, optionally with an
    /// explicit expiry relative to now (in hours; negative = already past).
    Adjust {
        card: usize,
        cents: i32,
        expires_in_hours: Option<i16>,
    },
    /// The clock moves on.
    Wait { seconds: u32 },
    /// A deduction of the card's whole balance, so a later refund finds
    /// its accrual spent (the path of the refund shortfall policies).
    SpendAll { card: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0..CARDS.len(),
            prop::collection::vec((1u32..200_000, 1u8..4), 1..4),
            0u8..=100,
        )
            .prop_map(|(card, lines, redeem_pct)| Op::Commit { card, lines, redeem_pct }),
        2 => (any::<usize>(), prop::option::of(1u8..=100))
            .prop_map(|(pick, pct)| Op::Refund { pick, pct }),
        2 => (
            0..CARDS.len(),
            prop_oneof![-20_000i32..-1, 1i32..20_000],
            // Already-past expiries are as likely as future ones: they are the
            // path where two expiries fall into one second.
            prop_oneof![Just(None), (-48i16..0).prop_map(Some), (0i16..2000).prop_map(Some)],
        )
            .prop_map(|(card, cents, expires_in_hours)| Op::Adjust { card, cents, expires_in_hours }),
        2 => prop_oneof![
            Just(0u32),
            Just(1),
            1u32..86_400,
            Just(31 * 86_400),
            Just(200 * 86_400),
        ]
        .prop_map(|seconds| Op::Wait { seconds }),
        1 => (0..CARDS.len()).prop_map(|card| Op::SpendAll { card }),
    ]
}

/// Everything an operation could change, to compare before and after a
/// replayed key.
fn fingerprint(c: &Connection) -> (i64, i64, i64, i64, i64, i64) {
    c.query_row(
        "SELECT (SELECT COUNT(*) FROM txns), (SELECT COUNT(*) FROM entries),
                (SELECT COALESCE(SUM(amount), 0) FROM entries),
                (SELECT COALESCE(SUM(remaining), 0) FROM lots),
                (SELECT COUNT(*) FROM accounts),
                (SELECT COALESCE(SUM(debt), 0) FROM accounts)",
        [],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )
    .unwrap()
}

fn check_invariants(t: &Till, p: &Programme, step: usize, op: &Op) -> Result<(), TestCaseError> {
    let problems = t.books.read_blocking(verify).unwrap();
    let c = &t.raw;
    prop_assert!(
        problems.is_empty(),
        "after step {step} {op:?}: {problems:?}"
    );
    // Independently of verify: balance = lots − debt, debt ≥ 0.
    let off: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM accounts a WHERE a.debt < 0
             OR (SELECT COALESCE(SUM(amount), 0) FROM entries e WHERE e.account_id = a.id)
                != (SELECT COALESCE(SUM(remaining), 0) FROM lots l WHERE l.account_id = a.id) - a.debt",
            [],
            |r| r.get(0),
        )
        .unwrap();
    prop_assert_eq!(
        off,
        0,
        "balance != lots - debt after step {} {:?}",
        step,
        op
    );
    // The maintained columns, independently of verify: the balance is the
    // sum of the entries, the next expiry the earliest open lot's.
    let stale: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM accounts a
             WHERE a.balance != (SELECT COALESCE(SUM(amount), 0) FROM entries e
                                 WHERE e.account_id = a.id)
                OR a.next_expiry IS NOT (SELECT MIN(expires_at) FROM lots l
                                         WHERE l.account_id = a.id AND l.remaining > 0)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    prop_assert_eq!(
        stale,
        0,
        "maintained balance or next expiry stale after step {} {:?}",
        step,
        op
    );
    let negative: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM (SELECT account_id, SUM(amount) s FROM entries
             GROUP BY account_id HAVING s < 0)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    if p.refund_shortfall == RefundShortfall::Clamp {
        prop_assert_eq!(negative, 0, "negative balance after step {} {:?}", step, op);
        let debt: i64 = c
            .query_row("SELECT COALESCE(SUM(debt), 0) FROM accounts", [], |r| {
                r.get(0)
            })
            .unwrap();
        prop_assert_eq!(debt, 0, "debt under clamp after step {} {:?}", step, op);
    }
    let over: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM lots WHERE remaining > amount OR remaining < 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    prop_assert_eq!(over, 0, "lot out of range after step {} {:?}", step, op);
    Ok(())
}

fn floor2(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::ToZero)
}

/// A sale the model remembers, to refund later.
struct Sale {
    txn: i64,
    total: Decimal,
    refunded: Decimal,
}

/// An operation with every argument fixed, so a replay sends exactly the
/// same request.
#[derive(Debug)]
enum Call {
    Commit {
        card: &'static str,
        lines: Vec<SaleLine>,
        redeem: Decimal,
    },
    Refund {
        sale: i64,
        amount: Option<Decimal>,
    },
    Adjust {
        card: &'static str,
        amount: Decimal,
        expires: Option<OffsetDateTime>,
    },
}

/// Fixes `op`'s arguments from the state at `now` (a sale redeems a share
/// of what the till's quote would offer right now).
fn prepare(t: &Till, p: &Programme, op: &Op, sales: &[Sale], now: OffsetDateTime) -> Option<Call> {
    match op {
        Op::Commit {
            card,
            lines,
            redeem_pct,
        } => {
            let lines: Vec<SaleLine> = lines
                .iter()
                .map(|&(price, qty)| SaleLine {
                    sku: "A".into(),
                    name: "x".into(),
                    category: "general".into(),
                    qty: Decimal::from(qty),
                    price: Decimal::new(i64::from(price), 2),
                    discount: Decimal::ZERO,
                })
                .collect();
            let balance = t
                .resolve(CARDS[*card], now)
                .map_or(Decimal::ZERO, |s| s.balance);
            let q = rules::quote(
                p,
                &AccountOverrides::default(),
                &lines,
                balance,
                Decimal::ZERO,
            )
            .unwrap();
            let redeem = floor2(q.max_redeemable * Decimal::from(*redeem_pct) / Decimal::from(100));
            Some(Call::Commit {
                card: CARDS[*card],
                lines,
                redeem,
            })
        }
        Op::Refund { pick, pct } => {
            let s = sales.get(pick % sales.len().max(1))?;
            let amount = pct.map(|pct| {
                floor2((s.total - s.refunded) * Decimal::from(pct) / Decimal::from(100))
            });
            Some(Call::Refund {
                sale: s.txn,
                amount,
            })
        }
        Op::Adjust {
            card,
            cents,
            expires_in_hours,
        } => Some(Call::Adjust {
            card: CARDS[*card],
            amount: Decimal::new(i64::from(*cents), 2),
            expires: expires_in_hours.map(|h| now + Duration::hours(i64::from(h))),
        }),
        Op::SpendAll { card } => {
            let balance = t
                .resolve(CARDS[*card], now)
                .map_or(Decimal::ZERO, |s| s.balance);
            (balance > Decimal::ZERO).then(|| Call::Adjust {
                card: CARDS[*card],
                amount: -balance,
                expires: None,
            })
        }
        Op::Wait { .. } => None,
    }
}

/// What a call changed in the model: a new sale, or a refund of one.
enum Effect {
    Sale(Sale),
    Refunded(i64, Decimal),
    Nothing,
}

/// Runs `call` under `key` at `now`; the result as JSON (an error as its
/// message) so a replay can be compared with it.
fn exec(t: &Till, p: &Programme, key: &str, call: &Call, now: OffsetDateTime) -> (String, Effect) {
    fn show<T: serde::Serialize>(r: &Result<T, LedgerError>) -> String {
        match r {
            // A replay says so (`replayed`); everything else must match.
            Ok(v) => {
                let mut v = serde_json::to_value(v).unwrap();
                if let Some(o) = v.as_object_mut() {
                    o.remove("replayed");
                }
                v.to_string()
            }
            Err(e) => format!("error: {e}"),
        }
    }
    match call {
        Call::Commit {
            card,
            lines,
            redeem,
        } => {
            let r = t.run(|db, o| commit_tx(db, p, key, card, key, lines, *redeem, now, o, None));
            let effect = match &r {
                Ok(r) => Effect::Sale(Sale {
                    txn: r.transaction,
                    total: r.total,
                    refunded: Decimal::ZERO,
                }),
                Err(e) => panic!("a sale within the quote must commit: {e:?}"),
            };
            (show(&r), effect)
        }
        Call::Refund { sale, amount } => {
            let r = t.run(|db, o| {
                refund_tx(
                    db,
                    p,
                    key,
                    &SaleRef::Transaction(*sale),
                    *amount,
                    None,
                    now,
                    o,
                    None,
                )
            });
            let effect = match &r {
                Ok(r) => Effect::Refunded(*sale, r.refunded),
                Err(e) => panic!("a refund within the sale must pass: {e:?}"),
            };
            (show(&r), effect)
        }
        Call::Adjust {
            card,
            amount,
            expires,
        } => {
            let r = t.run(|db, o| {
                adjust_tx(
                    db, p, key, card, *amount, "test", "proptest", *expires, now, o,
                )
            });
            if let Err(e) = &r {
                assert!(
                    matches!(
                        e,
                        LedgerError::UnknownCard | LedgerError::InsufficientBalance { .. }
                    ),
                    "{e:?}"
                );
            }
            (show(&r), Effect::Nothing)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_every_invariant(
        ops in prop::collection::vec(op(), 1..25),
        cents in any::<bool>(),
        debt in any::<bool>(),
        offset_hours in -12i32..=14,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        let store = Store::open(&path).unwrap();
        // Durability is not under test here; speed is.
        store
            .writer()
            .exclusive()
            .conn
            .pragma_update(None, "synchronous", "OFF")
            .unwrap();
        let raw = Connection::open(&path).unwrap();
        raw.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        let t = Till {
            origin: Origin::new("", store.terminal_id()),
            books: Books::sqlite(store),
            raw,
        };
        let p = Programme {
            accrual_rounding: if cents {
                AccrualRounding::DownToCents
            } else {
                AccrualRounding::DownToWhole
            },
            expiry_months: Some(1),
            utc_offset_minutes: offset_hours * 60,
            refund_shortfall: if debt { RefundShortfall::Debt } else { RefundShortfall::Clamp },
            ..Programme::default()
        };
        // 2026-01-01T00:00:00Z
        let mut now = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        let mut sales: Vec<Sale> = Vec::new();
        for (step, op) in ops.iter().enumerate() {
            if let Op::Wait { seconds } = op {
                now += Duration::seconds(i64::from(*seconds));
                // Posting the expiries is what a card read does at the till.
                for card in CARDS {
                    t.resolve(card, now);
                }
                check_invariants(&t, &p, step, op)?;
                continue;
            }
            let Some(call) = prepare(&t, &p, op, &sales, now) else {
                continue;
            };
            let key = format!("k{step}");
            let (first, effect) = exec(&t, &p, &key, &call, now);
            check_invariants(&t, &p, step, op)?;
            match effect {
                Effect::Sale(s) => sales.push(s),
                Effect::Refunded(txn, amount) => {
                    if let Some(s) = sales.iter_mut().find(|s| s.txn == txn) {
                        s.refunded += amount;
                    }
                }
                Effect::Nothing => {}
            }
            // The same key again, at the same instant and later: the same
            // answer and not one row changed.
            let before = fingerprint(&t.raw);
            // A refusal stored nothing, and the balance in its message may
            // differ once time moves on: it is repeated at the same instant.
            let laters: &[i64] = if first.starts_with("error") { &[0] } else { &[0, 1, 40 * 86_400] };
            for &later in laters {
                let (again, _) = exec(&t, &p, &key, &call, now + Duration::seconds(later));
                prop_assert_eq!(&again, &first, "replay of step {} {:?}", step, op);
                prop_assert_eq!(fingerprint(&t.raw), before, "replay of step {} {:?} wrote", step, op);
            }
        }
    }
}
