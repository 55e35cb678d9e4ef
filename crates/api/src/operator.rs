//! The operator API (`/operator/...`): one authorization layer (the node's operator
//! token, checked before any handler or extractor runs) in front of every route; the
//! handlers call the applications ([`imi_apps::Services`]) and the engine's messaging
//! functions, never a column.
use crate::ApiState;
use crate::problem::ApiError;
use crate::requests::{NoQuery, QueryOf, query};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use imi_engine::Engine;
use imi_protocol::{AuthorityId, Draft, Kind, NodeId, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// Largest request body of an operator route (a signed trust list is the largest).
pub const MAX_OPERATOR_BODY_BYTES: usize = imi_protocol::MAX_TRUST_LIST_BYTES;

/// The operator routes: method, path (OpenAPI syntax) and handler.
pub(crate) fn table() -> Vec<(&'static str, &'static str, MethodRouter<ApiState>)> {
    vec![
        ("post", "/operator/diag/send", post(diag_send)),
        ("get", "/operator/status", get(status)),
        ("get", "/operator/directory", get(directory_status)),
        ("post", "/operator/directory/import", post(directory_import)),
        ("get", "/operator/directory/export", get(directory_export)),
        ("post", "/operator/trust-list", post(trust_list_update)),
        ("get", "/operator/users", get(users_list)),
        ("post", "/operator/users", post(users_add)),
        ("post", "/operator/users/{user}/revoke", post(users_revoke)),
        ("post", "/operator/audit/checkpoint", post(audit_checkpoint)),
        ("get", "/operator/audit/bundle", get(audit_bundle)),
        ("post", "/operator/retention/run", post(retention_run)),
        ("get", "/operator/maintenance", get(maintenance_status)),
        ("post", "/operator/maintenance", post(maintenance_set)),
        ("get", "/operator/backups", get(backups_list)),
        ("post", "/operator/backups", post(backups_create)),
    ]
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let (Some(expected), Some(v)) = (
        state.operator_token_sha256,
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let Some(token) = v.strip_prefix("Bearer ") else {
        return false;
    };
    imi_protocol::sha256(token.trim().as_bytes()) == expected
}

/// The one authorization layer of every operator route: the node's operator token, or a
/// 401 problem before the route's handler (and its extractors) run.
pub(crate) async fn operator_only(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(&state, request.headers()) {
        next.run(request).await
    } else {
        crate::problem::problem_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "operator token required",
        )
    }
}

/// Body of `POST /operator/maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceInput {
    on: bool,
    #[serde(default)]
    reason: String,
}

/// Longest maintenance reason, characters.
const MAX_MAINTENANCE_REASON: usize = 200;

fn maintenance_view(state: &ApiState) -> serde_json::Value {
    let reason = state.maintenance();
    json!({"maintenance": reason.is_some(), "reason": reason})
}

async fn maintenance_status(State(state): State<ApiState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    Json(maintenance_view(&state)).into_response()
}

/// `POST /operator/maintenance`: on (with a reason, shown in readiness) or off.
async fn maintenance_set(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    let input: MaintenanceInput = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return invalid(e),
    };
    let reason = input.reason.trim();
    if reason.chars().count() > MAX_MAINTENANCE_REASON || reason.chars().any(char::is_control) {
        return invalid(format!(
            "reason: at most {MAX_MAINTENANCE_REASON} printable characters"
        ));
    }
    {
        let mut m = state.maintenance.write().unwrap_or_else(|p| p.into_inner());
        *m = input.on.then(|| {
            if reason.is_empty() {
                "maintenance".to_owned()
            } else {
                reason.to_owned()
            }
        });
    }
    if input.on {
        tracing::warn!(reason, "maintenance mode on: the node reports not-ready");
    } else {
        tracing::info!("maintenance mode off");
    }
    Json(maintenance_view(&state)).into_response()
}

/// `GET /operator/backups`, `POST /operator/backups`: the node's backups, listed or made
/// now (on a blocking thread: a checkpoint flushes and links files).
async fn backups_call(state: ApiState, create: bool) -> Response {
    let Some(backups) = state.backups.clone() else {
        return crate::problem::problem_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node has no backup service",
        );
    };
    let r = tokio::task::spawn_blocking(move || {
        if create {
            backups.create()
        } else {
            backups.list()
        }
    })
    .await;
    match r {
        Ok(Ok(v)) if create => (StatusCode::CREATED, Json(v)).into_response(),
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "backup failed");
            crate::problem::problem_response(StatusCode::INTERNAL_SERVER_ERROR, "backup_failed", &e)
        }
        Err(e) => crate::problem::problem_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backup_failed",
            &e.to_string(),
        ),
    }
}

async fn backups_list(State(state): State<ApiState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    backups_call(state, false).await
}

async fn backups_create(State(state): State<ApiState>, q: QueryOf<NoQuery>) -> Response {
    if let Err(e) = query(q) {
        return e.into_response();
    }
    backups_call(state, true).await
}

fn invalid(e: impl std::fmt::Display) -> Response {
    crate::problem::problem_response(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
}

async fn retention_run(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    let r = state.services.run_retention().await?;
    Ok(Json(
        json!({"blocked": r.blocked, "deleted": r.deleted, "alerts_erased": r.alerts_erased}),
    ))
}

async fn audit_checkpoint(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    // Sign, send to witnesses and send this node's own witness answers now.
    let note = state.services.checkpoint().await?;
    Ok(Json(json!({ "checkpoint": note })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleQuery {
    case: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn audit_bundle(
    State(state): State<ApiState>,
    q: QueryOf<BundleQuery>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let selection =
        crate::requests::bundle_selection(q.case.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    // A case this node does not hold is the 404 of the auditor's route, not an empty bundle.
    let bundle = crate::requests::export_bundle(&state, selection)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(bundle).into_response())
}

async fn users_list(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    let list = crate::users::list(&state).await?;
    Ok(Json(
        json!({"items": list.iter().map(|u| u.view()).collect::<Vec<_>>()}),
    ))
}

async fn users_add(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    query(q)?;
    let new: crate::users::NewUser = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => return Ok(invalid(e)),
    };
    let (record, token) = crate::users::add(&state, new).await?;
    let mut v = record.view();
    if let Some(o) = v.as_object_mut() {
        o.insert("token".into(), json!(token));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn users_revoke(
    State(state): State<ApiState>,
    Path(user): Path<String>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    Ok(Json(crate::users::revoke(&state, &user).await?.view()))
}

async fn diag_send(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    query(q)?;
    let req: DiagRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Ok(invalid(e)),
    };
    tracing::info!(to = %req.to, count = req.count, "operator diagnostic send");
    Ok(Json(run_diag(state.services.engine(), req).await?).into_response())
}

async fn status(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    let engine = state.services.engine();
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
    Ok(Json(json!({
        "node": engine.node().to_string(),
        "diagnostic_applied": state.services.diagnostics_applied().await.unwrap_or(0),
        "queues": queues,
        "connected": connected,
        "trust_list_version": engine.trust_list().version,
        "protocol_version": imi_protocol::PROTOCOL_VERSION,
        "peer_protocols": engine.peer_protocols(),
    })))
}

async fn trust_list_update(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    query(q)?;
    let governance = state.services.governance();
    match state
        .services
        .engine()
        .update_trust_list(body.to_vec(), &governance)
        .await
    {
        Ok(version) => {
            // Accepted here: passed on to every other member, so it is pushed once.
            let members = imi_apps::trust::propagate(state.services.engine(), body.to_vec())
                .await
                .map_err(ApiError::from)?;
            Ok(Json(json!({"trust_list_version": version, "sent_to": members})).into_response())
        }
        Err(e) => Ok(crate::problem::problem_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            "trust_list_refused",
            &e.to_string(),
        )),
    }
}

// --- diagnostics ------------------------------------------------------------------------

/// Most diagnostics per operator request.
pub const MAX_DIAG_COUNT: u32 = 100_000;
/// Largest diagnostic body.
pub const MAX_DIAG_BODY: usize = 1024 * 1024;
/// Largest end to end window (`in_flight`).
pub const MAX_DIAG_IN_FLIGHT: u32 = 4096;
/// How long a waiting request waits for receipts.
pub const DIAG_WAIT: Duration = Duration::from_secs(600);

fn default_count() -> u32 {
    1
}
fn default_wait() -> bool {
    true
}

/// Body of `POST /operator/diag/send`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagRequest {
    /// Destination node.
    pub to: NodeId,
    /// Number of envelopes (a JSON number with a zero fraction, like `2.0`, counts).
    #[serde(
        default = "default_count",
        deserialize_with = "crate::numbers::deserialize"
    )]
    pub count: u32,
    /// Wait for the receipts.
    #[serde(default = "default_wait")]
    pub wait: bool,
    /// Body size in bytes (padding).
    #[serde(default, deserialize_with = "crate::numbers::deserialize")]
    pub body_bytes: usize,
    /// Offered load: send at this many messages per second instead of as fast as possible.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// End to end window: at most this many envelopes sent and not yet receipted, as a
    /// client that waits for each acknowledgement before it sends beyond the window (needs
    /// `wait`; not with `rate_per_s`). Absent: every envelope is enqueued at once and the
    /// outbox holds the backlog.
    #[serde(default, deserialize_with = "crate::numbers::deserialize_opt")]
    pub in_flight: Option<u32>,
}

/// Round-trip times in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rtt {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// One receipt, for display.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptView {
    /// Message id.
    pub message_id: String,
    /// Receiver.
    pub receiver: String,
    /// Outcome label.
    pub outcome: String,
    /// Rejection code, if rejected.
    pub code: Option<String>,
    /// Receive time (ms since epoch).
    pub received: u64,
    /// SHA-256 of the envelope (hex).
    pub envelope_hash: String,
    /// Round trip, ms.
    pub rtt_ms: f64,
}

/// Result of a diagnostic send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiagResult {
    /// Sending node.
    pub node: NodeId,
    /// Destination.
    pub to: NodeId,
    /// Envelopes durably enqueued.
    pub sent: u64,
    /// Receipted accepted.
    pub accepted: u64,
    /// Receipted duplicate.
    pub duplicate: u64,
    /// Receipted rejected.
    pub rejected: u64,
    /// Rejections by code.
    pub rejected_codes: BTreeMap<String, u64>,
    /// No receipt within the wait.
    pub unanswered: u64,
    /// Round-trip times.
    pub rtt_ms: Option<Rtt>,
    /// The first receipt.
    pub first_receipt: Option<ReceiptView>,
    /// Message ids (when not waiting).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted
        .get(idx.min(sorted.len() - 1))
        .copied()
        .unwrap_or(0.0)
}

/// Sends diagnostics through the engine (the server side of `POST /operator/diag/send`).
pub async fn run_diag(engine: &Engine, req: DiagRequest) -> Result<DiagResult, ApiError> {
    let bad = |d: String| ApiError::bad_request("diagnostic_failed", d);
    use futures::StreamExt;
    if req.count == 0 || req.count > MAX_DIAG_COUNT {
        return Err(bad(format!("count must be 1..={MAX_DIAG_COUNT}")));
    }
    if req.body_bytes > MAX_DIAG_BODY {
        return Err(bad(format!("body_bytes must be at most {MAX_DIAG_BODY}")));
    }
    if let Some(rate) = req.rate_per_s
        && !(rate > 0.0 && rate <= 1_000_000.0)
    {
        return Err(bad("rate_per_s must be in (0, 1000000]".into()));
    }
    if let Some(n) = req.in_flight
        && (n == 0 || n > MAX_DIAG_IN_FLIGHT || !req.wait || req.rate_per_s.is_some())
    {
        return Err(bad(format!(
            "in_flight must be 1..={MAX_DIAG_IN_FLIGHT}, with wait and without rate_per_s"
        )));
    }
    let me = engine.node();
    let authority = AuthorityId::new(&format!("{me}-OPERATOR")).map_err(|e| bad(e.to_string()))?;
    let kind = Kind::new(Kind::DIAGNOSTIC).map_err(|e| bad(e.to_string()))?;
    let period = req.rate_per_s.map(|r| Duration::from_secs_f64(1.0 / r));
    let start = tokio::time::Instant::now();
    let concurrency = match (period, req.in_flight) {
        (Some(_), _) => 4096,
        (None, Some(n)) => n as usize,
        (None, None) => 64,
    };
    let end_to_end = req.in_flight.is_some();
    let results: Vec<_> = futures::stream::iter(0..req.count)
        .then(|i| async move {
            if let Some(p) = period {
                tokio::time::sleep_until(start + p * i).await;
            }
            i
        })
        .map(|i| {
            let engine = engine.clone();
            let mut body = format!("{{\"seq\":{i}}}").into_bytes();
            body.resize(body.len().max(req.body_bytes), b' ');
            let draft = Draft {
                kind: kind.clone(),
                step: None,
                authority: authority.clone(),
                to: vec![req.to],
                case: None,
                prev: vec![],
                body,
            };
            let wait = req.wait;
            async move {
                if end_to_end {
                    // The window's slot is held until the receipt (or the wait's end).
                    let (id, rx) = engine.send_watched(draft).await?;
                    let (tx, done) = tokio::sync::oneshot::channel();
                    if let Some(rx) = rx.into_iter().next()
                        && let Ok(Ok(report)) = tokio::time::timeout(DIAG_WAIT, rx).await
                    {
                        let _ = tx.send(report);
                    }
                    Ok((id, Some(done)))
                } else if wait {
                    engine
                        .send_watched(draft)
                        .await
                        .map(|(id, rx)| (id, rx.into_iter().next()))
                } else {
                    engine.send(draft).await.map(|id| (id, None))
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut out = DiagResult {
        node: me,
        to: req.to,
        sent: 0,
        accepted: 0,
        duplicate: 0,
        rejected: 0,
        rejected_codes: BTreeMap::new(),
        unanswered: 0,
        rtt_ms: None,
        first_receipt: None,
        message_ids: vec![],
    };
    let mut waiting = Vec::new();
    let mut first_error = None;
    for r in results {
        match r {
            Ok((id, rx)) => {
                out.sent += 1;
                match rx {
                    Some(rx) => waiting.push(rx),
                    None => out.message_ids.push(id.to_string()),
                }
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    if out.sent == 0
        && let Some(e) = first_error
    {
        return Err(bad(e.to_string()));
    }
    if !req.wait {
        return Ok(out);
    }
    let deadline = tokio::time::Instant::now() + DIAG_WAIT;
    let mut rtts = Vec::with_capacity(waiting.len());
    for rx in waiting {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(report)) => {
                let rtt = report.round_trip.as_secs_f64() * 1000.0;
                rtts.push(rtt);
                let code = match &report.receipt.outcome {
                    Outcome::Accepted => {
                        out.accepted += 1;
                        None
                    }
                    Outcome::Duplicate => {
                        out.duplicate += 1;
                        None
                    }
                    Outcome::Rejected(c) => {
                        out.rejected += 1;
                        *out.rejected_codes.entry(c.label().to_owned()).or_default() += 1;
                        Some(c.label().to_owned())
                    }
                };
                if out.first_receipt.is_none() {
                    out.first_receipt = Some(ReceiptView {
                        message_id: report
                            .receipt
                            .message_id
                            .map(|m| m.to_string())
                            .unwrap_or_default(),
                        receiver: report.receipt.receiver.to_string(),
                        outcome: report.receipt.outcome.label().to_owned(),
                        code,
                        received: report.receipt.received,
                        envelope_hash: hex::encode(report.receipt.envelope_hash),
                        rtt_ms: rtt,
                    });
                }
            }
            _ => out.unanswered += 1,
        }
    }
    rtts.sort_by(|a, b| a.total_cmp(b));
    if !rtts.is_empty() {
        out.rtt_ms = Some(Rtt {
            p50: percentile(&rtts, 0.5),
            p99: percentile(&rtts, 0.99),
            max: rtts.last().copied().unwrap_or(0.0),
        });
    }
    Ok(out)
}

/// `GET /operator/directory`: the replica's state: this node's last sequence number, what it
/// has seen of every country's, counts, and a digest of every entry (replicas that hold the
/// same updates have the same digest).
async fn directory_status(
    State(state): State<ApiState>,
    q: QueryOf<NoQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    let entries = state.services.directory_entries().await?;
    let coverage = state.services.directory_coverage().await?;
    let me = state.services.engine().node();
    let mut digest = Vec::new();
    let mut per_country: BTreeMap<String, u64> = BTreeMap::new();
    let mut retired = 0u64;
    let mut own_seq = 0;
    for e in &entries {
        digest.extend_from_slice(&e.encode());
        digest.push(b'\n');
        *per_country.entry(e.update.country.to_string()).or_default() += 1;
        retired += u64::from(e.update.retired);
        if e.update.country == me {
            own_seq = own_seq.max(e.update.seq);
        }
    }
    let coverage: BTreeMap<String, serde_json::Value> = coverage
        .into_iter()
        .map(|(c, cov)| {
            (
                c.to_string(),
                json!({"mark": cov.mark, "highest": cov.highest()}),
            )
        })
        .collect();
    Ok(Json(json!({
        "node": me.to_string(),
        "own_seq": own_seq,
        "authorities": entries.len(),
        "retired": retired,
        "by_country": per_country,
        "coverage": coverage,
        "digest": hex::encode(imi_protocol::sha256(&digest)),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryImport {
    authorities: Vec<imi_domain::Authority>,
    #[serde(default)]
    retire_missing: bool,
}

/// `POST /operator/directory/import`: creates or updates this node's country's authorities
/// from a list (one signed change, published to every member); with `retire_missing`,
/// retires the country's authorities the list leaves out.
async fn directory_import(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    query(q)?;
    crate::requests::json_content_type(&headers, &body)?;
    let import: DirectoryImport = crate::requests::json_body(&body)?;
    let me = state.services.engine().node();
    let mut seen = std::collections::BTreeSet::new();
    for a in &import.authorities {
        if a.country != me {
            return Err(ApiError::unprocessable(
                "not_home_node",
                format!("{} is not an authority of {me}", a.id),
            ));
        }
        if !seen.insert(a.id.clone()) {
            return Err(ApiError::unprocessable(
                "duplicate_authority",
                format!("{} is listed twice", a.id),
            ));
        }
        crate::directory::check_codes(&state, a)?;
    }
    let mut records: Vec<(imi_domain::Authority, bool)> =
        import.authorities.into_iter().map(|a| (a, false)).collect();
    if import.retire_missing {
        for e in state.services.directory_entries().await? {
            let u = e.update;
            if u.country == me && !u.retired && !seen.contains(&u.authority.id) {
                records.push((u.authority, true));
            }
        }
    }
    let changes = state.services.directory_change(records.clone()).await?;
    let mut applied = 0;
    let mut retired = 0;
    for ((_, r), c) in records.iter().zip(&changes) {
        if matches!(c, imi_apps::directory::Change::Applied(_)) {
            if *r {
                retired += 1;
            } else {
                applied += 1;
            }
        }
    }
    Ok(Json(json!({
        "applied": applied,
        "retired": retired,
        "unchanged": changes.len() - applied - retired,
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    country: Option<NodeId>,
}

/// `GET /operator/directory/export`: the replica's active authorities (of one country with
/// `country`), in the seed file's shape, and the ids of the retired ones.
async fn directory_export(
    State(state): State<ApiState>,
    q: QueryOf<ExportQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = query(q)?;
    let mut authorities = Vec::new();
    let mut retired = Vec::new();
    for e in state.services.directory_entries().await? {
        let u = e.update;
        if q.country.is_some_and(|c| c != u.country) {
            continue;
        }
        if u.retired {
            retired.push(u.authority.id.to_string());
        } else {
            authorities.push(u.authority);
        }
    }
    Ok(Json(
        json!({"authorities": authorities, "retired": retired}),
    ))
}
