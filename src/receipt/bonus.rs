//! The loyalty block of a receipt: by default masked card, balance before,
//! redeemed, accrued, balance after, next expiry. `[receipt.bonus]` picks
//! the rows, their order and labels, and adds header and footer lines. It
//! comes back from `sale.commit` as text lines, so the POS or the fiscal
//! printer can print it, and the ESC/POS path renders the same block.

use rust_decimal::Decimal;

use crate::config::{BonusTemplate, Language, ReceiptConfig, TemplatePart, template_parts};

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
    /// The customer's tier; its row is left out without one.
    pub tier: Option<&'a str>,
    /// The accrual is queued on the till (the central ledger was out of
    /// reach): the `accrued` row says it will be credited, and the balance
    /// after, not known yet, is left out.
    pub pending: bool,
    /// The programme's customer agreement (`{agreement_url}`); empty when
    /// none is configured.
    pub agreement_url: Option<&'a str>,
    /// Points held by the accrual window after the sale and the date
    /// (`YYYY-MM-DD`) the soonest of them become spendable; its row is
    /// left out when nothing is held.
    pub held: Option<(Decimal, &'a str)>,
}

struct Labels {
    title: &'static str,
    card: &'static str,
    before: &'static str,
    redeemed: &'static str,
    accrued: &'static str,
    after: &'static str,
    expiry: &'static str,
    tier: &'static str,
    pending: &'static str,
    held: &'static str,
}

const RU: Labels = Labels {
    title: "БОНУСНАЯ ПРОГРАММА",
    card: "Карта",
    before: "Баланс до покупки",
    redeemed: "Списано бонусов",
    accrued: "Начислено бонусов",
    after: "Баланс после покупки",
    expiry: "Сгорит {next_expiry_date}",
    tier: "Уровень",
    pending: "Начисление будет зачислено",
    held: "Бонусы в ожидании",
};

const EN: Labels = Labels {
    title: "LOYALTY",
    card: "Card",
    before: "Balance before",
    redeemed: "Points redeemed",
    accrued: "Points earned",
    after: "Balance after",
    expiry: "Expiring {next_expiry_date}",
    tier: "Tier",
    pending: "Points to be credited",
    held: "Points on hold",
};

/// The rows without a `receipt.bonus.lines` setting.
const DEFAULT_LINES: [&str; 7] = [
    "card",
    "balance_before",
    "redeemed",
    "accrued",
    "balance_after",
    "held",
    "next_expiry",
];

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

/// A date (`YYYY-MM-DD`, the ledger's) as the receipt's language writes
/// it, one format per receipt: Russian `DD.MM.YYYY`, as the fiscal tape
/// prints its dates; English `31 Dec 2026` (the month spelled, so neither
/// a British nor an American reader misreads it). A date that does not
/// parse prints as it came.
fn date(iso: &str, lang: Language) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = iso.get(..10).unwrap_or(iso).split('-').collect();
    let [y, m, d] = parts[..] else {
        return iso.to_owned();
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let month = m.parse::<usize>().ok().filter(|m| (1..=12).contains(m));
    let (true, true, true, Some(month)) = (digits(y, 4), digits(m, 2), digits(d, 2), month) else {
        return iso.to_owned();
    };
    match lang {
        Language::Ru => format!("{d}.{m}.{y}"),
        Language::En => format!("{} {} {y}", d.trim_start_matches('0'), MONTHS[month - 1]),
    }
}

/// The block laid out in parts, for printers that lay out columns
/// themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Centred lines above the title.
    pub header: Vec<String>,
    /// The bold centred title, if any.
    pub title: Option<String>,
    /// (label, value) rows in order.
    pub rows: Vec<(String, String)>,
    /// Centred lines below the rows.
    pub footer: Vec<String>,
}

/// Fills a template's placeholders. Templates were checked when the
/// config loaded; one that fails here anyway prints as written.
fn fill(t: &str, f: &BonusFacts<'_>, lang: Language) -> String {
    let Ok(parts) = template_parts(t) else {
        return t.to_owned();
    };
    let mut out = String::new();
    for p in parts {
        match p {
            TemplatePart::Text(s) => out.push_str(&s),
            TemplatePart::Field(name) => out.push_str(&match name {
                "card" => f.card_masked.to_owned(),
                "balance_before" => amount(f.before, lang),
                "redeemed" => amount(f.redeemed, lang),
                "accrued" => amount(f.accrued, lang),
                "balance_after" => amount(f.after, lang),
                "next_expiry_amount" => f.next_expiry.map_or(String::new(), |n| amount(n.0, lang)),
                "next_expiry_date" => f.next_expiry.map_or(String::new(), |n| date(n.1, lang)),
                "tier" => f.tier.unwrap_or_default().to_owned(),
                "agreement_url" => f.agreement_url.unwrap_or_default().to_owned(),
                "held" => f.held.map_or(String::new(), |h| amount(h.0, lang)),
                "held_date" => f.held.map_or(String::new(), |h| date(h.1, lang)),
                _ => String::new(),
            }),
        }
    }
    out
}

/// The block for `f` under `cfg`'s template and language.
pub fn block(f: &BonusFacts<'_>, cfg: &ReceiptConfig) -> Block {
    let lang = cfg.language;
    let d = match lang {
        Language::Ru => &RU,
        Language::En => &EN,
    };
    let t: &BonusTemplate = &cfg.bonus;
    let l = &t.labels;
    let label =
        |own: &Option<String>, default: &str| fill(own.as_deref().unwrap_or(default), f, lang);
    let names: Vec<&str> = match &t.lines {
        Some(v) => v.iter().map(String::as_str).collect(),
        None => DEFAULT_LINES.to_vec(),
    };
    let mut rows = Vec::new();
    for name in names {
        let row = match name {
            "card" => Some((label(&l.card, d.card), f.card_masked.to_owned())),
            "balance_before" => Some((label(&l.balance_before, d.before), amount(f.before, lang))),
            "redeemed" if !f.redeemed.is_zero() => {
                Some((label(&l.redeemed, d.redeemed), amount(f.redeemed, lang)))
            }
            "accrued" if f.pending => Some((label(&l.pending, d.pending), amount(f.accrued, lang))),
            "accrued" => Some((label(&l.accrued, d.accrued), amount(f.accrued, lang))),
            "balance_after" if f.pending => None,
            "balance_after" => Some((label(&l.balance_after, d.after), amount(f.after, lang))),
            "next_expiry" => f
                .next_expiry
                .map(|(amt, _)| (label(&l.next_expiry, d.expiry), amount(amt, lang))),
            "tier" => f
                .tier
                .filter(|t| !t.is_empty())
                .map(|tier| (label(&l.tier, d.tier), tier.to_owned())),
            "held" => f
                .held
                .filter(|(amt, _)| !amt.is_zero())
                .map(|(amt, _)| (label(&l.held, d.held), amount(amt, lang))),
            _ => None,
        };
        rows.extend(row);
    }
    let title = fill(t.title.as_deref().unwrap_or(d.title), f, lang);
    Block {
        header: t.header.iter().map(|h| fill(h, f, lang)).collect(),
        title: (!title.is_empty()).then_some(title),
        rows,
        footer: t.footer.iter().map(|h| fill(h, f, lang)).collect(),
    }
}

/// The block as lines fitted to `width` characters: label left, value
/// right; a label too long for the line is cut, never the value. The
/// title is centred and cut to the width; a header or footer line longer
/// than the width goes on over the next lines (an agreement's address must
/// stay whole).
pub fn lines(b: &Block, width: usize) -> Vec<String> {
    let width = width.clamp(16, 80);
    let row = |label: &str, value: &str| {
        let v = value.chars().count();
        let room = width.saturating_sub(v + 1);
        let label: String = label.chars().take(room).collect();
        let pad = width.saturating_sub(label.chars().count() + v);
        format!("{label}{}{value}", " ".repeat(pad))
    };
    let centred = |s: &str| format!("{:^width$}", s.chars().take(width).collect::<String>());
    let mut out = vec!["-".repeat(width)];
    let wrapped = |s: &String| {
        let chars: Vec<char> = s.chars().collect();
        if chars.is_empty() {
            return vec![centred("")];
        }
        chars
            .chunks(width)
            .map(|c| centred(&c.iter().collect::<String>()))
            .collect::<Vec<_>>()
    };
    out.extend(b.header.iter().flat_map(wrapped));
    out.extend(b.title.iter().map(|t| centred(t)));
    out.extend(b.rows.iter().map(|(label, value)| row(label, value)));
    out.extend(b.footer.iter().flat_map(wrapped));
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
            tier: None,
            pending: false,
            agreement_url: None,
            held: None,
        }
    }

    #[test]
    fn the_agreement_link_fills_its_placeholder_and_wraps_whole() {
        let mut f = facts();
        f.agreement_url = Some("https://kino.example/loyalty/agreement.pdf");
        let mut c = cfg(Language::Ru, 32);
        c.bonus.footer = vec!["Правила программы:".into(), "{agreement_url}".into()];
        let lines = render(&f, &c);
        let n = lines.len();
        assert_eq!(lines[n - 3], "https://kino.example/loyalty/agr");
        assert_eq!(lines[n - 2], "           eement.pdf           ");
        // Without a link the placeholder prints nothing.
        f.agreement_url = None;
        let lines = render(&f, &c);
        assert_eq!(lines[lines.len() - 2].trim(), "");
    }

    #[test]
    fn a_queued_accrual_says_it_will_be_credited_and_shows_no_balance_after() {
        let mut f = facts();
        f.pending = true;
        f.after = dec!(20);
        let lines = render(&f, &cfg(Language::Ru, 32));
        assert_eq!(
            lines,
            [
                "--------------------------------",
                "       БОНУСНАЯ ПРОГРАММА       ",
                "Карта                   ****2222",
                "Баланс до покупки          50,00",
                "Списано бонусов            30,00",
                "Начисление будет зачислено 48,00",
                "Сгорит 26.05.2027          20,00",
                "--------------------------------",
            ]
        );
        let mut c = cfg(Language::En, 42);
        c.bonus.labels.pending = Some("Will be credited".into());
        let en = render(&f, &c);
        assert!(
            en.iter()
                .any(|l| l.starts_with("Will be credited") && l.ends_with("48.00"))
        );
        assert!(!en.iter().any(|l| l.contains("Balance after")));
    }

    #[test]
    fn held_points_get_their_row_after_the_balance_only_when_there_are_some() {
        let mut f = facts();
        f.held = Some((dec!(35), "2026-12-20"));
        let lines = render(&f, &cfg(Language::Ru, 32));
        assert_eq!(
            lines[6..9],
            [
                "Баланс после покупки       68,00",
                "Бонусы в ожидании          35,00",
                "Сгорит 26.05.2027          20,00",
            ]
        );
        let mut c = cfg(Language::En, 42);
        c.bonus.labels.held = Some("On hold until {held_date}".into());
        let en = render(&f, &c);
        assert!(
            en.iter()
                .any(|l| l.starts_with("On hold until 20 Dec 2026") && l.ends_with("35.00")),
            "{en:?}"
        );
        f.held = Some((Decimal::ZERO, "2026-12-20"));
        assert!(
            !render(&f, &cfg(Language::Ru, 32))
                .iter()
                .any(|l| l.contains("ожидании"))
        );
        f.held = None;
        assert!(
            !render(&f, &cfg(Language::Ru, 32))
                .iter()
                .any(|l| l.contains("ожидании"))
        );
    }

    fn cfg(language: Language, width: usize) -> ReceiptConfig {
        ReceiptConfig {
            language,
            width,
            ..ReceiptConfig::default()
        }
    }

    fn render(f: &BonusFacts<'_>, c: &ReceiptConfig) -> Vec<String> {
        lines(&block(f, c), c.width)
    }

    #[test]
    fn the_default_russian_block_is_unchanged() {
        let lines = render(&facts(), &cfg(Language::Ru, 32));
        assert_eq!(
            lines,
            [
                "--------------------------------",
                "       БОНУСНАЯ ПРОГРАММА       ",
                "Карта                   ****2222",
                "Баланс до покупки          50,00",
                "Списано бонусов            30,00",
                "Начислено бонусов          48,00",
                "Баланс после покупки       68,00",
                "Сгорит 26.05.2027          20,00",
                "--------------------------------",
            ]
        );
    }

    #[test]
    fn english_and_no_redemption() {
        let mut f = facts();
        f.redeemed = dec!(0);
        let lines = render(&f, &cfg(Language::En, 42));
        assert!(!lines.iter().any(|l| l.contains("redeemed")));
        assert!(lines.contains(&format!("Points earned{}48.00", " ".repeat(42 - 13 - 5))));
        assert!(lines.contains(&format!(
            "Expiring 26 May 2027{}20.00",
            " ".repeat(42 - 20 - 5)
        )));
    }

    /// One date format per receipt language: the Russian block writes
    /// dates as the fiscal tape does; the English one spells the month.
    #[test]
    fn dates_follow_the_receipt_language() {
        assert_eq!(date("2026-12-31", Language::Ru), "31.12.2026");
        assert_eq!(date("2026-12-31T21:00:00Z", Language::Ru), "31.12.2026");
        assert_eq!(date("2027-01-05", Language::En), "5 Jan 2027");
        assert_eq!(date("2026-12-31", Language::En), "31 Dec 2026");
        for odd in ["", "2026-13-01", "26-12-31", "soon"] {
            assert_eq!(date(odd, Language::Ru), odd);
        }
        // A template's own date field follows the language too.
        let mut c = cfg(Language::Ru, 32);
        c.bonus.footer = vec!["до {next_expiry_date}".into()];
        let lines = render(&facts(), &c);
        assert!(
            lines.contains(&format!("{:^32}", "до 26.05.2027")),
            "{lines:#?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("2027-05-26")),
            "{lines:#?}"
        );
    }

    #[test]
    fn a_narrow_line_cuts_the_label_not_the_value() {
        let lines = render(&facts(), &cfg(Language::Ru, 16));
        assert!(lines.iter().all(|l| l.chars().count() == 16), "{lines:#?}");
        assert!(lines.iter().any(|l| l.ends_with(" 68,00")));
    }

    #[test]
    fn the_template_picks_rows_order_labels_header_and_footer() {
        let mut c = cfg(Language::Ru, 32);
        c.bonus = BonusTemplate {
            title: Some(String::new()),
            header: vec!["Кинотеатр «Луч»".into()],
            footer: vec![
                "Итого бонусов: {balance_after}".into(),
                "{{спасибо}}".into(),
            ],
            lines: Some(vec![
                "balance_after".into(),
                "accrued".into(),
                "tier".into(),
                "card".into(),
            ]),
            labels: crate::config::BonusLabels {
                accrued: Some("+ за покупку".into()),
                card: Some("Карта {card}".into()),
                ..Default::default()
            },
        };
        let mut f = facts();
        assert_eq!(
            render(&f, &c),
            [
                "--------------------------------",
                "        Кинотеатр «Луч»         ",
                "Баланс после покупки       68,00",
                "+ за покупку               48,00",
                "Карта ****2222          ****2222",
                "      Итого бонусов: 68,00      ",
                "           {спасибо}            ",
                "--------------------------------",
            ]
        );
        // With a tier, its row appears where it was listed.
        f.tier = Some("Золото");
        let with_tier = render(&f, &c);
        assert_eq!(with_tier[4], "Уровень                   Золото");
    }

    #[test]
    fn templates_are_checked() {
        let bad = |t: BonusTemplate| t.validate().unwrap_err().0;
        assert_eq!(
            bad(BonusTemplate {
                lines: Some(vec!["card".into(), "bonus".into()]),
                ..Default::default()
            }),
            "lines[1]"
        );
        assert_eq!(
            bad(BonusTemplate {
                footer: vec!["ok".into(), "{balance}".into()],
                ..Default::default()
            }),
            "footer[1]"
        );
        assert_eq!(
            bad(BonusTemplate {
                labels: crate::config::BonusLabels {
                    tier: Some("x}".into()),
                    ..Default::default()
                },
                ..Default::default()
            }),
            "labels.tier"
        );
        assert!(BonusTemplate::default().validate().is_ok());
    }
}
