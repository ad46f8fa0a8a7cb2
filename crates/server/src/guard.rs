//! Who may drive the server: the `Host` check against DNS rebinding, the refusal of cross-site
//! writes, the bearer token, CORS for the origins the user names, the request timeout and the
//! headers every response carries.
//!
//! The checks run in one middleware, outermost, in this order: host, then CORS preflight, then
//! cross-site writes, then the token. So a rebinding page learns nothing (not even whether a
//! token is needed), and a request refused for one reason is never processed for another.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::AppState;

/// The address the connection was accepted on, added to every request by the server loop. The
/// `Host` check compares ports with it; a router used without the loop (tests) skips that part.
#[derive(Clone, Copy, Debug)]
pub struct Listening(pub SocketAddr);

/// Name of the cookie the page sets with the token, so that `<img>` requests (which cannot carry
/// an `Authorization` header) are authorised too. It is `SameSite=Strict`: no other site's page
/// can make the browser send it.
pub const TOKEN_COOKIE: &str = "imgsearch_token";

/// The guard middleware: see the module documentation.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let config = &state.config;
    let headers = request.headers();
    let listening = request.extensions().get::<Listening>().map(|l| l.0);
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !host_allowed(host, listening, &config.allow_hosts) {
            return AppError::HostNotAllowed {
                host: host.chars().take(100).collect(),
            }
            .into_response();
        }
    }
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let cors = origin
        .as_deref()
        .filter(|o| config.cors_origins.iter().any(|c| c == o))
        .map(str::to_string);
    if request.method() == Method::OPTIONS {
        if let Some(allowed) = &cors {
            return preflight(allowed);
        }
    }
    if is_write(request.method()) && cors.is_none() {
        if let Err(err) = same_origin(headers, origin.as_deref()) {
            return err.into_response();
        }
    }
    let path = request.uri().path();
    let required = config.token.is_some()
        || (config.local_token.is_some() && privileged(request.method(), path));
    if required && needs_token(path) {
        let holder = [&config.token, &config.local_token]
            .into_iter()
            .flatten()
            .any(|token| authorised(headers, token));
        if !holder {
            return AppError::Unauthorized.into_response();
        }
    }
    let timeout = Duration::from_secs(config.request_timeout_secs.max(1));
    let mut response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Timeout {
            secs: config.request_timeout_secs,
        }
        .into_response(),
    };
    if let Some(allowed) = &cors {
        if let Ok(v) = HeaderValue::from_str(allowed) {
            let h = response.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    response
}

fn is_write(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The answer to a CORS preflight from an origin the user allowed.
fn preflight(origin: &str) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    res
}

/// A write is accepted from the server's own page and from clients that are not browsers (no
/// `Origin`, no `Sec-Fetch-Site`). Browsers send `Origin` on every cross-origin POST, multipart
/// forms included, which need no preflight and so would otherwise reach the handlers.
fn same_origin(headers: &HeaderMap, origin: Option<&str>) -> Result<(), AppError> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if !matches!(site, "same-origin" | "none") {
        return Err(AppError::CrossSite {
            reason: format!("Sec-Fetch-Site is {site}"),
        });
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let own = !host.is_empty()
        && ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host));
    if own {
        Ok(())
    } else {
        Err(AppError::CrossSite {
            reason: format!(
                "Origin {} is not this server's",
                origin.chars().take(100).collect::<String>()
            ),
        })
    }
}

/// Routes that need the token: the API and the metrics. The page and its assets load without
/// it (the page then asks for it), and so do `/healthz` (for probes) and the OpenAPI document.
fn needs_token(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/") || path == "/metrics"
}

/// Requests that need a token whenever the server has one, the local one included: starting and
/// cancelling jobs, which read folders on the server by path (see SECURITY.md).
fn privileged(method: &Method, path: &str) -> bool {
    is_write(method) && (path == "/api/jobs" || path.starts_with("/api/jobs/"))
}

fn authorised(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if let Some(given) = bearer {
        return constant_time_eq(given.as_bytes(), token.as_bytes());
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='));
    let mut ok = false;
    for (name, value) in cookies {
        if name == TOKEN_COOKIE {
            ok |= constant_time_eq(value.as_bytes(), token.as_bytes());
        }
    }
    ok
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right. Only the length can leak, and the length of a random token is no secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether a `Host` header names this server: any IP address (a rebinding attack needs a DNS
/// name, so an address is always what the user typed), `localhost`, or a name the user allowed.
/// For addresses and `localhost` the port must be the one the server listens on; an allowed
/// name may carry its own port (`photos.lan:443`) or none, which accepts any.
pub fn host_allowed(host: &str, listening: Option<SocketAddr>, allowed: &[String]) -> bool {
    let Some((name, port)) = split_host(host) else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    let own_name = lower == "localhost" || lower.ends_with(".localhost") || parse_ip(&lower);
    if own_name {
        let port = port.unwrap_or(80);
        return listening.is_none_or(|l| l.port() == port);
    }
    allowed.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match split_host(&a) {
            Some((an, Some(ap))) => an == lower && Some(ap) == port,
            Some((an, None)) => an == lower,
            None => false,
        }
    })
}

fn parse_ip(name: &str) -> bool {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    bare.parse::<IpAddr>().is_ok()
}

/// Splits `name[:port]`, `[v6][:port]`; `None` when the port is not a number.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (name, Some(p)),
            None if rest.is_empty() => (name, None),
            None => return None,
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    if name.is_empty() {
        return None;
    }
    match port {
        Some(p) => Some((name, Some(p.parse().ok()?))),
        None => Some((name, None)),
    }
}

/// Headers every response carries: no MIME sniffing, no framing, no referrer, and a content
/// security policy that lets the page load nothing from outside this server.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_addresses_localhost_or_allowed_names() {
        let at = Some("127.0.0.1:8080".parse().unwrap());
        let allowed = vec!["photos.lan".to_string(), "proxy.example:443".to_string()];
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "192.168.1.5:8080",
            "photos.lan",
            "photos.lan:9999",
            "proxy.example:443",
        ] {
            assert!(host_allowed(ok, at, &allowed), "{ok}");
        }
        for bad in [
            "attacker.example:8080",
            "localhost:9090",
            "127.0.0.1",
            "proxy.example",
            "proxy.example:80",
            "[::1",
            "localhost:http",
            "",
            ":8080",
        ] {
            assert!(!host_allowed(bad, at, &allowed), "{bad}");
        }
        assert!(host_allowed("localhost", None, &[]));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
