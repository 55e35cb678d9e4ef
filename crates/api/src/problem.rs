//! RFC 9457 problem details: every error of the node's HTTPS listener.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imi_engine::Refusal;

/// The content type of errors.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An API error: status, a stable machine-readable code and a detail without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code (`not_found`, `invalid_transition`, ...).
    pub code: String,
    /// Human-readable detail.
    pub detail: String,
}

impl ApiError {
    /// An error.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            detail: detail.into(),
        }
    }
    /// 400 `bad_request`-style errors.
    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }
    /// 422.
    pub fn unprocessable(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }
    /// The one 404 for "absent" and "not yours".
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such resource, or not visible to the caller",
        )
    }
    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }
    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }
    /// 500 (the detail is logged, not returned).
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the node's log",
        )
    }
}

impl From<imi_engine::EngineError> for ApiError {
    fn from(e: imi_engine::EngineError) -> Self {
        match e {
            imi_engine::EngineError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the node is shutting down",
            ),
            imi_engine::EngineError::Refused(r) => r.into(),
            other => Self::internal(other),
        }
    }
}

impl From<imi_apps::AppError> for ApiError {
    fn from(e: imi_apps::AppError) -> Self {
        match e {
            imi_apps::AppError::Engine(e) => e.into(),
            imi_apps::AppError::Refused(r) => r.into(),
            other => Self::internal(other),
        }
    }
}

impl From<imi_domain::message::Refused> for ApiError {
    fn from(r: imi_domain::message::Refused) -> Self {
        Refusal::new(r.code, r.detail).into()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let code = r.code.label().to_owned();
        let status = match code.as_str() {
            // Absent and "not yours" are the one 404, whatever the application said.
            "not_found" => return Self::not_found(),
            "invalid_transition" | "deadline_unchanged" | "wrong_case" | "already_closed"
            | "stale_version" | "alert_expired" | "user_exists" => StatusCode::CONFLICT,
            "not_party" | "wrong_party" | "not_coordinator" | "not_owner" => StatusCode::FORBIDDEN,
            "case_erased" => StatusCode::GONE,
            "idempotency_key_reused" => StatusCode::UNPROCESSABLE_ENTITY,
            "internal" => return Self::internal(r.detail),
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self {
            status,
            code,
            detail: r.detail,
        }
    }
}

/// The problem document of a status with a code and detail.
pub fn problem_response(status: StatusCode, code: &str, detail: &str) -> Response {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = serde_json::json!({
        "type": format!("https://imi.invalid/problems/{code}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(self.status, &self.code, &self.detail)
    }
}

/// Response middleware: turns every error the framework produces itself (unknown route,
/// wrong method, body too large, unsupported media type, bad query) into problem+json. A
/// handler's own JSON answer with an error status (readiness: 503 with its report, as the
/// OpenAPI document describes) passes unchanged.
pub async fn problems_everywhere(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let already_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // The web application's pages say what went wrong in HTML, in the user's
            // language.
            v.starts_with(PROBLEM_JSON)
                || v.starts_with("application/json")
                || v.starts_with("text/html")
        });
    if already_json {
        return resp;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNAUTHORIZED => "unauthorized",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let detail = match status {
        StatusCode::NOT_FOUND => "no such resource, or not visible to the caller".to_owned(),
        _ => {
            let bytes = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).chars().take(300).collect()
        }
    };
    problem_response(status, code, &detail)
}
