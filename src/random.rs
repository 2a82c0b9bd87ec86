//! Every random draw of the daemon (card tokens, argon2 salts, secrets,
//! codes, virtual card numbers) goes through here, and fails closed: when
//! the kernel's source cannot be read the draw is an error and nothing is
//! minted. There is no fallback: a guessable token or an all-zero salt is
//! worse than a refused call.

/// The kernel's random source could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system random source failed: {0}")]
pub struct RandomError(pub String);

/// Where random bytes come from. A plain function so the services can be
/// handed a failing one in tests.
pub type Source = fn(&mut [u8]) -> Result<(), RandomError>;

/// The kernel's source (`getrandom(2)`, else `/dev/urandom`).
pub fn system(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// A source that always fails, for tests of the fail-closed paths.
pub fn failing(_: &mut [u8]) -> Result<(), RandomError> {
    Err(RandomError("injected failure".into()))
}

/// `N` random bytes as lowercase hex.
pub fn hex<const N: usize>(source: Source) -> Result<String, RandomError> {
    let mut buf = [0u8; N];
    source(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_failures_surface() {
        assert_ne!(hex::<16>(system).unwrap(), hex::<16>(system).unwrap());
        assert_eq!(hex::<16>(system).unwrap().len(), 32);
        assert!(hex::<16>(failing).is_err());
    }
}
