//! Indexing jobs: `POST /api/jobs/index` starts an ingest of server paths in the background,
//! `GET /api/jobs` and `GET /api/jobs/{id}` report, `GET /api/jobs/{id}/events` streams the
//! progress as Server-Sent Events and `DELETE /api/jobs/{id}` cancels between batches.
//!
//! These are the only routes that take file-system paths. Reading any folder the server can
//! read is a capability, so the guard lets only token holders start or cancel a job (the
//! configured token, or the local one in `server.json`, which only the server's user can
//! read), and when `index_roots` is configured every path must lie under one of those folders
//! once made canonical (so neither `..` nor a symbolic link leads out of them).

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::jobs::{JobInfo, JobState, Refused};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::blocking;
use super::extract::{JsonBody, PathParam};
use crate::error::{AppError, ErrorBody};
use crate::openapi::{E400, E401, E404, TAG_JOBS};
use crate::AppState;

/// Most paths one job may be given.
const MAX_PATHS: usize = 1000;

/// How often an event stream looks at its job; progress events are sent only on change.
const POLL: Duration = Duration::from_millis(200);

/// Body of `POST /api/jobs/index`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexJobRequest {
    /// Absolute paths of folders or image files on the server (at most 1000).
    #[schema(value_type = Vec<String>)]
    paths: Vec<PathBuf>,
}

/// Answer of `GET /api/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobInfo>,
}

/// `POST /api/jobs/index`: 202 with the job and its `Location`, or 409 `job_running` naming
/// the job already running.
#[utoipa::path(
    post,
    path = "/api/jobs/index",
    tag = TAG_JOBS,
    operation_id = "startIndexJob",
    summary = "Index folders or files on the server in the background (as `imgsearch index` \
               does). One job runs at a time; searches are answered meanwhile. With \
               `index_roots` configured, every path must lie under one of them.",
    request_body = IndexJobRequest,
    responses(
        (status = 202, description = "Started; `Location` names the job.", body = JobInfo,
            headers(("Location" = String, description = "/api/jobs/{id} of the new job."))),
        (status = 400, response = E400),
        (status = 401, response = E401),
        (status = 403, description = "A path outside `index_roots` (`path_not_allowed`).",
            body = ErrorBody),
        (status = 404, response = E404),
        (status = 409, description = "A job is running already (`job_running`).",
            body = ErrorBody),
        (status = 503, description = "The server is shutting down (`shutting_down`).",
            body = ErrorBody),
    )
)]
pub async fn submit_index(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<IndexJobRequest>,
) -> Result<Response, AppError> {
    let roots = state.config.index_roots.clone();
    let paths = blocking(move || check_paths(&request.paths, &roots)).await?;
    let jobs = state.jobs.clone();
    let job = blocking(move || {
        jobs.submit_index(paths).map_err(|refused| match refused {
            Refused::Busy(running) => AppError::JobRunning { id: running.id },
            Refused::Closing => AppError::ShuttingDown,
        })
    })
    .await?;
    let mut res = (StatusCode::ACCEPTED, Json(&job)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/jobs/{}", job.id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `POST /api/libraries/rescan`: an indexing job over the configured libraries (`libraries`,
/// `serve --watch`), as the periodic rescan starts. It takes no path, so it reads nothing the
/// server was not told to keep in sync, and the page may ask for it without the local token.
#[utoipa::path(
    post,
    path = "/api/libraries/rescan",
    tag = TAG_JOBS,
    operation_id = "rescanLibraries",
    summary = "Index the configured libraries (`libraries`, `serve --watch`) now, as the periodic \
               rescan does. Takes no path, so the page may ask for it without the local token.",
    responses(
        (status = 202, description = "Started.", body = JobInfo),
        (status = 404, response = E404),
        (status = 409, description = "A job is running already (`job_running`).",
            body = ErrorBody),
    )
)]
pub async fn rescan(State(state): State<AppState>) -> Result<Response, AppError> {
    let libraries = state.config.libraries.clone();
    if libraries.is_empty() {
        return Err(AppError::NotFound {
            what: "library to rescan (configure `libraries` or run `serve --watch DIR`)".into(),
        });
    }
    let jobs = state.jobs.clone();
    let job = blocking(move || {
        jobs.submit_index(libraries)
            .map_err(|refused| match refused {
                Refused::Busy(running) => AppError::JobRunning { id: running.id },
                Refused::Closing => AppError::ShuttingDown,
            })
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(&job)).into_response())
}

/// Every path must be absolute (the server does not share a client's working directory),
/// exist, and lie under a configured index root when there are any. Returns them canonical.
fn check_paths(paths: &[PathBuf], roots: &[PathBuf]) -> Result<Vec<PathBuf>, AppError> {
    if paths.is_empty() {
        return Err(AppError::param("paths", "give at least one folder or file"));
    }
    if paths.len() > MAX_PATHS {
        return Err(AppError::param(
            "paths",
            format!("{} paths; at most {MAX_PATHS} per job", paths.len()),
        ));
    }
    let roots: Vec<PathBuf> = roots.iter().filter_map(|r| r.canonicalize().ok()).collect();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        if !path.is_absolute() {
            return Err(AppError::param(
                "paths",
                format!(
                    "{} is relative; give absolute paths on the server",
                    path.display()
                ),
            ));
        }
        let canonical = path.canonicalize().map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => AppError::NotFound {
                what: format!("path {}", path.display()),
            },
            _ => AppError::param("paths", format!("{}: {err}", path.display())),
        })?;
        if !allowed(&canonical, &roots) {
            return Err(AppError::PathNotAllowed {
                path: path.display().to_string(),
            });
        }
        out.push(canonical);
    }
    Ok(out)
}

/// No roots configured: any path the server can read. Otherwise only paths under a root.
fn allowed(path: &Path, roots: &[PathBuf]) -> bool {
    roots.is_empty() || roots.iter().any(|r| path.starts_with(r))
}

/// `GET /api/jobs`: every job kept (the running one and the last finished ones), newest first.
#[utoipa::path(
    get,
    path = "/api/jobs",
    tag = TAG_JOBS,
    operation_id = "listJobs",
    summary = "The running job and the last finished ones, newest first.",
    responses((status = 200, description = "OK", body = JobList))
)]
pub async fn list(State(state): State<AppState>) -> Json<JobList> {
    Json(JobList {
        jobs: state.jobs.list(),
    })
}

/// The `{id}` path segment of the routes under `/api/jobs/{id}`, described once for every
/// operation that takes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Only the OpenAPI document reads it; the handlers extract the id as a number.
struct JobId {
    /// Id of the job.
    id: u64,
}

/// `GET /api/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    tag = TAG_JOBS,
    operation_id = "getJob",
    summary = "One job.",
    params(JobId),
    responses(
        (status = 200, description = "OK", body = JobInfo),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<JobInfo>, AppError> {
    state.jobs.get(id).map(Json).ok_or_else(|| not_found(id))
}

/// `DELETE /api/jobs/{id}`: asks a running job to stop after its current batch and answers
/// with the job (still `running`, with `cancel_requested`, until that batch is stored).
#[utoipa::path(
    delete,
    path = "/api/jobs/{id}",
    tag = TAG_JOBS,
    operation_id = "cancelJob",
    summary = "Cancel a running job: it stops after its current batch (everything stored is \
               catalogued, and indexing the same paths again resumes). A finished job is left \
               as it is.",
    params(JobId),
    responses(
        (status = 200, description = "The job, with `cancel_requested`.", body = JobInfo),
        (status = 400, response = E400),
        (status = 401, response = E401),
        (status = 404, response = E404),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    PathParam(id): PathParam<u64>,
) -> Result<Json<JobInfo>, AppError> {
    state.jobs.cancel(id).map(Json).ok_or_else(|| not_found(id))
}

/// `GET /api/jobs/{id}/events`: one event whenever the job changes, named after its state
/// (`running`, then one of `done`, `failed`, `cancelled`), with the job as JSON data; the stream
/// ends after the last one.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/events",
    tag = TAG_JOBS,
    operation_id = "jobEvents",
    summary = "The job's progress as Server-Sent Events: one event whenever it changes, named \
               after its state (`running`, then `done`, `failed` or `cancelled`), with the job as \
               JSON data. The stream ends after the last event.",
    params(JobId),
    responses(
        (status = 200, description = "An event stream.", body = String,
            content_type = "text/event-stream"),
        (status = 400, response = E400),
        (status = 404, response = E404),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    PathParam(id): PathParam<u64>,
) -> Result<impl IntoResponse, AppError> {
    if state.jobs.get(id).is_none() {
        return Err(not_found(id));
    }
    let jobs = state.jobs.clone();
    let stream = futures_util::stream::unfold(Some(0u64), move |seen| {
        let jobs = jobs.clone();
        async move {
            let seen = seen?;
            loop {
                // A job forgotten meanwhile (many newer ones finished) ends the stream.
                let job = jobs.get(id)?;
                if job.version != seen {
                    let last = job.state != JobState::Running;
                    let event = Event::default()
                        .event(state_name(job.state))
                        .json_data(&job)
                        .unwrap_or_else(|_| Event::default().comment("unserialisable job"));
                    let next = (!last).then_some(job.version);
                    return Some((Ok::<_, Infallible>(event), next));
                }
                tokio::time::sleep(POLL).await;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Done => "done",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

fn not_found(id: u64) -> AppError {
    AppError::NotFound {
        what: format!("job {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_existing_and_under_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("in");
        let outside = dir.path().join("out");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let code = |r: Result<Vec<PathBuf>, AppError>| r.unwrap_err().status_and_code().1;
        assert_eq!(code(check_paths(&[], &[])), "invalid_parameter");
        assert_eq!(
            code(check_paths(&["relative/dir".into()], &[])),
            "invalid_parameter"
        );
        assert_eq!(
            code(check_paths(&[dir.path().join("missing")], &[])),
            "not_found"
        );
        let roots = [inside.clone()];
        assert_eq!(
            check_paths(std::slice::from_ref(&inside), &roots)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            code(check_paths(std::slice::from_ref(&outside), &roots)),
            "path_not_allowed"
        );
        // `..` out of a root is judged by where it leads.
        assert_eq!(
            code(check_paths(&[inside.join("../out")], &roots)),
            "path_not_allowed"
        );
        #[cfg(unix)]
        {
            let link = inside.join("link");
            std::os::unix::fs::symlink(&outside, &link).unwrap();
            assert_eq!(code(check_paths(&[link], &roots)), "path_not_allowed");
        }
        // Without roots, any existing path.
        assert_eq!(check_paths(&[outside], &[]).unwrap().len(), 1);
    }
}
