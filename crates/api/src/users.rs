//! API users and their bearer tokens. Only the token's SHA-256 is stored; the token is
//! shown once, when the user is added.
//!
//! Column `users`: `u/<id>` → JSON [`UserRecord`]; `t/<sha256 hex>` → user id (removed on
//! revocation). Writes go through the engine's committer like every other write.
use crate::problem::ApiError;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use imi_domain::dates::rfc3339;
use imi_domain::user::{CoordinatorScope, Role, User};
use imi_engine::cases::Cases;
use imi_engine::{Engine, LocalOutcome, Refusal, keys};
use imi_protocol::{AuthorityId, Clock};
use serde::{Deserialize, Serialize};

/// Prefix of every issued token.
pub const TOKEN_PREFIX: &str = "imi_";

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The user.
    pub user: User,
    /// Created, ms.
    pub created: u64,
    /// Revoked: the token no longer works.
    pub revoked: bool,
    /// SHA-256 of the token, hex.
    pub token_sha256: String,
}

impl UserRecord {
    /// The JSON view (never the token hash).
    pub fn view(&self) -> serde_json::Value {
        let areas: Vec<String> = match &self.user.role {
            Role::Coordinator {
                scope: CoordinatorScope::Delegated(a),
            } => a.clone(),
            _ => Vec::new(),
        };
        serde_json::json!({
            "id": self.user.id,
            "authority": self.user.authority.as_str(),
            "role": self.user.role.as_str(),
            "areas": areas,
            "created": rfc3339(self.created),
            "revoked": self.revoked,
        })
    }
}

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

fn user_key(id: &str) -> Vec<u8> {
    let mut k = b"u/".to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

fn token_key(hash_hex: &str) -> Vec<u8> {
    let mut k = b"t/".to_vec();
    k.extend_from_slice(hash_hex.as_bytes());
    k
}

fn token_hash(token: &str) -> String {
    hex::encode(imi_protocol::sha256(token.as_bytes()))
}

/// Adds a user and returns its record and its token.
pub async fn add(
    engine: &Engine,
    cases: &Cases,
    clock: &dyn Clock,
    new: NewUser,
) -> Result<(UserRecord, String), ApiError> {
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
    if !cases.directory().contains(&user.authority) {
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
        created: clock.now_ms(),
        revoked: false,
        token_sha256: token_hash(&token),
    };
    let json = serde_json::to_vec(&record).map_err(ApiError::internal)?;
    let rec = record.clone();
    let outcome = engine
        .local_step(
            None,
            Box::new(move |txn, _ctx| {
                let k = user_key(&rec.user.id);
                if txn.get(keys::USERS, &k)?.is_some() {
                    return Err(Refusal::new("user_exists", "a user with this id exists"));
                }
                txn.put(keys::USERS, k, json);
                txn.put(
                    keys::USERS,
                    token_key(&rec.token_sha256),
                    rec.user.id.clone().into_bytes(),
                );
                Ok(LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        )
        .await?;
    match outcome {
        Ok(_) => {
            tracing::info!(user = %record.user.id, authority = %record.user.authority, role = record.user.role.as_str(), "user added");
            Ok((record, token))
        }
        Err(r) if r.code.label() == "user_exists" => {
            Err(ApiError::new(StatusCode::CONFLICT, "user_exists", r.detail))
        }
        Err(r) => Err(r.into()),
    }
}

/// Every user, by id.
pub fn list(engine: &Engine) -> Result<Vec<UserRecord>, ApiError> {
    let rows = engine
        .store()
        .scan_prefix(keys::USERS, b"u/", usize::MAX)
        .map_err(ApiError::internal)?;
    Ok(rows
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Revokes a user's token.
pub async fn revoke(engine: &Engine, id: &str) -> Result<UserRecord, ApiError> {
    let id = id.to_owned();
    let outcome = engine
        .local_step(
            None,
            Box::new(move |txn, _ctx| {
                let k = user_key(&id);
                let mut rec: UserRecord = txn
                    .get(keys::USERS, &k)?
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .ok_or_else(|| Refusal::new("not_found", "no such user"))?;
                rec.revoked = true;
                txn.delete(keys::USERS, token_key(&rec.token_sha256));
                let json = serde_json::to_vec(&rec)
                    .map_err(|_| Refusal::from(imi_protocol::RejectCode::Internal))?;
                txn.put(keys::USERS, k, json.clone());
                Ok(LocalOutcome {
                    write: true,
                    result: json,
                })
            }),
        )
        .await?;
    match outcome {
        Ok(o) => {
            let rec: UserRecord = serde_json::from_slice(&o.result).map_err(ApiError::internal)?;
            tracing::info!(user = %rec.user.id, "user revoked");
            Ok(rec)
        }
        Err(r) if r.code.label() == "not_found" => Err(ApiError::not_found()),
        Err(r) => Err(r.into()),
    }
}

/// The user a request's bearer token belongs to; 401 for a missing, unknown or revoked
/// token.
pub fn authenticate(engine: &Engine, headers: &HeaderMap) -> Result<User, ApiError> {
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
    let store = engine.store();
    let id = store
        .get(keys::USERS, &token_key(&token_hash(token)))
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::unauthorized)?;
    let rec: UserRecord = store
        .get(keys::USERS, &[b"u/".as_slice(), &id].concat())
        .map_err(ApiError::internal)?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .ok_or_else(ApiError::unauthorized)?;
    if rec.revoked {
        return Err(ApiError::unauthorized());
    }
    Ok(rec.user)
}
