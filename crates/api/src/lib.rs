//! `imi-api`: the authorities' HTTP API of a national node (axum, served over the node's
//! TLS listener).
//!
//! * **Authentication**: bearer tokens issued by `imi-node users add` ([`users`]); only
//!   their SHA-256 is stored. A revoked or unknown token is a 401.
//! * **Authorization on every object**: a user sees a case only when their authority is its
//!   requester or responder; a coordinator also sees their country's cases (a delegated one
//!   only in their areas). A case the caller may not see is a 404 indistinguishable from a
//!   case that does not exist. Auditors and operators never see cases; auditors read the
//!   access log.
//! * **Errors** are RFC 9457 `application/problem+json` with a stable `code`, also for
//!   errors raised by the framework (unknown route, wrong method, body too large).
//! * **POSTs** accept an `Idempotency-Key`: the first response is stored in the same atomic
//!   commit as the action and replayed for a retry with the same body.
//! * **Languages**: messages carry catalogue codes; the API renders questions, options and
//!   areas in the caller's language (`?lang=` or `Accept-Language`), next to the codes.
//! * **Reads of personal data** (a request's detail, an attachment) are recorded in the
//!   access log before the data is returned.
//!
//! The OpenAPI 3.1 description of every route is [`OPENAPI`], served at
//! `/api/v1/openapi.json`.

pub mod alerts;
pub mod directory;
pub mod notifications;
pub mod numbers;
pub mod operator;
pub mod problem;
pub mod repositories;
pub mod requests;
pub mod scoreboard;
pub mod users;
pub mod views;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use imi_apps::Services;
use imi_protocol::Clock;
use std::sync::Arc;

pub use problem::ApiError;

/// The OpenAPI 3.1 document of the node's HTTPS API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Largest request body of the API (attachments travel base64-encoded in JSON).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;

/// The transition routes: `POST /api/v1/requests/{id}/<name>`.
pub const ACTIONS: &[&str] = &[
    "accept",
    "forward",
    "propose-deadline",
    "accept-deadline",
    "refuse-deadline",
    "answer",
    "request-info",
    "provide-info",
    "close",
    "withdraw",
    "refer",
    "reassign",
    "resolve",
];

/// Shared state of the handlers.
#[derive(Clone)]
pub struct ApiState {
    /// The node's applications: every read and write of the API goes through them.
    pub services: Services,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// SHA-256 of the operator token (`None`: every operator route answers 401).
    pub operator_token_sha256: Option<[u8; 32]>,
    /// Maintenance mode: the operator's reason while it is on (`POST /operator/maintenance`).
    /// The node then reports not-ready, so a load balancer or monitor takes it out of
    /// service; it keeps serving and exchanging. A restart ends it.
    pub maintenance: Arc<std::sync::RwLock<Option<String>>>,
    /// Backups of the node's database (`/operator/backups`), made by the binary that owns
    /// the database; `None`: those routes answer 404.
    pub backups: Option<Arc<dyn Backups>>,
    /// Rendered directory entries for search results.
    views: Arc<directory::ViewCache>,
}

/// Backups of the node's data, provided by the binary that owns the database (the API never
/// touches the store). Both calls block (they run on a blocking thread).
pub trait Backups: Send + Sync + 'static {
    /// Makes a new backup now; its manifest as JSON.
    fn create(&self) -> Result<serde_json::Value, String>;
    /// The backups there are, oldest first, as JSON.
    fn list(&self) -> Result<serde_json::Value, String>;
}

impl ApiState {
    /// The state (no operator token yet).
    pub fn new(services: Services, clock: Arc<dyn Clock>) -> Self {
        Self {
            services,
            clock,
            operator_token_sha256: None,
            maintenance: Arc::default(),
            backups: None,
            views: Arc::default(),
        }
    }

    /// With `/operator/backups` served by `backups`.
    pub fn with_backups(mut self, backups: Arc<dyn Backups>) -> Self {
        self.backups = Some(backups);
        self
    }

    /// With the operator API open to the bearer of the token whose SHA-256 this is.
    pub fn with_operator_token(mut self, sha256: [u8; 32]) -> Self {
        self.operator_token_sha256 = Some(sha256);
        self
    }

    /// The maintenance reason while maintenance mode is on.
    pub fn maintenance(&self) -> Option<String> {
        self.maintenance
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The request service (catalogue, directory, rendering).
    pub fn cases(&self) -> &imi_apps::requests::Cases {
        self.services.cases()
    }
}

/// The route table: method, path (OpenAPI syntax, which axum 0.8 shares) and handler.
/// [`router`] and [`routes`] are both built from it, so the list the OpenAPI test checks is
/// exactly what is served.
fn table() -> Vec<(&'static str, String, MethodRouter<ApiState>)> {
    let mut v: Vec<(&'static str, String, MethodRouter<ApiState>)> = vec![
        (
            "get",
            "/api/v1/openapi.json".into(),
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    OPENAPI,
                )
            }),
        ),
        ("get", "/api/v1/me".into(), get(requests::me)),
        ("get", "/api/v1/catalogue".into(), get(requests::catalogue)),
        (
            "get",
            "/api/v1/catalogue/{area}".into(),
            get(requests::catalogue_area),
        ),
        (
            "get",
            "/api/v1/authorities".into(),
            get(requests::authorities),
        ),
        (
            "get",
            "/api/v1/directory/search".into(),
            get(directory::search),
        ),
        (
            "get",
            "/api/v1/vocabularies/professions".into(),
            get(directory::professions),
        ),
        (
            "post",
            "/api/v1/directory/authorities".into(),
            post(directory::create),
        ),
        (
            "get",
            "/api/v1/directory/authorities/{authority}".into(),
            get(directory::get_one),
        ),
        (
            "put",
            "/api/v1/directory/authorities/{authority}".into(),
            axum::routing::put(directory::update),
        ),
        (
            "post",
            "/api/v1/directory/authorities/{authority}/retire".into(),
            post(directory::retire),
        ),
        (
            "get",
            "/api/v1/authorities/{authority}".into(),
            get(requests::authority),
        ),
        ("get", "/api/v1/requests".into(), get(requests::list)),
        ("post", "/api/v1/requests".into(), post(requests::create)),
        ("get", "/api/v1/requests/{id}".into(), get(requests::read)),
        (
            "get",
            "/api/v1/requests/{id}/attachments/{sha256}".into(),
            get(requests::attachment),
        ),
        (
            "get",
            "/api/v1/notifications".into(),
            get(notifications::list),
        ),
        (
            "post",
            "/api/v1/notifications".into(),
            post(notifications::create),
        ),
        (
            "get",
            "/api/v1/notifications/{id}".into(),
            get(notifications::read),
        ),
        (
            "post",
            "/api/v1/notifications/{id}/read".into(),
            post(notifications::acknowledge),
        ),
        (
            "get",
            "/api/v1/notifications/{id}/attachments/{sha256}".into(),
            get(notifications::attachment),
        ),
        ("get", "/api/v1/alerts".into(), get(alerts::list)),
        ("post", "/api/v1/alerts".into(), post(alerts::create)),
        ("get", "/api/v1/alerts/{id}".into(), get(alerts::read)),
        (
            "post",
            "/api/v1/alerts/{id}/forward".into(),
            post(alerts::forward),
        ),
        (
            "post",
            "/api/v1/alerts/{id}/close".into(),
            post(alerts::close),
        ),
        (
            "post",
            "/api/v1/alerts/{id}/modify".into(),
            post(alerts::modify),
        ),
        (
            "get",
            "/api/v1/repositories".into(),
            get(repositories::list),
        ),
        (
            "get",
            "/api/v1/repositories/{code}/entries".into(),
            get(repositories::entries),
        ),
        (
            "post",
            "/api/v1/repositories/{code}/entries".into(),
            post(repositories::create),
        ),
        (
            "put",
            "/api/v1/repositories/{code}/entries/{id}".into(),
            axum::routing::put(repositories::update),
        ),
        (
            "post",
            "/api/v1/repositories/{code}/entries/{id}/withdraw".into(),
            post(repositories::withdraw),
        ),
        (
            "get",
            "/public/repositories/{code}".into(),
            get(repositories::public_json),
        ),
        (
            "get",
            "/public/repositories/{code}/feed".into(),
            get(repositories::public_feed),
        ),
        (
            "get",
            "/api/v1/audit/access-log".into(),
            get(requests::access_log),
        ),
        ("get", "/api/v1/audit/bundle".into(), get(requests::bundle)),
        ("get", "/api/v1/audit/alarms".into(), get(requests::alarms)),
        (
            "get",
            "/api/v1/audit/blocked/{id}".into(),
            get(requests::read_blocked),
        ),
        (
            "get",
            "/api/v1/scoreboard".into(),
            get(scoreboard::scoreboard),
        ),
        (
            "get",
            "/api/v1/scoreboard/facts".into(),
            get(scoreboard::export),
        ),
        (
            "get",
            "/api/v1/scoreboard/flags".into(),
            get(scoreboard::flags),
        ),
        (
            "get",
            "/api/v1/scoreboard/usage".into(),
            get(scoreboard::usage),
        ),
        ("get", "/scoreboard".into(), get(scoreboard::page)),
    ];
    for a in ACTIONS {
        let action: &'static str = a;
        v.push((
            "post",
            format!("/api/v1/requests/{{id}}/{a}"),
            post(
                move |s: axum::extract::State<ApiState>,
                      p: axum::extract::Path<String>,
                      h: axum::http::HeaderMap,
                      q: requests::QueryOf<requests::WaitQuery>,
                      b: axum::body::Bytes| {
                    requests::transition(s, p, h, q, b, action)
                },
            ),
        ));
    }
    v
}

/// Every route of [`router`], as `(method, path)` in OpenAPI path syntax: the
/// authorities' API and the operator API.
pub fn routes() -> Vec<(&'static str, String)> {
    table()
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .chain(
            operator::table()
                .into_iter()
                .map(|(m, p, _)| (m, p.to_owned())),
        )
        .collect()
}

/// A router of `routes`, one method router per path.
fn routed(routes: impl IntoIterator<Item = (String, MethodRouter<ApiState>)>) -> Router<ApiState> {
    let mut by_path: std::collections::BTreeMap<String, MethodRouter<ApiState>> =
        std::collections::BTreeMap::new();
    for (path, handler) in routes {
        let merged = match by_path.remove(&path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    let mut r = Router::new();
    for (path, handler) in by_path {
        r = r.route(&path, handler);
    }
    r
}

/// The router of `/api/v1` and of the operator API (`/operator/...`, behind one
/// authorization layer, [`operator`]).
pub fn router(state: ApiState) -> Router {
    let api = routed(table().into_iter().map(|(_, p, h)| (p, h)))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    let operator = routed(
        operator::table()
            .into_iter()
            .map(|(_, p, h)| (p.to_owned(), h)),
    )
    .route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        operator::operator_only,
    ))
    .layer(axum::extract::DefaultBodyLimit::max(
        operator::MAX_OPERATOR_BODY_BYTES,
    ));
    api.merge(operator).with_state(state)
}
