//! `[web]`: which web pages may use the till's HTTP and WebSocket API
//! (served on the `[daemon.tcp]` port, see [`crate::web`]).

use serde::Deserialize;

/// Entries in `origins`: an allow-list, not a registry of every page.
pub const MAX_ORIGINS: usize = 64;

/// `[web]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Web origins (`scheme://host[:port]`, as a browser sends them in
    /// `Origin`) whose pages may call the API, such as
    /// `http://127.0.0.1:8080`. Pages served by the daemon itself are
    /// always allowed; requests without `Origin` (curl, monitoring) too.
    pub origins: Vec<String>,
}

impl WebConfig {
    /// The first invalid entry: (its index, why).
    pub(super) fn validate(&self) -> Result<(), (usize, String)> {
        if self.origins.len() > MAX_ORIGINS {
            return Err((
                MAX_ORIGINS,
                format!("at most {MAX_ORIGINS} origins; list the POS pages, not the whole web"),
            ));
        }
        for (i, o) in self.origins.iter().enumerate() {
            if let Err(why) = check_origin(o) {
                return Err((i, format!("\"{o}\": {why}")));
            }
        }
        Ok(())
    }

    /// Whether `origin` (an `Origin` header's value) is listed, compared
    /// case-insensitively on scheme and host as browsers lower-case them.
    pub fn allows(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Checks one entry is `http(s)://host[:port]` with nothing after it.
fn check_origin(o: &str) -> Result<(), &'static str> {
    let rest = o
        .strip_prefix("http://")
        .or_else(|| o.strip_prefix("https://"))
        .ok_or("an origin starts with http:// or https://")?;
    if rest.is_empty() {
        return Err("the host is missing");
    }
    if rest.contains(['/', '?', '#', '@', ' ']) {
        return Err("an origin is scheme://host[:port] with no path, query, user or trailing /");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [ in an IPv6 host")?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err("only :port may follow an IPv6 host"),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
    {
        return Err("the host has characters a host name cannot have");
    }
    if let Some(p) = port
        && p.parse::<u16>().ok().filter(|p| *p > 0).is_none()
    {
        return Err("the port is not a number from 1 to 65535");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        for good in [
            "http://127.0.0.1:8080",
            "https://pos.example.com",
            "http://localhost",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        for bad in [
            "127.0.0.1:8080",
            "http://",
            "http://host/",
            "http://host/path",
            "http://host:0",
            "http://host:99999",
            "ftp://host",
            "http://[::1",
            "http://[::1]x",
            "http://a b",
        ] {
            assert!(check_origin(bad).is_err(), "{bad}");
        }
        let w = WebConfig {
            origins: vec!["http://pos.local:8080".into(), "bad".into()],
        };
        assert_eq!(w.validate().unwrap_err().0, 1);
        assert!(w.allows("http://POS.local:8080"));
        assert!(!w.allows("http://pos.local:8081"));
    }
}
