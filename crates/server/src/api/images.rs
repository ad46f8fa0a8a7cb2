//! Indexed images: their records, thumbnails and original files; uploads and removal.
//!
//! Files are reached only through the index: a request names an id, the engine's catalog maps it
//! to a path, and only that file is read. No route here reads a file by a path it was given
//! (`GET /api/images?path=` only looks the path up in the catalog), so nothing else on disk is
//! reachable.

use super::extract::PathParam;
use super::{blocking, decode_permit, ImageUrls};
use crate::error::AppError;
use crate::sniff::image_mime;
use crate::AppState;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::ImageRecord;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::{Binary, E400, E404, E413, E415, E422, TAG_IMAGES};

/// Thumbnails and originals change only when the file is re-indexed, which changes its size or
/// modification time; the browser may keep them an hour and revalidate with the ETag after.
const IMAGE_CACHE: &str = "private, max-age=3600";

/// An indexed image as the API shows it: the catalog's record and the URLs of its files.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ImageRecord)]
pub struct ImageOut {
    #[serde(flatten)]
    record: ImageRecord,
    #[serde(flatten)]
    urls: ImageUrls,
}

impl From<ImageRecord> for ImageOut {
    fn from(record: ImageRecord) -> Self {
        ImageOut {
            urls: ImageUrls::for_id(record.id),
            record,
        }
    }
}

/// Answer of `DELETE /api/images/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageDeleted {
    id: u64,
    deleted: bool,
}

/// The multipart form of `POST /api/images`. The handler reads the fields one by one (to
/// bound their size), so this type only describes the form to the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// JPEG, PNG, WebP, GIF, BMP or TIFF; its file name, cleaned, names the stored copy.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
}

async fn lookup(state: &AppState, id: u64) -> Result<ImageRecord, AppError> {
    let engine = state.engine.clone();
    blocking(move || engine.image(id).map_err(AppError::from))
        .await?
        .ok_or(AppError::ImageNotFound { id })
}

/// A validator that changes whenever the indexed file does.
fn etag(record: &ImageRecord, variant: &str) -> String {
    format!(
        "\"{}-{}-{}-{variant}\"",
        record.id, record.size, record.mtime
    )
}

/// Answers 304 when the client's cached copy carries the current validator.
fn not_modified(headers: &HeaderMap, tag: &str) -> Option<Response> {
    let cached = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let matches = cached
        .split(',')
        .any(|t| t.trim() == tag || t.trim() == "*");
    matches.then(|| {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        set_cache_headers(&mut res, tag);
        res
    })
}

fn set_cache_headers(res: &mut Response, tag: &str) {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMAGE_CACHE));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
}

fn image_response(bytes: Vec<u8>, mime: &'static str, tag: &str) -> Response {
    let mut res = Response::new(Body::from(bytes));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    set_cache_headers(&mut res, tag);
    res
}

/// The `{id}` path segment of the routes under `/api/images/{id}`, described once for every
/// operation that takes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the OpenAPI document reads it; the handlers extract the id as a number.
struct ImageId {
    /// Id the index gave the image.
    id: u64,
}

/// `GET /api/images/{id}`: the catalog record of an indexed image.
#[utoipa::path(
    get,
    path = "/api/images/{id}",
    tag = TAG_IMAGES,
    operation_id = "getImage",
    summary = "The record of an indexed image.",
    params(ImageId),
    responses(
        (status = 200, description = "OK", body = ImageOut),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn record(
    State(state): State<AppState>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<ImageOut>, AppError> {
    Ok(Json(lookup(&state, id).await?.into()))
}

/// `GET /api/images/{id}/thumbnail`: a JPEG no larger than the configured size.
#[utoipa::path(
    get,
    path = "/api/images/{id}/thumbnail",
    tag = TAG_IMAGES,
    operation_id = "getThumbnail",
    summary = "A JPEG thumbnail of an indexed image. Honours If-None-Match.",
    params(ImageId),
    responses(
        (status = 200, description = "JPEG bytes.", body = inline(Binary),
            content_type = "image/jpeg",
            headers(("Cache-Control" = String), ("ETag" = String))),
        (status = 304, description = "Not modified."),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn thumbnail(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam<u64>,
) -> Result<Response, AppError> {
    let record = lookup(&state, id).await?;
    let tag = etag(&record, &format!("t{}", state.config.thumbnail_size));
    if let Some(res) = not_modified(&headers, &tag) {
        return Ok(res);
    }
    let (engine, size) = (state.engine.clone(), state.config.thumbnail_size);
    let cache = engine.clone();
    let cached = blocking(move || cache.cached_thumbnail(id, size).map_err(AppError::from)).await?;
    let bytes = match cached {
        Some(bytes) => bytes,
        // Making a thumbnail decodes the image, so it takes a decode slot.
        None => {
            let permit = decode_permit(&state).await?;
            blocking(move || {
                let _permit = permit;
                engine.thumbnail(id, size).map_err(AppError::from)
            })
            .await?
            .ok_or(AppError::ImageNotFound { id })?
        }
    };
    Ok(image_response(bytes, "image/jpeg", &tag))
}

/// `GET /api/images/{id}/original`: the indexed file itself, typed by its content.
#[utoipa::path(
    get,
    path = "/api/images/{id}/original",
    tag = TAG_IMAGES,
    operation_id = "getOriginal",
    summary = "The indexed file itself, typed by its content. Honours If-None-Match.",
    params(ImageId),
    responses(
        (status = 200, description = "Image bytes.", body = inline(Binary),
            content_type = "image/*",
            headers(("Cache-Control" = String), ("ETag" = String))),
        (status = 304, description = "Not modified."),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn original(
    State(state): State<AppState>,
    headers: HeaderMap,
    PathParam(id): PathParam<u64>,
) -> Result<Response, AppError> {
    let record = lookup(&state, id).await?;
    let tag = etag(&record, "o");
    if let Some(res) = not_modified(&headers, &tag) {
        return Ok(res);
    }
    let path = record.path.clone();
    let bytes = blocking(move || {
        std::fs::read(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AppError::NotFound {
                what: format!("the file of image {id} (moved or deleted since indexing)"),
            },
            _ => AppError::Internal {
                reason: format!("cannot read {}: {err}", path.display()),
            },
        })
    })
    .await?;
    // A file replaced by something that is not an image since indexing is served as opaque
    // bytes, never with a type the browser would render or run.
    let mime = image_mime(&bytes).unwrap_or("application/octet-stream");
    Ok(image_response(bytes, mime, &tag))
}

/// `POST /api/images`, multipart field `image`: stores the upload and indexes it.
#[utoipa::path(
    post,
    path = "/api/images",
    tag = TAG_IMAGES,
    operation_id = "uploadImage",
    summary = "Upload an image: it is stored under the data directory and indexed.",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Indexed.", body = ImageOut),
        (status = 400, response = E400),
        (status = 413, response = E413),
        (status = 415, response = E415),
        (status = 422, response = E422),
    )
)]
pub async fn upload(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    let limit = state.config.max_upload_bytes;
    let mut multipart = multipart?;
    let mut upload = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| AppError::from(e).with_limit(limit))?
    {
        if field.name() != Some("image") {
            let name = field.name().unwrap_or_default().to_string();
            return Err(AppError::InvalidMultipart {
                reason: format!("unknown field {name:?}"),
            });
        }
        let filename = field.file_name().map(safe_file_name).unwrap_or_default();
        let bytes = field
            .bytes()
            .await
            .map_err(|e| AppError::from(e).with_limit(limit))?;
        upload = Some((filename, bytes));
    }
    let (filename, bytes) = upload.ok_or_else(|| AppError::InvalidMultipart {
        reason: "the image field is missing".to_string(),
    })?;
    let Some(mime) = image_mime(&bytes) else {
        return Err(AppError::NotAnImage);
    };
    let filename = if filename.is_empty() {
        default_name(mime)
    } else {
        filename
    };
    let engine = state.engine.clone();
    let permit = decode_permit(&state).await?;
    let record = blocking(move || {
        let _permit = permit;
        engine.add_upload(&bytes, &filename).map_err(AppError::from)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(ImageOut::from(record))).into_response())
}

/// Keeps only the last component of a client-supplied file name and drops characters that
/// have a meaning to file systems or shells.
fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' '))
        .take(120)
        .collect();
    cleaned.trim_start_matches('.').trim().to_string()
}

fn default_name(mime: &str) -> String {
    format!("upload.{}", mime.trim_start_matches("image/"))
}

/// `DELETE /api/images/{id}`: removes an image from the index (the file stays on disk).
#[utoipa::path(
    delete,
    path = "/api/images/{id}",
    tag = TAG_IMAGES,
    operation_id = "deleteImage",
    summary = "Remove an image from the index.",
    params(ImageId),
    responses(
        (status = 200, description = "OK", body = ImageDeleted),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn remove(
    State(state): State<AppState>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<ImageDeleted>, AppError> {
    let engine = state.engine.clone();
    let removed = blocking(move || engine.remove(id).map_err(AppError::from)).await?;
    if !removed {
        return Err(AppError::ImageNotFound { id });
    }
    Ok(Json(ImageDeleted { id, deleted: true }))
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn file_names_lose_directories_and_odd_characters() {
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("C:\\photos\\cat.jpg"), "cat.jpg");
        assert_eq!(safe_file_name("..hidden.png"), "hidden.png");
        assert_eq!(safe_file_name("a;rm -rf$.jpg"), "arm -rf.jpg");
    }
}
