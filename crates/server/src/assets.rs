//! The search page, embedded in the binary: no build step, no CDN, nothing fetched from
//! anywhere but this server.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../assets/index.html");

/// Static files: route, content type, contents. Each is its own route, so no request path is
/// ever used to look anything up.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/assets/app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "/assets/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "/assets/favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

/// The assets change only with the binary, which a user restarts rarely; five minutes keeps the
/// page snappy while an upgrade still shows within minutes.
const ASSET_CACHE: &str = "public, max-age=300";

/// `GET /`: the search page.
pub async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// The response for one entry of [`ASSETS`].
pub fn asset(mime: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, ASSET_CACHE),
        ],
        body,
    )
        .into_response()
}
