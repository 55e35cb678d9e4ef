//! The node's HTTPS listener: `/health/live`, `/health/ready`, Prometheus `/metrics`, the
//! authorities' web application (`/web/`, [`imi_web::router`]), the authorities' API and the operator API ([`imi_api::router`]; operator routes take the
//! bearer token of the node's `operator.token`).
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use axum::{Json, Router};
use imi_engine::Engine;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use std::sync::Arc;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The authorities' API.
    pub api: imi_api::ApiState,
    /// The node's store: the readiness probe and the memory gauge (operations only; the
    /// API reads through the applications).
    pub store: Arc<dyn imi_store::Store>,
    /// The engine.
    pub engine: Engine,
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// Resident memory of the process, refreshed at each scrape.
    pub rss: Gauge,
    /// Store memory (memtables + block cache), refreshed at each scrape.
    pub store_memory: Gauge,
    /// The trust list's version and age, refreshed at each scrape.
    pub trust_list_version: Gauge,
    /// Seconds since the trust list in force was issued.
    pub trust_list_age: Gauge,
    /// 1 while maintenance mode is on.
    pub maintenance: Gauge,
    /// Leaves in the node's transparency log, refreshed at each scrape.
    pub log_leaves: Gauge,
}

/// A trust list issued longer ago than this is reported stale (readiness and the age
/// metric tell the operator; the node keeps working: there is no hard expiry).
pub const TRUST_LIST_STALE_DAYS: u64 = 180;

/// The operations routes: method, path (OpenAPI syntax) and handler. The authorities' API
/// and the operator API are [`imi_api::router`].
fn table() -> Vec<(&'static str, &'static str, MethodRouter<HttpState>)> {
    vec![
        ("get", "/health/live", get(|| async { "ok" })),
        ("get", "/health/ready", get(ready)),
        ("get", "/metrics", get(metrics)),
    ]
}

/// Every route the HTTPS listener serves, as `(method, path)` in OpenAPI path syntax: the
/// operations and operator routes and [`imi_api::routes`].
pub fn routes() -> Vec<(String, String)> {
    table()
        .into_iter()
        .map(|(m, p, _)| (m.to_owned(), p.to_owned()))
        .chain(
            imi_api::routes()
                .into_iter()
                .map(|(m, p)| (m.to_owned(), p)),
        )
        .collect()
}

/// The router of a separate metrics listener (`[metrics] listen`, plain HTTP): `/metrics`
/// and the health probes, nothing else.
pub fn metrics_router(state: HttpState) -> Router {
    let mut r = Router::new();
    for (_, path, handler) in table() {
        r = r.route(path, handler);
    }
    r.with_state(state)
}

/// The router of the whole HTTPS listener: operations, operator API and `/api/v1`; every
/// error is problem+json. Without `with_metrics` (a separate metrics listener serves them),
/// `/metrics` is not among its routes.
pub fn router(state: HttpState, with_metrics: bool) -> Router {
    let api = imi_api::router(state.api.clone());
    let mut by_path: std::collections::BTreeMap<&str, MethodRouter<HttpState>> =
        std::collections::BTreeMap::new();
    for (_, path, handler) in table()
        .into_iter()
        .filter(|(_, p, _)| with_metrics || *p != "/metrics")
    {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    let mut r = Router::new();
    for (path, handler) in by_path {
        r = r.route(path, handler);
    }
    if !with_metrics {
        r = r.route(
            "/metrics",
            get(|| async {
                problem(
                    StatusCode::NOT_FOUND,
                    "not found",
                    "this node serves /metrics on its metrics listener ([metrics] listen)".into(),
                )
            }),
        );
    }
    let mut r = r.with_state(state.clone()).merge(api);
    // The authorities' web application, on the API's own routes (`/`, `/web/...`).
    match imi_web::Web::new(state.api.clone()) {
        Ok(web) => r = r.merge(imi_web::router(web)),
        Err(e) => {
            tracing::error!(error = %e, "the web application's message catalogues do not load; /web/ is not served")
        }
    }
    r.layer(axum::middleware::map_response(
        imi_api::problem::problems_everywhere,
    ))
}

fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    let code = title.replace(' ', "_");
    imi_api::problem::problem_response(status, &code, &detail)
}

/// Resident set size of this process in bytes (Linux).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

async fn ready(State(state): State<HttpState>) -> Response {
    let engine = &state.engine;
    let store_ok = state
        .store
        .get(imi_engine::keys::META, b"ready-probe")
        .is_ok();
    let trust = engine.trust_list();
    let peers = engine.peers();
    let connected = engine.connected().await.unwrap_or_default();
    let unreachable: Vec<String> = peers
        .iter()
        .filter(|p| !connected.contains(p))
        .map(|p| p.to_string())
        .collect();
    let reachable: Vec<String> = connected.iter().map(|p| p.to_string()).collect();
    let maintenance = state.api.maintenance();
    let ready = store_ok && (peers.is_empty() || !connected.is_empty()) && maintenance.is_none();
    let age_days = engine.now_ms().saturating_sub(trust.issued) / 86_400_000;
    let body = json!({
        "ready": ready,
        "node": engine.node().to_string(),
        "store": store_ok,
        "trust_list_version": trust.version,
        "trust_list_issued": trust.issued,
        "trust_list_age_days": age_days,
        "trust_list_stale": age_days > TRUST_LIST_STALE_DAYS,
        "peers_reachable": reachable,
        "peers_unreachable": unreachable,
        "maintenance": maintenance,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<HttpState>) -> Response {
    state
        .rss
        .set(i64::try_from(rss_bytes()).unwrap_or(i64::MAX));
    state
        .store_memory
        .set(i64::try_from(state.store.memory_usage_bytes()).unwrap_or(i64::MAX));
    let trust = state.engine.trust_list();
    state
        .trust_list_version
        .set(i64::try_from(trust.version).unwrap_or(i64::MAX));
    state
        .maintenance
        .set(i64::from(state.api.maintenance().is_some()));
    if let Ok(n) = imi_engine::log::size(state.store.as_ref()) {
        state.log_leaves.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    state.trust_list_age.set(
        i64::try_from(state.engine.now_ms().saturating_sub(trust.issued) / 1000)
            .unwrap_or(i64::MAX),
    );
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &state.registry) {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed",
            e.to_string(),
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
