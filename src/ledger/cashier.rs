//! The cashier a POS names on a sale or return (`cashier` of `sale.commit`
//! and `sale.refund`): a short free text (a name or an id) recorded on the
//! transaction for the back office's history. Checked the same way on the
//! till's API, in its offline queue's path and by the ledger itself (the
//! central service takes it off the wire).

use super::rules::RulesError;

/// The most characters a cashier's name or id may have.
pub const MAX_CASHIER_CHARS: usize = 64;

/// Refuses a cashier that is blank, longer than [`MAX_CASHIER_CHARS`]
/// characters or holds control characters (it is shown on pages and
/// written to CSV), naming the field `cashier`.
pub fn check(cashier: &str) -> Result<(), RulesError> {
    let reason = if cashier.trim().is_empty() {
        "empty: leave the field out when there is no cashier"
    } else if cashier.chars().count() > MAX_CASHIER_CHARS {
        "longer than 64 characters"
    } else if cashier.chars().any(char::is_control) {
        "holds a control character"
    } else {
        return Ok(());
    };
    Err(RulesError::Invalid {
        field: "cashier".into(),
        reason: reason.into(),
    })
}

/// [`check`] for an optional cashier.
pub fn check_opt(cashier: Option<&str>) -> Result<(), RulesError> {
    cashier.map_or(Ok(()), check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_printable() {
        assert!(check("Анна К.").is_ok());
        assert!(check("id-4711").is_ok());
        assert!(check(&"я".repeat(64)).is_ok());
        for bad in ["", "   ", "a\nb", "tab\there"] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.starts_with("cashier: "), "{bad:?}: {e}");
        }
        assert!(
            check(&"я".repeat(65))
                .unwrap_err()
                .to_string()
                .contains("64")
        );
        assert!(check_opt(None).is_ok());
    }
}
