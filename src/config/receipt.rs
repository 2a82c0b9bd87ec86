//! `[receipt]`: the label language and the bonus block's template.

use serde::Deserialize;

/// `[receipt]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiptConfig {
    /// Language of the labels posbridge prints.
    pub language: Language,
    /// Characters per line of the bonus block (32 for 58 mm paper, 42 or
    /// 48 for 80 mm).
    pub width: usize,
    /// The bonus block's labels, lines and their order.
    pub bonus: BonusTemplate,
}

impl Default for ReceiptConfig {
    fn default() -> Self {
        ReceiptConfig {
            language: Language::Ru,
            width: 32,
            bonus: BonusTemplate::default(),
        }
    }
}

/// The rows a bonus block can show, by their name in
/// `receipt.bonus.lines`.
pub const BONUS_LINES: [&str; 8] = [
    "card",
    "balance_before",
    "redeemed",
    "accrued",
    "balance_after",
    "next_expiry",
    "tier",
    "held",
];

/// The placeholders (`{name}`) labels, the title, header and footer lines
/// may use.
pub const BONUS_PLACEHOLDERS: [&str; 11] = [
    "card",
    "balance_before",
    "redeemed",
    "accrued",
    "balance_after",
    "next_expiry_amount",
    "next_expiry_date",
    "tier",
    "agreement_url",
    "held",
    "held_date",
];

/// `[receipt.bonus]`: what the bonus block shows. Unset keys take the
/// `receipt.language` defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BonusTemplate {
    /// The bold centred title; `""` for none.
    pub title: Option<String>,
    /// Centred lines above the title.
    pub header: Vec<String>,
    /// Centred lines below the rows.
    pub footer: Vec<String>,
    /// The rows and their order, names from [`BONUS_LINES`].
    pub lines: Option<Vec<String>>,
    /// Row labels.
    pub labels: BonusLabels,
}

/// `[receipt.bonus.labels]`: one label per row of [`BONUS_LINES`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BonusLabels {
    /// The masked card.
    pub card: Option<String>,
    /// Balance before the sale.
    pub balance_before: Option<String>,
    /// Points spent (the row is left out when none were).
    pub redeemed: Option<String>,
    /// Points earned.
    pub accrued: Option<String>,
    /// Balance after the sale.
    pub balance_after: Option<String>,
    /// The next points to expire (left out when none expire).
    pub next_expiry: Option<String>,
    /// The customer's tier (left out when the account has none).
    pub tier: Option<String>,
    /// In place of `accrued` when the central ledger was out of reach and
    /// the accrual is queued (the `balance_after` row is left out then).
    pub pending: Option<String>,
    /// Points held by the accrual window (`hold_days`), not in the balance
    /// after; left out when none are.
    pub held: Option<String>,
}

/// A piece of a bonus template: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Text as written (`{{` and `}}` already turned into braces).
    Text(String),
    /// One of [`BONUS_PLACEHOLDERS`].
    Field(&'static str),
}

/// Splits a template into text and placeholders; an unknown placeholder or
/// a lone brace is an error saying which.
pub fn template_parts(t: &str) -> Result<Vec<TemplatePart>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(format!(
                        "\"{{{name}\" is not closed; write \"{{{{\" for a brace"
                    ));
                }
                let Some(field) = BONUS_PLACEHOLDERS.iter().find(|p| **p == name) else {
                    return Err(format!(
                        "unknown placeholder {{{name}}}; known: {}",
                        BONUS_PLACEHOLDERS.join(", ")
                    ));
                };
                if !text.is_empty() {
                    out.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                out.push(TemplatePart::Field(field));
            }
            '}' => return Err("a lone \"}\"; write \"}}\" for a brace".into()),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(TemplatePart::Text(text));
    }
    Ok(out)
}

impl BonusTemplate {
    /// Checks line names and placeholders; the error is the key under
    /// `receipt.bonus` (`lines[2]`, `labels.card`, `footer[0]`) and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let check = |key: String, t: &str| {
            if t.chars().count() > 200 {
                return Err((key, "at most 200 characters".to_owned()));
            }
            template_parts(t).map(|_| ()).map_err(|e| (key, e))
        };
        if let Some(t) = &self.title {
            check("title".into(), t)?;
        }
        for (name, list) in [("header", &self.header), ("footer", &self.footer)] {
            if list.len() > 20 {
                return Err((name.into(), "at most 20 lines".into()));
            }
            for (i, t) in list.iter().enumerate() {
                check(format!("{name}[{i}]"), t)?;
            }
        }
        if let Some(lines) = &self.lines {
            for (i, l) in lines.iter().enumerate() {
                if !BONUS_LINES.contains(&l.as_str()) {
                    return Err((
                        format!("lines[{i}]"),
                        format!("unknown line \"{l}\"; known: {}", BONUS_LINES.join(", ")),
                    ));
                }
                if lines[..i].contains(l) {
                    return Err((format!("lines[{i}]"), format!("\"{l}\" is listed twice")));
                }
            }
        }
        let l = &self.labels;
        for (name, label) in [
            ("card", &l.card),
            ("balance_before", &l.balance_before),
            ("redeemed", &l.redeemed),
            ("accrued", &l.accrued),
            ("balance_after", &l.balance_after),
            ("pending", &l.pending),
            ("next_expiry", &l.next_expiry),
            ("tier", &l.tier),
            ("held", &l.held),
        ] {
            if let Some(t) = label {
                check(format!("labels.{name}"), t)?;
            }
        }
        Ok(())
    }
}

/// Receipt label language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Russian (the default: the loyalty programmes are Russian).
    Ru,
    /// English.
    En,
}
