//! The one error type of the HTTP layer and its JSON form.
//!
//! Every failure a handler can meet becomes an [`AppError`], which renders as
//! `{"error":{"code":"stable_code","message":"..."}}` with a 4xx status for anything the client
//! can fix and a 5xx status only for faults of the server or its store. The codes are part of the
//! API: clients may branch on them, so they never change once published.

use crate::openapi::string_enum;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::{Class, Classified, ErrorKind};
use engine::store::StoreError;
use engine::EngineError;
use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;
use vecdb::VecDbError;

/// Every code an error body may carry: the server's own and those of the engine, the store and
/// the vector database. The OpenAPI document lists them; a client may branch on any of them.
pub const ERROR_CODES: &[&str] = &[
    "invalid_parameter",
    "invalid_json",
    "unsupported_media_type",
    "invalid_multipart",
    "payload_too_large",
    "not_an_image",
    "invalid_image",
    "wrong_dimension",
    "image_not_found",
    "not_found",
    "unknown_collection",
    "collection_exists",
    "read_only_collection",
    "conflict",
    "route_not_found",
    "method_not_allowed",
    "store_unavailable",
    "internal",
    "host_not_allowed",
    "cross_site_request",
    "unauthorized",
    "busy",
    "request_timeout",
    "job_running",
    "path_not_allowed",
    "shutting_down",
];

/// The names [`common::ErrorKind::as_str`] gives, as the `kind` of an error body shows them.
const ERROR_KINDS: &[&str] = &[
    "invalid_input",
    "not_found",
    "conflict",
    "unavailable",
    "internal",
];

/// The names [`common::Origin::as_str`] gives, as the `origin` of an error body shows them.
const ERROR_ORIGINS: &[&str] = &["request", "model", "store", "file", "config"];

/// The body of every error answer: `{"error":{"code","message"}}`, plus `kind` and `origin`
/// for errors of the engine and below.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong, for programs (`code`, `kind`, `origin`) and for people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    #[schema(schema_with = code_schema)]
    code: &'static str,
    message: String,
    /// For errors of the engine and below: the kind of failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = kind_schema)]
    kind: Option<&'static str>,
    /// For errors of the engine and below: what the failure concerns.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = origin_schema)]
    origin: Option<&'static str>,
}

fn code_schema() -> RefOr<Schema> {
    string_enum(ERROR_CODES, "Stable machine-readable code.", None)
}

fn kind_schema() -> RefOr<Schema> {
    string_enum(
        ERROR_KINDS,
        "For errors of the engine and below: the kind of failure.",
        None,
    )
}

fn origin_schema() -> RefOr<Schema> {
    string_enum(
        ERROR_ORIGINS,
        "For errors of the engine and below: what the failure concerns.",
        None,
    )
}

/// Everything that can go wrong while serving one request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A request parameter or body field has a value the API does not accept.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
    /// The request body is not valid JSON or does not have the documented shape.
    #[error("invalid JSON body: {reason}")]
    InvalidJson { reason: String },
    /// The request carries a body of a content type this route does not take.
    #[error("unsupported content type: {reason}")]
    UnsupportedMediaType { reason: String },
    /// A multipart body is malformed or lacks a required field.
    #[error("invalid multipart body: {reason}")]
    InvalidMultipart { reason: String },
    /// The body is larger than the configured limit.
    #[error("request body larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The uploaded bytes are not an image format imgsearch reads.
    #[error("the upload is not an image (JPEG, PNG, WebP, GIF, BMP or TIFF)")]
    NotAnImage,
    /// The upload looks like an image but could not be decoded or embedded.
    #[error("cannot read the image: {reason}")]
    InvalidImage { reason: String },
    /// A vector has the wrong number of dimensions for its collection.
    #[error("wrong dimension: the collection has {expected}, the request has {got}")]
    WrongDimension { expected: usize, got: usize },
    /// No indexed image has this id.
    #[error("no indexed image has id {id}")]
    ImageNotFound { id: u64 },
    /// A named thing (collection, record) is missing.
    #[error("{what} not found")]
    NotFound { what: String },
    /// No collection has this name.
    #[error("collection {name} does not exist")]
    UnknownCollection { name: String },
    /// An indexing job is running on this collection already.
    #[error("job {id} is running; follow it at /api/jobs/{id} or cancel it first")]
    JobRunning { id: u64 },
    /// A job path outside the folders `index_roots` allows.
    #[error("{path} is outside the folders this server may index (index_roots)")]
    PathNotAllowed { path: String },
    /// The server is shutting down and starts no new work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// No route matches the path.
    #[error("no route for {path}")]
    RouteNotFound { path: String },
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The `Host` header names neither this machine nor a host allowed with `--allow-host`
    /// (a DNS-rebinding page, or a proxy that needs `--allow-host`).
    #[error("host {host:?} is not served here; allow it with --allow-host if it is this server")]
    HostNotAllowed { host: String },
    /// A write sent by another site's page (or a page of another port on this host).
    #[error("cross-site request refused: {reason}")]
    CrossSite { reason: String },
    /// The server has a token and the request did not carry it.
    #[error("this server requires a token: send Authorization: Bearer TOKEN")]
    Unauthorized,
    /// Every decode slot stayed busy for the configured wait.
    #[error("the server is busy decoding other images; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    /// The request took longer than the configured request timeout.
    #[error("the request took longer than {secs} s")]
    Timeout { secs: u64 },
    /// An error of the engine, the store, the vector database or the model, classified where
    /// it was made (`common::Classified`).
    #[error("{message}")]
    Classified { class: Class, message: String },
    /// A fault of the server itself; details go to the log, not to the client.
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl AppError {
    /// The HTTP status and the stable machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use AppError::*;
        match self {
            InvalidParameter { .. } => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            InvalidJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            UnsupportedMediaType { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            InvalidMultipart { .. } => (StatusCode::BAD_REQUEST, "invalid_multipart"),
            PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            NotAnImage => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"),
            InvalidImage { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image"),
            WrongDimension { .. } => (StatusCode::BAD_REQUEST, "wrong_dimension"),
            ImageNotFound { .. } => (StatusCode::NOT_FOUND, "image_not_found"),
            NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            UnknownCollection { .. } => (StatusCode::NOT_FOUND, "unknown_collection"),
            JobRunning { .. } => (StatusCode::CONFLICT, "job_running"),
            PathNotAllowed { .. } => (StatusCode::FORBIDDEN, "path_not_allowed"),
            ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            RouteNotFound { .. } => (StatusCode::NOT_FOUND, "route_not_found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Classified { class, .. } => (status_of(class), class.code),
            HostNotAllowed { .. } => (StatusCode::MISDIRECTED_REQUEST, "host_not_allowed"),
            CrossSite { .. } => (StatusCode::FORBIDDEN, "cross_site_request"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Timeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Fills in the configured body limit, which the extractor rejections do not carry.
    pub fn with_limit(self, limit: usize) -> Self {
        match self {
            AppError::PayloadTooLarge { .. } => AppError::PayloadTooLarge { limit },
            other => other,
        }
    }

    /// Shorthand for [`AppError::InvalidParameter`].
    pub fn param(name: &str, reason: impl Into<String>) -> Self {
        AppError::InvalidParameter {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        // Server faults are logged in full but shown to the client in general terms, so that
        // paths and store internals do not leak through the API.
        let message = if matches!(self, AppError::Busy { .. } | AppError::ShuttingDown) {
            tracing::debug!(error = %self, code, "request deferred");
            self.to_string()
        } else if status.is_server_error() {
            tracing::error!(error = %self, code, "request failed");
            match &self {
                AppError::Classified { class, .. } if class.kind == ErrorKind::Unavailable => {
                    "the vector store is unavailable".to_string()
                }
                _ => "internal server error; see the server log".to_string(),
            }
        } else {
            tracing::debug!(error = %self, code, "request rejected");
            bounded(self.to_string())
        };
        // Errors of the engine and below also say their kind and origin, so that a client (the
        // CLI in client mode) classifies them exactly as it would the error itself.
        let (kind, origin) = match &self {
            AppError::Classified { class, .. } => {
                (Some(class.kind.as_str()), Some(class.origin.as_str()))
            }
            _ => (None, None),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                kind,
                origin,
            },
        };
        let mut res = (status, Json(body)).into_response();
        let h = res.headers_mut();
        match self {
            AppError::Busy { retry_after } => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            AppError::Unauthorized => {
                h.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"imgsearch\""),
                );
            }
            _ => {}
        }
        res
    }
}

/// The HTTP status of a classified error: one row per kind, after two codes the API has always
/// answered with their own status.
fn status_of(class: &Class) -> StatusCode {
    match class.code {
        "invalid_image" => return StatusCode::UNPROCESSABLE_ENTITY,
        "read_only_collection" => return StatusCode::FORBIDDEN,
        _ => {}
    }
    match class.kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Longest message shown to a client: error messages quote the input they refuse, and a
/// response should not echo kilobytes of it back.
const MAX_MESSAGE_CHARS: usize = 300;

fn bounded(message: String) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

impl AppError {
    /// The rendering of any error that classifies itself.
    pub fn classified(err: &(impl Classified + ?Sized)) -> Self {
        AppError::Classified {
            class: err.class(),
            message: err.to_string(),
        }
    }
}

impl From<VecDbError> for AppError {
    fn from(err: VecDbError) -> Self {
        AppError::classified(&err)
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        AppError::classified(&err)
    }
}

impl From<EngineError> for AppError {
    fn from(err: EngineError) -> Self {
        AppError::classified(&err)
    }
}

impl From<JsonRejection> for AppError {
    fn from(rej: JsonRejection) -> Self {
        match rej {
            JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType {
                reason: "expected Content-Type: application/json".into(),
            },
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge { limit: 0 }
            }
            other => AppError::InvalidJson {
                reason: other.body_text(),
            },
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rej: QueryRejection) -> Self {
        AppError::param("query", rej.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(rej: PathRejection) -> Self {
        AppError::param("path", rej.body_text())
    }
}

impl From<MultipartError> for AppError {
    fn from(err: MultipartError) -> Self {
        if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge { limit: 0 }
        } else {
            AppError::InvalidMultipart {
                reason: err.body_text(),
            }
        }
    }
}

impl From<MultipartRejection> for AppError {
    fn from(rej: MultipartRejection) -> Self {
        AppError::UnsupportedMediaType {
            reason: format!("expected multipart/form-data: {}", rej.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    #[tokio::test]
    async fn errors_render_as_json_with_stable_codes() {
        let res = AppError::from(VecDbError::WrongDimension {
            expected: 4,
            got: 3,
        })
        .into_response();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = to_bytes(res.into_body(), 1 << 16).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "wrong_dimension");
        assert!(json["error"]["message"].as_str().unwrap().contains('4'));
    }

    #[tokio::test]
    async fn server_faults_hide_their_details() {
        let res = AppError::Internal {
            reason: "/secret/path exploded".into(),
        }
        .into_response();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = to_bytes(res.into_body(), 1 << 16).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("/secret/path"));
    }

    #[test]
    fn the_documented_codes_kinds_and_origins_are_the_real_ones() {
        let own = [
            AppError::param("k", "r"),
            AppError::InvalidJson { reason: "r".into() },
            AppError::UnsupportedMediaType { reason: "r".into() },
            AppError::InvalidMultipart { reason: "r".into() },
            AppError::PayloadTooLarge { limit: 1 },
            AppError::NotAnImage,
            AppError::InvalidImage { reason: "r".into() },
            AppError::WrongDimension {
                expected: 1,
                got: 2,
            },
            AppError::ImageNotFound { id: 1 },
            AppError::NotFound { what: "w".into() },
            AppError::UnknownCollection { name: "n".into() },
            AppError::JobRunning { id: 1 },
            AppError::PathNotAllowed { path: "p".into() },
            AppError::ShuttingDown,
            AppError::RouteNotFound { path: "p".into() },
            AppError::MethodNotAllowed,
            AppError::HostNotAllowed { host: "h".into() },
            AppError::CrossSite { reason: "r".into() },
            AppError::Unauthorized,
            AppError::Busy { retry_after: 1 },
            AppError::Timeout { secs: 1 },
            AppError::Internal { reason: "r".into() },
            AppError::from(VecDbError::CollectionExists { name: "x".into() }),
            AppError::from(StoreError::UnknownCollection { name: "x".into() }),
        ];
        for err in own {
            let code = err.status_and_code().1;
            assert!(ERROR_CODES.contains(&code), "{code} is not documented");
        }
        for kind in ERROR_KINDS {
            assert!(common::ErrorKind::parse(kind).is_some(), "{kind}");
        }
        for origin in ERROR_ORIGINS {
            assert!(common::Origin::parse(origin).is_some(), "{origin}");
        }
    }

    #[test]
    fn store_and_engine_errors_map_to_client_or_server_faults() {
        let cases = [
            (
                AppError::from(StoreError::UnknownCollection { name: "x".into() }),
                404,
            ),
            (
                AppError::from(StoreError::Unreachable {
                    url: "u".into(),
                    reason: "r".into(),
                }),
                503,
            ),
            (
                AppError::from(StoreError::Rejected {
                    reason: "bad".into(),
                }),
                400,
            ),
            (
                AppError::from(EngineError::NotFound {
                    what: "image 3".into(),
                }),
                404,
            ),
            (
                AppError::from(EngineError::InvalidInput { reason: "k".into() }),
                400,
            ),
            (
                AppError::from(VecDbError::CollectionExists { name: "x".into() }),
                409,
            ),
            (
                AppError::from(VecDbError::InvalidFilter { reason: "r".into() }),
                400,
            ),
            (
                AppError::from(EngineError::ModelMismatch {
                    collection_model: "a@1".into(),
                    current_model: "b@2".into(),
                }),
                409,
            ),
            (AppError::PayloadTooLarge { limit: 0 }.with_limit(7), 413),
        ];
        for (err, status) in cases {
            assert_eq!(err.status_and_code().0.as_u16(), status, "{err}");
        }
    }
}
