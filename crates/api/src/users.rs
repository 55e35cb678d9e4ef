//! API users and their bearer tokens. Only the token's SHA-256 is stored; the token is
//! shown once, when the user is added.
//!
//! The users application (`imi_apps::users`) stores them; this module checks what an operator
//! asks for and reads the bearer token of a request.
use crate::ApiState;
use crate::problem::ApiError;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use imi_domain::user::{CoordinatorScope, Role, User};
use imi_protocol::AuthorityId;
use serde::{Deserialize, Serialize};

/// Prefix of every issued token.
pub const TOKEN_PREFIX: &str = "imi_";

pub use imi_apps::users::UserRecord;

/// Body of `POST /operator/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login id.
    pub id: String,
    /// The user's authority (of this node's country, in the directory).
    pub authority: String,
    /// `authority_user`, `coordinator`, `auditor` or `operator`.
    pub role: String,
    /// For a delegated coordinator: the legal areas. Empty: national coordinator.
    #[serde(default)]
    pub areas: Vec<String>,
}

/// Adds a user and returns its record and its token.
pub async fn add(state: &ApiState, new: NewUser) -> Result<(UserRecord, String), ApiError> {
    let cases = state.cases();
    let authority = AuthorityId::new(&new.authority)
        .map_err(|_| ApiError::unprocessable("bad_authority", "malformed authority id"))?;
    let role = match (new.role.as_str(), new.areas.is_empty()) {
        ("authority_user", true) => Role::AuthorityUser,
        ("auditor", true) => Role::Auditor,
        ("operator", true) => Role::Operator,
        ("coordinator", true) => Role::Coordinator {
            scope: CoordinatorScope::National,
        },
        ("coordinator", false) => Role::Coordinator {
            scope: CoordinatorScope::Delegated(new.areas.clone()),
        },
        (r, false) if ["authority_user", "auditor", "operator"].contains(&r) => {
            return Err(ApiError::unprocessable(
                "bad_scope",
                "areas are for delegated coordinators only",
            ));
        }
        _ => {
            return Err(ApiError::unprocessable(
                "bad_role",
                "role must be authority_user, coordinator, auditor or operator",
            ));
        }
    };
    let user = User {
        id: new.id.clone(),
        authority,
        role,
    };
    user.validate(cases.node())
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    // The Commission node keeps no directory: its one authority is the Commission's
    // services, the recipient of notifications addressed to the Commission.
    let commission = cases.node() == imi_protocol::NodeId::EU
        && user.authority.as_str() == imi_domain::notification::COMMISSION_AUTHORITY;
    if !commission && !cases.directory().contains(&user.authority) {
        return Err(ApiError::unprocessable(
            "unknown_authority",
            format!("authority {} is not in the directory", user.authority),
        ));
    }
    if let Role::Coordinator {
        scope: CoordinatorScope::Delegated(areas),
    } = &user.role
        && let Some(a) = areas.iter().find(|a| cases.catalogue().area(a).is_none())
    {
        return Err(ApiError::unprocessable(
            "unknown_area",
            format!("legal area {a} is not in the catalogue"),
        ));
    }
    let raw: [u8; 32] = rand::random();
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    );
    let record = UserRecord {
        user,
        created: state.clock.now_ms(),
        revoked: false,
        token_sha256: imi_apps::users::token_hash(&token),
    };
    state.services.add_user(record.clone()).await?;
    tracing::info!(user = %record.user.id, authority = %record.user.authority, role = record.user.role.as_str(), "user added");
    Ok((record, token))
}

/// Every user, by id.
pub async fn list(state: &ApiState) -> Result<Vec<UserRecord>, ApiError> {
    Ok(state.services.users().await?)
}

/// Revokes a user's token.
pub async fn revoke(state: &ApiState, id: &str) -> Result<UserRecord, ApiError> {
    let rec = state.services.revoke_user(id.to_owned()).await?;
    tracing::info!(user = %rec.user.id, "user revoked");
    Ok(rec)
}

/// The user a request's bearer token belongs to; 401 for a missing, unknown or revoked
/// token.
pub async fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<User, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme name is case-insensitive (RFC 9110, section 11.1).
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|t| t.starts_with(TOKEN_PREFIX) && t.len() <= 128)
        .ok_or_else(ApiError::unauthorized)?;
    state
        .services
        .authenticate(token.to_owned())
        .await?
        .ok_or_else(ApiError::unauthorized)
}
