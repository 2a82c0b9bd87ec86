//! A card's secret while the central ledger is out of reach. The till
//! keeps an argon2id hash of the secret the central ledger last accepted
//! for a card it has seen (made here, from what the customer typed: the
//! central ledger never sends its own), so a customer can still prove the
//! card is theirs offline. Wrong secrets offline are counted per card; at
//! [`OFFLINE_TRIES`] the till stops checking that card until the central
//! ledger answers again, which keeps its own count and lock.

use super::Offline;
use crate::ledger::RemoteError;
use crate::ledger::accounts::AccountError;
use crate::ledger::accounts::{argon2id_hash, argon2id_matches};
use crate::redact::Secret;

/// Wrong secrets a card may get offline before the till stops checking it.
pub const OFFLINE_TRIES: i64 = 3;

impl Offline {
    /// Checks `presented` against the card's kept hash.
    pub(super) async fn verify_secret_offline(
        &self,
        number: String,
        presented: Secret,
    ) -> Result<(), AccountError> {
        let unreachable =
            |why: &str| AccountError::Remote(RemoteError::Unreachable(why.to_owned()));
        let kept = self
            .outbox
            .secret(number.clone())
            .await
            .map_err(|e| AccountError::Remote(RemoteError::Unreachable(e.to_string())))?;
        let Some((hash, failures)) = kept else {
            return Err(unreachable(
                "and this till has no copy of the card's secret",
            ));
        };
        if failures >= OFFLINE_TRIES {
            return Err(unreachable(
                "and too many wrong secrets were presented for this card offline",
            ));
        }
        // One hash at a time: each holds about 19 MiB.
        let _permit =
            self.hash_gate.acquire().await.map_err(|_| {
                AccountError::Remote(RemoteError::Unreachable("shutting down".into()))
            })?;
        let matches =
            tokio::task::spawn_blocking(move || argon2id_matches(&hash, presented.expose()))
                .await
                .unwrap_or(false);
        let store_err = |e: crate::store::StoreError| {
            AccountError::Remote(RemoteError::Unreachable(e.to_string()))
        };
        if matches {
            self.outbox
                .set_secret(number, None)
                .await
                .map_err(store_err)?;
            return Ok(());
        }
        let n = self.outbox.secret_failed(number).await.map_err(store_err)?;
        Err(AccountError::WrongSecret {
            attempts_left: (OFFLINE_TRIES - n).max(0),
        })
    }

    /// The central ledger accepted `presented` for `number`: keep its hash
    /// for offline checks. The first time, the POS waits for it (one
    /// argon2 run per card and till); after that a kept hash is checked
    /// and replaced in the background, in case the secret changed.
    pub(super) async fn keep_secret(&self, number: String, presented: Secret) {
        let outbox = self.outbox.clone();
        let gate = self.hash_gate.clone();
        let kept = match outbox.secret(number.clone()).await {
            Ok(k) => k.map(|(h, _)| h),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the card's kept secret");
                return;
            }
        };
        let first = kept.is_none();
        let work = async move {
            let Ok(_permit) = gate.acquire().await else {
                return;
            };
            let fresh = tokio::task::spawn_blocking(move || {
                if kept.is_some_and(|h| argon2id_matches(&h, presented.expose())) {
                    return Ok(None);
                }
                let mut salt = [0u8; 16];
                crate::random::system(&mut salt)?;
                Ok::<_, crate::random::RandomError>(Some(argon2id_hash(presented.expose(), salt)))
            })
            .await;
            let hash = match fresh {
                Ok(Ok(Some(h))) => h,
                Ok(Ok(None)) | Err(_) => return,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "no randomness for a secret's salt: not kept");
                    return;
                }
            };
            if let Err(e) = outbox.set_secret(number, Some(hash)).await {
                tracing::warn!(error = %e, "cannot keep the card's secret for offline use");
            }
        };
        if first {
            work.await;
        } else {
            tokio::spawn(work);
        }
    }
}
