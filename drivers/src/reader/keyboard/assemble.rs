//! Message assembly shared by [`super::KeyDecoder`] and
//! [`super::BootKeyboardDecoder`]: Caps Lock, Shift and chord handling,
//! Enter, the inter-key gap and the length bound live here once, so the
//! two input paths cannot disagree on what a message is.

use std::fmt;
use std::time::Instant;

use super::table::{CHORD, Key, SHIFT};
use super::{KeyMessage, WedgeConfig};

/// Builds messages from key presses.
pub(super) struct Assembler {
    config: WedgeConfig,
    /// Characters kept so far; emptied once the message passes `max_len`.
    text: String,
    /// Characters typed in this message, counted on past `max_len` so an
    /// overflow can say how long it was.
    typed: usize,
    /// Latest key activity, for the gap.
    last: Option<Instant>,
    caps_lock: bool,
}

impl Assembler {
    pub(super) fn new(config: WedgeConfig) -> Self {
        Assembler {
            config,
            text: String::new(),
            typed: 0,
            last: None,
            caps_lock: false,
        }
    }

    /// Notes key activity at `at` (any key going down or up). If the gap
    /// since the previous activity already ended the pending message, that
    /// message is returned: the caller may not have polled in time, and
    /// the key at `at` must start a new message rather than join the old.
    pub(super) fn activity(&mut self, at: Instant) -> Option<KeyMessage> {
        let finished = self.flush_if_idle(at);
        // Callers pass a clock that only goes forward; if one does not,
        // keeping the later time keeps the deadline from moving back.
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
        finished
    }

    /// A key went down with `modifiers` (HID bit layout) held. Returns the
    /// message an Enter finished.
    pub(super) fn press(&mut self, key: Key, modifiers: u8) -> Option<KeyMessage> {
        match key {
            Key::Enter => self.finish(),
            // Toggles even with modifiers held, as a real keyboard does.
            Key::CapsLock => {
                self.caps_lock = !self.caps_lock;
                None
            }
            // A shortcut (Ctrl+C, Alt+Tab...) is not data.
            Key::Char { .. } if modifiers & CHORD != 0 => None,
            Key::Char { plain, shifted } => {
                let shift = modifiers & SHIFT != 0;
                // Caps Lock affects letters only, and Shift undoes it.
                let upper = if plain.is_ascii_lowercase() {
                    shift != self.caps_lock
                } else {
                    shift
                };
                self.push(if upper { shifted } else { plain });
                None
            }
        }
    }

    fn push(&mut self, c: u8) {
        self.typed = self.typed.saturating_add(1);
        if self.typed <= self.config.max_len {
            self.text.push(char::from(c));
        } else if self.text.capacity() > 0 {
            // Over the bound: the text will not be delivered, so stop
            // holding it (and its memory) now.
            self.text = String::new();
        }
    }

    /// Ends the pending message (Enter, gap or the caller's say-so).
    pub(super) fn finish(&mut self) -> Option<KeyMessage> {
        let typed = std::mem::take(&mut self.typed);
        let text = std::mem::take(&mut self.text);
        if typed == 0 {
            None
        } else if typed > self.config.max_len {
            Some(KeyMessage::Overflow { len: typed })
        } else {
            Some(KeyMessage::Text(text))
        }
    }

    /// The pending message, if the gap has passed by `now`.
    pub(super) fn flush_if_idle(&mut self, now: Instant) -> Option<KeyMessage> {
        match self.deadline() {
            Some(deadline) if now >= deadline => self.finish(),
            _ => None,
        }
    }

    /// When the pending message ends unless another key comes; `None` when
    /// nothing is pending (or the gap is too long to represent).
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.typed == 0 {
            return None;
        }
        self.last?.checked_add(self.config.gap)
    }

    /// Forgets the pending message and the Caps Lock state.
    pub(super) fn reset(&mut self) {
        *self = Assembler::new(self.config);
    }
}

/// Shows state and lengths, never the pending text (card data).
impl fmt::Debug for Assembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assembler")
            .field("config", &self.config)
            .field("typed", &self.typed)
            .field("last", &self.last)
            .field("caps_lock", &self.caps_lock)
            .finish_non_exhaustive()
    }
}
