//! The certificate core on the embedded store (the central twin runs the
//! same functions over PostgreSQL: `central/tests/certs.rs`).

use rust_decimal_macros::dec;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::store::Store;

fn books() -> (tempfile::TempDir, Books) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    (dir, Books::sqlite(store))
}

fn origin() -> Origin {
    Origin::new("", "T1")
}

fn issue(b: &Books, key: &str, nominal: Decimal, days: u32, now: OffsetDateTime) -> CertIssued {
    b.write_blocking(|db| {
        issue_tx(
            db,
            &origin(),
            key,
            nominal,
            Validity::Days(days),
            None,
            None,
            now,
        )
    })
    .unwrap()
    .unwrap()
}

fn redeem(
    b: &Books,
    key: &str,
    code: &str,
    amount: Decimal,
    now: OffsetDateTime,
) -> Result<CertMoved, CertError> {
    let by = CertRef::Code(Secret::new(code));
    b.write_blocking(|db| redeem_tx(db, &origin(), key, &by, amount, Some("R1"), now))
        .unwrap()
}

#[test]
fn sold_spent_in_part_returned_and_used_up() {
    let (_d, b) = books();
    let now = OffsetDateTime::now_utc();
    let sold = issue(&b, "s1", dec!(3000), 365, now);
    let code = sold.code.clone().unwrap().expose().to_owned();
    assert_eq!(sold.certificate.balance, dec!(3000));
    assert_eq!(sold.certificate.state, "active");
    assert_eq!(
        sold.certificate.code,
        format!("****{}", &code[code.len() - 4..])
    );
    // The books hold no code, only its digest.
    let plain = code.replace('-', "");
    let leaked: i64 = b
        .read_blocking(|db| {
            db.query_row(
                "SELECT COUNT(*) FROM certificate_ops WHERE request LIKE ?1 OR result LIKE ?1",
                args![format!("%{plain}%")],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert_eq!(leaked, 0);

    // A repeat of the sale's key: the same certificate, no code, no second row.
    let again = issue(&b, "s1", dec!(3000), 365, now);
    assert!(again.replayed && again.code.is_none());
    assert_eq!(again.certificate.certificate, sold.certificate.certificate);

    let first = redeem(&b, "r1", &code, dec!(1250.50), now).unwrap();
    assert_eq!(first.certificate.balance, dec!(1749.50));
    // Typed in lower case without dashes: the same certificate.
    let typed = plain.to_lowercase();
    let repeat = redeem(&b, "r1", &typed, dec!(1250.50), now).unwrap();
    assert!(repeat.replayed);
    assert_eq!(repeat.certificate.balance, dec!(1749.50));
    assert!(matches!(
        redeem(&b, "r1", &code, dec!(1), now),
        Err(CertError::KeyReused)
    ));
    assert!(matches!(
        redeem(&b, "r2", &code, dec!(1800), now),
        Err(CertError::Insufficient { balance }) if balance == dec!(1749.50)
    ));
    let rest = redeem(&b, "r3", &code, dec!(1749.50), now).unwrap();
    assert_eq!(rest.certificate.state, "used_up");
    assert!(matches!(
        redeem(&b, "r4", &code, dec!(1), now),
        Err(CertError::UsedUp)
    ));

    // A return of part of the first purchase puts that money back.
    let back = b
        .write_blocking(|db| {
            refund_tx(
                db,
                &origin(),
                "f1",
                first.operation,
                Some(dec!(250.50)),
                None,
                now,
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(back.certificate.balance, dec!(250.50));
    assert_eq!(back.certificate.state, "active");
    // No more than the redemption took comes back.
    let too_much = b
        .write_blocking(|db| refund_tx(db, &origin(), "f2", first.operation, None, None, now))
        .unwrap()
        .unwrap();
    assert_eq!(too_much.amount, dec!(1000));
    let none_left = b
        .write_blocking(|db| refund_tx(db, &origin(), "f3", first.operation, None, None, now))
        .unwrap();
    assert!(
        matches!(none_left, Err(CertError::RefundTooHigh { refundable }) if refundable.is_zero())
    );
    assert_eq!(too_much.certificate.balance, dec!(1250.50));
}

#[test]
fn expired_blocked_mistyped_and_unknown_are_refused() {
    let (_d, b) = books();
    let now = OffsetDateTime::now_utc();
    let code = issue(&b, "s1", dec!(500), 30, now)
        .code
        .unwrap()
        .expose()
        .to_owned();
    let later = now + Duration::days(31);
    assert!(matches!(
        redeem(&b, "r1", &code, dec!(1), later),
        Err(CertError::Expired { .. })
    ));
    let by = CertRef::Code(Secret::new(code.clone()));
    let blocked = b
        .write_blocking(|db| block_tx(db, &origin(), "b1", &by, true, now))
        .unwrap()
        .unwrap();
    assert_eq!(blocked.state, "blocked");
    assert!(matches!(
        redeem(&b, "r2", &code, dec!(1), now),
        Err(CertError::Blocked)
    ));
    let unblocked = b
        .write_blocking(|db| block_tx(db, &origin(), "b2", &by, false, now))
        .unwrap()
        .unwrap();
    assert_eq!(unblocked.state, "active");
    // One symbol changed: refused by the check symbol, before any lookup.
    let mut typo = code.replace('-', "").into_bytes();
    typo[3] = if typo[3] == b'7' { b'8' } else { b'7' };
    let typo = String::from_utf8(typo).unwrap();
    assert!(matches!(
        redeem(&b, "r3", &typo, dec!(1), now),
        Err(CertError::Code(code::CodeError::Check))
    ));
    let other = code::mint(crate::random::system).unwrap();
    assert!(matches!(
        redeem(&b, "r4", &other, dec!(1), now),
        Err(CertError::Unknown)
    ));
    // Amounts past kopecks and past the nominal limit are refused.
    assert!(matches!(
        redeem(&b, "r5", &code, dec!(0.001), now),
        Err(CertError::Invalid {
            field: "amount",
            ..
        })
    ));
}

#[test]
fn imported_codes_are_taken_once() {
    let (_d, b) = books();
    let now = OffsetDateTime::now_utc();
    let import = |key: &str, code: &str| {
        b.write_blocking(|db| {
            issue_tx(
                db,
                &origin(),
                key,
                dec!(1000),
                Validity::Days(90),
                Some(code),
                None,
                now,
            )
        })
        .unwrap()
    };
    let r = import("i1", "GIFT-0001-2026").unwrap();
    assert_eq!(r.code.as_ref().map(Secret::expose), Some("G1FT-0001-2026"));
    assert!(matches!(
        import("i2", "gift00012026"),
        Err(CertError::CodeTaken)
    ));
    // The same key and code again: the first answer.
    assert!(import("i1", "GIFT-0001-2026").unwrap().replayed);
    let spent = redeem(&b, "r1", "gift-0001-2026", dec!(400), now).unwrap();
    assert_eq!(spent.certificate.balance, dec!(600));
}
