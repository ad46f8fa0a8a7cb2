//! The HTTP face of imgsearch: a JSON API, a raw vector API in the spirit of Milvus, metrics, an
//! OpenAPI document and the search page, all served by one axum router over one [`Engine`].
//!
//! The engine is synchronous and CPU-bound (decoding, embedding, index search), so every engine
//! call runs on tokio's blocking pool; the async side only parses requests and writes responses.
//! Nothing on disk is reachable by path: images are served only by the id the index gave them.
//! Only indexing jobs take paths, and only from token holders (`api/jobs.rs`).

mod api;
mod assets;
mod error;
mod guard;
mod linger;
mod metrics;
mod openapi;
pub mod owner;
mod sniff;
pub mod watch;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use engine::Engine;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

pub use error::AppError;
pub use guard::{constant_time_eq, host_allowed, Listening, TOKEN_COOKIE};
pub use metrics::Metrics;
pub use openapi::json as openapi_json;

/// Settings of the HTTP layer (the engine has its own). Every limit here is a configuration key
/// of `imgsearch serve` of the same name, listed in the README and reported by `/api/status`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted, uploads and JSON alike; larger ones get 413.
    pub max_upload_bytes: usize,
    /// Longest side, in pixels, of the thumbnails served to the page.
    pub thumbnail_size: u32,
    /// Largest `k` / `limit` a search may ask for; larger ones are rejected, not capped.
    pub max_k: usize,
    /// Largest number of ids in one `get` or `delete` of the vector API.
    pub max_ids: usize,
    /// Largest number of query vectors in one vector search.
    pub max_queries: usize,
    /// Largest number of hits one vector search may ask for: query vectors times `limit`.
    pub max_results: usize,
    /// Largest number of vector components one `get` may return: ids times dimension.
    pub max_response_floats: usize,
    /// Largest filter, in bytes of JSON, taken from a query string or a multipart field.
    pub max_filter_bytes: usize,
    /// Largest filter, in nodes: every `eq`, `range`, `in`, `and`, `or`, `not`, plus every value
    /// of every `in`.
    pub max_filter_nodes: usize,
    /// Image decodes and embeddings run at once (uploads, searches by image, new thumbnails);
    /// 0 sizes it from the cores and the memory (see [`auto_decode_slots`]).
    pub decode_slots: usize,
    /// How long a request waits for a decode slot before it gets 503 with `Retry-After`.
    pub decode_wait_ms: u64,
    /// How long a client may take to send the request line and headers.
    pub header_timeout_secs: u64,
    /// How long one request may take, body and answer included; slower ones get 408.
    pub request_timeout_secs: u64,
    /// Open connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// The token every API request must carry (`Authorization: Bearer TOKEN`); `None` serves
    /// without authentication, which `imgsearch serve` allows on loopback only.
    pub token: Option<String>,
    /// Host names (with an optional `:port`) accepted in the `Host` header besides IP addresses
    /// and `localhost`: the names a reverse proxy or the LAN reaches this server by.
    pub allow_hosts: Vec<String>,
    /// Origins (`https://app.example`) allowed to call the API from another site's pages (CORS);
    /// empty means none, the default.
    pub cors_origins: Vec<String>,
    /// A token of this run of the server, accepted besides `token` and written to
    /// `DATA_DIR/server.json` for the other commands (see [`owner`]). Indexing jobs need one of
    /// the two whenever either is set.
    pub local_token: Option<String>,
    /// Folders indexing jobs may read; empty allows any path the server can read (the job
    /// routes then rest on the token alone; see SECURITY.md).
    pub index_roots: Vec<PathBuf>,
    /// Folders kept in sync by `serve_with_config`: watched, and rescanned at start and every
    /// `rescan_secs` (see [`watch`]).
    pub libraries: Vec<PathBuf>,
    /// Seconds between two full rescans of the libraries.
    pub rescan_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 32 * 1024 * 1024,
            thumbnail_size: 256,
            max_k: engine::MAX_K,
            max_ids: 1000,
            max_queries: 1024,
            max_results: 10_000,
            max_response_floats: 4_000_000,
            max_filter_bytes: 64 * 1024,
            max_filter_nodes: 10_000,
            decode_slots: 0,
            decode_wait_ms: 10_000,
            header_timeout_secs: 10,
            request_timeout_secs: 120,
            max_connections: 256,
            token: None,
            allow_hosts: Vec::new(),
            cors_origins: Vec::new(),
            local_token: None,
            index_roots: Vec::new(),
            libraries: Vec::new(),
            rescan_secs: 3600,
        }
    }
}

/// Bytes one decode may hold at its peak, per pixel of `max_pixels`: the decoder's output and
/// working buffers are capped at 16 bytes per pixel (`embed`'s allocation limit, enough for
/// 16-bit RGBA), the RGB8 copy the model reads adds 3, and an EXIF rotation another 3.
pub const DECODE_BYTES_PER_PIXEL: u64 = 22;

/// Decode slots for this machine: one per core, but no more than the available memory holds
/// at one worst-case decode each (`max_pixels` x [`DECODE_BYTES_PER_PIXEL`]), and at least one.
pub fn auto_decode_slots(max_pixels: u64) -> usize {
    let cores = common::background::cores();
    let per_decode = max_pixels.saturating_mul(DECODE_BYTES_PER_PIXEL).max(1);
    let by_memory = available_memory().map_or(cores as u64, |m| m / per_decode);
    (by_memory.min(cores as u64) as usize).max(1)
}

/// `MemAvailable` from /proc/meminfo, in bytes; `None` where it cannot be read.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What every handler shares: the engine, the settings, the metrics registry and the decode
/// slots.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
    /// One permit per decode or embedding allowed at once.
    pub decode_slots: Arc<tokio::sync::Semaphore>,
    /// The background indexing jobs of the engine (one at a time).
    pub jobs: Arc<engine::jobs::Jobs>,
}

impl AppState {
    /// State with the default [`ServerConfig`].
    pub fn new(engine: Arc<Engine>) -> Self {
        Self::with_config(engine, ServerConfig::default())
    }

    /// State with explicit settings; `decode_slots = 0` is resolved here.
    pub fn with_config(engine: Arc<Engine>, mut config: ServerConfig) -> Self {
        if config.decode_slots == 0 {
            config.decode_slots = auto_decode_slots(engine.config().limits.max_pixels);
        }
        AppState {
            decode_slots: Arc::new(tokio::sync::Semaphore::new(config.decode_slots)),
            jobs: Arc::new(engine::jobs::Jobs::new(engine.clone())),
            engine,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// Every route of the router: path template, method and handler. The router is built from this
/// table and the OpenAPI test reads the same table, so no route can go undocumented.
fn routes() -> Vec<Route> {
    use api::{collections as col, images as img, jobs, library, search, system as sys};
    let mut table = vec![
        route("/", Method::GET, assets::index),
        route("/healthz", Method::GET, sys::healthz),
        route("/metrics", Method::GET, sys::metrics),
        route("/openapi.json", Method::GET, sys::openapi),
        route("/api/status", Method::GET, sys::status),
        route("/api/search", Method::GET, search::search_get),
        route("/api/search", Method::POST, search::search_post),
        route("/api/images", Method::POST, img::upload),
        route("/api/images", Method::GET, library::by_path),
        route("/api/dedup", Method::GET, library::dedup),
        route("/api/library", Method::GET, library::page),
        route("/api/libraries/rescan", Method::POST, jobs::rescan),
        route("/api/jobs", Method::GET, jobs::list),
        route("/api/jobs/index", Method::POST, jobs::submit_index),
        route("/api/jobs/{id}", Method::GET, jobs::get),
        route("/api/jobs/{id}", Method::DELETE, jobs::cancel),
        route("/api/jobs/{id}/events", Method::GET, jobs::events),
        route("/api/images/{id}", Method::GET, img::record),
        route("/api/images/{id}", Method::DELETE, img::remove),
        route("/api/images/{id}/thumbnail", Method::GET, img::thumbnail),
        route("/api/images/{id}/original", Method::GET, img::original),
        route("/api/collections", Method::GET, col::list),
        route("/api/collections", Method::POST, col::create),
        route("/api/collections/{name}", Method::GET, col::info),
        route(
            "/api/collections/{name}",
            Method::DELETE,
            col::drop_collection,
        ),
        route("/api/collections/{name}/insert", Method::POST, col::insert),
        route("/api/collections/{name}/search", Method::POST, col::search),
        route(
            "/api/collections/{name}/delete",
            Method::POST,
            col::delete_points,
        ),
        route("/api/collections/{name}/get", Method::POST, col::get_points),
    ];
    for asset in assets::ASSETS {
        let (mime, body) = (asset.mime, asset.body);
        table.push(route(asset.path, Method::GET, move || async move {
            assets::asset(mime, body)
        }));
    }
    table
}

/// A row of the route table: path template, method, and the handler routed by that method.
type Route = (&'static str, Method, MethodRouter<AppState>);

/// A row of the route table, its method named once: the router routes the handler by the same
/// method the table (and so the OpenAPI test) lists.
fn route<H, T>(path: &'static str, method: Method, handler: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("the table names standard methods");
    (path, method, axum::routing::on(filter, handler))
}

/// The (path template, method) pairs the router serves, for documentation checks.
pub fn route_list() -> Vec<(&'static str, Method)> {
    routes()
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect()
}

/// The whole application: routes, JSON fallbacks, body limit, metrics, the guard (host,
/// origin, token, timeout), security headers, tracing, and lingering bodies ([`linger`]).
pub fn app(state: AppState) -> Router {
    // A refused body is drained up to the size an accepted upload may have.
    let drain_limit = state.config.max_upload_bytes;
    let mut router = Router::new();
    for (path, _, handler) in routes() {
        // Routes registered twice on one path merge their methods.
        router = router.route(path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .fallback(api::system::route_not_found)
        .method_not_allowed_fallback(api::system::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_upload_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(guard::security_headers))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::map_request(move |request| async move {
            linger::wrap(request, drain_limit)
        }))
        .with_state(state)
}

/// Serves `engine` on `addr` until SIGINT or SIGTERM, then finishes the requests in flight.
pub async fn serve(engine: Arc<Engine>, addr: SocketAddr) -> std::io::Result<()> {
    serve_with_config(engine, addr, ServerConfig::default()).await
}

/// [`serve`] with explicit HTTP settings, as the owner of the engine's data directory: once
/// listening it writes `DATA_DIR/server.json` with a fresh local token (see [`owner`]), so that
/// the other commands go through this server. When told to stop, it finishes the requests in
/// flight and the running job's current batch, saves the index snapshot (so the next start does
/// not rebuild the index), and removes `server.json`.
pub async fn serve_with_config(
    engine: Arc<Engine>,
    addr: SocketAddr,
    mut config: ServerConfig,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_token = owner::random_token()?;
    config.local_token = Some(local_token.clone());
    let _owner = owner::write(
        &engine.config().data_dir,
        listener.local_addr()?,
        &local_token,
        &engine.collection().name,
    )?;
    let watch = watch::WatchConfig {
        libraries: config.libraries.clone(),
        debounce: std::time::Duration::from_secs(2),
        rescan: std::time::Duration::from_secs(config.rescan_secs.max(1)),
        ignore: vec![engine.config().data_dir.clone()],
    };
    let state = AppState::with_config(engine.clone(), config);
    let jobs = state.jobs.clone();
    let watch = watch::start(jobs.clone(), watch)?;
    serve_on(listener, state, shutdown_signal()).await?;
    // The jobs are closed: the watch submits nothing more.
    drop(watch);
    let saved = tokio::task::spawn_blocking(move || {
        jobs.wait();
        engine.save()
    })
    .await;
    match saved {
        Ok(Ok(())) => tracing::info!("index snapshot saved"),
        Ok(Err(err)) => tracing::warn!(%err, "could not save the index snapshot"),
        Err(err) => tracing::warn!(%err, "could not save the index snapshot"),
    }
    Ok(())
}

/// Serves on a bound listener until `shutdown` completes, then finishes the requests in flight.
/// Tests and embedders use it to pick the port (bind to port 0) and the shutdown trigger.
///
/// Each connection has `header_timeout_secs` to send its request line and headers (a slow
/// client cannot hold a connection open with a trickle of header bytes), at most
/// `max_connections` are served at once (the rest wait in the kernel's accept queue, so the
/// process never runs out of file descriptors), and each request has `request_timeout_secs`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    use std::time::Duration;

    let local = listener.local_addr()?;
    tracing::info!(%local, "imgsearch is serving on http://{local}/");
    if !local.ip().is_loopback() && state.config.token.is_none() {
        tracing::warn!(%local, "listening beyond loopback without a token: anyone who can reach this address can drive the API");
    }
    let config = state.config.clone();
    let jobs = state.jobs.clone();
    let router = app(state).layer(axum::Extension(guard::Listening(local)));
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_timeout_secs.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept: wait a little
                    // rather than spin, and keep serving the connections already open.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    // A running job stops after its current batch, which ends the event streams following it.
    jobs.close();
    let drain = Duration::from_secs(config.request_timeout_secs.max(1) + 5);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time and were closed");
    }
    Ok(())
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what service managers and `kill` send).
async fn shutdown_signal() {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!("SIGINT received"),
            // Without a signal handler the server cannot be stopped gracefully; keep serving and
            // let the process be killed rather than exit at once.
            Err(err) => {
                tracing::error!(%err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
                tracing::info!("SIGTERM received");
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
