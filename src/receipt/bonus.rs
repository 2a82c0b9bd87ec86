//! The loyalty block of a receipt: masked card, balance before, redeemed,
//! accrued, balance after, next expiry. It comes back from `sale.commit` as
//! text lines, so the POS or the fiscal printer can print it, and the
//! ESC/POS path renders the same lines.

use rust_decimal::Decimal;

use crate::config::Language;

/// What the block shows.
#[derive(Debug, Clone)]
pub struct BonusFacts<'a> {
    /// The card, masked (`****1234`).
    pub card_masked: &'a str,
    /// Balance before the sale.
    pub before: Decimal,
    /// Points spent.
    pub redeemed: Decimal,
    /// Points accrued.
    pub accrued: Decimal,
    /// Balance after.
    pub after: Decimal,
    /// The next points to expire: amount and date (`YYYY-MM-DD`).
    pub next_expiry: Option<(Decimal, &'a str)>,
}

struct Labels {
    title: &'static str,
    card: &'static str,
    before: &'static str,
    redeemed: &'static str,
    accrued: &'static str,
    after: &'static str,
    expiry: &'static str,
}

const RU: Labels = Labels {
    title: "БОНУСНАЯ ПРОГРАММА",
    card: "Карта",
    before: "Баланс до покупки",
    redeemed: "Списано бонусов",
    accrued: "Начислено бонусов",
    after: "Баланс после покупки",
    expiry: "Сгорит",
};

const EN: Labels = Labels {
    title: "LOYALTY",
    card: "Card",
    before: "Balance before",
    redeemed: "Points redeemed",
    accrued: "Points earned",
    after: "Balance after",
    expiry: "Expiring",
};

/// Points as printed: two decimals with a comma in Russian, a point in
/// English (receipts show money-like amounts, 1 point = 1 rouble).
fn amount(d: Decimal, lang: Language) -> String {
    let s = format!(
        "{:.2}",
        d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)
    );
    match lang {
        Language::Ru => s.replace('.', ","),
        Language::En => s,
    }
}

/// The block's title and its (label, value) rows, for printers that lay
/// out columns themselves.
pub fn rows(f: &BonusFacts<'_>, lang: Language) -> (&'static str, Vec<(String, String)>) {
    let l = match lang {
        Language::Ru => &RU,
        Language::En => &EN,
    };
    let mut rows = vec![
        (l.card.to_owned(), f.card_masked.to_owned()),
        (l.before.to_owned(), amount(f.before, lang)),
    ];
    if !f.redeemed.is_zero() {
        rows.push((l.redeemed.to_owned(), amount(f.redeemed, lang)));
    }
    rows.push((l.accrued.to_owned(), amount(f.accrued, lang)));
    rows.push((l.after.to_owned(), amount(f.after, lang)));
    if let Some((amt, date)) = f.next_expiry {
        rows.push((format!("{} {date}", l.expiry), amount(amt, lang)));
    }
    (l.title, rows)
}

/// The block as lines fitted to `width` characters: label left, value
/// right; a label too long for the line is cut, never the value.
pub fn lines(f: &BonusFacts<'_>, lang: Language, width: usize) -> Vec<String> {
    let (title, rows) = rows(f, lang);
    let width = width.clamp(16, 80);
    let row = |label: &str, value: String| {
        let v = value.chars().count();
        let room = width.saturating_sub(v + 1);
        let label: String = label.chars().take(room).collect();
        let pad = width - label.chars().count() - v;
        format!("{label}{}{value}", " ".repeat(pad))
    };
    let mut out = vec![
        "-".repeat(width),
        format!("{:^width$}", title.chars().take(width).collect::<String>()),
    ];
    out.extend(rows.into_iter().map(|(label, value)| row(&label, value)));
    out.push("-".repeat(width));
    out
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn facts() -> BonusFacts<'static> {
        BonusFacts {
            card_masked: "****2222",
            before: dec!(50),
            redeemed: dec!(30),
            accrued: dec!(48),
            after: dec!(68),
            next_expiry: Some((dec!(20), "2027-05-26")),
        }
    }

    #[test]
    fn russian_block_fits_the_width() {
        let lines = lines(&facts(), Language::Ru, 32);
        assert!(lines.iter().all(|l| l.chars().count() == 32), "{lines:#?}");
        assert!(
            lines.contains(&"Списано бонусов            30,00".to_string()),
            "{lines:#?}"
        );
        assert!(lines.iter().any(|l| l.ends_with("68,00")));
        assert!(lines.iter().any(|l| l.starts_with("Сгорит 2027-05-26")));
    }

    #[test]
    fn english_and_no_redemption() {
        let mut f = facts();
        f.redeemed = dec!(0);
        let lines = lines(&f, Language::En, 42);
        assert!(!lines.iter().any(|l| l.contains("redeemed")));
        assert!(lines.contains(&format!("Points earned{}48.00", " ".repeat(42 - 13 - 5))));
    }

    #[test]
    fn a_narrow_line_cuts_the_label_not_the_value() {
        let lines = lines(&facts(), Language::Ru, 16);
        assert!(lines.iter().all(|l| l.chars().count() == 16), "{lines:#?}");
        assert!(lines.iter().any(|l| l.ends_with(" 68,00")));
    }
}
