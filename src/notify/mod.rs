//! Notifiers: how a confirmation code reaches a customer.
//!
//! One concern per file: [`log`] writes the code to the daemon log (the
//! demonstration channel, and the only place a code is ever logged),
//! [`command`] runs a configured program with the code as an argument,
//! never through a shell, and [`http`] POSTs JSON to a configured URL.
//! A notifier only delivers; codes are made, hashed and checked in
//! `ledger::accounts`.

pub mod command;
pub mod http;
pub mod log;
pub mod messages;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::config::{NotifierKind, RegistrationConfig};
use crate::redact::Secret;

/// Where a code goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A phone number (E.164).
    Phone,
    /// An e-mail address.
    Email,
}

impl Channel {
    /// `phone` or `email`, as sent to programs and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Phone => "phone",
            Channel::Email => "email",
        }
    }
}

/// What a code is for, so the receiving gateway can word its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Confirms a new account (`account.activate`).
    Registration,
    /// Confirms spending points at the till (`sale.commit` with `account`).
    Redemption,
}

impl Purpose {
    /// `registration` or `redemption`, as sent to programs and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Registration => "registration",
            Purpose::Redemption => "redemption",
        }
    }
}

/// One confirmation code to deliver.
#[derive(Debug, Clone)]
pub struct Message {
    /// The account being confirmed.
    pub account: i64,
    /// What the code confirms.
    pub purpose: Purpose,
    /// Phone or e-mail.
    pub channel: Channel,
    /// The phone number or address.
    pub contact: String,
    /// The code; redacted in `Debug`.
    pub code: Secret,
}

/// Why a code was not delivered. The texts never contain the code.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The program or server did not finish in time.
    #[error("no answer within {ms} ms")]
    Timeout {
        /// The limit.
        ms: u64,
    },
    /// The program exited unsuccessfully.
    #[error("{program} failed: {status}")]
    Failed {
        /// The program.
        program: String,
        /// Its exit status.
        status: String,
    },
    /// This notifier carries codes only, not customer messages.
    #[error("the {notifier} notifier does not deliver customer messages")]
    Unsupported {
        /// The notifier's name.
        notifier: &'static str,
    },
    /// Every HTTP attempt failed.
    #[error("{attempts} attempt(s) failed, the last: {last}")]
    Http {
        /// Attempts made.
        attempts: u32,
        /// What went wrong the last time.
        last: String,
    },
}

/// Delivers confirmation codes.
pub trait Notifier: Send + Sync {
    /// `log`, `command` or `http`: the `sent_via` of replies.
    fn name(&self) -> &'static str;

    /// Delivers one code; `Ok` means the channel accepted it.
    fn send<'a>(&'a self, m: &'a Message) -> BoxFuture<'a, Result<(), NotifyError>>;

    /// Delivers one customer message (balance, points burning soon);
    /// a notifier that cannot answers [`NotifyError::Unsupported`].
    fn deliver<'a>(
        &'a self,
        m: &'a messages::CustomerMessage,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        let _ = m;
        let notifier = self.name();
        Box::pin(async move { Err(NotifyError::Unsupported { notifier }) })
    }
}

/// The notifier `[ledger.registration]` names.
pub fn from_config(c: &RegistrationConfig) -> Arc<dyn Notifier> {
    match (c.notifier, &c.command, &c.http) {
        (NotifierKind::Command, Some(cmd), _) => Arc::new(command::CommandNotifier::new(cmd)),
        (NotifierKind::Http, _, Some(h)) => Arc::new(http::HttpNotifier::new(h)),
        // The configuration check makes the tables present; `log` is the
        // harmless fallback should that ever not hold.
        _ => Arc::new(log::LogNotifier),
    }
}

/// `args` with `{code}`, `{contact}`, `{channel}` and `{purpose}` replaced,
/// each a whole argument or part of one; nothing else is interpreted.
pub fn expand(args: &[String], m: &Message) -> Vec<String> {
    expand_with(
        args,
        m.code.expose(),
        &m.contact,
        m.channel,
        m.purpose.as_str(),
    )
}

/// `args` for a customer message: `{purpose}` is `message` and `{code}`
/// carries the text, so a gateway configured for codes takes messages as
/// they are.
pub fn expand_message(args: &[String], m: &messages::CustomerMessage) -> Vec<String> {
    expand_with(args, &m.text, &m.contact, m.channel, "message")
}

fn expand_with(
    args: &[String],
    code: &str,
    contact: &str,
    channel: Channel,
    purpose: &str,
) -> Vec<String> {
    args.iter()
        .map(|a| {
            // One left-to-right pass, so a contact containing "{code}" is
            // not expanded a second time.
            let mut out = String::with_capacity(a.len());
            let mut rest = a.as_str();
            while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let tail = &rest[i..];
                let (rep, len) = if tail.starts_with("{code}") {
                    (code, 6)
                } else if tail.starts_with("{contact}") {
                    (contact, 9)
                } else if tail.starts_with("{channel}") {
                    (channel.as_str(), 9)
                } else if tail.starts_with("{purpose}") {
                    (purpose, 9)
                } else {
                    ("{", 1)
                };
                out.push_str(rep);
                rest = &tail[len..];
            }
            out.push_str(rest);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_once_and_nothing_else() {
        let m = Message {
            account: 7,
            purpose: Purpose::Redemption,
            channel: Channel::Email,
            contact: "a {code}; rm -rf /@x.ru".into(),
            code: Secret::new("123456"),
        };
        let args = vec![
            "--to={contact}".to_string(),
            "{code}".into(),
            "{channel}{".into(),
            "{other}".into(),
            "{purpose}".into(),
        ];
        assert_eq!(
            expand(&args, &m),
            vec![
                "--to=a {code}; rm -rf /@x.ru",
                "123456",
                "email{",
                "{other}",
                "redemption"
            ]
        );
    }
}
