//! Extractors whose rejections are the API's JSON errors, so handlers need no rejection
//! plumbing of their own.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::AppState;

/// A path parameter; a malformed one (`/api/images/abc`) is a 400 `invalid_parameter`.
pub struct PathParam<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParam<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

/// A JSON body; a wrong content type, malformed JSON or a body over the configured upload limit
/// is the matching 4xx, the last one naming the limit.
pub struct JsonBody<T>(pub T);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(e) => Err(AppError::from(e).with_limit(state.config.max_upload_bytes)),
        }
    }
}
