//! `[reader.framing]` and `[reader.card]`: how a reader's messages are
//! delimited and where the card number and secret are in them.

use std::time::Duration;

use posbridge_drivers::reader::extract::{
    Check, Field, ScanPreset, ScanRegex, ScanRule, ScanRules, SwipeRule,
};
use posbridge_drivers::reader::framing;
use serde::Deserialize;

/// `[reader.framing]` (serial readers): how messages are delimited.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FramingConfig {
    /// Message terminator: `cr` (also accepts LF and CRLF), `lf`, `crlf`,
    /// `etx`, or `none` (then `gap_ms` alone ends a message).
    pub suffix: SuffixConfig,
    /// Bytes the reader puts before each message, in hex (`"02"` for STX).
    pub prefix_hex: Option<String>,
    /// Silence after which pending bytes form a message; 0 turns it off.
    pub gap_ms: u64,
    /// Longest message; longer ones are dropped with a `card.read_error`.
    pub max_len: usize,
    /// Magstripe readers: a line that follows the previous one with less
    /// than this many milliseconds of silence after its last byte belongs
    /// to the same swipe (readers that end every track with CR or Enter).
    /// Measured from the last byte, so it does not depend on the baud rate;
    /// 50 ms also covers a USB-serial adapter's 16 ms latency timer. It is
    /// added to every swipe's latency; 0 for readers that send a whole
    /// swipe as one line.
    pub swipe_gap_ms: u64,
    /// Magstripe readers: whether the reader sends an LRC character after
    /// each end sentinel (`sent`, `not_sent`), a switch in the reader;
    /// `auto` tells from the bytes.
    pub lrc: LrcConfig,
}

/// `[reader.framing] lrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LrcConfig {
    /// Tell from the bytes.
    #[default]
    Auto,
    /// Always one after each end sentinel.
    Sent,
    /// Never.
    NotSent,
}

impl Default for FramingConfig {
    fn default() -> Self {
        FramingConfig {
            suffix: SuffixConfig::Cr,
            prefix_hex: None,
            gap_ms: 0,
            max_len: 4096,
            swipe_gap_ms: 50,
            lrc: LrcConfig::Auto,
        }
    }
}

/// `[reader.scan]`: what becomes of what a reader reads besides cards.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanConfig {
    /// Whether the reader delivers anything when the daemon starts; the API
    /// (`reader.enable` / `reader.disable`) changes it at run time.
    pub enabled: bool,
    /// Also announce a loyalty card as a `scan` (besides `card.read`), for
    /// POS software that wants every label.
    pub cards_as_goods: bool,
    /// A product's own bar code (an EAN-13, EAN-8, UPC-A or ITF-14 number
    /// with a right check digit, outside the shops' restricted-circulation
    /// ranges) is goods, whatever the card rules say: otherwise the
    /// `digits` preset takes every product for a card. Off for a
    /// programme whose cards carry real trade item numbers.
    pub trade_items_as_goods: bool,
    /// Scanners: type every scan that is not a loyalty card into the
    /// focused window through a virtual keyboard (uinput), for POS software
    /// that only reads keyboard-wedge scanners.
    pub passthrough: bool,
    /// Typed before each passed-through scan.
    pub passthrough_prefix: String,
    /// Typed after it; `"\r"` (Enter) by default.
    pub passthrough_suffix: String,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            enabled: true,
            cards_as_goods: false,
            trade_items_as_goods: true,
            passthrough: false,
            passthrough_prefix: String::new(),
            passthrough_suffix: "\r".into(),
        }
    }
}

/// Message terminators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuffixConfig {
    /// CR, LF or CRLF.
    Cr,
    /// LF only.
    Lf,
    /// CR LF.
    Crlf,
    /// ETX (0x03).
    Etx,
    /// No terminator: the gap ends a message.
    None,
}

/// `[reader.card]`: where the card is in what the reader sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardRuleConfig {
    /// Magstripe: tracks holding the number, tried in order.
    pub number: Vec<TrackField>,
    /// Magstripe: where the secret code is.
    pub secret: SecretField,
    /// For `secret = "track2_discretionary"` or `"track3"`: first character.
    pub secret_offset: usize,
    /// Its length (required for track 2 discretionary data).
    pub secret_len: Option<usize>,
    /// Check digit on the number: `none`, `luhn` or `ean13`.
    pub check: CheckConfig,
    /// Scanners: built-in payload formats tried in order after `regex`.
    pub presets: Vec<PresetConfig>,
    /// Scanners: URL preset's query parameter holding the number.
    pub url_number_param: String,
    /// Scanners: URL preset's query parameter holding the secret.
    pub url_secret_param: Option<String>,
    /// Scanners: a regular expression with named groups `number` and
    /// optionally `secret`, matched against the whole payload.
    pub regex: Option<String>,
}

impl Default for CardRuleConfig {
    fn default() -> Self {
        CardRuleConfig {
            number: vec![TrackField::Track2, TrackField::Track1],
            secret: SecretField::None,
            secret_offset: 0,
            secret_len: None,
            check: CheckConfig::None,
            presets: vec![PresetConfig::Digits, PresetConfig::NumberSecret],
            url_number_param: "card".into(),
            url_secret_param: None,
            regex: None,
        }
    }
}

/// A track that may hold the card number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackField {
    /// Track 1 primary account number.
    Track1,
    /// Track 2 primary account number.
    Track2,
    /// Track 3: its data up to the first `=` (cards that carry their number
    /// only there).
    Track3,
}

/// Where a magstripe card keeps its secret code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretField {
    /// The card has none.
    None,
    /// Inside track 2's discretionary data.
    Track2Discretionary,
    /// On track 3.
    Track3,
}

/// Check-digit validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConfig {
    /// None.
    None,
    /// Luhn (mod 10), as on payment-style numbers.
    Luhn,
    /// EAN-13.
    Ean13,
}

/// Built-in scan payload formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresetConfig {
    /// Digits only: the whole payload is the number.
    Digits,
    /// `NUMBER;SECRET`.
    NumberSecret,
    /// A URL whose query parameters hold number and secret.
    Url,
    /// EAN-13 with a valid check digit.
    Ean13,
}

/// Why a reader's rules could not be built (bad regex, bad framing).
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The regex is invalid or lacks a `number` group.
    #[error("card.regex: {0}")]
    Regex(String),
    /// `prefix_hex` is not hex.
    #[error("framing.prefix_hex: \"{0}\" is not a hex byte string such as \"02\"")]
    Prefix(String),
    /// The framing settings contradict each other.
    #[error("framing: {0}")]
    Framing(String),
}

/// The frame decoder of a serial reader.
pub fn frame_codec(f: &FramingConfig) -> Result<framing::FrameCodec, RuleError> {
    let prefix = match &f.prefix_hex {
        None => None,
        Some(h) => Some(parse_hex(h).ok_or_else(|| RuleError::Prefix(h.clone()))?),
    };
    let config = framing::FrameConfig {
        prefix,
        suffix: match f.suffix {
            SuffixConfig::Cr => framing::Suffix::Cr,
            SuffixConfig::Lf => framing::Suffix::Lf,
            SuffixConfig::Crlf => framing::Suffix::CrLf,
            SuffixConfig::Etx => framing::Suffix::Etx,
            SuffixConfig::None => framing::Suffix::None,
        },
        inter_char_timeout: (f.gap_ms > 0).then(|| Duration::from_millis(f.gap_ms)),
        max_len: f.max_len,
    };
    framing::FrameCodec::new(config).map_err(|e| RuleError::Framing(e.to_string()))
}

fn parse_hex(h: &str) -> Option<Vec<u8>> {
    let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    if h.is_empty() || !h.len().is_multiple_of(2) || h.len() > 16 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The extraction rules of a reader entry.
pub fn rules(c: &CardRuleConfig) -> Result<(SwipeRule, ScanRules), RuleError> {
    let check = match c.check {
        CheckConfig::None => Check::None,
        CheckConfig::Luhn => Check::Luhn,
        CheckConfig::Ean13 => Check::Ean13,
    };
    let swipe = SwipeRule {
        number: c
            .number
            .iter()
            .map(|t| match t {
                TrackField::Track1 => Field::Track1Account,
                TrackField::Track2 => Field::Track2Account,
                TrackField::Track3 => Field::Track3Number,
            })
            .collect(),
        secret: match c.secret {
            SecretField::None => None,
            SecretField::Track2Discretionary => Some(Field::Track2Discretionary {
                offset: c.secret_offset,
                len: c.secret_len.unwrap_or(4),
            }),
            SecretField::Track3 => Some(Field::Track3 {
                offset: c.secret_offset,
                len: c.secret_len,
            }),
        },
        check,
        ..SwipeRule::default()
    };
    let mut scan = Vec::new();
    if let Some(re) = &c.regex {
        scan.push(ScanRule::Regex(
            ScanRegex::new(re).map_err(|e| RuleError::Regex(e.to_string()))?,
        ));
    }
    for p in &c.presets {
        scan.push(ScanRule::Preset(match p {
            PresetConfig::Digits => ScanPreset::Digits,
            PresetConfig::NumberSecret => ScanPreset::NumberSemicolonSecret,
            PresetConfig::Url => ScanPreset::UrlQuery {
                number_param: c.url_number_param.clone(),
                secret_param: c.url_secret_param.clone(),
            },
            PresetConfig::Ean13 => ScanPreset::Ean13,
        }));
    }
    Ok((swipe, ScanRules { rules: scan, check }))
}
