//! `imi-web`: the authorities' web application of a national node, served under `/web/` on
//! the node's HTTPS listener beside the API.
//!
//! * **On the API's own routes.** Every page is rendered from calls of the API's router
//!   (`imi_api::router`), in process, with the signed-in user's own bearer token: the same
//!   authentication, object-level authorization, idempotency and access log as any other
//!   client. The web application has no other path to the data.
//! * **Sessions** ([`session`]): sign-in with the token `imi-node users add` printed; a
//!   `__Host-` cookie, HttpOnly, Secure, SameSite=Strict, expiring; sign-out; a revoked
//!   user is out at the next click (the API's 401 ends the session).
//! * **Forms** carry the session's CSRF token and an idempotency key (a double submission
//!   is the first one, replayed by the API); a cross-site `Origin` or `Sec-Fetch-Site` is
//!   refused before anything is read.
//! * **26 languages** ([`i18n`]): the user's choice, then `Accept-Language`; dates and
//!   numbers in the locale's format; every API error as a sentence in the user's language.
//! * **No script**: plain HTML forms and links with a strict Content-Security-Policy
//!   ([`SECURITY_HEADERS`]); every asset is served by the node.
pub mod alerts;
pub mod directory;
pub mod forms;
pub mod html;
pub mod i18n;
pub mod notifications;
pub mod pages;
pub mod repositories;
pub mod session;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imi_protocol::Clock;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt as _;

/// Headers of every response under `/web/`: no script, no framing, no external resource,
/// nothing cached, no referrer to another site.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    // Not `no-referrer`: with it a browser sends `Origin: null` on form posts, and the
    // origin check could not tell our own forms from others.
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The style sheet.
pub const STYLE: &str = include_str!("../assets/style.css");

/// Largest form body (files included): an upload is sent on as base64 in the API's JSON,
/// whose limit is `imi_api::MAX_BODY_BYTES`.
pub const MAX_FORM_BYTES: usize = imi_api::MAX_BODY_BYTES / 4 * 3 - 64 * 1024;

/// The application's shared state.
#[derive(Clone)]
pub struct Web {
    api: Router,
    /// The signed-in browsers.
    pub sessions: session::Sessions,
    /// The interface's messages.
    pub messages: Arc<i18n::Messages>,
    clock: Arc<dyn Clock>,
    /// This node's id (`DE`, ...).
    pub node: String,
}

/// What an API call answered.
#[derive(Debug)]
pub struct Reply {
    /// Its status.
    pub status: StatusCode,
    /// Its JSON body (`Null` when it was not JSON).
    pub json: Value,
    /// Its bytes.
    pub bytes: axum::body::Bytes,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The problem code of an error answer.
    pub fn code(&self) -> Option<&str> {
        self.json.get("code").and_then(Value::as_str)
    }
}

impl Web {
    /// The application over the API state (the API router is built from it).
    pub fn new(api: imi_api::ApiState) -> Result<Self, i18n::CatalogueError> {
        let node = api.cases().node().to_string();
        let clock = api.clock.clone();
        Ok(Self {
            api: imi_api::router(api),
            sessions: session::Sessions::default(),
            messages: Arc::new(i18n::Messages::load()?),
            clock,
            node,
        })
    }

    /// Now, ms (the node's clock).
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Calls an API route with `token`: `GET` when `body` is `None`, else a JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        lang: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::ACCEPT_LANGUAGE, lang);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let resp = match req.body(body) {
            Ok(r) => self.api.clone().oneshot(r).await,
            Err(e) => {
                tracing::error!(error = %e, "web: bad internal request");
                return Reply::internal();
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        match axum::body::to_bytes(resp.into_body(), imi_api::MAX_BODY_BYTES * 2).await {
            Ok(bytes) => Reply {
                status,
                json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                bytes,
            },
            Err(_) => Reply::internal(),
        }
    }
}

impl Reply {
    fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            json: Value::Null,
            bytes: axum::body::Bytes::new(),
        }
    }
}

async fn security_headers(State(web): State<Web>, headers: HeaderMap, resp: Response) -> Response {
    // An error the framework answered before a page could (a body too large, a wrong
    // method, a form that is not multipart) is an HTML page too, never raw text or JSON.
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let status = resp.status();
    let mut resp = if (status.is_client_error() || status.is_server_error()) && !html {
        pages::status_page(&web, &headers, status)
    } else {
        resp
    };
    let h = resp.headers_mut();
    for (k, v) in SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    resp
}

/// The web application's routes (`/`, `/web/...`), to merge beside the API.
pub fn router(web: Web) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/web/cases") }),
        )
        .route(
            "/web",
            get(|| async { axum::response::Redirect::to("/web/cases") }),
        )
        .route(
            "/web/",
            get(|| async { axum::response::Redirect::to("/web/cases") }),
        )
        .route("/web/static/style.css", get(style))
        .route(
            "/web/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/web/sign-out", post(pages::sign_out))
        .route("/web/language", post(pages::language))
        .route("/web/cases", get(pages::cases))
        .route("/web/cases/{id}", get(pages::case))
        .route("/web/cases/{id}/attachments/{sha}", get(pages::attachment))
        .route("/web/cases/{id}/{action}", post(pages::act))
        .route("/web/new", get(pages::new_request).post(pages::create))
        .route("/web/directory", get(directory::search))
        .route("/web/directory/{id}", get(directory::authority))
        .route("/web/notifications", get(notifications::list))
        .route(
            "/web/notifications/new",
            get(notifications::new).post(notifications::create),
        )
        .route("/web/notifications/{id}", get(notifications::read))
        .route(
            "/web/notifications/{id}/read",
            post(notifications::acknowledge),
        )
        .route(
            "/web/notifications/{id}/attachments/{sha}",
            get(notifications::attachment),
        )
        .route("/web/alerts", get(alerts::list))
        .route("/web/alerts/new", get(alerts::new).post(alerts::create))
        .route("/web/alerts/{id}", get(alerts::read))
        .route("/web/alerts/{id}/{action}", post(alerts::act))
        .route("/web/repositories", get(repositories::list))
        .route("/web/repositories/{code}", get(repositories::entries))
        .route(
            "/web/repositories/{code}/entries",
            post(repositories::create),
        )
        .route(
            "/web/repositories/{code}/entries/{id}/withdraw",
            post(repositories::withdraw),
        )
        .route("/web/audit", get(pages::audit))
        .route("/web/audit/bundle", get(pages::bundle))
        .route("/web/{*rest}", get(pages::not_found))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response_with_state(
            web.clone(),
            security_headers,
        ))
        .with_state(web)
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The `Cookie` header.
pub(crate) fn cookies(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok())
}
