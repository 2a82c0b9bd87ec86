//! The random key each rendering of a form carries, so that submitting it
//! twice acts once: the adjust form passes it to the ledger as the
//! idempotency key `bo:{key}`; forms whose ledger calls take no key
//! remember it here ([`Memory`]) for the daemon's life, which is as long
//! as the session whose CSRF token the form carries.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Keys one [`Memory`] keeps at most (oldest forgotten first).
pub const KEPT: usize = 4096;

/// A random key for one rendering of a form (32 hex digits).
pub fn new_key() -> String {
    // Without randomness the form has no key and its submission is refused.
    crate::random::hex::<16>(crate::random::system).unwrap_or_default()
}

/// Whether `k` is a key [`new_key`] could have made.
pub fn key_ok(k: &str) -> bool {
    k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Form keys already used and what each did, bounded to [`KEPT`].
pub struct Memory<V> {
    // `None` until first used: a `static` cannot build a HashMap.
    inner: Mutex<Option<Keys<V>>>,
}

/// Key → value, and the keys oldest first.
type Keys<V> = (HashMap<String, V>, VecDeque<String>);

impl<V: Clone> Memory<V> {
    /// An empty memory (usable in a `static`).
    pub const fn new() -> Self {
        Memory {
            inner: Mutex::new(None),
        }
    }

    /// Runs `f` on the keys, under the lock.
    fn with<T>(&self, f: impl FnOnce(&mut Keys<V>) -> T) -> T {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(g.get_or_insert_with(Default::default))
    }

    /// What `key` did, if it was used.
    pub fn get(&self, key: &str) -> Option<V> {
        self.with(|k| k.0.get(key).cloned())
    }

    /// Records `value` for `key` (replacing what it had), forgetting the
    /// oldest key beyond [`KEPT`].
    pub fn set(&self, key: &str, value: V) {
        self.with(|k| insert(k, key, value));
    }

    /// `key`'s value if it was used; else records `value` for it, under
    /// one lock (of two submissions at once, one claims it).
    pub fn claim(&self, key: &str, value: V) -> Option<V> {
        self.with(|k| match k.0.get(key) {
            Some(v) => Some(v.clone()),
            None => {
                insert(k, key, value);
                None
            }
        })
    }

    /// Forgets `key` (the action failed; the form may be sent again).
    pub fn forget(&self, key: &str) {
        self.with(|k| {
            k.0.remove(key);
            k.1.retain(|o| o != key);
        });
    }
}

fn insert<V>(g: &mut Keys<V>, key: &str, value: V) {
    let (map, order) = g;
    if map.insert(key.to_owned(), value).is_none() {
        order.push_back(key.to_owned());
    }
    while order.len() > KEPT {
        if let Some(old) = order.pop_front() {
            map.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_claimed_once_and_the_oldest_forgotten() {
        assert!(key_ok(&new_key()));
        assert!(!key_ok("x"));
        let m = Memory::new();
        assert_eq!(m.claim("k1", 1), None);
        assert_eq!(m.claim("k1", 2), Some(1));
        m.set("k1", 7);
        assert_eq!(m.get("k1"), Some(7));
        m.forget("k1");
        assert_eq!(m.get("k1"), None);
        m.set("k1", 7);
        for i in 0..KEPT {
            m.set(&format!("f{i}"), 1);
        }
        assert_eq!(m.get("k1"), None, "the oldest key is forgotten");
        assert_eq!(m.get(&format!("f{}", KEPT - 1)), Some(1));
    }
}
