//! The HTTP face of imgsearch: a JSON API, a raw vector API in the spirit of Milvus, metrics, an
//! OpenAPI document and the search page, all served by one axum router over one [`Engine`].
//!
//! The engine is synchronous and CPU-bound (decoding, embedding, index search), so every engine
//! call runs on tokio's blocking pool; the async side only parses requests and writes responses.
//! Nothing on disk is reachable by path: images are served only by the id the index gave them.

mod api;
mod assets;
mod error;
mod metrics;
mod sniff;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;
use engine::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::trace::TraceLayer;

pub use error::AppError;
pub use metrics::Metrics;

/// Settings of the HTTP layer (the engine has its own).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest request body accepted, uploads and JSON alike; larger ones get 413.
    pub max_upload_bytes: usize,
    /// Longest side, in pixels, of the thumbnails served to the page.
    pub thumbnail_size: u32,
    /// Largest `k` / `limit` a search may ask for; larger ones are rejected, not capped.
    pub max_k: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_upload_bytes: 32 * 1024 * 1024,
            thumbnail_size: 256,
            max_k: 1000,
        }
    }
}

/// What every handler shares: the engine, the settings and the metrics registry.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub config: Arc<ServerConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// State with the default [`ServerConfig`].
    pub fn new(engine: Arc<Engine>) -> Self {
        Self::with_config(engine, ServerConfig::default())
    }

    /// State with explicit settings.
    pub fn with_config(engine: Arc<Engine>, config: ServerConfig) -> Self {
        AppState {
            engine,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// Every route of the router: path template, method and handler. The router is built from this
/// table and the OpenAPI test reads the same table, so no route can go undocumented.
fn routes() -> Vec<(&'static str, Method, MethodRouter<AppState>)> {
    use api::{collections as col, images as img, search, system as sys};
    use axum::routing::{delete, get, post};
    let mut table: Vec<(&'static str, Method, MethodRouter<AppState>)> = vec![
        ("/", Method::GET, get(assets::index)),
        ("/healthz", Method::GET, get(sys::healthz)),
        ("/metrics", Method::GET, get(sys::metrics)),
        ("/openapi.json", Method::GET, get(sys::openapi)),
        ("/api/status", Method::GET, get(sys::status)),
        ("/api/search", Method::GET, get(search::search_get)),
        ("/api/search", Method::POST, post(search::search_post)),
        ("/api/images", Method::POST, post(img::upload)),
        ("/api/images/{id}", Method::GET, get(img::record)),
        ("/api/images/{id}", Method::DELETE, delete(img::remove)),
        (
            "/api/images/{id}/thumbnail",
            Method::GET,
            get(img::thumbnail),
        ),
        ("/api/images/{id}/original", Method::GET, get(img::original)),
        ("/api/collections", Method::GET, get(col::list)),
        ("/api/collections", Method::POST, post(col::create)),
        ("/api/collections/{name}", Method::GET, get(col::info)),
        (
            "/api/collections/{name}",
            Method::DELETE,
            delete(col::drop_collection),
        ),
        (
            "/api/collections/{name}/insert",
            Method::POST,
            post(col::insert),
        ),
        (
            "/api/collections/{name}/search",
            Method::POST,
            post(col::search),
        ),
        (
            "/api/collections/{name}/delete",
            Method::POST,
            post(col::delete_points),
        ),
        (
            "/api/collections/{name}/get",
            Method::POST,
            post(col::get_points),
        ),
    ];
    for &(path, mime, body) in assets::ASSETS {
        table.push((
            path,
            Method::GET,
            get(move || async move { assets::asset(mime, body) }),
        ));
    }
    table
}

/// The (path template, method) pairs the router serves, for documentation checks.
pub fn route_list() -> Vec<(&'static str, Method)> {
    routes()
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect()
}

/// The whole application: routes, JSON fallbacks, body limit, metrics and tracing.
pub fn app(state: AppState) -> Router {
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
        .layer(axum::middleware::from_fn(api::system::security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `engine` on `addr` until Ctrl-C, then finishes the requests in flight.
pub async fn serve(engine: Arc<Engine>, addr: SocketAddr) -> std::io::Result<()> {
    serve_with_config(engine, addr, ServerConfig::default()).await
}

/// [`serve`] with explicit HTTP settings.
pub async fn serve_with_config(
    engine: Arc<Engine>,
    addr: SocketAddr,
    config: ServerConfig,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let state = AppState::with_config(engine, config);
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves on a bound listener until `shutdown` completes, then finishes the requests in flight.
/// Tests and embedders use it to pick the port (bind to port 0) and the shutdown trigger.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    tracing::info!(%local, "imgsearch is serving on http://{local}/");
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "listening beyond loopback: the API has no authentication");
    }
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn shutdown_signal() {
    match tokio::signal::ctrl_c().await {
        Ok(()) => tracing::info!("Ctrl-C received; finishing requests in flight"),
        // Without a signal handler the server cannot be stopped gracefully; keep serving and
        // let the process be killed rather than exit at once.
        Err(err) => {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await
        }
    }
}
