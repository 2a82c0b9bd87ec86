//! The demonstration notifier: the code goes to the daemon log.
//!
//! This is the one place a confirmation code is ever logged, on purpose: a
//! demo till has no SMS gateway. Never use it in a shop.

use futures::future::BoxFuture;

use super::messages::CustomerMessage;
use super::{Message, Notifier, NotifyError};

/// Writes codes to the log at `info`, marked "demo notifier".
#[derive(Debug, Clone, Copy, Default)]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn name(&self) -> &'static str {
        "log"
    }

    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            tracing::info!(
                account = m.account,
                purpose = m.purpose.as_str(),
                channel = m.channel.as_str(),
                contact = %m.contact,
                code = %m.code.expose(),
                "demo notifier (log): code; configure ledger.registration.notifier for real delivery"
            );
            Ok(())
        })
    }

    fn deliver<'a>(&'a self, m: &'a CustomerMessage) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            tracing::info!(
                account = m.account,
                kind = m.kind.as_str(),
                channel = m.channel.as_str(),
                text = %m.text,
                "demo notifier (log): customer message"
            );
            Ok(())
        })
    }
}
