//! ISO/IEC 7811/7813 magnetic-stripe track data: the text a card reader
//! sends for one swipe, decoded into tracks and fields the way a UnifiedPOS
//! MSR service does with `ParseDecodeData` set.
//!
//! [`parse`] takes the bytes of one swipe as the keyboard or serial layer
//! delivered them and returns a [`Swipe`]: the tracks it could decode and,
//! for the others, why not.
//!
//! # What is accepted
//!
//! - **Track 1** (IATA, 6-bit alphanumeric, characters 0x20–0x5F):
//!   `%B<account>^<name>^<YYMM><service code><discretionary>?`. Only format
//!   code `B` is decoded; the name is split into surname, first name,
//!   middle name or initial and title (`SURNAME/FIRST M.TITLE`).
//! - **Track 2** (ABA, 4-bit numeric, characters `0-9 : ; < = > ?`):
//!   `;<account>=<YYMM><service code><discretionary>?`, or just
//!   `;<account>?` as on many loyalty and gift cards.
//! - **Track 3** (4-bit numeric): `;<data>?`, or `+<data>?` from readers that
//!   mark track 3 with `+`; its content is issuer-defined and kept as is.
//!
//! In the expiry and service-code positions a field separator stands for an
//! absent field (ISO/IEC 7813), so `^^101` and `==101` carry no expiry date.
//!
//! Tracks may come on separate lines (CR, LF or CR LF) or one after another
//! on one line (`%B...?;...?`). Spaces and tabs at the start and end of a
//! line are ignored. Each track may be followed by its LRC character.
//!
//! # Telling track 2 from track 3
//!
//! Both start with `;`. A `;` track is track 2 when all of these hold, and
//! track 3 otherwise:
//!
//! 1. no track 2 (decoded or failed) came earlier in this swipe — readers
//!    send tracks in order, so the second `;` track is track 3;
//! 2. it fits on track 2: at most 40 characters counting start sentinel, end
//!    sentinel and LRC;
//! 3. it has no `=`, or its first `=` is within the first 20 characters (an
//!    account number has at most 19 digits).
//!
//! Except: once a track 3 came (say as `+...?`), the next `;` track is
//! track 2 whatever it looks like, and fails if it breaks track 2's rules.
//!
//! A `+` track is always track 3, a `%` track always track 1. Two tracks
//! with the same number in one swipe: the second is reported as a duplicate.
//! ISO 4909 track-3 data (a 2-digit format code, then an account number and
//! `=`) that is short enough to pass the rules above is taken for track 2
//! when no track 2 precedes it; real track-3 data is almost always longer
//! than 40 characters.
//!
//! # Readers that strip sentinels
//!
//! A line that does not start with a start sentinel is a track without
//! sentinels (and without LRC, so nothing to check there):
//!
//! - a line containing `^` is track 1 (format code `B` and all);
//! - a line made only of track-2/3 characters, or containing `=`, is
//!   numeric: track 2 or track 3 by the rules above, so the first numeric
//!   line is track 2 and the next one track 3;
//! - anything else is an error that names no track.
//!
//! A `?` in such a line (an end sentinel without a start sentinel) is a bad
//! character.
//!
//! # LRC
//!
//! ISO/IEC 7811-2 gives every character on the stripe an odd-parity bit and
//! ends each track with a longitudinal redundancy check character: each of
//! its data bits is the XOR of that bit over all characters from the start
//! sentinel through the end sentinel, and its own parity bit is then set to
//! make it odd (it is *not* the XOR of the parity bits). Readers that pass
//! the LRC on send it in the same ASCII code as the data, which has no room
//! for parity bits, so the data bits are what can be compared: the 6-bit
//! values (`char - 0x20`) for track 1 and the 4-bit values (`char - 0x30`)
//! for tracks 2 and 3. A track 3 marked with `+` is computed with the `;`
//! its stripe actually carries.
//!
//! The character right after an end sentinel `?` is taken for the LRC,
//! except:
//!
//! - the end of the line (the reader sends no LRC — nothing to check);
//! - a space or tab after a track 2/3 (not a 4-bit character), or a tab
//!   after a track 1; a space after a track 1 is its LRC (value 0) unless it
//!   ends the line, in which case it cannot be told from padding and the
//!   LRC is not checked;
//! - a start sentinel (`%`, `;`, `+`) followed by more data: that starts the
//!   next track. A start sentinel at the end of the line or followed by
//!   another start sentinel is an LRC. (A `;` LRC directly followed by a
//!   track without its own start sentinel cannot be told apart; it is read
//!   as a start sentinel.)
//!
//! A wrong LRC fails that track with [`TrackErrorKind::BadLrc`].
//!
//! # Errors
//!
//! `%E?`, `;E?` and `+E?` are the reader's "could not read this track" and
//! become [`TrackErrorKind::ReadError`]. Characters outside a track's set
//! (and its own start sentinel inside its data) fail it with
//! [`TrackErrorKind::BadCharacter`] naming the byte and its offset in the
//! input. Length limits count the start sentinel, end sentinel and LRC
//! whether or not the reader sent them, as they are on the card: track 1 at
//! most 79 characters, track 2 at most 40, track 3 at most 107.
//!
//! [`parse`] fails as a whole only when the input is empty or blank
//! ([`MsrError::Empty`]), longer than [`MAX_INPUT`] bytes
//! ([`MsrError::TooLong`]), or when no track could be decoded
//! ([`MsrError::NoTrack`]).
//!
//! # Keeping card data out of logs
//!
//! The `Debug` output of [`Swipe`], [`Track1`], [`Track2`], [`Track3`] and
//! [`CardholderName`] never shows track data in clear: account numbers are
//! masked to their last four digits (or entirely, when shorter than 12
//! digits), raw data, discretionary data and cardholder names are shown as
//! their length only.

use std::fmt;

/// Longest input [`parse`] accepts: three full tracks with sentinels, LRCs
/// and line ends are well under this.
pub const MAX_INPUT: usize = 512;

/// Track 1 length limit, sentinels and LRC included.
const TRACK1_MAX: usize = 79;
/// Track 2 length limit, sentinels and LRC included.
const TRACK2_MAX: usize = 40;
/// Track 3 length limit, sentinels and LRC included.
const TRACK3_MAX: usize = 107;
/// Start sentinel, end sentinel and LRC: counted in every length limit.
const FRAMING: usize = 3;
/// Longest primary account number (ISO/IEC 7812).
const MAX_ACCOUNT: usize = 19;
/// Longest track-1 name field (ISO/IEC 7813).
const MAX_NAME: usize = 26;
/// Account numbers shorter than this are fully masked in `Debug` output.
const MASK_SHOW_LAST4_FROM: usize = 12;

const END_SENTINEL: u8 = b'?';

/// Everything decoded from one swipe.
///
/// At least one track is present whenever [`parse`] returns it; `errors`
/// lists what went wrong with the others (and any stray data between them).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Swipe {
    /// Track 1, when present and decoded.
    pub track1: Option<Track1>,
    /// Track 2, when present and decoded.
    pub track2: Option<Track2>,
    /// Track 3, when present and decoded.
    pub track3: Option<Track3>,
    /// Tracks that were present but failed, and data that was no track, in
    /// the order they appear in the input.
    pub errors: Vec<TrackError>,
}

impl Swipe {
    /// The card's account number: track 2's, else track 1's; `None` when
    /// neither track was decoded.
    ///
    /// Treat the result as secret: do not log it.
    pub fn account(&self) -> Option<&str> {
        self.track2
            .as_ref()
            .map(|t| t.account.as_str())
            .filter(|a| !a.is_empty())
            .or_else(|| {
                self.track1
                    .as_ref()
                    .map(|t| t.account.as_str())
                    .filter(|a| !a.is_empty())
            })
    }
}

/// A decoded track 1 (IATA, format code `B`).
#[derive(Clone, PartialEq, Eq)]
pub struct Track1 {
    /// The track exactly as the reader sent it: start sentinel, data, end
    /// sentinel and LRC character, whichever of those the reader sends.
    pub raw: String,
    /// Primary account number: 1 to 19 digits.
    pub account: String,
    /// Cardholder name; `None` when the name field is absent or blank.
    pub name: Option<CardholderName>,
    /// Expiry date; `None` when absent, `0000` or not a valid month.
    pub expiry: Option<Expiry>,
    /// Three-digit service code; `None` when absent or not three digits.
    pub service_code: Option<String>,
    /// Issuer's discretionary data after the service code (may be empty).
    pub discretionary: String,
}

impl Track1 {
    /// The track's data between the sentinels, format code included, without
    /// sentinels or LRC (UnifiedPOS `Track1Data` with `DecodeData`).
    pub fn data(&self) -> &str {
        between_sentinels(&self.raw)
    }
}

/// The name field of track 1 split like UnifiedPOS does.
///
/// ISO/IEC 7813 writes it `SURNAME/FIRST M.TITLE`: surname up to `/`, first
/// name up to a space or `.`, middle name or initial up to `.`, title after
/// `.`. A field without `/` has no known structure: only `full` is set.
/// All parts are trimmed of the spaces cards pad names with.
#[derive(Clone, PartialEq, Eq)]
pub struct CardholderName {
    /// Text before `/`.
    pub surname: String,
    /// Text after `/`, up to the first space or `.`.
    pub first_name: String,
    /// Text after the first name's space, up to `.` (an initial or a whole
    /// middle name, as encoded).
    pub middle_initial: String,
    /// Text after `.` (`MR`, `DR`...).
    pub title: String,
    /// The whole name field as encoded, padding removed.
    pub full: String,
}

/// A decoded track 2 (ABA).
#[derive(Clone, PartialEq, Eq)]
pub struct Track2 {
    /// The track exactly as the reader sent it: start sentinel, data, end
    /// sentinel and LRC character, whichever of those the reader sends.
    pub raw: String,
    /// Primary account number: 1 to 19 digits.
    pub account: String,
    /// Expiry date; `None` when absent, `0000` or not a valid month.
    pub expiry: Option<Expiry>,
    /// Three-digit service code; `None` when absent or not three digits.
    pub service_code: Option<String>,
    /// Issuer's discretionary data after the service code (may be empty).
    pub discretionary: String,
}

impl Track2 {
    /// The track's data between the sentinels, without sentinels or LRC
    /// (UnifiedPOS `Track2Data` with `DecodeData`; "track 2 equivalent
    /// data" for a payment host).
    pub fn data(&self) -> &str {
        between_sentinels(&self.raw)
    }
}

/// A decoded track 3: its content is issuer-defined and not parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Track3 {
    /// The track exactly as the reader sent it: start sentinel (`;` or `+`),
    /// data, end sentinel and LRC character, whichever the reader sends.
    pub raw: String,
    /// The data between the sentinels.
    pub data: String,
}

/// A card's expiry date as encoded: `YYMM`, month validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Expiry {
    /// Two-digit year, 0..=99 (the century is not on the card).
    pub year: u8,
    /// Month, 1..=12.
    pub month: u8,
}

impl Expiry {
    /// `YYMM` as four ASCII digits; `None` for anything else or a month
    /// outside 1..=12 (so `0000`, which loyalty cards use for "never", too).
    fn from_yymm(field: &[u8]) -> Option<Self> {
        let [y1, y2, m1, m2] = *field else {
            return None;
        };
        if ![y1, y2, m1, m2].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let year = (y1 - b'0') * 10 + (y2 - b'0');
        let month = (m1 - b'0') * 10 + (m2 - b'0');
        (1..=12).contains(&month).then_some(Self { year, month })
    }
}

/// Which track of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackNo {
    /// Track 1 (IATA, alphanumeric).
    One,
    /// Track 2 (ABA, numeric).
    Two,
    /// Track 3 (numeric).
    Three,
}

impl TrackNo {
    fn index(self) -> usize {
        match self {
            Self::One => 0,
            Self::Two => 1,
            Self::Three => 2,
        }
    }

    fn max_len(self) -> usize {
        match self {
            Self::One => TRACK1_MAX,
            Self::Two => TRACK2_MAX,
            Self::Three => TRACK3_MAX,
        }
    }

    fn alphabet(self) -> Alphabet {
        match self {
            Self::One => Alphabet::Alpha,
            Self::Two | Self::Three => Alphabet::Numeric,
        }
    }
}

impl fmt::Display for TrackNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = match self {
            Self::One => 1,
            Self::Two => 2,
            Self::Three => 3,
        };
        write!(f, "track {n}")
    }
}

/// Why a track (or a stretch of the input) could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackError {
    /// The track concerned; `None` for data that could not be attributed to
    /// any track.
    pub track: Option<TrackNo>,
    /// What went wrong.
    pub kind: TrackErrorKind,
    /// Byte offset in the input: of the bad character for
    /// [`TrackErrorKind::BadCharacter`], of the LRC character for
    /// [`TrackErrorKind::BadLrc`], else of the track's first byte.
    pub offset: usize,
}

impl fmt::Display for TrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.track {
            Some(track) => write!(f, "{track}: ")?,
            None => f.write_str("swipe: ")?,
        }
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for TrackError {}

/// What went wrong with a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackErrorKind {
    /// The reader sent its error marker (`%E?`, `;E?`, `+E?`): it could not
    /// read this track.
    ReadError,
    /// The LRC character the reader sent does not match the track.
    BadLrc,
    /// A byte that this track's character set does not allow.
    BadCharacter(u8),
    /// Longer than the standard allows for this track.
    TooLong,
    /// The track's structure is wrong; the text says how.
    Malformed(&'static str),
}

impl fmt::Display for TrackErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadError => f.write_str("the reader could not read it"),
            Self::BadLrc => f.write_str("LRC check failed"),
            Self::BadCharacter(b) => write!(f, "character 0x{b:02X} not allowed"),
            Self::TooLong => f.write_str("longer than the standard allows"),
            Self::Malformed(what) => f.write_str(what),
        }
    }
}

/// Why a swipe yielded no card at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsrError {
    /// Nothing but whitespace.
    #[error("the swipe carried no data")]
    Empty,
    /// More than [`MAX_INPUT`] bytes: not one swipe.
    #[error("the swipe is {len} bytes long, more than the 512 a swipe can be")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// No track could be decoded; why, track by track.
    #[error("no track could be decoded: {}", list_errors(.errors))]
    NoTrack {
        /// What went wrong, in input order.
        errors: Vec<TrackError>,
    },
}

fn list_errors(errors: &[TrackError]) -> String {
    if errors.is_empty() {
        return "no track found".to_owned();
    }
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    out
}

/// Decodes the text of one swipe. See the [module documentation](self) for
/// what is accepted and how tracks are told apart.
///
/// Returns the decoded tracks when at least one decoded (the others' errors
/// in [`Swipe::errors`]); [`MsrError::NoTrack`] when none did, including a
/// swipe of error markers only; [`MsrError::Empty`] for empty or blank input;
/// [`MsrError::TooLong`] for input over [`MAX_INPUT`] bytes. Never panics.
pub fn parse(input: &[u8]) -> Result<Swipe, MsrError> {
    parse_with(input, Lrc::Auto)
}

/// Whether the reader sends an LRC character after each end sentinel: a
/// switch in the reader (MagTek's "send LRC"), so a per-reader setting
/// rather than a guess where it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lrc {
    /// Tell from the bytes (see the [module documentation](self)).
    #[default]
    Auto,
    /// The character after each end sentinel is the LRC, whatever it is.
    Sent,
    /// The reader sends none: what follows an end sentinel is never taken
    /// for one.
    NotSent,
}

/// [`parse`] with the reader's LRC setting.
pub fn parse_with(input: &[u8], lrc: Lrc) -> Result<Swipe, MsrError> {
    if input.len() > MAX_INPUT {
        return Err(MsrError::TooLong { len: input.len() });
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err(MsrError::Empty);
    }
    let mut decoder = Decoder {
        input,
        swipe: Swipe::default(),
        claimed: [false; 3],
        lrc,
    };
    let mut pos = 0;
    while pos < input.len() {
        let end = input[pos..]
            .iter()
            .position(|&b| is_line_end(b))
            .map_or(input.len(), |i| pos + i);
        decoder.line(pos, end);
        pos = end + 1;
    }
    let swipe = decoder.swipe;
    if swipe.track1.is_none() && swipe.track2.is_none() && swipe.track3.is_none() {
        Err(MsrError::NoTrack {
            errors: swipe.errors,
        })
    } else {
        Ok(swipe)
    }
}

/// 6-bit (track 1) or 4-bit (tracks 2 and 3) character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alphabet {
    Alpha,
    Numeric,
}

impl Alphabet {
    /// Whether `b` is a character of this set (sentinels included).
    fn contains(self, b: u8) -> bool {
        match self {
            Self::Alpha => (0x20..=0x5F).contains(&b),
            Self::Numeric => (0x30..=0x3F).contains(&b),
        }
    }

    /// The start sentinel as encoded on the stripe.
    fn start_sentinel(self) -> u8 {
        match self {
            Self::Alpha => b'%',
            Self::Numeric => b';',
        }
    }

    /// Whether `b` may appear between the sentinels.
    fn allows_in_data(self, b: u8) -> bool {
        self.contains(b) && b != self.start_sentinel() && b != END_SENTINEL
    }

    /// The character's data bits (parity is not carried in ASCII).
    fn value(self, b: u8) -> u8 {
        match self {
            Self::Alpha => b.wrapping_sub(0x20) & 0x3F,
            Self::Numeric => b.wrapping_sub(0x30) & 0x0F,
        }
    }

    /// Whether `lrc` is the longitudinal redundancy check of a track with
    /// this data: XOR of the data bits of start sentinel, data and end
    /// sentinel.
    fn lrc_matches(self, data: &[u8], lrc: u8) -> bool {
        let start = self.value(self.start_sentinel());
        let sum = data.iter().fold(start, |acc, &b| acc ^ self.value(b)) ^ self.value(END_SENTINEL);
        sum == self.value(lrc)
    }
}

/// One track's bytes as found in the input.
struct Segment<'a> {
    /// Offset of its first byte (start sentinel, or first data byte).
    start: usize,
    /// Start sentinel through LRC, whichever are present.
    raw: &'a [u8],
    /// Between the sentinels.
    data: &'a [u8],
    /// Offset of `data`.
    data_start: usize,
    /// Offset of the LRC character, when the reader sent one.
    lrc: Option<usize>,
    /// Whether it came with sentinels (only such tracks have error markers).
    framed: bool,
}

struct Decoder<'a> {
    input: &'a [u8],
    swipe: Swipe,
    /// Tracks already decoded or failed, by [`TrackNo::index`].
    claimed: [bool; 3],
    lrc: Lrc,
}

impl Decoder<'_> {
    /// One line, without its line end.
    fn line(&mut self, start: usize, end: usize) {
        let (start, end) = trim_blanks(self.input, start, end);
        if start == end {
            return;
        }
        if is_start_sentinel(self.input[start]) {
            self.framed_line(start, end);
        } else {
            self.bare_line(start, end);
        }
    }

    /// A line of one or more tracks with sentinels; `pos` is at a start
    /// sentinel.
    fn framed_line(&mut self, mut pos: usize, end: usize) {
        let input = self.input;
        while pos < end {
            let sentinel = input[pos];
            let data_start = pos + 1;
            let Some(end_sentinel) = input[data_start..end]
                .iter()
                .position(|&b| b == END_SENTINEL)
                .map(|i| data_start + i)
            else {
                let track = self.classify_framed(sentinel, &input[data_start..end]);
                self.fail(
                    Some(track),
                    TrackErrorKind::Malformed("missing end sentinel"),
                    pos,
                );
                return;
            };
            let data = &input[data_start..end_sentinel];
            let track = self.classify_framed(sentinel, data);
            let lrc = match self.lrc {
                Lrc::Auto => lrc_position(input, end_sentinel + 1, end, track.alphabet()),
                Lrc::Sent => (end_sentinel + 1 < end).then_some(end_sentinel + 1),
                Lrc::NotSent => None,
            };
            let mut next = lrc.unwrap_or(end_sentinel) + 1;
            self.segment(
                track,
                Segment {
                    start: pos,
                    raw: &input[pos..next],
                    data,
                    data_start,
                    lrc,
                    framed: true,
                },
            );
            while next < end && is_blank(input[next]) {
                next += 1;
            }
            if next >= end {
                return;
            }
            if !is_start_sentinel(input[next]) {
                self.fail(
                    None,
                    TrackErrorKind::Malformed("unexpected data after end sentinel"),
                    next,
                );
                match input[next..end].iter().position(|&b| is_start_sentinel(b)) {
                    Some(i) => next += i,
                    None => return,
                }
            }
            pos = next;
        }
    }

    /// A line without a start sentinel: one track whose reader strips
    /// sentinels, or garbage.
    fn bare_line(&mut self, start: usize, end: usize) {
        let data = &self.input[start..end];
        let track = if data.contains(&b'^') {
            TrackNo::One
        } else if data.contains(&b'=') || data.iter().all(|&b| Alphabet::Numeric.contains(b)) {
            self.classify_numeric(data)
        } else {
            // Not all numeric, so there is a non-numeric byte to name.
            if let Some((i, &b)) = data
                .iter()
                .enumerate()
                .find(|&(_, &b)| !Alphabet::Numeric.contains(b))
            {
                self.fail(None, TrackErrorKind::BadCharacter(b), start + i);
            }
            return;
        };
        self.segment(
            track,
            Segment {
                start,
                raw: data,
                data,
                data_start: start,
                lrc: None,
                framed: false,
            },
        );
    }

    fn classify_framed(&self, sentinel: u8, data: &[u8]) -> TrackNo {
        match sentinel {
            b'%' => TrackNo::One,
            b'+' => TrackNo::Three,
            _ => self.classify_numeric(data),
        }
    }

    /// Track 2 or 3 for numeric data; see the module documentation.
    fn classify_numeric(&self, data: &[u8]) -> TrackNo {
        if self.claimed[TrackNo::Two.index()] {
            return TrackNo::Three;
        }
        if self.claimed[TrackNo::Three.index()] {
            return TrackNo::Two;
        }
        let fits = data.len() + FRAMING <= TRACK2_MAX;
        let separator_ok = data
            .iter()
            .position(|&b| b == b'=')
            .is_none_or(|i| i <= MAX_ACCOUNT);
        if fits && separator_ok {
            TrackNo::Two
        } else {
            TrackNo::Three
        }
    }

    /// Checks and decodes one track, recording the result.
    fn segment(&mut self, track: TrackNo, seg: Segment<'_>) {
        if self.claimed[track.index()] {
            self.fail(
                Some(track),
                TrackErrorKind::Malformed("duplicate track"),
                seg.start,
            );
            return;
        }
        match check_and_decode(track, &seg) {
            Ok(decoded) => {
                self.claimed[track.index()] = true;
                match decoded {
                    Decoded::One(t) => self.swipe.track1 = Some(t),
                    Decoded::Two(t) => self.swipe.track2 = Some(t),
                    Decoded::Three(t) => self.swipe.track3 = Some(t),
                }
            }
            Err((kind, offset)) => self.fail(Some(track), kind, offset),
        }
    }

    fn fail(&mut self, track: Option<TrackNo>, kind: TrackErrorKind, offset: usize) {
        if let Some(track) = track {
            self.claimed[track.index()] = true;
        }
        self.swipe.errors.push(TrackError {
            track,
            kind,
            offset,
        });
    }
}

enum Decoded {
    One(Track1),
    Two(Track2),
    Three(Track3),
}

fn check_and_decode(track: TrackNo, seg: &Segment<'_>) -> Result<Decoded, (TrackErrorKind, usize)> {
    if seg.framed && seg.data == b"E" {
        return Err((TrackErrorKind::ReadError, seg.start));
    }
    let alphabet = track.alphabet();
    if let Some((i, &b)) = seg
        .data
        .iter()
        .enumerate()
        .find(|&(_, &b)| !alphabet.allows_in_data(b))
    {
        return Err((TrackErrorKind::BadCharacter(b), seg.data_start + i));
    }
    let lrc = seg.lrc.and_then(|at| {
        let byte = seg.raw.get(at.checked_sub(seg.start)?)?;
        Some((at, *byte))
    });
    if let Some((at, b)) = lrc
        && !alphabet.contains(b)
    {
        return Err((TrackErrorKind::BadCharacter(b), at));
    }
    if seg.data.len() + FRAMING > track.max_len() {
        return Err((TrackErrorKind::TooLong, seg.start));
    }
    if seg.data.is_empty() {
        return Err((TrackErrorKind::Malformed("empty track"), seg.start));
    }
    if let Some((at, b)) = lrc
        && !alphabet.lrc_matches(seg.data, b)
    {
        return Err((TrackErrorKind::BadLrc, at));
    }
    let raw = ascii(seg.raw);
    let decoded = match track {
        TrackNo::One => decode_track1(raw, seg.data).map(Decoded::One),
        TrackNo::Two => decode_track2(raw, seg.data).map(Decoded::Two),
        TrackNo::Three => Ok(Decoded::Three(Track3 {
            raw,
            data: ascii(seg.data),
        })),
    };
    decoded.map_err(|what| (TrackErrorKind::Malformed(what), seg.start))
}

fn decode_track1(raw: String, data: &[u8]) -> Result<Track1, &'static str> {
    let Some((&format_code, body)) = data.split_first() else {
        return Err("empty track");
    };
    if format_code != b'B' {
        return Err("track 1 format code is not B");
    }
    let mut fields = body.splitn(3, |&b| b == b'^');
    let account = check_account(fields.next().unwrap_or_default())?;
    let name = match fields.next() {
        Some(field) if field.len() > MAX_NAME => {
            return Err("cardholder name longer than 26 characters");
        }
        Some(field) => parse_name(field),
        None => None,
    };
    let (expiry, service_code, discretionary) = fields
        .next()
        .map_or((None, None, String::new()), |tail| parse_tail(tail, b'^'));
    Ok(Track1 {
        raw,
        account,
        name,
        expiry,
        service_code,
        discretionary,
    })
}

fn decode_track2(raw: String, data: &[u8]) -> Result<Track2, &'static str> {
    let (account, tail) = match data.iter().position(|&b| b == b'=') {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let account = check_account(account)?;
    let (expiry, service_code, discretionary) =
        tail.map_or((None, None, String::new()), |tail| parse_tail(tail, b'='));
    Ok(Track2 {
        raw,
        account,
        expiry,
        service_code,
        discretionary,
    })
}

fn check_account(field: &[u8]) -> Result<String, &'static str> {
    if (1..=MAX_ACCOUNT).contains(&field.len()) && field.iter().all(u8::is_ascii_digit) {
        Ok(ascii(field))
    } else {
        Err("account number is not 1 to 19 digits")
    }
}

/// What follows the field separator after the account number (track 2) or
/// name (track 1): `YYMM`, service code, discretionary data. A separator in
/// place of the expiry date or service code marks it absent.
///
/// ISO/IEC 7813 fields are only taken when they are plausible: a valid
/// `YYMM` (or `0000`, "never") followed by three service-code digits or a
/// separator. Otherwise the whole tail is discretionary data: loyalty cards
/// borrow the layout and often put their secret right after the separator
/// (`;7012345678901234=1234?`), and dropping four of its digits as a bad
/// expiry date would make such a card unusable.
fn parse_tail(tail: &[u8], separator: u8) -> (Option<Expiry>, Option<String>, String) {
    let mut rest = tail;
    let mut expiry = None;
    if rest.first() == Some(&separator) {
        rest = &rest[1..];
    } else {
        let plausible = rest.split_at_checked(4).and_then(|(yymm, after)| {
            let date = Expiry::from_yymm(yymm);
            let never = yymm == b"0000";
            let code_follows = after.first() == Some(&separator)
                || after
                    .get(..3)
                    .is_some_and(|c| c.iter().all(u8::is_ascii_digit));
            ((date.is_some() || never) && code_follows).then_some((date, after))
        });
        match plausible {
            Some((date, after)) => {
                expiry = date;
                rest = after;
            }
            None => return (None, None, ascii(rest)),
        }
    }
    let mut service_code = None;
    if rest.first() == Some(&separator) {
        rest = &rest[1..];
    } else if let Some((code, after)) = rest.split_at_checked(3) {
        service_code = code.iter().all(u8::is_ascii_digit).then(|| ascii(code));
        rest = after;
    }
    (expiry, service_code, ascii(rest))
}

fn parse_name(field: &[u8]) -> Option<CardholderName> {
    let full = trim_spaces(field);
    if full.is_empty() {
        return None;
    }
    let mut name = CardholderName {
        surname: String::new(),
        first_name: String::new(),
        middle_initial: String::new(),
        title: String::new(),
        full: ascii(full),
    };
    if let Some(slash) = full.iter().position(|&b| b == b'/') {
        name.surname = ascii(trim_spaces(&full[..slash]));
        let given = &full[slash + 1..];
        let (given, title) = split_once(given, b'.');
        let (first, middle) = split_once(trim_spaces(given), b' ');
        name.first_name = ascii(trim_spaces(first));
        name.middle_initial = ascii(trim_spaces(middle));
        name.title = ascii(trim_spaces(title));
    }
    Some(name)
}

/// Before and after the first `sep`; all and nothing when there is none.
fn split_once(bytes: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == sep) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

/// Where the LRC character is, if the reader sent one, given the position
/// right after an end sentinel. See the module documentation.
fn lrc_position(input: &[u8], pos: usize, end: usize, alphabet: Alphabet) -> Option<usize> {
    if pos >= end {
        return None;
    }
    match input[pos] {
        b' ' if alphabet == Alphabet::Alpha => Some(pos),
        b' ' | b'\t' => None,
        c if is_start_sentinel(c) => {
            let after = pos + 1;
            (after >= end || is_start_sentinel(input[after])).then_some(pos)
        }
        _ => Some(pos),
    }
}

fn is_start_sentinel(b: u8) -> bool {
    matches!(b, b'%' | b';' | b'+')
}

fn is_line_end(b: u8) -> bool {
    matches!(b, b'\r' | b'\n')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// `start..end` without leading and trailing spaces and tabs.
fn trim_blanks(input: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    while start < end && is_blank(input[start]) {
        start += 1;
    }
    while end > start && is_blank(input[end - 1]) {
        end -= 1;
    }
    (start, end)
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Bytes already checked to be ASCII as a `String` (a non-ASCII byte would
/// become its Latin-1 character, never a panic).
fn ascii(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// The data of a track's raw text: without start sentinel, and up to the end
/// sentinel (dropping it and the LRC).
fn between_sentinels(raw: &str) -> &str {
    let data = raw.strip_prefix(['%', ';', '+']).unwrap_or(raw);
    data.split('?').next().unwrap_or(data)
}

/// `Debug` stand-in for secret text: its length only.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} chars>", self.0.chars().count())
    }
}

/// `Debug` stand-in for an account number: `****` and the last four digits,
/// or `****` alone when the number is too short to show any of it.
struct MaskedAccount<'a>(&'a str);

impl fmt::Debug for MaskedAccount<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let account = self.0;
        let last4 = account
            .len()
            .checked_sub(4)
            .filter(|_| account.len() >= MASK_SHOW_LAST4_FROM)
            .and_then(|from| account.get(from..));
        match last4 {
            Some(last4) => write!(f, "****{last4}"),
            None => f.write_str("****"),
        }
    }
}

impl fmt::Debug for Swipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Swipe")
            .field("track1", &self.track1)
            .field("track2", &self.track2)
            .field("track3", &self.track3)
            .field("errors", &self.errors)
            .finish()
    }
}

impl fmt::Debug for Track1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Track1")
            .field("raw", &Redacted(&self.raw))
            .field("account", &MaskedAccount(&self.account))
            .field("name", &self.name)
            .field("expiry", &self.expiry)
            .field("service_code", &self.service_code)
            .field("discretionary", &Redacted(&self.discretionary))
            .finish()
    }
}

impl fmt::Debug for CardholderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CardholderName")
            .field(&Redacted(&self.full))
            .finish()
    }
}

impl fmt::Debug for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Track2")
            .field("raw", &Redacted(&self.raw))
            .field("account", &MaskedAccount(&self.account))
            .field("expiry", &self.expiry)
            .field("service_code", &self.service_code)
            .field("discretionary", &Redacted(&self.discretionary))
            .finish()
    }
}

impl fmt::Debug for Track3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Track3")
            .field("raw", &Redacted(&self.raw))
            .field("data", &Redacted(&self.data))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PAN: &str = "4111111111111111";
    const T1: &str = "%B4111111111111111^DOE/JOHN Q.MR^2512101123456789?";
    const T2: &str = ";4111111111111111=25121011234567890?";
    /// ISO 4909-style track 3: format code, account, separator, more data.
    const T3: &str = ";011234567890123456=724724000000000000030300009941223=000000000000000000000?";

    /// Track-1 LRC, written independently of the decoder: XOR of the 6-bit
    /// values of `%` through `?`, back into ASCII.
    fn lrc1(track: &str) -> char {
        let x = track.bytes().fold(0u8, |acc, b| acc ^ (b - b' '));
        char::from(x + b' ')
    }

    /// Track-2/3 LRC: XOR of the 4-bit values of `;` through `?`.
    fn lrc2(track: &str) -> char {
        let x = track.bytes().fold(0u8, |acc, b| acc ^ (b - b'0'));
        char::from(x + b'0')
    }

    fn ok(input: &str) -> Swipe {
        parse(input.as_bytes()).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    fn no_track(input: &[u8]) -> Vec<TrackError> {
        match parse(input) {
            Err(MsrError::NoTrack { errors }) => errors,
            other => panic!("{input:?}: expected NoTrack, got {other:?}"),
        }
    }

    fn err(track: Option<TrackNo>, kind: TrackErrorKind, offset: usize) -> TrackError {
        TrackError {
            track,
            kind,
            offset,
        }
    }

    fn exp(year: u8, month: u8) -> Option<Expiry> {
        Some(Expiry { year, month })
    }

    fn assert_visa(s: &Swipe) {
        let t1 = s.track1.as_ref().expect("track 1");
        assert_eq!(t1.account, PAN);
        assert_eq!(t1.expiry, exp(25, 12));
        assert_eq!(t1.service_code.as_deref(), Some("101"));
        assert_eq!(t1.discretionary, "123456789");
        let name = t1.name.as_ref().expect("name");
        assert_eq!(name.surname, "DOE");
        assert_eq!(name.first_name, "JOHN");
        assert_eq!(name.middle_initial, "Q");
        assert_eq!(name.title, "MR");
        assert_eq!(name.full, "DOE/JOHN Q.MR");
        assert_eq!(t1.data(), &T1[1..T1.len() - 1]);
        let t2 = s.track2.as_ref().expect("track 2");
        assert_eq!(t2.account, PAN);
        assert_eq!(t2.expiry, exp(25, 12));
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(t2.discretionary, "1234567890");
        assert_eq!(t2.data(), "4111111111111111=25121011234567890");
        assert_eq!(s.account(), Some(PAN));
    }

    #[test]
    fn known_lrc_values() {
        // Hard-coded, computed by hand / outside Rust.
        assert_eq!(lrc2(";1234=4912?"), '3');
        assert_eq!(lrc1(T1), 'Z');
        assert_eq!(lrc2(T2), '9');
        assert!(Alphabet::Numeric.lrc_matches(b"1234=4912", b'3'));
        assert!(Alphabet::Alpha.lrc_matches(&T1.as_bytes()[1..T1.len() - 1], b'Z'));
        assert!(Alphabet::Numeric.lrc_matches(&T2.as_bytes()[1..T2.len() - 1], b'9'));
        let s = ok(";1234=4912?3");
        assert_eq!(s.track2.unwrap().raw, ";1234=4912?3");
    }

    #[test]
    fn tracks_on_separate_lines() {
        for sep in ["\r", "\n", "\r\n"] {
            let s = ok(&format!("{T1}{sep}{T2}{sep}"));
            assert_visa(&s);
            assert!(s.errors.is_empty());
            assert!(s.track3.is_none());
            assert_eq!(s.track1.as_ref().unwrap().raw, T1);
            assert_eq!(s.track2.as_ref().unwrap().raw, T2);
        }
    }

    #[test]
    fn tracks_concatenated() {
        let s = ok(&format!("{T1}{T2}"));
        assert_visa(&s);
        assert!(s.errors.is_empty());
    }

    #[test]
    fn correct_lrc_is_accepted() {
        let (l1, l2) = (lrc1(T1), lrc2(T2));
        for input in [
            format!("{T1}{l1}{T2}{l2}"),
            format!("{T1}{l1}\r\n{T2}{l2}\r\n"),
            format!("{T1}Z;4111111111111111=25121011234567890?9"),
        ] {
            let s = ok(&input);
            assert_visa(&s);
            assert!(s.errors.is_empty(), "{input}: {:?}", s.errors);
            assert_eq!(s.track1.as_ref().unwrap().raw, format!("{T1}{l1}"));
            assert_eq!(s.track2.as_ref().unwrap().raw, format!("{T2}{l2}"));
        }
    }

    #[test]
    fn wrong_lrc_fails_that_track() {
        // Track 2's LRC is '9'; send '8'.
        let input = format!("{T1}\r{T2}8\r");
        let s = ok(&input);
        assert!(s.track1.is_some());
        assert!(s.track2.is_none());
        let at = T1.len() + 1 + T2.len();
        assert_eq!(
            s.errors,
            [err(Some(TrackNo::Two), TrackErrorKind::BadLrc, at)]
        );
        // Only track 1 decoded: its account is the swipe's.
        assert_eq!(s.account(), Some(PAN));

        // Track 1's LRC is 'Z'; send 'Y'.
        let s = ok(&format!("{T1}Y{T2}"));
        assert!(s.track1.is_none());
        assert_eq!(
            s.errors,
            [err(Some(TrackNo::One), TrackErrorKind::BadLrc, T1.len())]
        );

        // A bad LRC on the only track: no card.
        assert_eq!(
            no_track(b";1234=4912?4"),
            [err(Some(TrackNo::Two), TrackErrorKind::BadLrc, 11)]
        );
    }

    #[test]
    fn lrc_that_looks_like_a_start_sentinel() {
        let t = ";1234=49128?";
        assert_eq!(lrc2(t), ';');
        // At the end of input or line, or before another start sentinel,
        // it is the LRC.
        for input in [format!("{t};"), format!("{t};\r\n"), format!("{t};{T1}")] {
            let s = ok(&input);
            assert_eq!(s.track2.as_ref().unwrap().account, "1234", "{input}");
            assert_eq!(s.track2.as_ref().unwrap().raw, format!("{t};"));
            assert!(s.errors.is_empty(), "{input}: {:?}", s.errors);
        }
        // Followed by data it starts the next track (here track 3).
        let s = ok(&format!("{t};0123456789?"));
        assert_eq!(s.track3.unwrap().data, "0123456789");
        // A '?' LRC (value 15) after the end sentinel.
        let t = ";1234=491210728?";
        assert_eq!(lrc2(t), '?');
        let s = ok(&format!("{t}?"));
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }

    #[test]
    fn trailing_blanks_are_not_lrc() {
        let s = ok(&format!("{T2} \t\r\n"));
        assert!(s.errors.is_empty());
        let s = ok(&format!("  {T1} \n\t{T2}\t"));
        assert_visa(&s);
        assert!(s.errors.is_empty());
        // Between numeric tracks a space is not an LRC.
        let s = ok(&format!("{T2} {T3}"));
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(s.track3.is_some());
    }

    #[test]
    fn readers_that_strip_sentinels() {
        let t1 = &T1[1..T1.len() - 1];
        let t2 = &T2[1..T2.len() - 1];
        let t3 = &T3[1..T3.len() - 1];
        let s = ok(&format!("{t1}\r\n{t2}\r\n"));
        assert_visa(&s);
        assert!(s.errors.is_empty());
        assert_eq!(s.track1.as_ref().unwrap().raw, t1);

        // Two numeric lines: the first is track 2, the second track 3.
        let s = ok(&format!("{t2}\n{t3}\n"));
        assert_eq!(s.track2.unwrap().account, PAN);
        assert_eq!(s.track3.unwrap().data, t3);
        let s = ok("6035123412341234\n99887766\n");
        assert_eq!(s.track2.unwrap().account, "6035123412341234");
        assert_eq!(s.track3.unwrap().data, "99887766");

        // A lone number is track 2.
        let s = ok("6035123412341234\n");
        assert_eq!(s.account(), Some("6035123412341234"));
        assert!(s.track2.unwrap().expiry.is_none());

        // Text that is no track.
        assert_eq!(
            no_track(b"HELLO\n"),
            [err(None, TrackErrorKind::BadCharacter(b'H'), 0)]
        );
        // An end sentinel without a start sentinel.
        assert_eq!(
            no_track(b"1234=4912?\n"),
            [err(
                Some(TrackNo::Two),
                TrackErrorKind::BadCharacter(b'?'),
                9
            )]
        );
    }

    /// The reader's "send LRC" switch decides what follows `?`.
    #[test]
    fn lrc_per_reader_setting() {
        // The LRC of `;1234?`, found by the checker itself.
        let data = b"1234";
        let lrc = (0..16u8)
            .map(|v| b'0' + v)
            .find(|&c| Alphabet::Numeric.lrc_matches(data, c))
            .unwrap();
        let with = [b";1234?".as_slice(), &[lrc]].concat();
        // Sent: a wrong LRC is caught, even one that looks like a sentinel.
        assert!(parse_with(&with, Lrc::Sent).unwrap().track2.is_some());
        let wrong = [
            b";1234?".as_slice(),
            &[if lrc == b';' { b'0' } else { b';' }],
        ]
        .concat();
        let e = parse_with(&wrong, Lrc::Sent).unwrap_err();
        assert!(format!("{e}").contains("LRC"), "{e}");
        // Auto reads a lone trailing `;` as an LRC too; NotSent never takes
        // one, so the stray byte is reported instead of checked.
        let s = parse_with(&with, Lrc::NotSent).unwrap();
        assert!(s.track2.is_some() && !s.errors.is_empty());
        assert!(
            parse_with(b";1234?", Lrc::NotSent)
                .unwrap()
                .errors
                .is_empty()
        );
    }

    #[test]
    fn loyalty_cards() {
        let s = ok(";6035123412341234=4912101?");
        let t2 = s.track2.as_ref().unwrap();
        assert_eq!(t2.account, "6035123412341234");
        assert_eq!(t2.expiry, exp(49, 12));
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(t2.discretionary, "");
        assert!(s.track1.is_none() && s.track3.is_none() && s.errors.is_empty());
        assert_eq!(s.account(), Some("6035123412341234"));

        // Number only, no separator.
        let s = ok(";6035123412341234?\r\n");
        let t2 = s.track2.unwrap();
        assert_eq!(t2.account, "6035123412341234");
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "");

        // "0000" and impossible months are no expiry date, not an error.
        let s = ok(";6035123412341234=0000101?");
        let t2 = s.track2.unwrap();
        assert_eq!(t2.expiry, None);
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(ok(";6035123412341234=4913?").track2.unwrap().expiry, None);
        assert_eq!(ok(";6035123412341234=4900?").track2.unwrap().expiry, None);

        // Separator in place of the expiry date, then the service code.
        let t2 = ok(";1234==101999?").track2.unwrap();
        assert_eq!(t2.expiry, None);
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(t2.discretionary, "999");
        // Both absent.
        let t2 = ok(";1234===999?").track2.unwrap();
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "999");
        // Too short for the fields: kept as discretionary data.
        let t2 = ok(";1234=49?").track2.unwrap();
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "49");
        // A valid month without a service code after it is not an ISO
        // tail: all of it is discretionary data.
        let t2 = ok(";1234=491210?").track2.unwrap();
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "491210");
    }

    /// Independent vectors for loyalty layouts "number = secret": what
    /// follows `=` is kept whole unless it is a plausible YYMM + service
    /// code.
    #[test]
    fn a_secret_right_after_the_separator_is_kept_whole() {
        let t2 = ok(";7012345678901234=1234?").track2.unwrap();
        assert_eq!(t2.account, "7012345678901234");
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "1234");
        // Impossible month (13), even with enough digits for a code.
        let t2 = ok(";7012345678901234=98134711?").track2.unwrap();
        assert_eq!((t2.expiry, t2.service_code), (None, None));
        assert_eq!(t2.discretionary, "98134711");
        // A plausible date and service code is still taken as such.
        let t2 = ok(";7012345678901234=30121014711?").track2.unwrap();
        assert_eq!(t2.expiry, exp(30, 12));
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(t2.discretionary, "4711");
        // Track 1 follows the same rule.
        let t1 = ok("%B7012345678901234^LOYAL/CUSTOMER^9876?")
            .track1
            .unwrap();
        assert_eq!((t1.expiry, t1.service_code), (None, None));
        assert_eq!(t1.discretionary, "9876");
    }

    #[test]
    fn track_three() {
        let s = ok(&format!("{T1}\r\n{T2}\r\n{T3}\r\n"));
        assert_visa(&s);
        let t3 = s.track3.as_ref().unwrap();
        assert_eq!(t3.raw, T3);
        assert_eq!(t3.data, &T3[1..T3.len() - 1]);
        assert!(s.errors.is_empty());

        // With its LRC, concatenated.
        let l3 = lrc2(T3);
        let s = ok(&format!("{T1}{T2}{T3}{l3}"));
        assert_eq!(s.track3.unwrap().raw, format!("{T3}{l3}"));
        assert!(s.errors.is_empty());

        // '+' start sentinel; its LRC is computed with ';'.
        let plus = format!("+{}", &T3[1..]);
        let s = ok(&format!("{T2}{plus}{l3}"));
        assert_eq!(s.track3.unwrap().raw, format!("{plus}{l3}"));
        assert!(s.errors.is_empty());

        // Track 3 alone: too long for track 2, so track 3.
        let s = ok(T3);
        assert!(s.track2.is_none());
        assert!(s.track3.is_some());
        assert_eq!(s.account(), None);

        // Second ';' track after a track 2 is track 3 even when short, and
        // even after a failed track 2.
        let s = ok(";1234=4912?;5678=4912?");
        assert_eq!(s.track2.unwrap().account, "1234");
        assert_eq!(s.track3.unwrap().data, "5678=4912");
        let s = ok(";E?;5678?");
        assert_eq!(s.track3.unwrap().data, "5678");
        assert_eq!(
            s.errors,
            [err(Some(TrackNo::Two), TrackErrorKind::ReadError, 0)]
        );

        // '=' past the 20th character: not an account number, so track 3.
        let s = ok(";12345678901234567890=1?");
        assert!(s.track2.is_none());
        assert!(s.track3.is_some());
    }

    #[test]
    fn error_markers() {
        let s = ok("%E?;1234=49121010?");
        assert!(s.track1.is_none());
        let t2 = s.track2.as_ref().unwrap();
        assert_eq!(t2.account, "1234");
        assert_eq!(t2.expiry, exp(49, 12));
        assert_eq!(t2.service_code.as_deref(), Some("101"));
        assert_eq!(t2.discretionary, "0");
        assert_eq!(
            s.errors,
            [err(Some(TrackNo::One), TrackErrorKind::ReadError, 0)]
        );

        let all = [
            err(Some(TrackNo::One), TrackErrorKind::ReadError, 0),
            err(Some(TrackNo::Two), TrackErrorKind::ReadError, 3),
            err(Some(TrackNo::Three), TrackErrorKind::ReadError, 6),
        ];
        assert_eq!(no_track(b"%E?;E?+E?"), all);
        assert_eq!(no_track(b"%E?\r\n;E?\r\n+E?\r\n"), {
            let mut v = all.to_vec();
            v[1].offset = 5;
            v[2].offset = 10;
            v
        });
        // Two ';' markers: track 2, then track 3.
        assert_eq!(
            no_track(b";E?;E?"),
            [
                err(Some(TrackNo::Two), TrackErrorKind::ReadError, 0),
                err(Some(TrackNo::Three), TrackErrorKind::ReadError, 3),
            ]
        );
        let e = parse(b"%E?;E?+E?").unwrap_err();
        assert!(
            e.to_string()
                .contains("track 2: the reader could not read it at byte 3"),
            "{e}"
        );
    }

    #[test]
    fn names() {
        let name = |input: &str| ok(input).track1.unwrap().name;
        let n = name("%B6035123412341234^SMITH/JANE^4912101?").unwrap();
        assert_eq!(
            (
                n.surname.as_str(),
                n.first_name.as_str(),
                n.middle_initial.as_str(),
                n.title.as_str()
            ),
            ("SMITH", "JANE", "", "")
        );
        // Padded with spaces, title without middle initial.
        let n = name("%B6035123412341234^SMITH/JANE.DR           ^4912101?").unwrap();
        assert_eq!(
            (n.surname.as_str(), n.first_name.as_str()),
            ("SMITH", "JANE")
        );
        assert_eq!((n.middle_initial.as_str(), n.title.as_str()), ("", "DR"));
        assert_eq!(n.full, "SMITH/JANE.DR");
        // Surname with a space, middle name.
        let n = name("%B6035123412341234^VAN DER BERG/ANNA MARIA.MS^4912101?").unwrap();
        assert_eq!(n.surname, "VAN DER BERG");
        assert_eq!(n.first_name, "ANNA");
        assert_eq!(n.middle_initial, "MARIA");
        assert_eq!(n.title, "MS");
        // No '/': structure unknown, only `full`.
        let n = name("%B6035123412341234^GIFT CARD ^4912101?").unwrap();
        assert_eq!(n.full, "GIFT CARD");
        assert!(n.surname.is_empty() && n.first_name.is_empty());
        assert!(n.middle_initial.is_empty() && n.title.is_empty());
        // Blank or empty name fields.
        assert_eq!(name("%B6035123412341234^ ^4912101?"), None);
        assert_eq!(name("%B6035123412341234^^4912101?"), None);
        // 26 characters is the limit.
        let long = "A".repeat(26);
        assert!(name(&format!("%B1234^{long}^4912101?")).is_some());
        assert_eq!(
            no_track(format!("%B1234^{long}A^4912101?").as_bytes()),
            [err(
                Some(TrackNo::One),
                TrackErrorKind::Malformed("cardholder name longer than 26 characters"),
                0
            )]
        );
    }

    #[test]
    fn empty_and_absent_track1_fields() {
        let t1 = ok("%B6035123412341234^^?").track1.unwrap();
        assert_eq!(t1.account, "6035123412341234");
        assert_eq!(t1.name, None);
        assert_eq!((t1.expiry, t1.service_code), (None, None));
        assert_eq!(t1.discretionary, "");

        // No separator at all.
        let t1 = ok("%B6035123412341234?").track1.unwrap();
        assert_eq!(t1.account, "6035123412341234");
        assert_eq!(t1.name, None);

        // Separators for absent expiry date and service code.
        let t1 = ok("%B6035123412341234^LOYAL/CUSTOMER^^^0042?")
            .track1
            .unwrap();
        assert_eq!((t1.expiry, t1.service_code), (None, None));
        assert_eq!(t1.discretionary, "0042");
        let t1 = ok("%B6035123412341234^LOYAL/CUSTOMER^^120?")
            .track1
            .unwrap();
        assert_eq!(t1.expiry, None);
        assert_eq!(t1.service_code.as_deref(), Some("120"));

        // Structural errors.
        let malformed = |input: &str, what| {
            assert_eq!(
                no_track(input.as_bytes()),
                [err(Some(TrackNo::One), TrackErrorKind::Malformed(what), 0)],
                "{input}"
            );
        };
        malformed("%A6035123412341234^X^?", "track 1 format code is not B");
        malformed("%B^DOE/JOHN^4912?", "account number is not 1 to 19 digits");
        malformed(
            "%B12345678901234567890^^?",
            "account number is not 1 to 19 digits",
        );
        malformed("%B6035 1234^^?", "account number is not 1 to 19 digits");
        malformed("%?", "empty track");
        malformed("%B6035123412341234^DOE", "missing end sentinel");
        assert_eq!(
            no_track(b";?"),
            [err(
                Some(TrackNo::Two),
                TrackErrorKind::Malformed("empty track"),
                0
            )]
        );
    }

    #[test]
    fn bad_characters_name_their_offset() {
        // Control character inside track 1.
        assert_eq!(
            no_track(b"%B4111^DO\x01E^4912101?"),
            [err(
                Some(TrackNo::One),
                TrackErrorKind::BadCharacter(0x01),
                9
            )]
        );
        // Lower case is not in the 6-bit set.
        assert_eq!(
            no_track(b"%B4111^Doe^4912101?"),
            [err(
                Some(TrackNo::One),
                TrackErrorKind::BadCharacter(b'o'),
                8
            )]
        );
        // A letter on track 2, after a good track 1 (offset in the input).
        let s = ok(&format!("{T1}\r\n;4111=49A2?"));
        assert!(s.track1.is_some());
        assert_eq!(
            s.errors,
            [err(
                Some(TrackNo::Two),
                TrackErrorKind::BadCharacter(b'A'),
                T1.len() + 2 + 8
            )]
        );
        // Start sentinel inside the data.
        assert_eq!(
            no_track(b"%B41%11^^?"),
            [err(
                Some(TrackNo::One),
                TrackErrorKind::BadCharacter(b'%'),
                4
            )]
        );
        // An LRC outside the character set.
        assert_eq!(
            no_track(b";1234=4912?A"),
            [err(
                Some(TrackNo::Two),
                TrackErrorKind::BadCharacter(b'A'),
                11
            )]
        );
        // Garbage after a track: reported, the next track still decodes.
        let s = ok(";1234=4912?3xyz;5678=4912?");
        assert_eq!(s.track2.unwrap().account, "1234");
        assert_eq!(s.track3.unwrap().data, "5678=4912");
        assert_eq!(
            s.errors,
            [err(
                None,
                TrackErrorKind::Malformed("unexpected data after end sentinel"),
                12
            )]
        );
    }

    #[test]
    fn utf8_is_an_error_not_a_panic() {
        // Cyrillic name on track 1.
        let input = "%BИВАНОВ/ИВАН^4912101?".as_bytes();
        assert_eq!(
            no_track(input),
            [err(
                Some(TrackNo::One),
                TrackErrorKind::BadCharacter(0xD0),
                2
            )]
        );
        // A line of Cyrillic text.
        assert_eq!(
            no_track("Карта\r\n".as_bytes()),
            [err(None, TrackErrorKind::BadCharacter(0xD0), 0)]
        );
        // A multi-byte character right after the end sentinel.
        let errors = no_track(";1234=4912?ё".as_bytes());
        assert_eq!(
            errors[0],
            err(Some(TrackNo::Two), TrackErrorKind::BadCharacter(0xD1), 11)
        );
        // Inside track 2 data, with a good track 1 before it.
        let s = ok(&format!("{T1};41ж11=4912?"));
        assert!(s.track1.is_some());
        assert_eq!(s.errors.len(), 1);
        assert_eq!(s.errors[0].kind, TrackErrorKind::BadCharacter(0xD0));
        assert_eq!(s.errors[0].offset, T1.len() + 3);
    }

    #[test]
    fn length_limits() {
        // Track 2: 37 data characters + sentinels + LRC = 40.
        let at_limit = format!(";{}={}?", "4".repeat(16), "9".repeat(20));
        assert_eq!(at_limit.len(), 39);
        assert!(ok(&at_limit).track2.is_some());
        // 38 data characters with '=' early: track 2, too long.
        let over = format!(";{}={}?", "4".repeat(16), "9".repeat(21));
        let s = ok(&format!("{T1}{over}"));
        assert!(s.track1.is_some());
        // Too long for track 2, so it is taken for track 3, which it fits.
        assert!(s.track3.is_some());
        // Track 3 at and over its limit.
        let t3 = format!(";{}?", "1".repeat(104));
        assert!(ok(&t3).track3.is_some());
        let t3_over = format!(";{}?", "1".repeat(105));
        assert_eq!(
            no_track(t3_over.as_bytes()),
            [err(Some(TrackNo::Three), TrackErrorKind::TooLong, 0)]
        );
        // Track 2 sent after track 3 with '+' and too long.
        let t2_over = format!("+0?;{}={}?", "4".repeat(16), "9".repeat(21));
        let s = ok(&t2_over);
        assert_eq!(
            s.errors,
            [err(Some(TrackNo::Two), TrackErrorKind::TooLong, 3)]
        );
        // Track 1: 76 data characters allowed, 77 not.
        let t1 = |len: usize| format!("%B1234^DOE/J^4912101{}?", "0".repeat(len - 19));
        assert_eq!(t1(76).len(), 78);
        assert!(ok(&t1(76)).track1.is_some());
        assert_eq!(
            no_track(t1(77).as_bytes()),
            [err(Some(TrackNo::One), TrackErrorKind::TooLong, 0)]
        );
        // The whole input.
        assert_eq!(parse(&[b'1'; 513]), Err(MsrError::TooLong { len: 513 }));
        assert!(parse(&[b'1'; 512]).is_err());
    }

    #[test]
    fn empty_input() {
        assert_eq!(parse(b""), Err(MsrError::Empty));
        assert_eq!(parse(b" \r\n\t\r\n"), Err(MsrError::Empty));
    }

    #[test]
    fn duplicate_tracks() {
        let s = ok(&format!("{T1}{T1}"));
        assert!(s.track1.is_some());
        assert_eq!(
            s.errors,
            [err(
                Some(TrackNo::One),
                TrackErrorKind::Malformed("duplicate track"),
                T1.len()
            )]
        );
        let s = ok("+1?+2?");
        assert_eq!(s.track3.unwrap().data, "1");
        assert_eq!(s.errors.len(), 1);
    }

    #[test]
    fn account_prefers_track2() {
        let s = ok("%B1111222233334444^^?;5555666677778888=4912?");
        assert_eq!(s.account(), Some("5555666677778888"));
        let s = ok("%B1111222233334444^^?;E?");
        assert_eq!(s.account(), Some("1111222233334444"));
        let s = ok("+123?");
        assert_eq!(s.account(), None);
    }

    #[test]
    fn debug_shows_no_card_data() {
        let l1 = lrc1(T1);
        let s = ok(&format!("{T1}{l1}\r\n{T2}\r\n{T3}"));
        let debug = format!("{s:?}");
        let pretty = format!("{s:#?}");
        for text in [&debug, &pretty] {
            assert!(!text.contains(PAN), "{text}");
            assert!(!text.contains("411111"), "{text}");
            assert!(!text.contains("123456789"), "{text}");
            assert!(!text.contains("1234567890"), "{text}");
            assert!(!text.contains("DOE"), "{text}");
            assert!(!text.contains("JOHN"), "{text}");
            assert!(!text.contains("724724"), "{text}");
            assert!(text.contains("****1111"), "{text}");
        }
        assert!(
            debug.contains(&format!("raw: <{} chars>", T1.len() + 1)),
            "{debug}"
        );
        assert!(debug.contains("discretionary: <9 chars>"), "{debug}");
        assert!(debug.contains("Expiry { year: 25, month: 12 }"), "{debug}");

        // Short account numbers are masked entirely.
        let s = ok(";6035123=4912?");
        let debug = format!("{s:?}");
        assert!(!debug.contains("6035123"), "{debug}");
        assert!(!debug.contains("5123"), "{debug}");
        assert!(debug.contains("account: ****,"), "{debug}");
    }

    // --- property tests ---

    /// Bytes that are invalid in every track and are not line ends or
    /// blanks (which would be trimmed).
    fn poison() -> impl Strategy<Value = u8> {
        prop_oneof![0x00u8..=0x08, 0x0Bu8..=0x0C, 0x0Eu8..=0x1F, 0x60u8..=0xFF]
    }

    /// A line without `?` (so no framed track can end) holding at least one
    /// poison byte.
    fn poisoned_line() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(
                any::<u8>().prop_filter("no line end or end sentinel", |b| {
                    !matches!(b, b'\r' | b'\n' | b'?')
                }),
                0..60,
            ),
            poison(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut line, bad, at)| {
                let at = at.index(line.len() + 1);
                line.insert(at, bad);
                line
            })
    }

    /// Bytes from the characters track data is made of, plus a few others.
    fn track_like() -> impl Strategy<Value = Vec<u8>> {
        let alphabet: Vec<u8> = b"%;+?^=EB/. 0123456789:<>\r\n\t\xD0\x7F".to_vec();
        proptest::collection::vec(prop::sample::select(alphabet), 0..200)
    }

    fn digits(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, len)
            .prop_map(|d| d.into_iter().map(|d| char::from(b'0' + d)).collect())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&input);
        }

        #[test]
        fn track_like_bytes_never_panic(input in track_like()) {
            if let Ok(s) = parse(&input) {
                let _ = format!("{s:?}");
            }
        }

        /// Whatever comes out decoded was really on the input and is made of
        /// the track's own characters.
        #[test]
        fn decoded_tracks_are_clean(input in track_like()) {
            let Ok(s) = parse(&input) else { return Ok(()) };
            let text = String::from_utf8_lossy(&input).into_owned();
            prop_assert!(s.track1.is_some() || s.track2.is_some() || s.track3.is_some());
            if let Some(t) = &s.track1 {
                prop_assert!(text.contains(&t.raw));
                prop_assert!(t.raw.bytes().all(|b| (0x20..=0x5F).contains(&b)));
                prop_assert!((1..=19).contains(&t.account.len()));
                prop_assert!(t.account.bytes().all(|b| b.is_ascii_digit()));
            }
            if let Some(t) = &s.track2 {
                prop_assert!(text.contains(&t.raw));
                prop_assert!(t.raw.bytes().all(|b| (0x30..=0x3F).contains(&b)));
                prop_assert!((1..=19).contains(&t.account.len()));
                prop_assert!(t.account.bytes().all(|b| b.is_ascii_digit()));
            }
            if let Some(t) = &s.track3 {
                prop_assert!(text.contains(&t.raw));
                prop_assert!(t.raw.bytes().all(|b| b == b'+' || (0x30..=0x3F).contains(&b)));
            }
        }

        /// Lines that each hold a byte no track allows, and no end sentinel,
        /// never yield a card.
        #[test]
        fn garbage_never_decodes(lines in proptest::collection::vec(poisoned_line(), 1..6)) {
            let input = lines.join(&b"\r\n"[..]);
            prop_assume!(input.len() <= MAX_INPUT);
            prop_assert!(parse(&input).is_err(), "{:?}", parse(&input));
        }

        /// Without sentinels or separators, only an all-digit line can be an
        /// account number: lines that each hold a non-digit give none.
        #[test]
        fn no_account_without_digits_only_line(
            lines in proptest::collection::vec(
                (
                    proptest::collection::vec(
                        prop::sample::select(b"0123456789:<>ABCxyz.-/ ".to_vec()),
                        0..30,
                    ),
                    prop::sample::select(b":<>ABCxyz.-/".to_vec()),
                    any::<prop::sample::Index>(),
                ).prop_map(|(mut line, c, at)| {
                    let at = at.index(line.len() + 1);
                    line.insert(at, c);
                    line
                }),
                1..5,
            )
        ) {
            let input = lines.join(&b"\n"[..]);
            if let Ok(s) = parse(&input) {
                prop_assert_eq!(s.account(), None);
                prop_assert!(s.track1.is_none() && s.track2.is_none());
            }
        }

        /// A well-formed track 2 comes back field for field.
        #[test]
        fn track2_round_trip(
            (pan, disc) in (12usize..=19).prop_flat_map(|n| (digits(n..=n), digits(0..=29 - n))),
            yy in 0u8..100,
            mm in 1u8..=12,
            service in digits(3..=3),
            with_lrc in any::<bool>(),
            line_end in prop::sample::select(vec!["", "\r", "\n", "\r\n"]),
        ) {
            let track = format!(";{pan}={yy:02}{mm:02}{service}{disc}?");
            prop_assert!(track.len() < 40);
            let lrc = if with_lrc { lrc2(&track).to_string() } else { String::new() };
            let input = format!("{track}{lrc}{line_end}");
            let s = parse(input.as_bytes()).map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
            prop_assert!(s.errors.is_empty(), "{:?}", s.errors);
            prop_assert!(s.track1.is_none() && s.track3.is_none());
            let t2 = s.track2.as_ref().unwrap();
            prop_assert_eq!(&t2.account, &pan);
            prop_assert_eq!(t2.expiry, Some(Expiry { year: yy, month: mm }));
            prop_assert_eq!(t2.service_code.as_deref(), Some(service.as_str()));
            prop_assert_eq!(&t2.discretionary, &disc);
            prop_assert_eq!(t2.raw.clone(), format!("{track}{lrc}"));
            prop_assert_eq!(s.account(), Some(pan.as_str()));
            let debug = format!("{s:?}");
            prop_assert!(!debug.contains(&pan));
            prop_assert!(disc.len() < 4 || !debug.contains(&disc));
        }

        /// Any other LRC character is caught.
        #[test]
        fn track2_wrong_lrc_is_caught(
            pan in digits(12..=19),
            yy in 0u8..100,
            mm in 1u8..=12,
            wrong in 0x30u8..=0x3F,
        ) {
            let track = format!(";{pan}={yy:02}{mm:02}101?");
            let right = lrc2(&track);
            prop_assume!(char::from(wrong) != right);
            let input = format!("{track}{}", char::from(wrong));
            let errors = match parse(input.as_bytes()) {
                Err(MsrError::NoTrack { errors }) => errors,
                other => return Err(TestCaseError::fail(format!("{input}: {other:?}"))),
            };
            prop_assert_eq!(errors, vec![err(Some(TrackNo::Two), TrackErrorKind::BadLrc, track.len())]);
        }

        /// Tracks 1 and 2 together, with or without LRCs and separators.
        #[test]
        fn track1_and_2_round_trip(
            pan in digits(12..=19),
            surname in "[A-Z]{1,12}",
            first in "[A-Z]{1,10}",
            yy in 0u8..100,
            mm in 1u8..=12,
            disc1 in digits(0..=20),
            with_lrc in any::<bool>(),
            sep in prop::sample::select(vec!["", "\r", "\n", "\r\n"]),
        ) {
            let t1 = format!("%B{pan}^{surname}/{first}^{yy:02}{mm:02}201{disc1}?");
            let t2 = format!(";{pan}={yy:02}{mm:02}201?");
            let (l1, l2) = if with_lrc {
                (lrc1(&t1).to_string(), lrc2(&t2).to_string())
            } else {
                (String::new(), String::new())
            };
            let input = format!("{t1}{l1}{sep}{t2}{l2}{sep}");
            let s = parse(input.as_bytes()).map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
            prop_assert!(s.errors.is_empty(), "{input}: {:?}", s.errors);
            let got1 = s.track1.as_ref().unwrap();
            prop_assert_eq!(&got1.account, &pan);
            let name = got1.name.as_ref().unwrap();
            prop_assert_eq!(&name.surname, &surname);
            prop_assert_eq!(&name.first_name, &first);
            prop_assert_eq!(got1.expiry, Some(Expiry { year: yy, month: mm }));
            prop_assert_eq!(got1.service_code.as_deref(), Some("201"));
            prop_assert_eq!(&got1.discretionary, &disc1);
            prop_assert_eq!(&s.track2.as_ref().unwrap().account, &pan);
        }
    }
}
