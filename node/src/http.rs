//! The node's HTTPS listener: `/health/live`, `/health/ready`, Prometheus `/metrics`, and
//! the operator-only API (`/operator/...`, bearer token from the node's `operator.token`).
use crate::diag::{DiagRequest, run_diag};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Json, Router};
use imi_api::requests::{NoQuery, QueryOf, query};
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
    /// The governance public key (verifies trust-list updates).
    pub governance: [u8; 32],
    /// Metrics registry.
    pub registry: Arc<Registry>,
    /// SHA-256 of the operator token.
    pub token_hash: [u8; 32],
    /// Resident memory of the process, refreshed at each scrape.
    pub rss: Gauge,
    /// Store memory (memtables + block cache), refreshed at each scrape.
    pub store_memory: Gauge,
}

/// The operations and operator routes: method, path (OpenAPI syntax) and handler.
fn table() -> Vec<(&'static str, &'static str, MethodRouter<HttpState>)> {
    vec![
        ("get", "/health/live", get(|| async { "ok" })),
        ("get", "/health/ready", get(ready)),
        ("get", "/metrics", get(metrics)),
        ("post", "/operator/diag/send", post(diag_send)),
        ("get", "/operator/status", get(status)),
        ("post", "/operator/trust-list", post(trust_list_update)),
        ("get", "/operator/users", get(users_list)),
        ("post", "/operator/users", post(users_add)),
        ("post", "/operator/users/{user}/revoke", post(users_revoke)),
        ("post", "/operator/audit/checkpoint", post(audit_checkpoint)),
        ("get", "/operator/audit/bundle", get(audit_bundle)),
        ("post", "/operator/retention/run", post(retention_run)),
        (
            "get",
            "/operator/audit/blocked/{id}",
            get(operator_read_blocked),
        ),
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

/// The router of the whole HTTPS listener: operations, operator API and `/api/v1`; every
/// error is problem+json.
pub fn router(state: HttpState) -> Router {
    let api = imi_api::router(state.api.clone());
    let mut by_path: std::collections::BTreeMap<&str, MethodRouter<HttpState>> =
        std::collections::BTreeMap::new();
    for (_, path, handler) in table() {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    let (mut public, mut operator) = (Router::new(), Router::new());
    for (path, handler) in by_path {
        if path.starts_with("/operator/") {
            operator = operator.route(path, handler);
        } else {
            public = public.route(path, handler);
        }
    }
    let operator = operator.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        operator_only,
    ));
    public
        .merge(operator)
        .layer(axum::extract::DefaultBodyLimit::max(
            imi_protocol::MAX_TRUST_LIST_BYTES,
        ))
        .with_state(state)
        .merge(api)
        .layer(axum::middleware::map_response(
            imi_api::problem::problems_everywhere,
        ))
}

async fn operator_read_blocked(
    State(state): State<HttpState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    q: QueryOf<NoQuery>,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    let node = state.engine.node();
    let Ok(authority) = imi_protocol::AuthorityId::new(&format!("{node}-IMI")) else {
        return imi_api::ApiError::internal("operator authority id").into_response();
    };
    let reader = imi_domain::User {
        id: "operator".into(),
        authority,
        role: imi_domain::Role::Operator,
    };
    match imi_api::requests::blocked_view(&state.api, &reader, &id, "en").await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn retention_run(State(state): State<HttpState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    match state.api.services.run_retention().await {
        Ok(r) => Json(json!({"blocked": r.blocked, "deleted": r.deleted})).into_response(),
        Err(e) => imi_api::ApiError::from(e).into_response(),
    }
}

async fn audit_checkpoint(State(state): State<HttpState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    // Sign, send to witnesses and send this node's own witness answers now.
    match state.api.services.checkpoint().await {
        Ok(note) => Json(json!({"checkpoint": note})).into_response(),
        Err(e) => imi_api::ApiError::from(e).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleQuery {
    case: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn audit_bundle(State(state): State<HttpState>, q: QueryOf<BundleQuery>) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let selection = match imi_api::requests::bundle_selection(
        q.case.as_deref(),
        q.from.as_deref(),
        q.to.as_deref(),
    ) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // A case this node does not hold is the 404 of the auditor's route, not an empty bundle.
    match imi_api::requests::export_bundle(&state.api, selection).await {
        Ok(Some(b)) => Json(b).into_response(),
        Ok(None) => imi_api::ApiError::not_found().into_response(),
        Err(e) => e.into_response(),
    }
}

async fn users_list(State(state): State<HttpState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    match imi_api::users::list(&state.api).await {
        Ok(list) => Json(json!({"items": list.iter().map(|u| u.view()).collect::<Vec<_>>()}))
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn users_add(
    State(state): State<HttpState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    let new: imi_api::users::NewUser = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return problem(StatusCode::BAD_REQUEST, "invalid request", e.to_string());
        }
    };
    match imi_api::users::add(&state.api, new).await {
        Ok((record, token)) => {
            let mut v = record.view();
            if let Some(o) = v.as_object_mut() {
                o.insert("token".into(), json!(token));
            }
            (StatusCode::CREATED, Json(v)).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn users_revoke(
    State(state): State<HttpState>,
    axum::extract::Path(user): axum::extract::Path<String>,
    q: QueryOf<NoQuery>,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    match imi_api::users::revoke(&state.api, &user).await {
        Ok(record) => Json(record.view()).into_response(),
        Err(e) => e.into_response(),
    }
}

fn authorized(state: &HttpState, headers: &HeaderMap) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = v.strip_prefix("Bearer ") else {
        return false;
    };
    imi_protocol::sha256(token.trim().as_bytes()) == state.token_hash
}

/// The 401 problem to answer when the operator bearer token is missing or wrong.
/// The one authorization layer of every `/operator` route: the node's operator token, or
/// a 401 problem before the route's handler (and its extractors) run.
async fn operator_only(
    State(state): State<HttpState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(&state, request.headers()) {
        next.run(request).await
    } else {
        problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "operator token required".into(),
        )
    }
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
    let ready = store_ok && (peers.is_empty() || !connected.is_empty());
    let body = json!({
        "ready": ready,
        "node": engine.node().to_string(),
        "store": store_ok,
        "trust_list_version": trust.version,
        "peers_reachable": reachable,
        "peers_unreachable": unreachable,
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

async fn diag_send(
    State(state): State<HttpState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    let req: DiagRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "invalid request", e.to_string()),
    };
    tracing::info!(to = %req.to, count = req.count, "operator diagnostic send");
    match run_diag(&state.engine, req).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => problem(StatusCode::BAD_REQUEST, "diagnostic failed", e.to_string()),
    }
}

async fn status(State(state): State<HttpState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    let engine = &state.engine;
    let queues: serde_json::Map<String, serde_json::Value> = engine
        .peers()
        .into_iter()
        .map(|p| (p.to_string(), json!(engine.queue_depth(p))))
        .collect();
    let connected: Vec<String> = engine
        .connected()
        .await
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_string())
        .collect();
    Json(json!({
        "node": engine.node().to_string(),
        "diagnostic_applied": state.api.services.diagnostics_applied().await.unwrap_or(0),
        "queues": queues,
        "connected": connected,
        "trust_list_version": engine.trust_list().version,
    }))
    .into_response()
}

async fn trust_list_update(
    State(state): State<HttpState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    match state
        .engine
        .update_trust_list(body.to_vec(), &state.governance)
        .await
    {
        Ok(version) => Json(json!({"trust_list_version": version})).into_response(),
        Err(e) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "trust list refused",
            e.to_string(),
        ),
    }
}
