//! The fixed US key table shared by the Linux key-code and HID-usage paths.
//!
//! Every wedge reader "types" as if the host had a US layout, so the US
//! meaning of a key position is the reader's meaning, whatever layout the
//! desktop uses. One table lists each key position once with both of its
//! numbers (Linux `KEY_*` code and HID Keyboard page usage) so the two
//! decoders cannot drift apart.

use evdev::KeyCode;

/// What a key position does in the US layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// Types `plain`, or `shifted` with Shift. Letters (lowercase `plain`)
    /// also follow Caps Lock; other keys ignore it, as on a real keyboard.
    Char {
        /// The character without Shift.
        plain: u8,
        /// The character with Shift.
        shifted: u8,
    },
    /// Enter or keypad Enter: ends the message.
    Enter,
    /// Toggles Caps Lock on its key-down.
    CapsLock,
}

/// Modifier bits in the HID boot-report order, also used for the state the
/// Linux decoder keeps, so both feed the assembler the same thing.
pub(super) const LEFT_CTRL: u8 = 0x01;
pub(super) const LEFT_SHIFT: u8 = 0x02;
pub(super) const LEFT_ALT: u8 = 0x04;
pub(super) const LEFT_META: u8 = 0x08;
pub(super) const RIGHT_CTRL: u8 = 0x10;
pub(super) const RIGHT_SHIFT: u8 = 0x20;
pub(super) const RIGHT_ALT: u8 = 0x40;
pub(super) const RIGHT_META: u8 = 0x80;

/// Either Shift.
pub(super) const SHIFT: u8 = LEFT_SHIFT | RIGHT_SHIFT;
/// Ctrl, Alt or Meta (GUI): a character typed with one of these held is a
/// shortcut, not data, and is dropped.
pub(super) const CHORD: u8 = LEFT_CTRL | LEFT_ALT | LEFT_META | RIGHT_CTRL | RIGHT_ALT | RIGHT_META;

/// One key position: its Linux code, its HID usage, what it does.
struct Position {
    linux: u16,
    usage: u8,
    key: Key,
}

const fn ch(linux: KeyCode, usage: u8, plain: u8, shifted: u8) -> Position {
    Position {
        linux: linux.0,
        usage,
        key: Key::Char { plain, shifted },
    }
}

/// Keypad keys type the same character with or without Shift: a reader
/// that uses them means digits, and the host's Num Lock state is neither
/// known to us nor relevant once the device is grabbed.
const fn kp(linux: KeyCode, usage: u8, c: u8) -> Position {
    ch(linux, usage, c, c)
}

/// The US layout. Linux codes from `input-event-codes.h` (via
/// [`evdev::KeyCode`]); usages from the HID Usage Tables, Keyboard/Keypad
/// page 0x07.
const US: &[Position] = &[
    ch(KeyCode::KEY_A, 0x04, b'a', b'A'),
    ch(KeyCode::KEY_B, 0x05, b'b', b'B'),
    ch(KeyCode::KEY_C, 0x06, b'c', b'C'),
    ch(KeyCode::KEY_D, 0x07, b'd', b'D'),
    ch(KeyCode::KEY_E, 0x08, b'e', b'E'),
    ch(KeyCode::KEY_F, 0x09, b'f', b'F'),
    ch(KeyCode::KEY_G, 0x0A, b'g', b'G'),
    ch(KeyCode::KEY_H, 0x0B, b'h', b'H'),
    ch(KeyCode::KEY_I, 0x0C, b'i', b'I'),
    ch(KeyCode::KEY_J, 0x0D, b'j', b'J'),
    ch(KeyCode::KEY_K, 0x0E, b'k', b'K'),
    ch(KeyCode::KEY_L, 0x0F, b'l', b'L'),
    ch(KeyCode::KEY_M, 0x10, b'm', b'M'),
    ch(KeyCode::KEY_N, 0x11, b'n', b'N'),
    ch(KeyCode::KEY_O, 0x12, b'o', b'O'),
    ch(KeyCode::KEY_P, 0x13, b'p', b'P'),
    ch(KeyCode::KEY_Q, 0x14, b'q', b'Q'),
    ch(KeyCode::KEY_R, 0x15, b'r', b'R'),
    ch(KeyCode::KEY_S, 0x16, b's', b'S'),
    ch(KeyCode::KEY_T, 0x17, b't', b'T'),
    ch(KeyCode::KEY_U, 0x18, b'u', b'U'),
    ch(KeyCode::KEY_V, 0x19, b'v', b'V'),
    ch(KeyCode::KEY_W, 0x1A, b'w', b'W'),
    ch(KeyCode::KEY_X, 0x1B, b'x', b'X'),
    ch(KeyCode::KEY_Y, 0x1C, b'y', b'Y'),
    ch(KeyCode::KEY_Z, 0x1D, b'z', b'Z'),
    ch(KeyCode::KEY_1, 0x1E, b'1', b'!'),
    ch(KeyCode::KEY_2, 0x1F, b'2', b'@'),
    ch(KeyCode::KEY_3, 0x20, b'3', b'#'),
    ch(KeyCode::KEY_4, 0x21, b'4', b'$'),
    ch(KeyCode::KEY_5, 0x22, b'5', b'%'),
    ch(KeyCode::KEY_6, 0x23, b'6', b'^'),
    ch(KeyCode::KEY_7, 0x24, b'7', b'&'),
    ch(KeyCode::KEY_8, 0x25, b'8', b'*'),
    ch(KeyCode::KEY_9, 0x26, b'9', b'('),
    ch(KeyCode::KEY_0, 0x27, b'0', b')'),
    Position {
        linux: KeyCode::KEY_ENTER.0,
        usage: 0x28,
        key: Key::Enter,
    },
    ch(KeyCode::KEY_TAB, 0x2B, b'\t', b'\t'),
    ch(KeyCode::KEY_SPACE, 0x2C, b' ', b' '),
    ch(KeyCode::KEY_MINUS, 0x2D, b'-', b'_'),
    ch(KeyCode::KEY_EQUAL, 0x2E, b'=', b'+'),
    ch(KeyCode::KEY_LEFTBRACE, 0x2F, b'[', b'{'),
    ch(KeyCode::KEY_RIGHTBRACE, 0x30, b']', b'}'),
    ch(KeyCode::KEY_BACKSLASH, 0x31, b'\\', b'|'),
    ch(KeyCode::KEY_SEMICOLON, 0x33, b';', b':'),
    ch(KeyCode::KEY_APOSTROPHE, 0x34, b'\'', b'"'),
    ch(KeyCode::KEY_GRAVE, 0x35, b'`', b'~'),
    ch(KeyCode::KEY_COMMA, 0x36, b',', b'<'),
    ch(KeyCode::KEY_DOT, 0x37, b'.', b'>'),
    ch(KeyCode::KEY_SLASH, 0x38, b'/', b'?'),
    Position {
        linux: KeyCode::KEY_CAPSLOCK.0,
        usage: 0x39,
        key: Key::CapsLock,
    },
    kp(KeyCode::KEY_KPSLASH, 0x54, b'/'),
    kp(KeyCode::KEY_KPASTERISK, 0x55, b'*'),
    kp(KeyCode::KEY_KPMINUS, 0x56, b'-'),
    kp(KeyCode::KEY_KPPLUS, 0x57, b'+'),
    Position {
        linux: KeyCode::KEY_KPENTER.0,
        usage: 0x58,
        key: Key::Enter,
    },
    kp(KeyCode::KEY_KP1, 0x59, b'1'),
    kp(KeyCode::KEY_KP2, 0x5A, b'2'),
    kp(KeyCode::KEY_KP3, 0x5B, b'3'),
    kp(KeyCode::KEY_KP4, 0x5C, b'4'),
    kp(KeyCode::KEY_KP5, 0x5D, b'5'),
    kp(KeyCode::KEY_KP6, 0x5E, b'6'),
    kp(KeyCode::KEY_KP7, 0x5F, b'7'),
    kp(KeyCode::KEY_KP8, 0x60, b'8'),
    kp(KeyCode::KEY_KP9, 0x61, b'9'),
    kp(KeyCode::KEY_KP0, 0x62, b'0'),
    kp(KeyCode::KEY_KPDOT, 0x63, b'.'),
];

/// Lookup by Linux code (every code in the table is below 256).
const BY_LINUX: [Option<Key>; 256] = index(false);
/// Lookup by HID usage.
const BY_USAGE: [Option<Key>; 256] = index(true);

/// Builds a direct-indexed copy of [`US`] at compile time. A duplicate
/// number would make one key shadow another, so it fails the build.
const fn index(by_usage: bool) -> [Option<Key>; 256] {
    let mut out = [None; 256];
    let mut i = 0;
    while i < US.len() {
        let p = &US[i];
        let slot = if by_usage {
            p.usage as usize
        } else {
            assert!(p.linux < 256, "Linux key code out of the index range");
            p.linux as usize
        };
        assert!(out[slot].is_none(), "duplicate key in the US table");
        out[slot] = Some(p.key);
        i += 1;
    }
    out
}

/// The US meaning of a Linux `KEY_*` code, if it types or ends anything.
pub(super) fn linux_key(code: u16) -> Option<Key> {
    BY_LINUX.get(usize::from(code)).copied().flatten()
}

/// The US meaning of a HID Keyboard-page usage.
pub(super) fn usage_key(usage: u8) -> Option<Key> {
    BY_USAGE[usize::from(usage)]
}

/// How to type `c` on a US layout: its Linux key code and whether Shift is
/// held. CR and LF are Enter. `None` for what the US layout cannot type
/// (non-ASCII, control characters): the virtual keyboard refuses those
/// rather than type something else.
pub fn us_keystroke(c: u8) -> Option<(u16, bool)> {
    if c == b'\r' || c == b'\n' {
        return Some((KeyCode::KEY_ENTER.0, false));
    }
    // The main block comes first in the table; keypad keys type the same
    // characters but depend on Num Lock on the receiving side.
    US.iter().find_map(|p| match p.key {
        Key::Char { plain, .. } if plain == c => Some((p.linux, false)),
        Key::Char { shifted, .. } if shifted == c => Some((p.linux, true)),
        _ => None,
    })
}

/// The modifier bit of a Linux modifier key code.
pub(super) fn linux_modifier(code: u16) -> Option<u8> {
    Some(match KeyCode(code) {
        KeyCode::KEY_LEFTCTRL => LEFT_CTRL,
        KeyCode::KEY_LEFTSHIFT => LEFT_SHIFT,
        KeyCode::KEY_LEFTALT => LEFT_ALT,
        KeyCode::KEY_LEFTMETA => LEFT_META,
        KeyCode::KEY_RIGHTCTRL => RIGHT_CTRL,
        KeyCode::KEY_RIGHTSHIFT => RIGHT_SHIFT,
        KeyCode::KEY_RIGHTALT => RIGHT_ALT,
        KeyCode::KEY_RIGHTMETA => RIGHT_META,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_indexes_hold_every_position() {
        for p in US {
            assert_eq!(linux_key(p.linux), Some(p.key));
            assert_eq!(usage_key(p.usage), Some(p.key));
        }
        assert_eq!(BY_LINUX.iter().flatten().count(), US.len());
        assert_eq!(BY_USAGE.iter().flatten().count(), US.len());
    }

    #[test]
    fn every_typed_character_is_printable_ascii_or_tab() {
        for p in US {
            if let Key::Char { plain, shifted } = p.key {
                for c in [plain, shifted] {
                    assert!(c == b'\t' || (b' '..=b'~').contains(&c), "{c:#x}");
                }
            }
        }
    }

    #[test]
    fn every_printable_character_can_be_typed_back() {
        for c in b' '..=b'~' {
            let (code, shift) = us_keystroke(c).unwrap_or_else(|| panic!("{c:#x}"));
            let Some(Key::Char { plain, shifted }) = linux_key(code) else {
                panic!("{c:#x}")
            };
            assert_eq!(if shift { shifted } else { plain }, c);
        }
        assert_eq!(us_keystroke(0x1D), None);
        assert_eq!(us_keystroke(0xD0), None);
    }

    #[test]
    fn modifiers_are_not_keys() {
        for code in [29u16, 42, 54, 56, 97, 100, 125, 126] {
            assert!(linux_modifier(code).is_some());
            assert_eq!(linux_key(code), None);
        }
        assert_eq!(linux_modifier(KeyCode::KEY_A.0), None);
        assert_eq!(linux_key(u16::MAX), None);
    }
}
