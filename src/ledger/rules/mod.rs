//! The pure rules engine of the loyalty money path: no database, no I/O.
//!
//! Given a [`Programme`], an account's [`AccountOverrides`] and the lines of a
//! sale, [`quote`] computes what the customer may pay with points, how a
//! redemption is spread over the lines and how many points the sale accrues.
//! [`refund_share`] splits a return into points to claw back and points to
//! give back, and [`expiry_of`] dates a lot of accrued points.
//!
//! All money is [`Decimal`]; one point is one rouble (one unit of the sale's
//! currency). Every rounding in this module is explicit and goes towards zero
//! (`RoundingStrategy::ToZero`) except the line total of weighed goods, which
//! is rounded like a fiscal register does (half away from zero); banker's
//! rounding (`Decimal::round_dp`) is never used.
//!
//! # Which percentage applies to a line
//!
//! The most specific setting wins, separately for the accrual rate and for the
//! redemption cap:
//!
//! 1. a line whose SKU is in [`Programme::excluded_skus`] or whose category
//!    rule has `excluded = true` takes no part in the programme: it accrues
//!    nothing and no points can be spent on it (rate 0, cap 0);
//! 2. the account's own setting for that category
//!    ([`AccountOverrides::categories`]), when it names the line's category:
//!    a deliberate per-customer exception beats the programme's category rule;
//! 3. the setting of the account's level for that category
//!    ([`levels::TierCategory`]: seed 004's separate bar and ticket rates per
//!    level; `cashback = false` is rate 0): it is merged under step 2;
//! 4. the category rule's `accrual_percent` / `cap_percent`, when set (e.g. the
//!    pharmacy's 1 % on essential medicines, which a level's flat rate must
//!    not raise);
//! 5. the account's flat override ([`AccountOverrides`]), else its level's
//!    flat percentage;
//! 6. the programme default ([`Programme::default_accrual_percent`],
//!    [`Programme::cap_percent`]).
//!
//! With [`Programme::cap_basis`] = `receipt`, the flat cap of steps 5–6 is a
//! share of the whole receipt instead of each line (see [`basis`]).
//!
//! A discounted line (`discount > 0`) accrues nothing when
//! [`Programme::accrue_on_discounted`] is false; points can still be spent on
//! it.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use time::UtcOffset;

pub mod basis;
mod expiry;
pub mod levels;
pub use expiry::{expiry_of, welcome_expiry_of};
pub mod campaigns;
pub mod hold;
pub mod lines;
pub mod people;
pub mod switches;
#[cfg(test)]
mod tests;
pub mod tiers;

pub use switches::{CashierLimits, OrderTerms, PointsPart};

/// The largest sale this engine accepts.
pub const MAX_LINES: usize = 1000;
/// The largest quantity, price, discount, line amount, balance or redemption
/// accepted (10^12). Keeps every intermediate product far from `Decimal`'s
/// 96-bit limit.
pub const MAX_AMOUNT: Decimal = Decimal::from_parts(0xD4A5_1000, 0xE8, 0, false, 0);
/// The largest [`Programme::precision`] accepted.
pub const MAX_PRECISION: u32 = 4;
/// The largest UTC offset accepted, in minutes (±18:00).
pub const MAX_OFFSET_MINUTES: i32 = 18 * 60;

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// How the accrual of a sale is rounded (once, on the sale's total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccrualRounding {
    /// Floor to a whole point (0.9995 -> 0).
    DownToWhole,
    /// Floor to a hundredth of a point (0.9995 -> 0.99).
    DownToCents,
}

impl AccrualRounding {
    /// Decimal places of one accrued point's unit.
    pub fn scale(self) -> u32 {
        match self {
            Self::DownToWhole => 0,
            Self::DownToCents => 2,
        }
    }
}

/// A loyalty programme's rules, as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// Keys left out of a partial table keep the built-in programme's values
// (see `Default`), not the field types' zeros.
#[serde(deny_unknown_fields, default)]
pub struct Programme {
    /// Display name ("Аптека", "Кинобар").
    pub name: String,
    /// Decimal places of money and points (2 = kopecks). Caps, the maximum
    /// redeemable amount and redemption parts are floored to it; a
    /// redemption with more places is rejected. At most [`MAX_PRECISION`].
    pub precision: u32,
    /// How the sale's accrual is rounded.
    pub accrual_rounding: AccrualRounding,
    /// Accrual percentage of lines without a more specific rate (5 = 5 %).
    pub default_accrual_percent: Decimal,
    /// Per-category rates, caps and exclusions.
    pub categories: Vec<CategoryRule>,
    /// SKUs that neither accrue nor can be paid with points.
    pub excluded_skus: Vec<String>,
    /// Programme-wide redemption cap: the percentage of a line payable with
    /// points (50 = half the receipt).
    pub cap_percent: Decimal,
    /// Whether lines with a discount accrue points.
    pub accrue_on_discounted: bool,
    /// What a sale partly paid with points earns: accrual on the part of
    /// each line paid with money, on the whole line, or nothing at all.
    /// The key still takes the old booleans (false: money part, true:
    /// whole line).
    pub accrue_on_points_part: PointsPart,
    /// Lifetime of accrued points in calendar months; `None` = no expiry.
    /// See [`expiry_of`].
    pub expiry_months: Option<u32>,
    /// Points granted on registration; `None` = no welcome bonus.
    pub welcome_bonus: Option<Decimal>,
    /// Lifetime of the welcome bonus in days; `None` = no expiry. See
    /// [`welcome_expiry_of`].
    pub welcome_expiry_days: Option<u32>,
    /// The programme's UTC offset in minutes (Moscow = 180). The expiry
    /// boundary: points expire at the start of the day (00:00 at this offset)
    /// following their last day of validity.
    pub utc_offset_minutes: i32,
    /// What a refund does when the accrual it claws back was already spent.
    pub refund_shortfall: RefundShortfall,
    /// Loyalty levels (`[[ledger.programme.tiers]]`); empty = none. See
    /// [`tiers`].
    pub tiers: Vec<tiers::Tier>,
    /// What the flat cap is a share of: each line (default) or the whole
    /// receipt. See [`basis`].
    pub cap_basis: basis::CapBasis,
    // Programme switches (issue 21 item 3, seeds 004 and 001); see
    // [`switches`].
    /// Whether the programme runs; off, sales are refused
    /// ([`RulesError::ProgrammeInactive`]) while balances, history and
    /// returns still work.
    pub enabled: bool,
    /// When the programme starts (`YYYY-MM-DD` or `YYYY-MM-DDTHH:MM`,
    /// programme time); `None` = it always ran.
    pub active_from: Option<String>,
    /// When it ends (a date alone: at the end of that day); `None` = no end.
    pub active_until: Option<String>,
    /// The customer agreement's address, shown by `programme.info` and
    /// `card.resolve` and printable on the bonus block.
    pub agreement_url: Option<String>,
    /// Whether a return gives the points spent on the sale back (its share).
    pub return_spent_points_on_refund: bool,
    /// How far a cashier may set one order's accrual percentage and cap.
    pub cashier_limits: CashierLimits,
    /// The accrual window (seed 004's "number of days during which cashback
    /// is accrued"): a sale's points are held this many days before they can
    /// be spent; 0 = spendable at once. See [`hold`].
    pub hold_days: u32,
    /// Campaigns: extra points for a period, weekdays, hours, categories
    /// or SKUs, customer groups (`[[ledger.programme.campaigns]]`); empty =
    /// none. See [`campaigns`].
    pub campaigns: Vec<campaigns::Campaign>,
    /// Promo codes the cashier may type on a sale
    /// (`[[ledger.programme.promo_codes]]`); empty = none. See
    /// [`campaigns`].
    pub promo_codes: Vec<campaigns::PromoCode>,
    /// Points credited once a year on a customer's birthday (issue 21
    /// item 12c); `None` = no birthday bonus. See [`people`].
    pub birthday_bonus: Option<Decimal>,
    /// Lifetime of the birthday bonus in days; `None` = no expiry.
    pub birthday_expiry_days: Option<u32>,
    /// The bonus may be credited this many days before the birthday (at
    /// most [`people::MAX_BIRTHDAY_WINDOW_DAYS`]); 0 = not before the day.
    pub birthday_days_before: u32,
    /// ... and this many days after it, so a day the job did not run is
    /// caught up; 0 = not after the day.
    pub birthday_days_after: u32,
    /// Points for the inviting customer when the customer they invited
    /// makes a first purchase; `None` = none.
    pub referral_bonus_inviter: Option<Decimal>,
    /// Points for the invited customer on that first purchase.
    pub referral_bonus_invited: Option<Decimal>,
    /// Lifetime of both referral bonuses in days; `None` = no expiry.
    pub referral_expiry_days: Option<u32>,
    /// The most invitations one inviter is paid for; `None` = no limit.
    pub referral_max_per_inviter: Option<u32>,
}

/// What a refund's clawback does when the balance cannot cover it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundShortfall {
    /// Take what is there; the balance stops at zero and the rest is only
    /// recorded (`clawback_shortfall`).
    #[default]
    Clamp,
    /// The account goes into debt for the rest: its balance turns negative,
    /// later accruals pay the debt first, nothing can be redeemed meanwhile.
    Debt,
}

impl Default for Programme {
    /// 5 % back in whole points, up to half a receipt payable with points,
    /// points valid for 6 months, Moscow time.
    fn default() -> Self {
        Programme {
            name: "default".into(),
            precision: 2,
            accrual_rounding: AccrualRounding::DownToWhole,
            default_accrual_percent: Decimal::from(5),
            categories: Vec::new(),
            excluded_skus: Vec::new(),
            cap_percent: Decimal::from(50),
            accrue_on_discounted: true,
            accrue_on_points_part: PointsPart::MoneyPart,
            expiry_months: Some(6),
            welcome_bonus: None,
            welcome_expiry_days: None,
            utc_offset_minutes: 180,
            refund_shortfall: RefundShortfall::Clamp,
            tiers: Vec::new(),
            cap_basis: basis::CapBasis::Line,
            enabled: true,
            active_from: None,
            active_until: None,
            agreement_url: None,
            return_spent_points_on_refund: true,
            cashier_limits: CashierLimits::default(),
            hold_days: 0,
            campaigns: Vec::new(),
            promo_codes: Vec::new(),
            birthday_bonus: None,
            birthday_expiry_days: None,
            birthday_days_before: 0,
            birthday_days_after: 0,
            referral_bonus_inviter: None,
            referral_bonus_invited: None,
            referral_expiry_days: None,
            referral_max_per_inviter: None,
        }
    }
}

/// Rules for one product category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryRule {
    /// The category, as sent on [`SaleLine::category`] (exact match).
    pub category: String,
    /// Accrual percentage of this category; beats account overrides.
    #[serde(default)]
    pub accrual_percent: Option<Decimal>,
    /// Redemption cap of this category; beats account overrides.
    #[serde(default)]
    pub cap_percent: Option<Decimal>,
    /// The category takes no part in the programme (no accrual, no
    /// redemption).
    #[serde(default)]
    pub excluded: bool,
}

/// An account's own percentages: per-customer settings or the customer's
/// tier. The flat ones replace the programme defaults but not category
/// rules; a per-category one replaces the category rule too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountOverrides {
    /// Accrual percentage for this account.
    #[serde(default)]
    pub accrual_percent: Option<Decimal>,
    /// Redemption cap percentage for this account.
    #[serde(default)]
    pub cap_percent: Option<Decimal>,
    /// Per-category percentages for this account, by category name (exact
    /// match with [`SaleLine::category`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, CategoryOverride>,
}

/// An account's percentages for one category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryOverride {
    /// Redemption cap percentage for this category.
    #[serde(default)]
    pub cap_percent: Option<Decimal>,
    /// Accrual percentage for this category.
    #[serde(default)]
    pub accrual_percent: Option<Decimal>,
}

/// The most categories one account's overrides may name.
pub const MAX_OVERRIDE_CATEGORIES: usize = 100;

/// One line of a sale. Its total is `qty × price − discount`, the product
/// rounded half away from zero to the programme's precision (as a fiscal
/// register does for weighed goods).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaleLine {
    /// Article code, matched against [`Programme::excluded_skus`].
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Category, matched against [`CategoryRule::category`].
    pub category: String,
    /// Quantity, > 0 (may be fractional for weighed goods).
    pub qty: Decimal,
    /// Unit price, ≥ 0.
    pub price: Decimal,
    /// Discount on the whole line, 0 ≤ discount ≤ qty × price.
    #[serde(default)]
    pub discount: Decimal,
}

/// Which limit a too-large redemption hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedeemLimit {
    /// The redemption caps of the lines.
    Cap,
    /// The account's balance.
    Balance,
}

impl std::fmt::Display for RedeemLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Cap => "cap",
            Self::Balance => "balance",
        })
    }
}

/// Why a quote, refund or expiry could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RulesError {
    /// A field is out of range; `field` is its path (`lines[2].discount`,
    /// `programme.cap_percent`, `overrides.accrual_percent`, `redeem`).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// More points requested than may be spent on this sale.
    #[error("cannot redeem {requested}: at most {max} ({limit})")]
    RedeemTooHigh {
        requested: Decimal,
        max: Decimal,
        limit: RedeemLimit,
    },
    /// The refunds add up to more than the sale.
    #[error("refund of {requested} exceeds the {remaining} not yet refunded")]
    RefundTooHigh {
        requested: Decimal,
        remaining: Decimal,
    },
    /// A date computation left the supported calendar.
    #[error("date out of range")]
    DateOutOfRange,
    /// The programme is switched off or outside its active window
    /// (`reason`: `disabled`, `not_started`, `ended`).
    #[error("the loyalty programme is not active ({reason})")]
    ProgrammeInactive {
        /// `disabled`, `not_started` or `ended`.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RulesError {
    RulesError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The quote of one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineQuote {
    /// `qty × price − discount`, at the programme's precision.
    pub total: Decimal,
    /// Accrual percentage applied (0 for excluded lines, and for discounted
    /// lines when the programme does not accrue on them).
    pub rate: Decimal,
    /// The amount accrual is computed on: the line total, minus this line's
    /// redeemed part unless `accrue_on_points_part` is `whole_line`; 0 when
    /// `rate` is 0, and on an order with points spent when it is `nothing`.
    pub eligible: Decimal,
    /// The most that may be paid with points on this line (floored).
    pub cap: Decimal,
    /// This line's part of the redemption.
    pub redeemed: Decimal,
    /// `rate % × eligible`, unrounded: the sale's accrual is rounded once,
    /// on the sum (so the rounded [`Quote::accrual`] may be below the sum of
    /// these by less than one rounding unit).
    pub accrual: Decimal,
}

/// The outcome of [`quote`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    /// One entry per sale line, in order.
    pub lines: Vec<LineQuote>,
    /// Sum of the line totals.
    pub total: Decimal,
    /// Sum of the lines' `eligible`.
    pub eligible_total: Decimal,
    /// `min(sum of line caps, receipt_cap, balance)`, floored to the
    /// precision.
    pub max_redeemable: Decimal,
    /// The receipt's cap when [`Programme::cap_basis`] is `receipt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_cap: Option<Decimal>,
    /// The redemption, as requested and validated.
    pub redeem: Decimal,
    /// `total − redeem`.
    pub money_paid: Decimal,
    /// Points this sale accrues with this redemption, rounded once per
    /// [`Programme::accrual_rounding`].
    pub accrual: Decimal,
    /// The campaigns that raised this sale ([`campaigns::apply`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub campaigns: Vec<campaigns::AppliedCampaign>,
    /// The promo code this sale uses, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promo: Option<campaigns::AppliedPromo>,
    /// Points the campaigns and the promo code add, unrounded (already in
    /// `accrual`, which is rounded once on the sum).
    #[serde(default, skip_serializing_if = "Decimal::is_zero")]
    pub extra_accrual: Decimal,
}

/// What a sale committed, as needed to split its refunds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommittedSale {
    /// The sale's total.
    pub total: Decimal,
    /// Points accrued by the sale.
    pub accrued: Decimal,
    /// Points spent on the sale.
    pub redeemed: Decimal,
    /// Decimal places to floor the shares to (the programme's precision at
    /// the time of the sale).
    pub precision: u32,
    /// Decimal places of the programme's accrual unit
    /// ([`AccrualRounding::scale`]: 0 for whole points): a clawback is
    /// floored to it, so a programme that accrues whole points never holds
    /// a fraction after a partial return.
    pub accrual_scale: u32,
}

/// The points side of one refund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefundShare {
    /// Accrued points to take back.
    pub clawback: Decimal,
    /// Spent points to give back.
    pub return_points: Decimal,
}

fn check_percent(field: &str, v: Decimal) -> Result<(), RulesError> {
    if v < Decimal::ZERO || v > HUNDRED {
        return Err(invalid(field, format!("{v} is not within 0..=100")));
    }
    Ok(())
}

fn check_amount(field: &str, v: Decimal) -> Result<(), RulesError> {
    if v < Decimal::ZERO {
        return Err(invalid(field, format!("{v} is negative")));
    }
    if v > MAX_AMOUNT {
        return Err(invalid(field, format!("{v} exceeds {MAX_AMOUNT}")));
    }
    Ok(())
}

impl Programme {
    /// Checks the configuration: percentages within 0..=100, precision at
    /// most [`MAX_PRECISION`], offset within ±18:00, non-negative bonus.
    /// [`quote`] calls it too.
    pub fn validate(&self) -> Result<(), RulesError> {
        if self.precision > MAX_PRECISION {
            return Err(invalid(
                "programme.precision",
                format!("{} exceeds {MAX_PRECISION}", self.precision),
            ));
        }
        check_percent(
            "programme.default_accrual_percent",
            self.default_accrual_percent,
        )?;
        check_percent("programme.cap_percent", self.cap_percent)?;
        for (i, c) in self.categories.iter().enumerate() {
            if let Some(v) = c.accrual_percent {
                check_percent(&format!("programme.categories[{i}].accrual_percent"), v)?;
            }
            if let Some(v) = c.cap_percent {
                check_percent(&format!("programme.categories[{i}].cap_percent"), v)?;
            }
        }
        if let Some(b) = self.welcome_bonus {
            check_amount("programme.welcome_bonus", b)?;
        }
        if self.utc_offset_minutes.abs() > MAX_OFFSET_MINUTES {
            return Err(invalid(
                "programme.utc_offset_minutes",
                format!(
                    "{} is not within ±{MAX_OFFSET_MINUTES}",
                    self.utc_offset_minutes
                ),
            ));
        }
        tiers::validate(&self.tiers)?;
        switches::validate(self)?;
        hold::validate(self)?;
        campaigns::validate(&self.campaigns, &self.promo_codes)?;
        people::validate(self)?;
        Ok(())
    }

    fn category(&self, name: &str) -> Option<&CategoryRule> {
        self.categories.iter().find(|c| c.category == name)
    }

    fn offset(&self) -> Result<UtcOffset, RulesError> {
        UtcOffset::from_whole_seconds(self.utc_offset_minutes.saturating_mul(60)).map_err(|_| {
            invalid(
                "programme.utc_offset_minutes",
                format!("{} is not a valid offset", self.utc_offset_minutes),
            )
        })
    }
}

impl AccountOverrides {
    /// Checks every percentage (0..=100) and the category names (1 to 64
    /// characters, at most [`MAX_OVERRIDE_CATEGORIES`]); errors name the
    /// field as `overrides.categories.<name>.cap_percent`.
    pub fn validate(&self) -> Result<(), RulesError> {
        self.validate_up_to(MAX_OVERRIDE_CATEGORIES)
    }

    /// [`Self::validate`] with room for `max` categories: a level's
    /// categories merged in ([`levels::merge`]) may add some.
    fn validate_up_to(&self, max: usize) -> Result<(), RulesError> {
        if let Some(v) = self.accrual_percent {
            check_percent("overrides.accrual_percent", v)?;
        }
        if let Some(v) = self.cap_percent {
            check_percent("overrides.cap_percent", v)?;
        }
        if self.categories.len() > max {
            return Err(invalid(
                "overrides.categories",
                format!("more than {max} categories"),
            ));
        }
        for (name, c) in &self.categories {
            if name.is_empty() || name.chars().count() > 64 {
                return Err(invalid(
                    "overrides.categories",
                    "a category name is 1 to 64 characters",
                ));
            }
            if let Some(v) = c.accrual_percent {
                check_percent(&format!("overrides.categories.{name}.accrual_percent"), v)?;
            }
            if let Some(v) = c.cap_percent {
                check_percent(&format!("overrides.categories.{name}.cap_percent"), v)?;
            }
        }
        Ok(())
    }
}

fn floor_to(v: Decimal, dp: u32) -> Decimal {
    v.round_dp_with_strategy(dp, RoundingStrategy::ToZero)
}

/// `v` in units of 10^-precision; `v` must already be at that precision.
fn to_units(v: Decimal, precision: u32) -> i128 {
    let mut v = v;
    v.rescale(precision);
    v.mantissa()
}

fn from_units(units: i128, precision: u32) -> Decimal {
    // |units| ≤ 10^19 here (totals ≤ 10^15, precision ≤ 4): fits 96 bits.
    Decimal::from_i128_with_scale(units, precision)
}

fn line_total(i: usize, line: &SaleLine, precision: u32) -> Result<Decimal, RulesError> {
    if line.qty <= Decimal::ZERO {
        return Err(invalid(format!("lines[{i}].qty"), "must be > 0"));
    }
    check_amount(&format!("lines[{i}].qty"), line.qty)?;
    check_amount(&format!("lines[{i}].price"), line.price)?;
    check_amount(&format!("lines[{i}].discount"), line.discount)?;
    // Money has the programme's decimals; more would be rounded away unseen.
    for (name, v) in [("price", line.price), ("discount", line.discount)] {
        if v.scale() > precision && v != v.trunc_with_scale(precision) {
            return Err(invalid(
                format!("lines[{i}].{name}"),
                format!("{v} has more than {precision} decimal places"),
            ));
        }
    }
    // Both factors ≤ 10^12: the product cannot overflow.
    let gross = line.qty * line.price;
    if gross > MAX_AMOUNT {
        return Err(invalid(
            format!("lines[{i}].price"),
            format!("qty × price exceeds {MAX_AMOUNT}"),
        ));
    }
    if line.discount > gross {
        return Err(invalid(
            format!("lines[{i}].discount"),
            format!("{} exceeds qty × price {gross}", line.discount),
        ));
    }
    Ok((gross - line.discount)
        .round_dp_with_strategy(precision, RoundingStrategy::MidpointAwayFromZero))
}

/// Splits `redeem` (in units) across lines proportionally to their `caps`
/// (in units) by the largest remainder method: each line gets
/// `floor(redeem × cap / Σcaps)`, and the units left over go one each to the
/// lines with the largest remainders, ties to the earlier line. The parts sum
/// exactly to `redeem` and, as `redeem ≤ Σcaps`, no part exceeds its cap.
fn allocate(redeem: i128, caps: &[i128]) -> Vec<i128> {
    let sum: i128 = caps.iter().sum();
    if sum == 0 || redeem == 0 {
        return vec![0; caps.len()];
    }
    // redeem, cap ≤ 10^19: the product stays below i128::MAX (1.7 × 10^38).
    let mut parts = Vec::with_capacity(caps.len());
    let mut rems = Vec::with_capacity(caps.len());
    for (i, &c) in caps.iter().enumerate() {
        let share = redeem * c;
        parts.push(share / sum);
        rems.push((share % sum, i));
    }
    let left = redeem - parts.iter().sum::<i128>();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(rem, i) in rems.iter().take(usize::try_from(left).unwrap_or(0)) {
        debug_assert!(rem > 0);
        parts[i] += 1;
    }
    parts
}

/// Quotes a sale: line totals, caps, the maximum redeemable, the split of
/// `redeem` across lines and the accrual that follows.
///
/// `balance` is the account's spendable balance (a negative balance counts as
/// 0). `redeem` must be ≥ 0, have at most `precision` decimal places and not
/// exceed `max_redeemable`; otherwise [`RulesError::RedeemTooHigh`] names the
/// binding limit (the balance when it is below the sum of the caps).
pub fn quote(
    p: &Programme,
    o: &AccountOverrides,
    lines: &[SaleLine],
    balance: Decimal,
    redeem: Decimal,
) -> Result<Quote, RulesError> {
    quote_with(p, o, &OrderTerms::default(), lines, balance, redeem)
}

/// [`quote`] with the order's own terms set by the cashier: they replace
/// the accrual percentage and the cap of every line that takes part.
pub fn quote_with(
    p: &Programme,
    o: &AccountOverrides,
    terms: &OrderTerms,
    lines: &[SaleLine],
    balance: Decimal,
    redeem: Decimal,
) -> Result<Quote, RulesError> {
    p.validate()?;
    o.validate_up_to(MAX_OVERRIDE_CATEGORIES + levels::MAX_TIER_CATEGORIES)?;
    if lines.len() > MAX_LINES {
        return Err(invalid(
            "lines",
            format!("{} lines exceed {MAX_LINES}", lines.len()),
        ));
    }
    if balance > MAX_AMOUNT {
        return Err(invalid(
            "balance",
            format!("{balance} exceeds {MAX_AMOUNT}"),
        ));
    }
    check_amount("redeem", redeem)?;
    let prec = p.precision;
    if redeem != floor_to(redeem, prec) {
        return Err(invalid(
            "redeem",
            format!("{redeem} has more than {prec} decimal places"),
        ));
    }

    struct Pre {
        total: Decimal,
        rate: Decimal,
        cap: Decimal,
        excluded: bool,
    }
    // The cashier's cap for this order is the receipt's share too.
    let flat_cap = terms.cap_percent.or(o.cap_percent).unwrap_or(p.cap_percent);
    let mut pre = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let total = line_total(i, line, prec)?;
        let rule = p.category(&line.category);
        let own = o.categories.get(&line.category);
        let excluded = rule.is_some_and(|r| r.excluded) || p.excluded_skus.contains(&line.sku);
        let (rate, cap_pct) = if excluded {
            (Decimal::ZERO, Decimal::ZERO)
        } else {
            let rate = own
                .and_then(|c| c.accrual_percent)
                .or(rule.and_then(|r| r.accrual_percent))
                .or(o.accrual_percent)
                .unwrap_or(p.default_accrual_percent);
            let category_cap = own
                .and_then(|c| c.cap_percent)
                .or(rule.and_then(|r| r.cap_percent));
            let cap = basis::line_percent(p.cap_basis, category_cap, flat_cap);
            // The cashier's terms for this order beat every other rate.
            let rate = terms.accrual_percent.unwrap_or(rate);
            let cap = terms.cap_percent.unwrap_or(cap);
            let rate = if line.discount > Decimal::ZERO && !p.accrue_on_discounted {
                Decimal::ZERO
            } else {
                rate
            };
            (rate, cap)
        };
        let cap = floor_to(total * cap_pct / HUNDRED, prec);
        pre.push(Pre {
            total,
            rate,
            cap,
            excluded,
        });
    }

    let total: Decimal = pre.iter().map(|l| l.total).sum();
    let base = pre.iter().filter(|l| !l.excluded).map(|l| l.total).sum();
    let receipt_cap = basis::receipt_cap(p.cap_basis, flat_cap, base, prec);
    let cap_sum: Decimal = pre.iter().map(|l| l.cap).sum();
    let cap_sum = receipt_cap.map_or(cap_sum, |r| r.min(cap_sum));
    let balance = floor_to(balance.max(Decimal::ZERO), prec);
    let (max_redeemable, limit) = if balance < cap_sum {
        (balance, RedeemLimit::Balance)
    } else {
        (cap_sum, RedeemLimit::Cap)
    };
    if redeem > max_redeemable {
        return Err(RulesError::RedeemTooHigh {
            requested: redeem,
            max: max_redeemable,
            limit,
        });
    }

    let caps: Vec<i128> = pre.iter().map(|l| to_units(l.cap, prec)).collect();
    let parts = allocate(to_units(redeem, prec), &caps);

    let mut out = Vec::with_capacity(pre.len());
    for (l, part) in pre.into_iter().zip(parts) {
        let redeemed = from_units(part, prec);
        let eligible = if l.rate.is_zero() {
            Decimal::ZERO
        } else {
            switches::eligible(p.accrue_on_points_part, l.total, redeemed, redeem)
        };
        out.push(LineQuote {
            total: l.total,
            rate: l.rate,
            eligible,
            cap: l.cap,
            redeemed,
            accrual: eligible * l.rate / HUNDRED,
        });
    }
    let eligible_total = out.iter().map(|l| l.eligible).sum();
    let accrual_sum: Decimal = out.iter().map(|l| l.accrual).sum();
    Ok(Quote {
        lines: out,
        total,
        eligible_total,
        max_redeemable,
        receipt_cap,
        redeem,
        money_paid: total - redeem,
        accrual: floor_to(accrual_sum, p.accrual_rounding.scale()),
        campaigns: Vec::new(),
        promo: None,
        extra_accrual: Decimal::ZERO,
    })
}

/// The points side of refunding `amount` of `original`, after
/// `already_refunded` was refunded by earlier returns.
///
/// Cumulative: with `f(x) = floor(v × x / total)` to the sale's precision,
/// each share is `f(already + amount) − f(already)`. `f` never decreases and
/// `f(total) = v`, so the shares of successive partial refunds are never
/// negative, never add up to more than the original, and add up to exactly
/// the original accrual/redemption once the whole sale is refunded (the
/// flooring only delays a fraction to a later return).
pub fn refund_share(
    original: &CommittedSale,
    already_refunded: Decimal,
    amount: Decimal,
) -> Result<RefundShare, RulesError> {
    check_amount("original.total", original.total)?;
    check_amount("original.accrued", original.accrued)?;
    check_amount("original.redeemed", original.redeemed)?;
    check_amount("already_refunded", already_refunded)?;
    check_amount("amount", amount)?;
    if original.precision > MAX_PRECISION {
        return Err(invalid(
            "original.precision",
            format!("{} exceeds {MAX_PRECISION}", original.precision),
        ));
    }
    // Money has the sale's decimals; more would be rounded away unseen.
    if amount != amount.trunc_with_scale(original.precision) {
        return Err(invalid(
            "amount",
            format!(
                "{amount} has more than {} decimal places",
                original.precision
            ),
        ));
    }
    let remaining = (original.total - already_refunded).max(Decimal::ZERO);
    if amount > remaining {
        return Err(RulesError::RefundTooHigh {
            requested: amount,
            remaining,
        });
    }
    if original.total.is_zero() {
        return Ok(RefundShare {
            clawback: Decimal::ZERO,
            return_points: Decimal::ZERO,
        });
    }
    let done = already_refunded + amount;
    let f = |v: Decimal, x: Decimal, prec: u32| -> Decimal {
        if x == original.total {
            // Exactly v, whatever v's own number of places.
            v
        } else {
            floor_to(v * x / original.total, prec).min(v)
        }
    };
    // Accrued points come back in the accrual's unit; spent points in the
    // sale's precision, as they were spent.
    let unit = original.accrual_scale.min(original.precision);
    let prec = original.precision;
    Ok(RefundShare {
        clawback: f(original.accrued, done, unit) - f(original.accrued, already_refunded, unit),
        return_points: f(original.redeemed, done, prec)
            - f(original.redeemed, already_refunded, prec),
    })
}
