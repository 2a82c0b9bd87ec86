//! Extraction rules: the card number and optional secret in a swipe or a scan.
//!
//! Loyalty cards come as magnetic-stripe cards (the number on track 1 or 2,
//! a redemption secret often in track 2's discretionary data or on track 3)
//! or as printed QR codes and barcodes (plain digits, `number;secret`, a URL
//! with query parameters, EAN-13). A reader's configuration picks where each
//! part is; this module applies that choice to one read.
//!
//! # What counts as a card
//!
//! - The **number** is 4 to 32 ASCII digits once surrounding whitespace is
//!   trimmed ([`NUMBER_LEN`]). Loyalty numbers are digits: anything else in
//!   the extracted text (letters, dashes, inner spaces, non-ASCII digits) means
//!   there is no number there, for every rule including [`ScanRegex`] — a
//!   regex that wants to skip separators has to leave them outside the
//!   `number` group. A [`Check`] may further require a valid check digit and
//!   a [`SwipeRule`] may narrow the length.
//! - The **secret** is 1 to 32 ASCII letters or digits ([`SECRET_MAX_LEN`]),
//!   also trimmed. When a rule names a place for the secret, the secret is
//!   required there (a regex whose `secret` group did not take part in the
//!   match is the exception: the regex itself made it optional).
//!
//! # Errors never carry card data
//!
//! [`ExtractError`] names the place that was looked at and what was wrong with
//! it — never the number or the secret. [`Extracted`]'s `Debug` masks the
//! number and [`Secret`]'s `Debug` prints `[redacted]`, so a stray `{:?}` in a
//! log line leaks neither.

use std::fmt;
use std::ops::RangeInclusive;

use regex::{Regex, RegexBuilder};

/// Lengths a card number may have, in digits, whatever the rule.
pub const NUMBER_LEN: RangeInclusive<usize> = 4..=32;

/// The longest secret, in characters.
pub const SECRET_MAX_LEN: usize = 32;

/// Compiled-size limit for a configured [`ScanRegex`] (and its lazy DFA), so
/// that a hostile or careless configuration cannot make the daemon allocate
/// without bound.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The longest [`ScanRegex`] pattern accepted, in bytes.
pub const REGEX_MAX_PATTERN_LEN: usize = 4096;

/// The fields of one decoded magnetic-stripe swipe, as the track decoder
/// hands them over. `None` means the track (or its part) was not read.
///
/// `Debug` shows which fields are present and their lengths, not their text.
#[derive(Clone, Copy, Default)]
pub struct SwipeFields<'a> {
    /// Track 1's primary account number.
    pub track1_account: Option<&'a str>,
    /// Track 2's primary account number.
    pub track2_account: Option<&'a str>,
    /// Track 2's data after the field separator, as the decoder delivers it.
    pub track2_discretionary: Option<&'a str>,
    /// Track 3's data between the sentinels.
    pub track3_data: Option<&'a str>,
}

impl fmt::Debug for SwipeFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Len(Option<usize>);
        impl fmt::Debug for Len {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    Some(n) => write!(f, "<{n} bytes>"),
                    None => f.write_str("None"),
                }
            }
        }
        f.debug_struct("SwipeFields")
            .field("track1_account", &Len(self.track1_account.map(str::len)))
            .field("track2_account", &Len(self.track2_account.map(str::len)))
            .field(
                "track2_discretionary",
                &Len(self.track2_discretionary.map(str::len)),
            )
            .field("track3_data", &Len(self.track3_data.map(str::len)))
            .finish()
    }
}

/// A place in a swipe.
///
/// Offsets and lengths count characters; track data is ASCII, and a field
/// holding anything else yields nothing (never a panic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Track 1's account number, whole.
    Track1Account,
    /// Track 2's account number, whole.
    Track2Account,
    /// Exactly `len` characters of track 2's discretionary data, starting at
    /// `offset`. Shorter data yields nothing.
    Track2Discretionary {
        /// Characters skipped.
        offset: usize,
        /// Characters taken.
        len: usize,
    },
    /// Track 3's data from `offset`: exactly `len` characters, or the rest of
    /// the track when `len` is `None`.
    Track3 {
        /// Characters skipped.
        offset: usize,
        /// Characters taken; `None` for the rest of the track.
        len: Option<usize>,
    },
    /// Track 3's data up to its first field separator `=` (all of it when
    /// there is none): the number of cards that carry it only on track 3.
    Track3Number,
}

impl Field {
    /// The field's text in `s`, if the swipe has it in full.
    fn text<'a>(&self, s: &SwipeFields<'a>) -> Option<&'a str> {
        match *self {
            Field::Track1Account => s.track1_account,
            Field::Track2Account => s.track2_account,
            Field::Track2Discretionary { offset, len } => {
                slice_ascii(s.track2_discretionary?, offset, Some(len))
            }
            Field::Track3 { offset, len } => slice_ascii(s.track3_data?, offset, len),
            Field::Track3Number => {
                let data = s.track3_data?;
                Some(data.split_once('=').map_or(data, |(number, _)| number))
            }
        }
    }
}

/// Names the place, for error messages; never shows its content.
impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Field::Track1Account => f.write_str("track 1 account number"),
            Field::Track2Account => f.write_str("track 2 account number"),
            Field::Track2Discretionary { offset, len } => write!(
                f,
                "track 2 discretionary data ({len} characters from offset {offset})"
            ),
            Field::Track3 {
                offset,
                len: Some(len),
            } => write!(f, "track 3 data ({len} characters from offset {offset})"),
            Field::Track3 { offset, len: None } => {
                write!(f, "track 3 data (from offset {offset} to the end)")
            }
            Field::Track3Number => f.write_str("track 3 number (up to the first '=')"),
        }
    }
}

/// `len` characters (or the rest) of ASCII text `s` from `offset`; `None` if
/// `s` is not ASCII or too short.
fn slice_ascii(s: &str, offset: usize, len: Option<usize>) -> Option<&str> {
    if !s.is_ascii() {
        return None;
    }
    match len {
        Some(len) => s.get(offset..offset.checked_add(len)?),
        None => s.get(offset..),
    }
}

/// A check-digit scheme the card number must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Check {
    /// Any digits.
    #[default]
    None,
    /// The Luhn (mod 10) check used by payment and many loyalty cards.
    Luhn,
    /// The EAN-13 check; implies exactly 13 digits.
    Ean13,
}

impl Check {
    /// The scheme's name, as used in [`ExtractError::CheckFailed`].
    pub fn name(self) -> &'static str {
        match self {
            Check::None => "none",
            Check::Luhn => "Luhn",
            Check::Ean13 => "EAN-13",
        }
    }

    /// Whether `digits` satisfies the scheme.
    pub fn passes(self, digits: &str) -> bool {
        match self {
            Check::None => true,
            Check::Luhn => luhn_valid(digits),
            Check::Ean13 => ean13_valid(digits),
        }
    }
}

/// Where a magnetic-stripe card keeps its number and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwipeRule {
    /// Places tried in order for the number; the first one holding a valid
    /// number wins. Absent or blank places are skipped.
    pub number: Vec<Field>,
    /// Where the secret is; when set, a swipe without it is an error.
    pub secret: Option<Field>,
    /// Check digit on the number.
    pub check: Check,
    /// Narrows the number's length (in digits) within [`NUMBER_LEN`].
    pub number_len: Option<RangeInclusive<usize>>,
}

impl Default for SwipeRule {
    /// Track 2's account number, else track 1's; no secret, no check.
    fn default() -> Self {
        SwipeRule {
            number: vec![Field::Track2Account, Field::Track1Account],
            secret: None,
            check: Check::None,
            number_len: None,
        }
    }
}

/// Built-in scan payload formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanPreset {
    /// The whole payload is the number.
    Digits,
    /// `number;secret`, split at the first `;`.
    NumberSemicolonSecret,
    /// A URL (or anything with a `?`) whose query string holds the number
    /// and, if `secret_param` is set, the secret. Parameter names match
    /// exactly; the first of repeated parameters counts; others are ignored.
    UrlQuery {
        /// Parameter holding the number, e.g. `card`.
        number_param: String,
        /// Parameter holding the secret, e.g. `code`; required when set.
        secret_param: Option<String>,
    },
    /// Exactly 13 digits with a valid EAN-13 check digit, whatever
    /// [`ScanRules::check`] says.
    Ean13,
}

/// A configured regular expression for scan payloads.
///
/// It must have a named group `number` and may have one named `secret`.
/// It must match the whole (trimmed) payload: it is compiled as
/// `^(?:pattern)$`, so a card-like run inside garbage is not a card.
#[derive(Clone)]
pub struct ScanRegex {
    re: Regex,
    pattern: String,
}

impl ScanRegex {
    /// Compiles and checks `pattern`, with a size limit fit for untrusted
    /// configuration ([`REGEX_SIZE_LIMIT`], [`REGEX_MAX_PATTERN_LEN`]).
    pub fn new(pattern: &str) -> Result<ScanRegex, ExtractError> {
        if pattern.len() > REGEX_MAX_PATTERN_LEN {
            return Err(ExtractError::BadRegex(format!(
                "regex is {} bytes long, more than the {REGEX_MAX_PATTERN_LEN} allowed",
                pattern.len()
            )));
        }
        let build = |p: &str| {
            RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
        };
        let bad = |e: regex::Error| ExtractError::BadRegex(format!("regex does not compile: {e}"));
        // On its own first: a pattern such as `a)|(?:b` would otherwise close
        // the anchoring group and escape the anchors.
        build(pattern).map_err(bad)?;
        // A pattern ending inside an `(?x)` comment swallows the closing
        // `)$`; a newline ends the comment (and is ignored in `x` mode, the
        // only mode in which the first form can fail here).
        let re = build(&format!("^(?:{pattern})$"))
            .or_else(|_| build(&format!("^(?:{pattern}\n)$")))
            .map_err(bad)?;
        if !re.capture_names().any(|n| n == Some("number")) {
            return Err(ExtractError::BadRegex(
                "regex has no named group `number` for the card number, \
                 such as (?P<number>[0-9]+)"
                    .to_owned(),
            ));
        }
        Ok(ScanRegex {
            re,
            pattern: pattern.to_owned(),
        })
    }

    /// The pattern as configured (without the anchors).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the regex has a `secret` group.
    pub fn has_secret(&self) -> bool {
        self.re.capture_names().any(|n| n == Some("secret"))
    }
}

impl fmt::Debug for ScanRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScanRegex").field(&self.pattern).finish()
    }
}

/// Two regexes are equal when their patterns are.
impl PartialEq for ScanRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for ScanRegex {}

/// One way of reading a scan payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanRule {
    /// A built-in format.
    Preset(ScanPreset),
    /// A configured regular expression.
    Regex(ScanRegex),
}

/// How a scanner's payloads are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRules {
    /// Tried in order; the first that yields a valid card wins.
    pub rules: Vec<ScanRule>,
    /// Check digit on the number, for every rule.
    pub check: Check,
}

impl Default for ScanRules {
    /// Plain digits, no check.
    fn default() -> Self {
        ScanRules {
            rules: vec![ScanRule::Preset(ScanPreset::Digits)],
            check: Check::None,
        }
    }
}

/// A card secret (PIN, redemption code). `Debug` prints `[redacted]`; there
/// is no `Display`: reading it takes [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A card found in a swipe or scan.
///
/// `Debug` shows the number masked (see [`Extracted::masked_number`]) and the
/// secret as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Extracted {
    /// 4 to 32 ASCII digits.
    pub number: String,
    /// The secret, if the rule asks for one (or a regex found one).
    pub secret: Option<Secret>,
}

impl Extracted {
    /// The number as `****` plus its last four characters, or just `****`
    /// when the number is shorter than 8 (its last four would be most or all
    /// of it).
    pub fn masked_number(&self) -> String {
        let n = self.number.chars().count();
        if n < 8 {
            return "****".to_owned();
        }
        let tail: String = self.number.chars().skip(n - 4).collect();
        format!("****{tail}")
    }
}

impl fmt::Debug for Extracted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extracted")
            .field("number", &format_args!("{}", self.masked_number()))
            .field("secret", &self.secret)
            .finish()
    }
}

/// Why no card came out of a swipe or scan, or why a rule is unusable.
///
/// Messages name places and rules, never the number or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// No place held 4 to 32 digits (absent, blank, or not all digits).
    #[error("no card number in {tried}")]
    NoNumber {
        /// The places looked at.
        tried: String,
    },
    /// The number's check digit is wrong.
    #[error("card number fails the {check} check digit")]
    CheckFailed {
        /// The scheme's name ([`Check::name`]).
        check: &'static str,
    },
    /// The number has too few or too many digits.
    #[error("card number has {len} digits, expected {expected}")]
    BadLength {
        /// Digits found.
        len: usize,
        /// Digits allowed, e.g. `4 to 32`.
        expected: String,
    },
    /// The payload has none of the scan rules' formats.
    #[error("payload has none of the configured formats ({rules} scan rules tried)")]
    NoRuleMatched {
        /// How many rules were tried.
        rules: usize,
    },
    /// The rule's secret is required but absent or blank.
    #[error("no secret in {field}")]
    SecretMissing {
        /// The place looked at.
        field: String,
    },
    /// The secret is longer than 32 characters or not all letters and digits.
    #[error("secret in {field} is not 1 to 32 ASCII letters or digits")]
    SecretInvalid {
        /// The place looked at.
        field: String,
    },
    /// A configured regex is unusable; the text says why.
    #[error("{0}")]
    BadRegex(String),
}

/// The card in a swipe, per `rule`.
///
/// The number comes from the first of `rule.number` that holds a valid
/// number; if none does, the error is the first place's that held something
/// (or [`ExtractError::NoNumber`] listing them all when none held anything).
pub fn extract_swipe(rule: &SwipeRule, s: &SwipeFields<'_>) -> Result<Extracted, ExtractError> {
    let bounds = number_bounds(rule.number_len.as_ref());
    let mut first_err = None;
    let mut number = None;
    for field in &rule.number {
        let Some(text) = field.text(s).filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        match validate_number(text, || field.to_string(), rule.check, bounds) {
            Ok(n) => {
                number = Some(n);
                break;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    let number = match (number, first_err) {
        (Some(n), _) => n,
        (None, Some(e)) => return Err(e),
        (None, None) => {
            let tried = if rule.number.is_empty() {
                "the swipe (no number fields configured)".to_owned()
            } else {
                rule.number
                    .iter()
                    .map(Field::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ExtractError::NoNumber { tried });
        }
    };
    let secret = match &rule.secret {
        None => None,
        Some(field) => Some(validate_secret(field.text(s), || field.to_string())?),
    };
    Ok(Extracted { number, secret })
}

/// The card in a scan payload, per `rules`.
///
/// The payload is trimmed, then each rule is tried in order and the first
/// that yields a valid card wins. If none does, the error is that of the first
/// rule that recognised the payload's format (digits, a `;`, the URL
/// parameter, 13 digits, a regex match) but found no valid card in it, else
/// [`ExtractError::NoRuleMatched`].
pub fn extract_scan(rules: &ScanRules, payload: &str) -> Result<Extracted, ExtractError> {
    let payload = payload.trim();
    let mut first_err = None;
    for (i, rule) in rules.rules.iter().enumerate() {
        match apply_scan_rule(rule, payload, rules.check) {
            Ok(Some(card)) => return Ok(card),
            Ok(None) => {}
            Err(e) => {
                tracing::trace!(rule = i, error = %e, "scan rule recognised the payload, no valid card");
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(ExtractError::NoRuleMatched {
        rules: rules.rules.len(),
    }))
}

/// `Ok(None)`: the payload does not have the rule's format.
fn apply_scan_rule(
    rule: &ScanRule,
    payload: &str,
    check: Check,
) -> Result<Option<Extracted>, ExtractError> {
    let bounds = number_bounds(None);
    match rule {
        ScanRule::Preset(ScanPreset::Digits) => {
            if payload.is_empty() || !payload.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            let number =
                validate_number(payload, || "the scanned digits".to_owned(), check, bounds)?;
            Ok(Some(Extracted {
                number,
                secret: None,
            }))
        }
        ScanRule::Preset(ScanPreset::NumberSemicolonSecret) => {
            let Some((number, secret)) = payload.split_once(';') else {
                return Ok(None);
            };
            let number =
                validate_number(number, || "the text before ';'".to_owned(), check, bounds)?;
            let secret = validate_secret(Some(secret), || "the text after ';'".to_owned())?;
            Ok(Some(Extracted {
                number,
                secret: Some(secret),
            }))
        }
        ScanRule::Preset(ScanPreset::UrlQuery {
            number_param,
            secret_param,
        }) => {
            let Some(number) = query_param(payload, number_param) else {
                return Ok(None);
            };
            let number = validate_number(
                &number,
                || format!("URL parameter `{number_param}`"),
                check,
                bounds,
            )?;
            let secret = match secret_param {
                None => None,
                Some(p) => Some(validate_secret(query_param(payload, p).as_deref(), || {
                    format!("URL parameter `{p}`")
                })?),
            };
            Ok(Some(Extracted { number, secret }))
        }
        ScanRule::Preset(ScanPreset::Ean13) => {
            if payload.len() != 13 || !payload.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(None);
            }
            if !ean13_valid(payload) {
                return Err(ExtractError::CheckFailed {
                    check: Check::Ean13.name(),
                });
            }
            let number = validate_number(payload, || "the EAN-13 code".to_owned(), check, bounds)?;
            Ok(Some(Extracted {
                number,
                secret: None,
            }))
        }
        ScanRule::Regex(re) => {
            let Some(caps) = re.re.captures(payload) else {
                return Ok(None);
            };
            let what = || "the regex group `number`".to_owned();
            let number = caps.name("number").map_or("", |m| m.as_str());
            let number = validate_number(number, what, check, bounds)?;
            let secret = match caps.name("secret").map(|m| m.as_str()) {
                Some(s) if !s.trim().is_empty() => Some(validate_secret(Some(s), || {
                    "the regex group `secret`".to_owned()
                })?),
                _ => None,
            };
            Ok(Some(Extracted { number, secret }))
        }
    }
}

/// Allowed number lengths: [`NUMBER_LEN`] narrowed by `extra`.
fn number_bounds(extra: Option<&RangeInclusive<usize>>) -> (usize, usize) {
    let (mut lo, mut hi) = (*NUMBER_LEN.start(), *NUMBER_LEN.end());
    if let Some(r) = extra {
        lo = lo.max(*r.start());
        hi = hi.min(*r.end());
    }
    (lo, hi)
}

/// `text`, trimmed, if it is a valid number; `tried` names the place.
fn validate_number(
    text: &str,
    tried: impl FnOnce() -> String,
    check: Check,
    (lo, hi): (usize, usize),
) -> Result<String, ExtractError> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ExtractError::NoNumber { tried: tried() });
    }
    if !(lo..=hi).contains(&t.len()) {
        let expected = if lo == hi {
            format!("exactly {lo}")
        } else if lo > hi {
            format!("{lo} to {hi} (an empty range: check number_len)")
        } else {
            format!("{lo} to {hi}")
        };
        return Err(ExtractError::BadLength {
            len: t.len(),
            expected,
        });
    }
    if !check.passes(t) {
        return Err(ExtractError::CheckFailed {
            check: check.name(),
        });
    }
    Ok(t.to_owned())
}

/// `text`, trimmed, if it is a valid secret; `field` names the place.
fn validate_secret(
    text: Option<&str>,
    field: impl FnOnce() -> String,
) -> Result<Secret, ExtractError> {
    let t = text.map_or("", str::trim);
    if t.is_empty() {
        return Err(ExtractError::SecretMissing { field: field() });
    }
    if t.len() > SECRET_MAX_LEN || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ExtractError::SecretInvalid { field: field() });
    }
    Ok(Secret::new(t))
}

/// The first value of query parameter `name` in `payload` (after the first
/// `?`, before any `#`), percent-decoded with `+` as space.
fn query_param(payload: &str, name: &str) -> Option<String> {
    let (_, query) = payload.split_once('?')?;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
}

/// Decodes `%XX` and `+`; a `%` not followed by two hex digits stays as is.
/// Bytes that do not form UTF-8 become U+FFFD (and so never a number).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn hex(c: &u8) -> Option<u8> {
    (*c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Whether `digits` (at least 2 ASCII digits) ends in a valid Luhn check digit.
pub fn luhn_valid(digits: &str) -> bool {
    digits.len() >= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && luhn_sum(digits.as_bytes(), false) == 0
}

/// The Luhn check digit to append to `body` (at least one ASCII digit).
pub fn luhn_check_digit(body: &str) -> Option<u8> {
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((10 - luhn_sum(body.as_bytes(), true)) % 10)
}

/// The Luhn sum mod 10 of ASCII digits, doubling every second digit from the
/// right: starting with the rightmost if `double_last`.
fn luhn_sum(digits: &[u8], double_last: bool) -> u8 {
    let mut sum = 0u8;
    for (i, b) in digits.iter().rev().enumerate() {
        let d = b - b'0';
        let d = if (i % 2 == 0) == double_last {
            let d2 = d * 2;
            if d2 > 9 { d2 - 9 } else { d2 }
        } else {
            d
        };
        sum = (sum + d) % 10;
    }
    sum
}

/// Whether `digits` is 13 ASCII digits with a valid EAN-13 check digit.
pub fn ean13_valid(digits: &str) -> bool {
    digits.len() == 13
        && digits
            .get(..12)
            .and_then(ean13_check_digit)
            .is_some_and(|check| digits.as_bytes().get(12) == Some(&(b'0' + check)))
}

/// The EAN-13 check digit for a 12-digit body.
pub fn ean13_check_digit(body12: &str) -> Option<u8> {
    if body12.len() != 12 || !body12.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = body12
        .bytes()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    u8::try_from((10 - sum % 10) % 10).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // 6035123412341238 passes Luhn; 6035123412341234 does not.
    const PAN: &str = "6035123412341238";
    const PAN_BAD_LUHN: &str = "6035123412341234";

    fn fields<'a>(
        t1: Option<&'a str>,
        t2: Option<&'a str>,
        disc: Option<&'a str>,
        t3: Option<&'a str>,
    ) -> SwipeFields<'a> {
        SwipeFields {
            track1_account: t1,
            track2_account: t2,
            track2_discretionary: disc,
            track3_data: t3,
        }
    }

    fn scan(rules: Vec<ScanRule>, check: Check) -> ScanRules {
        ScanRules { rules, check }
    }

    fn preset(p: ScanPreset) -> ScanRule {
        ScanRule::Preset(p)
    }

    fn url(number: &str, secret: Option<&str>) -> ScanRule {
        preset(ScanPreset::UrlQuery {
            number_param: number.to_owned(),
            secret_param: secret.map(str::to_owned),
        })
    }

    fn regex(p: &str) -> ScanRule {
        ScanRule::Regex(ScanRegex::new(p).unwrap())
    }

    fn every_preset() -> Vec<ScanRule> {
        vec![
            preset(ScanPreset::Digits),
            preset(ScanPreset::NumberSemicolonSecret),
            url("card", Some("code")),
            url("card", None),
            preset(ScanPreset::Ean13),
            regex(r"(?P<number>.+?)(?:;(?P<secret>.*))?"),
        ]
    }

    fn secret_of(x: &Extracted) -> Option<&str> {
        x.secret.as_ref().map(Secret::expose)
    }

    // ---- check digits ----

    #[test]
    fn luhn_vectors() {
        assert!(luhn_valid("79927398713"));
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid(PAN));
        assert!(luhn_valid("00"));
        for bad in [
            "79927398710",
            "79927398711",
            "79927398714",
            "4111111111111112",
            PAN_BAD_LUHN,
            "0",
            "",
            "7992739871a",
            " 79927398713",
            "7992739871３",
        ] {
            assert!(!luhn_valid(bad), "{bad:?}");
        }
        assert_eq!(luhn_check_digit("7992739871"), Some(3));
        assert_eq!(luhn_check_digit("411111111111111"), Some(1));
        assert_eq!(luhn_check_digit("603512341234123"), Some(8));
        assert_eq!(luhn_check_digit("0"), Some(0));
        assert_eq!(luhn_check_digit(""), None);
        assert_eq!(luhn_check_digit("12a"), None);
    }

    #[test]
    fn ean13_vectors() {
        assert!(ean13_valid("4006381333931"));
        assert!(ean13_valid("5901234123457"));
        assert!(ean13_valid("0000000000000"));
        for bad in [
            "4006381333932",
            "5901234123450",
            "400638133393",
            "40063813339310",
            "400638133393a",
            "",
            "４006381333931",
        ] {
            assert!(!ean13_valid(bad), "{bad:?}");
        }
        assert_eq!(ean13_check_digit("400638133393"), Some(1));
        assert_eq!(ean13_check_digit("590123412345"), Some(7));
        assert_eq!(ean13_check_digit("40063813339"), None);
        assert_eq!(ean13_check_digit("4006381333931"), None);
        assert_eq!(ean13_check_digit("40063813339x"), None);
    }

    #[test]
    fn check_names() {
        assert_eq!(Check::Luhn.name(), "Luhn");
        assert_eq!(Check::Ean13.name(), "EAN-13");
        assert!(Check::None.passes("1234"));
        assert!(!Check::Ean13.passes(PAN));
    }

    // ---- swipes ----

    #[test]
    fn swipe_number_from_track2() {
        // Track 2 is preferred over track 1.
        let s = fields(Some("1111222233334444"), Some(PAN), Some("1015821"), None);
        let got = extract_swipe(&SwipeRule::default(), &s).unwrap();
        assert_eq!(got.number, PAN);
        assert_eq!(got.secret, None);
    }

    #[test]
    fn swipe_falls_back_to_track1() {
        let rule = SwipeRule::default();
        let got = extract_swipe(&rule, &fields(Some(PAN), None, None, None)).unwrap();
        assert_eq!(got.number, PAN);
        // Blank track 2 counts as absent; surrounding spaces are trimmed.
        let got = extract_swipe(&rule, &fields(Some(" 12345678 "), Some("  "), None, None));
        assert_eq!(got.unwrap().number, "12345678");
    }

    #[test]
    fn swipe_falls_back_when_preferred_field_is_invalid() {
        let rule = SwipeRule {
            check: Check::Luhn,
            ..SwipeRule::default()
        };
        let s = fields(Some(PAN), Some(PAN_BAD_LUHN), None, None);
        assert_eq!(extract_swipe(&rule, &s).unwrap().number, PAN);
    }

    #[test]
    fn swipe_no_number() {
        let rule = SwipeRule::default();
        let err = extract_swipe(&rule, &fields(None, None, Some("1015821"), None)).unwrap_err();
        assert_eq!(
            err,
            ExtractError::NoNumber {
                tried: "track 2 account number, track 1 account number".into()
            }
        );
        let err = extract_swipe(&rule, &fields(None, Some("6035-1234"), None, None)).unwrap_err();
        assert!(matches!(err, ExtractError::NoNumber { .. }), "{err}");
        let rule = SwipeRule {
            number: vec![],
            ..SwipeRule::default()
        };
        let err = extract_swipe(&rule, &fields(None, Some(PAN), None, None)).unwrap_err();
        assert!(matches!(err, ExtractError::NoNumber { .. }), "{err}");
    }

    #[test]
    fn swipe_secret_from_track2_discretionary() {
        // ;6035123412341238=4912 1015821? with the decoder's discretionary data
        // "1015821": service code 101, secret 5821 at offset 3.
        let rule = SwipeRule {
            secret: Some(Field::Track2Discretionary { offset: 3, len: 4 }),
            ..SwipeRule::default()
        };
        let got = extract_swipe(&rule, &fields(None, Some(PAN), Some("1015821"), None)).unwrap();
        assert_eq!(got.number, PAN);
        assert_eq!(secret_of(&got), Some("5821"));

        let rule = SwipeRule {
            secret: Some(Field::Track2Discretionary { offset: 4, len: 4 }),
            ..SwipeRule::default()
        };
        let got = extract_swipe(&rule, &fields(None, Some(PAN), Some("101547110000"), None));
        assert_eq!(secret_of(&got.unwrap()), Some("4711"));
    }

    #[test]
    fn swipe_secret_missing_when_discretionary_too_short() {
        let rule = SwipeRule {
            secret: Some(Field::Track2Discretionary { offset: 4, len: 4 }),
            ..SwipeRule::default()
        };
        for disc in [Some("1015821"), Some(""), None, Some("1015é821x")] {
            let err = extract_swipe(&rule, &fields(None, Some(PAN), disc, None)).unwrap_err();
            assert_eq!(
                err,
                ExtractError::SecretMissing {
                    field: "track 2 discretionary data (4 characters from offset 4)".into()
                },
                "{disc:?}"
            );
        }
        // Huge offsets do not overflow.
        let rule = SwipeRule {
            secret: Some(Field::Track2Discretionary {
                offset: usize::MAX,
                len: usize::MAX,
            }),
            ..SwipeRule::default()
        };
        let err = extract_swipe(&rule, &fields(None, Some(PAN), Some("1015821"), None));
        assert!(matches!(err, Err(ExtractError::SecretMissing { .. })));
    }

    #[test]
    fn swipe_secret_from_track3() {
        let rule = SwipeRule {
            secret: Some(Field::Track3 {
                offset: 13,
                len: Some(6),
            }),
            ..SwipeRule::default()
        };
        let t3 = "0112345678901A7b9Kz=000";
        let got = extract_swipe(&rule, &fields(None, Some(PAN), None, Some(t3))).unwrap();
        assert_eq!(secret_of(&got), Some("A7b9Kz"));

        let rule = SwipeRule {
            secret: Some(Field::Track3 {
                offset: 2,
                len: None,
            }),
            ..SwipeRule::default()
        };
        let got = extract_swipe(&rule, &fields(None, Some(PAN), None, Some("01Secret42 ")));
        assert_eq!(secret_of(&got.unwrap()), Some("Secret42"));
        // No track 3, or a secret with a separator in it.
        let err = extract_swipe(&rule, &fields(None, Some(PAN), None, None)).unwrap_err();
        assert!(matches!(err, ExtractError::SecretMissing { .. }), "{err}");
        let err =
            extract_swipe(&rule, &fields(None, Some(PAN), None, Some("01ab=cd"))).unwrap_err();
        assert!(matches!(err, ExtractError::SecretInvalid { .. }), "{err}");
        let long = format!("01{}", "x".repeat(33));
        let err = extract_swipe(&rule, &fields(None, Some(PAN), None, Some(&long))).unwrap_err();
        assert!(matches!(err, ExtractError::SecretInvalid { .. }), "{err}");
    }

    #[test]
    fn swipe_number_from_track3() {
        let rule = SwipeRule {
            number: vec![Field::Track3 {
                offset: 2,
                len: Some(16),
            }],
            ..SwipeRule::default()
        };
        let t3 = format!("01{PAN}=1234");
        let got = extract_swipe(&rule, &fields(None, None, None, Some(&t3))).unwrap();
        assert_eq!(got.number, PAN);
    }

    #[test]
    fn swipe_number_from_track3_up_to_the_separator() {
        let rule = SwipeRule {
            number: vec![Field::Track2Account, Field::Track3Number],
            ..SwipeRule::default()
        };
        let t3 = format!("{PAN}=0042");
        let got = extract_swipe(&rule, &fields(None, None, None, Some(&t3))).unwrap();
        assert_eq!(got.number, PAN);
        let got = extract_swipe(&rule, &fields(None, None, None, Some(PAN))).unwrap();
        assert_eq!(got.number, PAN);
    }

    #[test]
    fn swipe_luhn_failure() {
        let rule = SwipeRule {
            check: Check::Luhn,
            ..SwipeRule::default()
        };
        let err = extract_swipe(&rule, &fields(None, Some(PAN_BAD_LUHN), None, None)).unwrap_err();
        assert_eq!(err, ExtractError::CheckFailed { check: "Luhn" });
        assert!(extract_swipe(&rule, &fields(None, Some(PAN), None, None)).is_ok());
    }

    #[test]
    fn swipe_lengths() {
        let rule = SwipeRule::default();
        let err = extract_swipe(&rule, &fields(None, Some("123"), None, None)).unwrap_err();
        assert_eq!(
            err,
            ExtractError::BadLength {
                len: 3,
                expected: "4 to 32".into()
            }
        );
        let long = "1".repeat(33);
        let err = extract_swipe(&rule, &fields(None, Some(&long), None, None)).unwrap_err();
        assert!(matches!(err, ExtractError::BadLength { len: 33, .. }));
        let rule = SwipeRule {
            number_len: Some(16..=16),
            ..SwipeRule::default()
        };
        assert!(extract_swipe(&rule, &fields(None, Some(PAN), None, None)).is_ok());
        let err = extract_swipe(&rule, &fields(None, Some("12345678"), None, None)).unwrap_err();
        assert_eq!(
            err,
            ExtractError::BadLength {
                len: 8,
                expected: "exactly 16".into()
            }
        );
    }

    #[test]
    fn swipe_fields_debug_hides_data() {
        let s = fields(Some(PAN), Some(PAN), Some("5821"), Some("Secret42"));
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(PAN) && !dbg.contains("5821") && !dbg.contains("Secret42"));
        assert!(dbg.contains("<16 bytes>"), "{dbg}");
    }

    // ---- scans ----

    #[test]
    fn scan_digits() {
        let got = extract_scan(&ScanRules::default(), " 1234567890123\r\n").unwrap();
        assert_eq!(got.number, "1234567890123");
        assert_eq!(got.secret, None);
        let err = extract_scan(&ScanRules::default(), "123").unwrap_err();
        assert!(matches!(err, ExtractError::BadLength { len: 3, .. }));
        let err = extract_scan(&ScanRules::default(), "").unwrap_err();
        assert_eq!(err, ExtractError::NoRuleMatched { rules: 1 });
        let luhn = scan(vec![preset(ScanPreset::Digits)], Check::Luhn);
        assert!(extract_scan(&luhn, PAN).is_ok());
        assert_eq!(
            extract_scan(&luhn, PAN_BAD_LUHN).unwrap_err(),
            ExtractError::CheckFailed { check: "Luhn" }
        );
    }

    #[test]
    fn scan_number_semicolon_secret() {
        let rules = scan(vec![preset(ScanPreset::NumberSemicolonSecret)], Check::None);
        let got = extract_scan(&rules, "1234567890123;4711").unwrap();
        assert_eq!(got.number, "1234567890123");
        assert_eq!(secret_of(&got), Some("4711"));
        let got = extract_scan(&rules, "1234567890123 ; Ab12 ").unwrap();
        assert_eq!(secret_of(&got), Some("Ab12"));
        assert!(matches!(
            extract_scan(&rules, "1234567890123;").unwrap_err(),
            ExtractError::SecretMissing { .. }
        ));
        assert!(matches!(
            extract_scan(&rules, "1234567890123;47;11").unwrap_err(),
            ExtractError::SecretInvalid { .. }
        ));
        assert!(matches!(
            extract_scan(&rules, "abc;4711").unwrap_err(),
            ExtractError::NoNumber { .. }
        ));
        assert_eq!(
            extract_scan(&rules, "1234567890123").unwrap_err(),
            ExtractError::NoRuleMatched { rules: 1 }
        );
    }

    #[test]
    fn scan_url_query() {
        let rules = scan(vec![url("card", Some("code"))], Check::None);
        let got = extract_scan(&rules, "https://club.example/c?card=12345678&code=Ab12").unwrap();
        assert_eq!(got.number, "12345678");
        assert_eq!(secret_of(&got), Some("Ab12"));
        // Percent-encoding, `+` as space (trimmed), other parameters, order,
        // repeated parameters (first wins), a fragment.
        let got = extract_scan(
            &rules,
            "club://x/y?utm=a%20b&c%6Fde=%41b%312+&card=%31%32345678&card=999999#frag",
        )
        .unwrap();
        assert_eq!(got.number, "12345678");
        assert_eq!(secret_of(&got), Some("Ab12"));
        // Secret required when configured.
        let err = extract_scan(&rules, "https://club.example/c?card=12345678").unwrap_err();
        assert_eq!(
            err,
            ExtractError::SecretMissing {
                field: "URL parameter `code`".into()
            }
        );
        // Number must be digits.
        let err = extract_scan(&rules, "https://club.example/c?card=12%2D34&code=x").unwrap_err();
        assert!(matches!(err, ExtractError::NoNumber { .. }), "{err}");
        // No number parameter, no query at all: not this format.
        for p in [
            "https://club.example/c?cards=12345678&code=Ab12",
            "https://club.example/c",
            "card=12345678",
            "https://club.example/c?card",
        ] {
            assert!(extract_scan(&rules, p).is_err(), "{p}");
        }
        assert_eq!(
            extract_scan(&rules, "https://club.example/c?x=1").unwrap_err(),
            ExtractError::NoRuleMatched { rules: 1 }
        );
        // Without a secret parameter configured, none is required.
        let rules = scan(vec![url("card", None)], Check::None);
        let got = extract_scan(&rules, "https://club.example/?card=12345678").unwrap();
        assert_eq!((got.number.as_str(), got.secret), ("12345678", None));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%4a%4A"), "JJ");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
        assert_eq!(percent_decode("%FF1"), "\u{FFFD}1");
    }

    #[test]
    fn scan_ean13() {
        let rules = scan(vec![preset(ScanPreset::Ean13)], Check::None);
        assert_eq!(
            extract_scan(&rules, "4006381333931").unwrap().number,
            "4006381333931"
        );
        assert_eq!(
            extract_scan(&rules, "4006381333932").unwrap_err(),
            ExtractError::CheckFailed { check: "EAN-13" }
        );
        assert_eq!(
            extract_scan(&rules, "400638133393").unwrap_err(),
            ExtractError::NoRuleMatched { rules: 1 }
        );
        // An invalid EAN-13 still reads as plain digits if that rule follows.
        let rules = scan(
            vec![preset(ScanPreset::Ean13), preset(ScanPreset::Digits)],
            Check::None,
        );
        assert_eq!(
            extract_scan(&rules, "4006381333932").unwrap().number,
            "4006381333932"
        );
    }

    #[test]
    fn scan_regex_named_groups() {
        let rules = scan(
            vec![regex(
                r"CLUB-(?P<number>[0-9]{8})(?:-(?P<secret>[A-Z0-9]{4}))?",
            )],
            Check::None,
        );
        let got = extract_scan(&rules, "CLUB-12345678-AB12").unwrap();
        assert_eq!(got.number, "12345678");
        assert_eq!(secret_of(&got), Some("AB12"));
        let got = extract_scan(&rules, "CLUB-12345678").unwrap();
        assert_eq!((got.number.as_str(), got.secret), ("12345678", None));
        // Partial matches of garbage are not cards.
        for p in ["xxCLUB-12345678", "CLUB-12345678-AB12yy", "CLUB-123456789"] {
            assert_eq!(
                extract_scan(&rules, p).unwrap_err(),
                ExtractError::NoRuleMatched { rules: 1 },
                "{p}"
            );
        }
        // A number group that captures non-digits yields no number.
        let rules = scan(vec![regex(r"(?P<number>\w+)")], Check::None);
        assert!(matches!(
            extract_scan(&rules, "12ab5678").unwrap_err(),
            ExtractError::NoNumber { .. }
        ));
    }

    #[test]
    fn scan_regex_anchoring_cannot_be_escaped() {
        // Alternation stays inside the anchors.
        let rules = scan(vec![regex(r"(?P<number>\d{8})|x")], Check::None);
        assert!(extract_scan(&rules, "garbage 12345678 garbage").is_err());
        // Leftmost-first alternation still matches the whole payload.
        let rules = scan(vec![regex(r"(?P<number>\d{4}|\d{8})")], Check::None);
        assert_eq!(extract_scan(&rules, "12345678").unwrap().number, "12345678");
        // Multi-line flags inside the pattern do not loosen the outer anchors.
        let rules = scan(vec![regex(r"(?m)^(?P<number>\d{8})$")], Check::None);
        assert!(extract_scan(&rules, "junk\n12345678\njunk").is_err());
        // A pattern that would close the anchoring group is rejected.
        assert!(ScanRegex::new(r"x)|(?P<number>\d+").is_err());
        // A trailing verbose-mode comment does not swallow the anchors.
        let re = ScanRegex::new("(?x) (?P<number> [0-9]{8} ) # the card").unwrap();
        let rules = scan(vec![ScanRule::Regex(re)], Check::None);
        assert_eq!(extract_scan(&rules, "12345678").unwrap().number, "12345678");
        assert!(extract_scan(&rules, "12345678\n").is_ok()); // trimmed
        assert!(extract_scan(&rules, "a12345678").is_err());
    }

    #[test]
    fn scan_regex_construction_errors() {
        let err = ScanRegex::new(r"(?P<card>\d+);(?P<secret>\w+)").unwrap_err();
        assert!(matches!(err, ExtractError::BadRegex(_)));
        assert!(err.to_string().contains("`number`"), "{err}");
        let err = ScanRegex::new(r"(?P<number>\d+").unwrap_err();
        assert!(
            err.to_string().starts_with("regex does not compile"),
            "{err}"
        );
        let err = ScanRegex::new(&"a".repeat(REGEX_MAX_PATTERN_LEN + 1)).unwrap_err();
        assert!(err.to_string().contains("bytes long"), "{err}");
        // Small pattern, huge program: refused by the size limit.
        let err = ScanRegex::new(r"(?P<number>\w{1000}){1000}").unwrap_err();
        assert!(matches!(err, ExtractError::BadRegex(_)), "{err}");
        let ok = ScanRegex::new(r"(?<number>\d+)").unwrap();
        assert_eq!(ok.as_str(), r"(?<number>\d+)");
        assert!(!ok.has_secret());
        assert_eq!(ok, ScanRegex::new(r"(?<number>\d+)").unwrap());
        assert_eq!(format!("{ok:?}"), r#"ScanRegex("(?<number>\\d+)")"#);
    }

    #[test]
    fn scan_first_matching_rule_wins() {
        let split = regex(r"(?P<number>\d{4})(?P<secret>\d{4})");
        let digits = preset(ScanPreset::Digits);
        let rules = scan(vec![split.clone(), digits.clone()], Check::None);
        let got = extract_scan(&rules, "12345678").unwrap();
        assert_eq!(
            (got.number.as_str(), secret_of(&got)),
            ("1234", Some("5678"))
        );
        let rules = scan(vec![digits, split], Check::None);
        let got = extract_scan(&rules, "12345678").unwrap();
        assert_eq!((got.number.as_str(), secret_of(&got)), ("12345678", None));
        // A rule that recognises the payload but finds no valid card gives way.
        let rules = scan(
            vec![
                preset(ScanPreset::NumberSemicolonSecret),
                regex(r"(?P<number>\d+);.*"),
            ],
            Check::None,
        );
        let got = extract_scan(&rules, "12345678;not-a-secret!").unwrap();
        assert_eq!((got.number.as_str(), got.secret), ("12345678", None));
    }

    #[test]
    fn scan_nothing_matched() {
        let rules = scan(every_preset()[..5].to_vec(), Check::None);
        let err = extract_scan(&rules, "hello world").unwrap_err();
        assert_eq!(err, ExtractError::NoRuleMatched { rules: 5 });
        let err = extract_scan(&scan(vec![], Check::None), "12345678").unwrap_err();
        assert_eq!(err, ExtractError::NoRuleMatched { rules: 0 });
    }

    #[test]
    fn scan_check_applies_to_every_rule() {
        let rules = scan(vec![preset(ScanPreset::NumberSemicolonSecret)], Check::Luhn);
        assert!(extract_scan(&rules, &format!("{PAN};4711")).is_ok());
        assert_eq!(
            extract_scan(&rules, &format!("{PAN_BAD_LUHN};4711")).unwrap_err(),
            ExtractError::CheckFailed { check: "Luhn" }
        );
    }

    // ---- redaction ----

    #[test]
    fn extracted_debug_masks() {
        let x = Extracted {
            number: PAN.to_owned(),
            secret: Some(Secret::new("Zq9Secret")),
        };
        let dbg = format!("{x:?}");
        assert_eq!(
            dbg,
            r#"Extracted { number: ****1238, secret: Some([redacted]) }"#
        );
        assert!(!dbg.contains(PAN) && !dbg.contains("Zq9Secret"));
        // Short numbers are hidden entirely; odd content does not panic.
        for n in ["1234", "1234567", "", "ééééééééé"] {
            let x = Extracted {
                number: n.to_owned(),
                secret: None,
            };
            let dbg = format!("{x:?}");
            if n.chars().count() < 8 {
                assert!(dbg.contains("number: ****,"), "{dbg}");
            }
        }
        assert_eq!(format!("{:#?}", Secret::new("Zq9Secret")), "[redacted]");
    }

    #[test]
    fn error_messages_never_contain_card_data() {
        let number = "6035123499887766";
        let secret = "Zq9Secret";
        let secret_bad = "Zq9Secret!";
        let mut errors = Vec::new();
        let sw = |rule: &SwipeRule, s: SwipeFields<'_>| extract_swipe(rule, &s).unwrap_err();
        let with = |check, secret| SwipeRule {
            check,
            secret,
            ..SwipeRule::default()
        };
        let t3 = Some(Field::Track3 {
            offset: 0,
            len: None,
        });
        errors.push(sw(
            &with(Check::Luhn, None),
            fields(None, Some(number), None, None),
        ));
        errors.push(sw(
            &with(Check::Ean13, None),
            fields(None, Some(number), None, None),
        ));
        errors.push(sw(
            &with(Check::None, None),
            fields(None, Some("60351234abcd"), None, None),
        ));
        errors.push(sw(
            &with(Check::None, None),
            fields(None, Some(&"6".repeat(40)), None, None),
        ));
        errors.push(sw(
            &with(Check::None, t3.clone()),
            fields(None, Some(number), None, None),
        ));
        errors.push(sw(
            &with(Check::None, t3),
            fields(None, Some(number), None, Some(secret_bad)),
        ));
        let all = scan(every_preset(), Check::Luhn);
        for p in [
            format!("{number};{secret}"),
            format!("{number};{secret_bad}"),
            format!("{number};"),
            format!("https://club.example/c?card={number}&code={secret}"),
            format!("https://club.example/c?card={number}&code={secret_bad}"),
            format!("https://club.example/c?card={number}"),
            format!("x{number}x;{secret}"),
            number.to_owned(),
        ] {
            errors.push(extract_scan(&all, &p).unwrap_err());
        }
        let ean = scan(vec![preset(ScanPreset::Ean13)], Check::None);
        errors.push(extract_scan(&ean, "4006381333932").unwrap_err());
        let plain = scan(every_preset()[..5].to_vec(), Check::None);
        errors.push(extract_scan(&plain, &format!("x{number}x {secret}")).unwrap_err());
        errors.push(ScanRegex::new(r"(?P<card>\d+)").unwrap_err());

        let kinds: std::collections::HashSet<_> =
            errors.iter().map(std::mem::discriminant).collect();
        assert_eq!(
            kinds.len(),
            7,
            "every ExtractError variant covered: {errors:?}"
        );
        for e in &errors {
            for text in [e.to_string(), format!("{e:?}")] {
                assert!(!text.contains(number), "{text}");
                assert!(!text.contains(secret), "{text}");
                assert!(!text.contains("99887766"), "{text}");
            }
        }
    }

    #[test]
    fn defaults() {
        let r = SwipeRule::default();
        assert_eq!(r.number, vec![Field::Track2Account, Field::Track1Account]);
        assert_eq!((r.secret, r.check, r.number_len), (None, Check::None, None));
        let s = ScanRules::default();
        assert_eq!(s.rules, vec![ScanRule::Preset(ScanPreset::Digits)]);
        assert_eq!(s.check, Check::None);
    }

    // ---- properties ----

    proptest! {
        #[test]
        fn scan_never_panics(payload in any::<String>()) {
            for rule in every_preset() {
                for check in [Check::None, Check::Luhn, Check::Ean13] {
                    let _ = extract_scan(&scan(vec![rule.clone()], check), &payload);
                }
            }
        }

        #[test]
        fn scan_never_panics_on_url_like(
            payload in "[a-z:/.]{0,12}\\?([a-z%+0-9A-F]{0,6}=?[%+0-9A-Fa-z]{0,8}&?){0,5}#?.{0,4}"
        ) {
            let _ = extract_scan(&scan(every_preset(), Check::None), &payload);
        }

        #[test]
        fn swipe_never_panics(
            t1 in proptest::option::of(any::<String>()),
            t2 in proptest::option::of(any::<String>()),
            disc in proptest::option::of(any::<String>()),
            t3 in proptest::option::of(any::<String>()),
            offset in 0usize..40,
            len in 0usize..40,
            huge in any::<usize>(),
        ) {
            let s = SwipeFields {
                track1_account: t1.as_deref(),
                track2_account: t2.as_deref(),
                track2_discretionary: disc.as_deref(),
                track3_data: t3.as_deref(),
            };
            for secret in [
                Field::Track2Discretionary { offset, len },
                Field::Track2Discretionary { offset: huge, len: huge },
                Field::Track3 { offset, len: Some(len) },
                Field::Track3 { offset: huge, len: None },
                Field::Track1Account,
            ] {
                let rule = SwipeRule {
                    number: vec![
                        Field::Track2Account,
                        Field::Track3 { offset, len: None },
                        Field::Track2Discretionary { offset, len },
                        Field::Track1Account,
                    ],
                    secret: Some(secret),
                    check: Check::Luhn,
                    number_len: Some(len..=offset),
                };
                let _ = extract_swipe(&rule, &s);
            }
        }

        #[test]
        fn digitless_text_is_never_a_card(payload in "[\\PC&&[^0-9]]{0,80}") {
            for check in [Check::None, Check::Luhn] {
                prop_assert!(extract_scan(&scan(every_preset(), check), &payload).is_err());
            }
            let s = SwipeFields {
                track1_account: Some(&payload),
                track2_account: Some(&payload),
                track2_discretionary: Some(&payload),
                track3_data: Some(&payload),
            };
            let rule = SwipeRule {
                number: vec![
                    Field::Track1Account,
                    Field::Track3 { offset: 0, len: None },
                ],
                ..SwipeRule::default()
            };
            prop_assert!(extract_swipe(&rule, &s).is_err());
        }

        #[test]
        fn luhn_check_digit_appended_validates(body in "[0-9]{1,40}") {
            let d = luhn_check_digit(&body).unwrap();
            prop_assert!(d <= 9);
            let full = format!("{body}{d}");
            prop_assert!(luhn_valid(&full));
            for other in (0..=9u8).filter(|&o| o != d) {
                let wrong = format!("{body}{other}");
                prop_assert!(!luhn_valid(&wrong));
            }
        }

        #[test]
        fn ean13_check_digit_appended_validates(body in "[0-9]{12}") {
            let d = ean13_check_digit(&body).unwrap();
            let full = format!("{body}{d}");
            prop_assert!(ean13_valid(&full));
            for other in (0..=9u8).filter(|&o| o != d) {
                let wrong = format!("{body}{other}");
                prop_assert!(!ean13_valid(&wrong));
            }
        }

        #[test]
        fn valid_digits_round_trip(number in "[0-9]{4,32}", secret in "[0-9A-Za-z]{1,32}") {
            let rules = scan(every_preset(), Check::None);
            let got = extract_scan(&rules, &format!(" {number};{secret} ")).unwrap();
            prop_assert_eq!(&got.number, &number);
            prop_assert_eq!(got.secret.as_ref().map(Secret::expose), Some(secret.as_str()));
            let url = format!("https://club.example/c?code={secret}&card={number}");
            let got = extract_scan(&rules, &url).unwrap();
            prop_assert_eq!(&got.number, &number);
            let dbg = format!("{got:?}");
            prop_assert!(!dbg.contains(&number));
            prop_assert_eq!(
                dbg,
                format!("Extracted {{ number: {}, secret: Some([redacted]) }}", got.masked_number())
            );
        }
    }
}
