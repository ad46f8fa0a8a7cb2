//! Parsing of `milvus://` store URLs.
//!
//! Form: `milvus://[user[:password]@]host[:port][/database][?key=value&...]` with keys
//! `user`, `password`, `token` (an API key or `user:password`, taking precedence), `tls`
//! (`true` for an `https` connection), `batch` (rows per insert call, 1..=10000) and
//! `timeout` (seconds for connecting, 1..=600) and `flush` (`true`: every upsert and delete also
//! waits until Milvus has sealed and persisted the written segments). Values are percent-decoded. The port defaults
//! to 19530 and the database to the server's default.

use super::StoreError;

/// Milvus' default gRPC port.
pub const DEFAULT_PORT: u16 = 19530;
/// Default and largest rows per insert call (calls are also capped by size, see `milvus.rs`).
pub const DEFAULT_BATCH: usize = 1000;
const MAX_BATCH: usize = 10_000;

/// A parsed Milvus URL.
#[derive(Clone, PartialEq, Eq)]
pub struct MilvusUrl {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub tls: bool,
    pub batch: usize,
    pub connect_timeout_s: u64,
    pub flush: bool,
}

// Credentials must never reach logs or error messages, so Debug shows the redacted URL.
impl std::fmt::Debug for MilvusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl MilvusUrl {
    /// Parses a `milvus://` URL; errors name the URL with its secrets redacted.
    pub fn parse(url: &str) -> Result<MilvusUrl, StoreError> {
        let fail = |reason: String| StoreError::InvalidUrl {
            url: redact(url),
            reason,
        };
        let rest = url
            .strip_prefix("milvus://")
            .ok_or_else(|| fail("must start with milvus://".into()))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((a, p)) => (a, p),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut out = MilvusUrl {
            host: String::new(),
            port: DEFAULT_PORT,
            database: None,
            user: None,
            password: None,
            token: None,
            tls: false,
            batch: DEFAULT_BATCH,
            connect_timeout_s: 10,
            flush: false,
        };
        parse_host_port(hostport, &mut out).map_err(fail)?;
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            out.user = Some(decode(u).map_err(fail)?);
            out.password = p.map(decode).transpose().map_err(fail)?;
        }
        let db = decode(path.trim_end_matches('/')).map_err(fail)?;
        if !db.is_empty() {
            if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(fail(format!(
                    "database name {db:?} may contain only letters, digits and '_'"
                )));
            }
            out.database = Some(db);
        }
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value).map_err(fail)?;
            apply_param(&mut out, key, value).map_err(fail)?;
        }
        Ok(out)
    }

    /// `http://host:port` (or `https`), what the SDK connects to.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    /// The URL without secrets, for messages: `milvus://user@host:port/db`.
    pub fn redacted(&self) -> String {
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let db = self
            .database
            .as_ref()
            .map(|d| format!("/{d}"))
            .unwrap_or_default();
        format!("milvus://{user}{host}:{}{db}", self.port)
    }
}

fn parse_host_port(hostport: &str, out: &mut MilvusUrl) -> Result<(), String> {
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, rest) = v6.split_once(']').ok_or("unterminated [ in an IPv6 host")?;
        (h, rest.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host; expected milvus://host:port".into());
    }
    let host_ok = host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !host_ok {
        return Err(format!(
            "host {host:?} has characters a host name cannot hold"
        ));
    }
    out.host = host.to_string();
    if let Some(p) = port {
        out.port = p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?;
    }
    Ok(())
}

fn apply_param(out: &mut MilvusUrl, key: &str, value: String) -> Result<(), String> {
    match key {
        "user" | "username" => out.user = Some(value),
        "password" => out.password = Some(value),
        "token" => out.token = Some(value),
        "db" | "database" => out.database = Some(value),
        "tls" | "secure" => out.tls = parse_bool(key, &value)?,
        "flush" => out.flush = parse_bool(key, &value)?,
        "batch" => {
            out.batch = value
                .parse::<usize>()
                .ok()
                .filter(|b| (1..=MAX_BATCH).contains(b))
                .ok_or_else(|| format!("batch must be a number from 1 to {MAX_BATCH}"))?
        }
        "timeout" => {
            out.connect_timeout_s = value
                .parse::<u64>()
                .ok()
                .filter(|t| (1..=600).contains(t))
                .ok_or("timeout must be a number of seconds from 1 to 600")?
        }
        other => {
            return Err(format!(
                "unknown parameter {other:?}; known: user, password, token, db, tls, batch, timeout, flush"
            ))
        }
    }
    Ok(())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key} must be true or false, got {value:?}")),
    }
}

/// Percent-decoding (`%40` -> `@`); `+` stays a plus, as in URL paths.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("bad percent escape")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent escapes do not form UTF-8".to_string())
}

/// Best-effort removal of secrets from a URL that may not even parse.
pub fn redact(url: &str) -> String {
    let mut s = url.to_string();
    if let Some(start) = s.find("://") {
        let auth_start = start + 3;
        let auth_end = s[auth_start..]
            .find(['/', '?'])
            .map_or(s.len(), |i| auth_start + i);
        if let Some(at) = s[auth_start..auth_end].rfind('@') {
            let user_end = s[auth_start..auth_start + at]
                .find(':')
                .map_or(auth_start + at, |i| auth_start + i);
            s.replace_range(user_end..auth_start + at, ":***");
        }
    }
    if let Some(q) = s.find('?') {
        let (head, query) = s.split_at(q + 1);
        let cleaned: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k == "password" || k == "token" => format!("{k}=***"),
                _ => pair.to_string(),
            })
            .collect();
        s = format!("{head}{}", cleaned.join("&"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_and_full_forms() {
        let u = MilvusUrl::parse("milvus://localhost").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("localhost", DEFAULT_PORT));
        assert_eq!(u.endpoint(), "http://localhost:19530");
        assert_eq!(u.database, None);
        let u = MilvusUrl::parse(
            "milvus://127.0.0.1:19532/photos?user=root&password=Mil%40vus&batch=50&tls=true&flush=1",
        )
        .unwrap();
        assert_eq!(u.port, 19532);
        assert_eq!(u.database.as_deref(), Some("photos"));
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.password.as_deref(), Some("Mil@vus"));
        assert_eq!(u.batch, 50);
        assert!(u.flush);
        assert_eq!(u.endpoint(), "https://127.0.0.1:19532");
        let u = MilvusUrl::parse("milvus://bob:s3cret@[::1]:1234?token=abc").unwrap();
        assert_eq!(u.host, "::1");
        assert_eq!(u.endpoint(), "http://[::1]:1234");
        assert_eq!(u.password.as_deref(), Some("s3cret"));
        assert_eq!(u.token.as_deref(), Some("abc"));
    }

    #[test]
    fn bad_urls_are_rejected_with_secrets_redacted() {
        let bad = [
            "http://localhost:19530",
            "milvus://",
            "milvus://:19530",
            "milvus://host:0",
            "milvus://host:99999",
            "milvus://host:port",
            "milvus://ho st:1",
            "milvus://host:1/my-db",
            "milvus://host:1?batch=0",
            "milvus://host:1?batch=x",
            "milvus://host:1?tls=maybe",
            "milvus://host:1?colour=blue",
            "milvus://u:pw@host:1?password=pw2&oops=1",
            "milvus://host:1/%zz",
        ];
        for url in bad {
            match MilvusUrl::parse(url) {
                Err(StoreError::InvalidUrl { url: shown, reason }) => {
                    assert!(!shown.contains("pw"), "{shown}");
                    assert!(!reason.is_empty());
                }
                other => panic!("{url}: expected InvalidUrl, got {other:?}"),
            }
        }
    }

    #[test]
    fn redaction_hides_passwords_and_tokens() {
        assert_eq!(
            redact("milvus://u:pw@h:1/db?token=t&batch=5"),
            "milvus://u:***@h:1/db?token=***&batch=5"
        );
        let u = MilvusUrl::parse("milvus://u:pw@h:1/db?token=t").unwrap();
        assert_eq!(u.redacted(), "milvus://u@h:1/db");
        assert!(!format!("{u:?}").contains("pw"));
    }
}
