//! Linux input events (`EV_KEY` code/value pairs) into messages.

use std::time::Instant;

use super::assemble::Assembler;
use super::table;
use super::{KeyMessage, WedgeConfig};

/// `EV_KEY` value of a key going up.
pub const KEY_UP: i32 = 0;
/// `EV_KEY` value of a key going down.
pub const KEY_DOWN: i32 = 1;
/// `EV_KEY` value of a key auto-repeating (the kernel's software repeat).
pub const KEY_REPEAT: i32 = 2;

/// Decodes a wedge reader's key events with the fixed US table.
///
/// Pure: no I/O and no clock of its own. The caller passes each event's
/// time, and asks [`KeyDecoder::flush_if_idle`] once
/// [`KeyDecoder::deadline`] has passed to end messages the reader did not
/// end with Enter.
#[derive(Debug)]
pub struct KeyDecoder {
    assembler: Assembler,
    /// Modifiers held, in HID boot-report bit order (left/right kept apart
    /// so releasing one Shift does not cancel the other).
    modifiers: u8,
}

impl Default for KeyDecoder {
    fn default() -> Self {
        KeyDecoder::new(WedgeConfig::default())
    }
}

impl KeyDecoder {
    /// A decoder with nothing pending and Caps Lock off.
    pub fn new(config: WedgeConfig) -> Self {
        KeyDecoder {
            assembler: Assembler::new(config),
            modifiers: 0,
        }
    }

    /// Feeds one key event: `code` is a Linux `KEY_*` code, `value` is
    /// [`KEY_UP`], [`KEY_DOWN`] or [`KEY_REPEAT`], `at` when it happened.
    ///
    /// Returns a message when this event finished one: an Enter, or any key
    /// arriving after the gap had already ended the pending message (then
    /// that key starts the next message). At most one message per event.
    ///
    /// Repeats are ignored: wedge readers never hold a key, so a repeat is
    /// the kernel's software repeat firing on a slow release, not data.
    /// Unknown codes and other values are ignored too.
    pub fn key(&mut self, code: u16, value: i32, at: Instant) -> Option<KeyMessage> {
        let down = match value {
            KEY_DOWN => true,
            KEY_UP => false,
            _ => return None,
        };
        let finished = self.assembler.activity(at);
        if let Some(bit) = table::linux_modifier(code) {
            if down {
                self.modifiers |= bit;
            } else {
                self.modifiers &= !bit;
            }
            return finished;
        }
        if !down {
            return finished;
        }
        let Some(key) = table::linux_key(code) else {
            return finished;
        };
        // If the gap finished a message, nothing is pending any more, so
        // this key cannot finish a second one: no message is lost here.
        let ended = self.assembler.press(key, self.modifiers);
        finished.or(ended)
    }

    /// The pending message, if the gap has passed by `now`.
    pub fn flush_if_idle(&mut self, now: Instant) -> Option<KeyMessage> {
        self.assembler.flush_if_idle(now)
    }

    /// When the pending message will end unless another key comes; `None`
    /// when nothing is pending. Sleep until then, then call
    /// [`KeyDecoder::flush_if_idle`].
    pub fn deadline(&self) -> Option<Instant> {
        self.assembler.deadline()
    }

    /// Drops the pending message and forgets held modifiers and Caps Lock,
    /// e.g. after the device was reopened.
    pub fn reset(&mut self) {
        self.assembler.reset();
        self.modifiers = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use evdev::KeyCode as K;
    use proptest::prelude::*;

    use super::*;

    /// "6035123412341234" and Enter: key down/up pairs 2 ms apart, as a
    /// reader in keyboard mode sends them (code, value, milliseconds).
    const CARD_NUMBER: &[(u16, i32, u64)] = &[
        (K::KEY_6.0, 1, 0),
        (K::KEY_6.0, 0, 2),
        (K::KEY_0.0, 1, 4),
        (K::KEY_0.0, 0, 6),
        (K::KEY_3.0, 1, 8),
        (K::KEY_3.0, 0, 10),
        (K::KEY_5.0, 1, 12),
        (K::KEY_5.0, 0, 14),
        (K::KEY_1.0, 1, 16),
        (K::KEY_1.0, 0, 18),
        (K::KEY_2.0, 1, 20),
        (K::KEY_2.0, 0, 22),
        (K::KEY_3.0, 1, 24),
        (K::KEY_3.0, 0, 26),
        (K::KEY_4.0, 1, 28),
        (K::KEY_4.0, 0, 30),
        (K::KEY_1.0, 1, 32),
        (K::KEY_1.0, 0, 34),
        (K::KEY_2.0, 1, 36),
        (K::KEY_2.0, 0, 38),
        (K::KEY_3.0, 1, 40),
        (K::KEY_3.0, 0, 42),
        (K::KEY_4.0, 1, 44),
        (K::KEY_4.0, 0, 46),
        (K::KEY_1.0, 1, 48),
        (K::KEY_1.0, 0, 50),
        (K::KEY_2.0, 1, 52),
        (K::KEY_2.0, 0, 54),
        (K::KEY_3.0, 1, 56),
        (K::KEY_3.0, 0, 58),
        (K::KEY_4.0, 1, 60),
        (K::KEY_4.0, 0, 62),
        (K::KEY_ENTER.0, 1, 64),
        (K::KEY_ENTER.0, 0, 66),
    ];

    /// Track 1 of a test card, `%B...^NAME^...?` and Enter, capitals and symbols
    /// typed with Left Shift held around each key.
    const TRACK1: &[(u16, i32, u64)] = &[
        (K::KEY_LEFTSHIFT.0, 1, 0),
        (K::KEY_5.0, 1, 2),
        (K::KEY_5.0, 0, 4),
        (K::KEY_LEFTSHIFT.0, 0, 6),
        (K::KEY_LEFTSHIFT.0, 1, 8),
        (K::KEY_B.0, 1, 10),
        (K::KEY_B.0, 0, 12),
        (K::KEY_LEFTSHIFT.0, 0, 14),
        (K::KEY_6.0, 1, 16),
        (K::KEY_6.0, 0, 18),
        (K::KEY_0.0, 1, 20),
        (K::KEY_0.0, 0, 22),
        (K::KEY_3.0, 1, 24),
        (K::KEY_3.0, 0, 26),
        (K::KEY_5.0, 1, 28),
        (K::KEY_5.0, 0, 30),
        (K::KEY_1.0, 1, 32),
        (K::KEY_1.0, 0, 34),
        (K::KEY_2.0, 1, 36),
        (K::KEY_2.0, 0, 38),
        (K::KEY_3.0, 1, 40),
        (K::KEY_3.0, 0, 42),
        (K::KEY_4.0, 1, 44),
        (K::KEY_4.0, 0, 46),
        (K::KEY_1.0, 1, 48),
        (K::KEY_1.0, 0, 50),
        (K::KEY_2.0, 1, 52),
        (K::KEY_2.0, 0, 54),
        (K::KEY_3.0, 1, 56),
        (K::KEY_3.0, 0, 58),
        (K::KEY_4.0, 1, 60),
        (K::KEY_4.0, 0, 62),
        (K::KEY_1.0, 1, 64),
        (K::KEY_1.0, 0, 66),
        (K::KEY_2.0, 1, 68),
        (K::KEY_2.0, 0, 70),
        (K::KEY_3.0, 1, 72),
        (K::KEY_3.0, 0, 74),
        (K::KEY_4.0, 1, 76),
        (K::KEY_4.0, 0, 78),
        (K::KEY_LEFTSHIFT.0, 1, 80),
        (K::KEY_6.0, 1, 82),
        (K::KEY_6.0, 0, 84),
        (K::KEY_LEFTSHIFT.0, 0, 86),
        (K::KEY_LEFTSHIFT.0, 1, 88),
        (K::KEY_I.0, 1, 90),
        (K::KEY_I.0, 0, 92),
        (K::KEY_LEFTSHIFT.0, 0, 94),
        (K::KEY_LEFTSHIFT.0, 1, 96),
        (K::KEY_V.0, 1, 98),
        (K::KEY_V.0, 0, 100),
        (K::KEY_LEFTSHIFT.0, 0, 102),
        (K::KEY_LEFTSHIFT.0, 1, 104),
        (K::KEY_A.0, 1, 106),
        (K::KEY_A.0, 0, 108),
        (K::KEY_LEFTSHIFT.0, 0, 110),
        (K::KEY_LEFTSHIFT.0, 1, 112),
        (K::KEY_N.0, 1, 114),
        (K::KEY_N.0, 0, 116),
        (K::KEY_LEFTSHIFT.0, 0, 118),
        (K::KEY_LEFTSHIFT.0, 1, 120),
        (K::KEY_O.0, 1, 122),
        (K::KEY_O.0, 0, 124),
        (K::KEY_LEFTSHIFT.0, 0, 126),
        (K::KEY_LEFTSHIFT.0, 1, 128),
        (K::KEY_V.0, 1, 130),
        (K::KEY_V.0, 0, 132),
        (K::KEY_LEFTSHIFT.0, 0, 134),
        (K::KEY_SLASH.0, 1, 136),
        (K::KEY_SLASH.0, 0, 138),
        (K::KEY_LEFTSHIFT.0, 1, 140),
        (K::KEY_I.0, 1, 142),
        (K::KEY_I.0, 0, 144),
        (K::KEY_LEFTSHIFT.0, 0, 146),
        (K::KEY_LEFTSHIFT.0, 1, 148),
        (K::KEY_V.0, 1, 150),
        (K::KEY_V.0, 0, 152),
        (K::KEY_LEFTSHIFT.0, 0, 154),
        (K::KEY_LEFTSHIFT.0, 1, 156),
        (K::KEY_A.0, 1, 158),
        (K::KEY_A.0, 0, 160),
        (K::KEY_LEFTSHIFT.0, 0, 162),
        (K::KEY_LEFTSHIFT.0, 1, 164),
        (K::KEY_N.0, 1, 166),
        (K::KEY_N.0, 0, 168),
        (K::KEY_LEFTSHIFT.0, 0, 170),
        (K::KEY_LEFTSHIFT.0, 1, 172),
        (K::KEY_6.0, 1, 174),
        (K::KEY_6.0, 0, 176),
        (K::KEY_LEFTSHIFT.0, 0, 178),
        (K::KEY_2.0, 1, 180),
        (K::KEY_2.0, 0, 182),
        (K::KEY_5.0, 1, 184),
        (K::KEY_5.0, 0, 186),
        (K::KEY_1.0, 1, 188),
        (K::KEY_1.0, 0, 190),
        (K::KEY_2.0, 1, 192),
        (K::KEY_2.0, 0, 194),
        (K::KEY_1.0, 1, 196),
        (K::KEY_1.0, 0, 198),
        (K::KEY_0.0, 1, 200),
        (K::KEY_0.0, 0, 202),
        (K::KEY_1.0, 1, 204),
        (K::KEY_1.0, 0, 206),
        (K::KEY_LEFTSHIFT.0, 1, 208),
        (K::KEY_SLASH.0, 1, 210),
        (K::KEY_SLASH.0, 0, 212),
        (K::KEY_LEFTSHIFT.0, 0, 214),
        (K::KEY_ENTER.0, 1, 216),
        (K::KEY_ENTER.0, 0, 218),
    ];

    /// Replays `(code, value, ms)` events from `base`, collecting messages.
    fn replay(dec: &mut KeyDecoder, base: Instant, events: &[(u16, i32, u64)]) -> Vec<KeyMessage> {
        events
            .iter()
            .filter_map(|&(code, value, ms)| dec.key(code, value, base + Duration::from_millis(ms)))
            .collect()
    }

    fn texts(messages: &[KeyMessage]) -> Vec<Option<&str>> {
        messages.iter().map(KeyMessage::text).collect()
    }

    /// Types keys 2 ms apart, the way the fixtures do.
    struct Typist {
        dec: KeyDecoder,
        base: Instant,
        ms: u64,
        out: Vec<KeyMessage>,
    }

    impl Typist {
        fn new(config: WedgeConfig) -> Self {
            Typist {
                dec: KeyDecoder::new(config),
                base: Instant::now(),
                ms: 0,
                out: Vec::new(),
            }
        }

        fn now(&self) -> Instant {
            self.base + Duration::from_millis(self.ms)
        }

        fn ev(&mut self, code: K, value: i32) {
            self.ms += 2;
            if let Some(m) = self.dec.key(code.0, value, self.now()) {
                self.out.push(m);
            }
        }

        fn tap(&mut self, code: K) {
            self.ev(code, KEY_DOWN);
            self.ev(code, KEY_UP);
        }

        fn taps(&mut self, codes: &[K]) {
            for &code in codes {
                self.tap(code);
            }
        }

        fn with(&mut self, modifier: K, code: K) {
            self.ev(modifier, KEY_DOWN);
            self.tap(code);
            self.ev(modifier, KEY_UP);
        }

        fn texts(&self) -> Vec<Option<&str>> {
            texts(&self.out)
        }
    }

    #[test]
    fn card_number_ends_on_enter() {
        let mut dec = KeyDecoder::default();
        let out = replay(&mut dec, Instant::now(), CARD_NUMBER);
        assert_eq!(texts(&out), [Some("6035123412341234")]);
        assert_eq!(dec.deadline(), None);
    }

    #[test]
    fn track1_with_shift() {
        let mut dec = KeyDecoder::default();
        let out = replay(&mut dec, Instant::now(), TRACK1);
        assert_eq!(
            texts(&out),
            [Some("%B6035123412341234^IVANOV/IVAN^2512101?")]
        );
    }

    #[test]
    fn track1_with_caps_lock() {
        // Some readers switch Caps Lock on for capitals instead of holding
        // Shift; the symbols still need Shift.
        let mut t = Typist::new(WedgeConfig::default());
        t.tap(K::KEY_CAPSLOCK);
        t.with(K::KEY_LEFTSHIFT, K::KEY_5);
        t.taps(&[K::KEY_B, K::KEY_4, K::KEY_1]);
        t.with(K::KEY_RIGHTSHIFT, K::KEY_6);
        t.taps(&[
            K::KEY_I,
            K::KEY_V,
            K::KEY_A,
            K::KEY_N,
            K::KEY_SLASH,
            K::KEY_I,
        ]);
        t.with(K::KEY_LEFTSHIFT, K::KEY_6);
        t.taps(&[K::KEY_2, K::KEY_5]);
        t.with(K::KEY_LEFTSHIFT, K::KEY_SLASH);
        t.tap(K::KEY_CAPSLOCK);
        t.taps(&[K::KEY_ENTER]);
        assert_eq!(t.texts(), [Some("%B41^IVAN/I^25?")]);
    }

    #[test]
    fn caps_lock_and_shift_give_lowercase() {
        let mut t = Typist::new(WedgeConfig::default());
        t.tap(K::KEY_CAPSLOCK);
        t.tap(K::KEY_A);
        t.with(K::KEY_LEFTSHIFT, K::KEY_A);
        t.with(K::KEY_RIGHTSHIFT, K::KEY_B);
        // Caps Lock leaves digits and symbols alone.
        t.tap(K::KEY_1);
        t.with(K::KEY_LEFTSHIFT, K::KEY_1);
        t.tap(K::KEY_SEMICOLON);
        t.tap(K::KEY_ENTER);
        // Caps Lock off again.
        t.tap(K::KEY_CAPSLOCK);
        t.taps(&[K::KEY_A, K::KEY_ENTER]);
        assert_eq!(t.texts(), [Some("Aab1!;"), Some("a")]);
    }

    #[test]
    fn releasing_one_shift_keeps_the_other() {
        let mut t = Typist::new(WedgeConfig::default());
        t.ev(K::KEY_LEFTSHIFT, KEY_DOWN);
        t.ev(K::KEY_RIGHTSHIFT, KEY_DOWN);
        t.ev(K::KEY_LEFTSHIFT, KEY_UP);
        t.tap(K::KEY_X);
        t.ev(K::KEY_RIGHTSHIFT, KEY_UP);
        t.taps(&[K::KEY_X, K::KEY_ENTER]);
        assert_eq!(t.texts(), [Some("Xx")]);
    }

    #[test]
    fn gap_ends_a_message() {
        let mut dec = KeyDecoder::default();
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        for (i, code) in [K::KEY_1, K::KEY_2, K::KEY_3].into_iter().enumerate() {
            let t = 10 * i as u64;
            assert_eq!(dec.key(code.0, KEY_DOWN, ms(t)), None);
            assert_eq!(dec.key(code.0, KEY_UP, ms(t + 2)), None);
        }
        // The last activity was the key-up at 22 ms.
        assert_eq!(dec.deadline(), Some(ms(72)));
        assert_eq!(dec.flush_if_idle(ms(71)), None);
        let m = dec.flush_if_idle(ms(72)).expect("gap passed");
        assert_eq!(m.text(), Some("123"));
        assert_eq!(dec.deadline(), None);
        assert_eq!(dec.flush_if_idle(ms(500)), None);
    }

    #[test]
    fn late_key_after_gap_starts_a_new_message() {
        // The caller did not poll in time: the next key still splits.
        let mut dec = KeyDecoder::default();
        let base = Instant::now();
        let ms = |n| base + Duration::from_millis(n);
        dec.key(K::KEY_1.0, KEY_DOWN, ms(0));
        dec.key(K::KEY_1.0, KEY_UP, ms(1));
        let m = dec.key(K::KEY_2.0, KEY_DOWN, ms(200));
        assert_eq!(m.as_ref().and_then(KeyMessage::text), Some("1"));
        dec.key(K::KEY_2.0, KEY_UP, ms(201));
        let m = dec.key(K::KEY_ENTER.0, KEY_DOWN, ms(202));
        assert_eq!(m.as_ref().and_then(KeyMessage::text), Some("2"));
        // An Enter after the gap finishes the old message, then is empty.
        dec.key(K::KEY_3.0, KEY_DOWN, ms(300));
        let m = dec.key(K::KEY_ENTER.0, KEY_DOWN, ms(400));
        assert_eq!(m.as_ref().and_then(KeyMessage::text), Some("3"));
        assert_eq!(dec.deadline(), None);
    }

    #[test]
    fn chords_drop_characters() {
        let mut t = Typist::new(WedgeConfig::default());
        t.with(K::KEY_LEFTCTRL, K::KEY_C);
        t.tap(K::KEY_1);
        t.with(K::KEY_RIGHTCTRL, K::KEY_V);
        t.with(K::KEY_LEFTALT, K::KEY_TAB);
        t.with(K::KEY_RIGHTALT, K::KEY_2);
        t.with(K::KEY_LEFTMETA, K::KEY_D);
        t.with(K::KEY_RIGHTMETA, K::KEY_L);
        t.tap(K::KEY_3);
        // Enter still ends the message with Ctrl held.
        t.with(K::KEY_LEFTCTRL, K::KEY_ENTER);
        assert_eq!(t.texts(), [Some("13")]);
        // A message of nothing but chords is empty, so not reported.
        t.with(K::KEY_LEFTCTRL, K::KEY_B);
        t.tap(K::KEY_ENTER);
        assert_eq!(t.out.len(), 1);
    }

    #[test]
    fn overflow_is_reported_and_the_next_message_is_clean() {
        let mut t = Typist::new(WedgeConfig {
            max_len: 4,
            ..WedgeConfig::default()
        });
        t.taps(&[K::KEY_1, K::KEY_2, K::KEY_3, K::KEY_4, K::KEY_ENTER]);
        t.taps(&[
            K::KEY_1,
            K::KEY_2,
            K::KEY_3,
            K::KEY_4,
            K::KEY_5,
            K::KEY_6,
            K::KEY_ENTER,
        ]);
        t.taps(&[K::KEY_7, K::KEY_ENTER]);
        assert_eq!(t.out[0].text(), Some("1234"));
        assert_eq!(t.out[1], KeyMessage::Overflow { len: 6 });
        assert_eq!(t.out[2].text(), Some("7"));
        assert_eq!(t.out.len(), 3);
    }

    #[test]
    fn overflow_also_ends_on_the_gap() {
        let mut dec = KeyDecoder::new(WedgeConfig {
            max_len: 1,
            ..WedgeConfig::default()
        });
        let base = Instant::now();
        dec.key(K::KEY_1.0, KEY_DOWN, base);
        dec.key(K::KEY_2.0, KEY_DOWN, base);
        let deadline = dec.deadline().expect("pending");
        assert_eq!(
            dec.flush_if_idle(deadline),
            Some(KeyMessage::Overflow { len: 2 })
        );
    }

    #[test]
    fn key_ups_repeats_and_unknown_codes_type_nothing() {
        let mut dec = KeyDecoder::default();
        let base = Instant::now();
        let garbage: &[(u16, i32)] = &[
            (K::KEY_1.0, KEY_UP),
            (K::KEY_ENTER.0, KEY_UP),
            (K::KEY_A.0, KEY_REPEAT),
            (K::KEY_A.0, 7),
            (K::KEY_A.0, -1),
            (K::KEY_ESC.0, KEY_DOWN),
            (K::KEY_BACKSPACE.0, KEY_DOWN),
            (K::KEY_F1.0, KEY_DOWN),
            (K::KEY_102ND.0, KEY_DOWN),
            (K::BTN_LEFT.0, KEY_DOWN),
            (u16::MAX, KEY_DOWN),
            (K::KEY_LEFTSHIFT.0, KEY_UP),
        ];
        for &(code, value) in garbage {
            assert_eq!(dec.key(code, value, base), None);
        }
        assert_eq!(dec.deadline(), None);
        // Enter alone is an empty message: nothing.
        assert_eq!(dec.key(K::KEY_ENTER.0, KEY_DOWN, base), None);
        // A repeat of a held key does not double it.
        dec.key(K::KEY_5.0, KEY_DOWN, base);
        dec.key(K::KEY_5.0, KEY_REPEAT, base);
        dec.key(K::KEY_5.0, KEY_REPEAT, base);
        dec.key(K::KEY_5.0, KEY_UP, base);
        let m = dec.key(K::KEY_KPENTER.0, KEY_DOWN, base);
        assert_eq!(m.as_ref().and_then(KeyMessage::text), Some("5"));
    }

    #[test]
    fn keypad_and_tab() {
        let mut t = Typist::new(WedgeConfig::default());
        t.taps(&[
            K::KEY_KP1,
            K::KEY_KP2,
            K::KEY_KP3,
            K::KEY_KP4,
            K::KEY_KP5,
            K::KEY_KP6,
            K::KEY_KP7,
            K::KEY_KP8,
            K::KEY_KP9,
            K::KEY_KP0,
            K::KEY_KPDOT,
            K::KEY_KPSLASH,
            K::KEY_KPASTERISK,
            K::KEY_KPMINUS,
            K::KEY_KPPLUS,
            K::KEY_TAB,
            K::KEY_SPACE,
        ]);
        // Shift changes nothing on the keypad.
        t.with(K::KEY_LEFTSHIFT, K::KEY_KP1);
        t.tap(K::KEY_KPENTER);
        assert_eq!(t.texts(), [Some("1234567890./*-+\t 1")]);
    }

    #[test]
    fn every_us_symbol() {
        let mut t = Typist::new(WedgeConfig::default());
        let keys = [
            K::KEY_MINUS,
            K::KEY_EQUAL,
            K::KEY_LEFTBRACE,
            K::KEY_RIGHTBRACE,
            K::KEY_BACKSLASH,
            K::KEY_SEMICOLON,
            K::KEY_APOSTROPHE,
            K::KEY_GRAVE,
            K::KEY_COMMA,
            K::KEY_DOT,
            K::KEY_SLASH,
        ];
        t.taps(&keys);
        for key in keys {
            t.with(K::KEY_LEFTSHIFT, key);
        }
        for key in [
            K::KEY_1,
            K::KEY_2,
            K::KEY_3,
            K::KEY_4,
            K::KEY_5,
            K::KEY_6,
            K::KEY_7,
            K::KEY_8,
            K::KEY_9,
            K::KEY_0,
        ] {
            t.with(K::KEY_RIGHTSHIFT, key);
        }
        t.tap(K::KEY_ENTER);
        assert_eq!(t.texts(), [Some("-=[]\\;'`,./_+{}|:\"~<>?!@#$%^&*()")]);
    }

    #[test]
    fn russian_layout_does_not_matter() {
        // On a Russian (ЙЦУКЕН) desktop these keys would type "ж", "э",
        // "х", "б", "ю", "ё", "№" and "," — which is why the decoder has no
        // layout input at all: key positions mean their US characters.
        // A track-2 swipe, start sentinel `;` to end sentinel `?`:
        let mut t = Typist::new(WedgeConfig::default());
        t.tap(K::KEY_SEMICOLON);
        t.taps(&[
            K::KEY_6,
            K::KEY_0,
            K::KEY_3,
            K::KEY_5,
            K::KEY_EQUAL,
            K::KEY_2,
            K::KEY_5,
        ]);
        t.with(K::KEY_LEFTSHIFT, K::KEY_SLASH);
        t.tap(K::KEY_ENTER);
        t.taps(&[
            K::KEY_APOSTROPHE,
            K::KEY_LEFTBRACE,
            K::KEY_COMMA,
            K::KEY_DOT,
            K::KEY_GRAVE,
            K::KEY_Q,
        ]);
        t.with(K::KEY_LEFTSHIFT, K::KEY_3);
        t.tap(K::KEY_ENTER);
        assert_eq!(t.texts(), [Some(";6035=25?"), Some("'[,.`q#")]);
    }

    #[test]
    fn reset_forgets_everything() {
        let mut t = Typist::new(WedgeConfig::default());
        t.tap(K::KEY_CAPSLOCK);
        t.ev(K::KEY_LEFTSHIFT, KEY_DOWN);
        t.tap(K::KEY_A);
        t.dec.reset();
        assert_eq!(t.dec.deadline(), None);
        t.taps(&[K::KEY_A, K::KEY_ENTER]);
        assert_eq!(t.texts(), [Some("a")]);
    }

    proptest! {
        #[test]
        fn arbitrary_events_never_panic(
            events in proptest::collection::vec((0u16..300, -1i32..4, 0u64..80), 0..400),
            max_len in 0usize..40,
        ) {
            let mut dec = KeyDecoder::new(WedgeConfig { max_len, ..WedgeConfig::default() });
            let base = Instant::now();
            let mut ms = 0;
            let mut out = Vec::new();
            for (code, value, dt) in events {
                ms += dt;
                let at = base + Duration::from_millis(ms);
                out.extend(dec.flush_if_idle(at));
                out.extend(dec.key(code, value, at));
                if let Some(deadline) = dec.deadline() {
                    prop_assert!(deadline > at);
                }
            }
            out.extend(dec.flush_if_idle(base + Duration::from_secs(3600)));
            prop_assert_eq!(dec.deadline(), None);
            for m in out {
                match m {
                    KeyMessage::Text(text) => {
                        prop_assert!(!text.is_empty() && text.len() <= max_len);
                        prop_assert!(text.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)));
                    }
                    KeyMessage::Overflow { len } => prop_assert!(len > max_len),
                }
            }
        }
    }
}
