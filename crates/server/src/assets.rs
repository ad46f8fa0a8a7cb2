//! The search page, embedded in the binary: no build step, no CDN, nothing fetched from
//! anywhere but this server.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::openapi::TAG_PAGE;

const INDEX_HTML: &str = include_str!("../assets/index.html");

/// One static file of the page.
pub struct Asset {
    /// The route it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub mime: &'static str,
    pub body: &'static str,
    /// What it is, for the OpenAPI document (its summary), with the document's operation id.
    pub summary: &'static str,
    pub operation_id: &'static str,
}

/// Static files. Each is its own route, so no request path is ever used to look anything up.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/assets/app.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
        summary: "Stylesheet of the page.",
        operation_id: "assetCss",
    },
    Asset {
        path: "/assets/app.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
        summary: "Script of the page.",
        operation_id: "assetJs",
    },
    Asset {
        path: "/assets/favicon.svg",
        mime: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
        summary: "Icon of the page.",
        operation_id: "assetIcon",
    },
];

/// The assets change only with the binary, which a user restarts rarely; five minutes keeps the
/// page snappy while an upgrade still shows within minutes.
const ASSET_CACHE: &str = "public, max-age=300";

/// `GET /`: the search page.
#[utoipa::path(
    get,
    path = "/",
    tag = TAG_PAGE,
    operation_id = "page",
    summary = "The search page (HTML).",
    responses((status = 200, description = "The page.", body = String, content_type = "text/html")),
    security(())
)]
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
