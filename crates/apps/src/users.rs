//! API users and their bearer tokens: the `users` column (`u/` ‖ user id → JSON
//! [`UserRecord`], `t/` ‖ SHA-256 of the token (hex) → user id, removed on revocation).
//! Only the hash of a token is stored; writes go through the committer like every other.
use crate::AppError;
use crate::OwnedColumns;
use imi_domain::dates::rfc3339;
use imi_domain::user::{CoordinatorScope, Role, User};
use imi_engine::{Engine, LocalOutcome, Refusal};
use imi_store::{Column, ReadStore};
use serde::{Deserialize, Serialize};

/// API users and token hashes.
pub const USERS: Column = "users";

/// The users application (owns [`USERS`]).
pub const APP: OwnedColumns = OwnedColumns::new("users", &[USERS]);

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

/// The SHA-256 of a token, hex: what is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(imi_protocol::sha256(token.as_bytes()))
}

/// The active users of tokens seen lately, so that authenticating a request reads no
/// storage (each read would be a hand-off to the blocking pool and a JSON decode). Only
/// active users are kept, at most [`TokenCache::CAPACITY`] of them; every write to the
/// users (add, revoke) clears it once the write is durable, and a read that raced a write
/// is not kept (a generation number), so a revoked token is refused as soon as the revoke
/// returns.
#[derive(Debug, Default)]
pub struct TokenCache {
    inner: std::sync::Mutex<(u64, std::collections::HashMap<String, User>)>,
}

impl TokenCache {
    /// Most tokens kept; past it the cache starts again empty.
    pub const CAPACITY: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, std::collections::HashMap<String, User>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached user of a token hash, else the generation to pass to
    /// [`TokenCache::keep`] with what storage says.
    pub fn cached(&self, hash: &str) -> Result<User, u64> {
        let g = self.lock();
        g.1.get(hash).cloned().ok_or(g.0)
    }

    /// Keeps the active user of a token hash read from storage at `generation` (unless a
    /// user write happened since).
    pub fn keep(&self, generation: u64, hash: String, user: User) {
        let mut g = self.lock();
        if g.0 == generation {
            if g.1.len() >= Self::CAPACITY {
                g.1.clear();
            }
            g.1.insert(hash, user);
        }
    }

    /// Forgets every token (after a write to the users).
    pub fn invalidate(&self) {
        let mut g = self.lock();
        g.0 = g.0.wrapping_add(1);
        g.1.clear();
    }

    /// Tokens kept now.
    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    /// Whether no token is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Stores a new user (refused `user_exists` when the id is taken).
pub async fn insert(engine: &Engine, record: UserRecord) -> Result<(), AppError> {
    let json = serde_json::to_vec(&record).map_err(|e| AppError::Internal(e.to_string()))?;
    engine
        .local_step(
            None,
            Box::new(move |txn, _ctx| {
                let k = user_key(&record.user.id);
                if txn.get(USERS, &k)?.is_some() {
                    return Err(Refusal::new("user_exists", "a user with this id exists"));
                }
                txn.put(USERS, k, json);
                txn.put(
                    USERS,
                    token_key(&record.token_sha256),
                    record.user.id.clone().into_bytes(),
                );
                Ok(LocalOutcome {
                    write: true,
                    result: Vec::new(),
                })
            }),
        )
        .await?;
    Ok(())
}

/// Every user, by id.
pub fn list(store: &dyn ReadStore) -> Result<Vec<UserRecord>, AppError> {
    Ok(store
        .scan_prefix(USERS, b"u/", usize::MAX)?
        .into_iter()
        .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
        .collect())
}

/// Revokes a user's token (refused `not_found` for an unknown user).
pub async fn revoke(engine: &Engine, id: String) -> Result<UserRecord, AppError> {
    let outcome = engine
        .local_step(
            None,
            Box::new(move |txn, _ctx| {
                let k = user_key(&id);
                let mut rec: UserRecord = txn
                    .get(USERS, &k)?
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .ok_or_else(|| Refusal::new("not_found", "no such user"))?;
                rec.revoked = true;
                txn.delete(USERS, token_key(&rec.token_sha256));
                let json = serde_json::to_vec(&rec)
                    .map_err(|_| Refusal::from(imi_protocol::RejectCode::Internal))?;
                txn.put(USERS, k, json.clone());
                Ok(LocalOutcome {
                    write: true,
                    result: json,
                })
            }),
        )
        .await?;
    serde_json::from_slice(&outcome.result).map_err(|e| AppError::Internal(e.to_string()))
}

/// The active user of a token's hash ([`token_hash`]); `None` for an unknown or revoked
/// token.
pub fn by_hash(store: &dyn ReadStore, hash: &str) -> Result<Option<User>, AppError> {
    let Some(id) = store.get(USERS, &token_key(hash))? else {
        return Ok(None);
    };
    let rec: Option<UserRecord> = store
        .get(USERS, &[b"u/".as_slice(), &id].concat())?
        .and_then(|v| serde_json::from_slice(&v).ok());
    Ok(rec.filter(|r| !r.revoked).map(|r| r.user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            authority: imi_protocol::AuthorityId::new("DE-BY-BLZK").expect("id"),
            role: Role::AuthorityUser,
        }
    }

    #[test]
    fn a_read_that_raced_a_user_write_is_not_kept() {
        let cache = TokenCache::default();
        let generation = cache.cached("h1").expect_err("empty");
        // A revoke lands between the storage read and keeping what it said.
        cache.invalidate();
        cache.keep(generation, "h1".into(), user("anna"));
        assert!(cache.cached("h1").is_err(), "a stale read must not be kept");
        let generation = cache.cached("h1").expect_err("still empty");
        cache.keep(generation, "h1".into(), user("anna"));
        assert_eq!(cache.cached("h1"), Ok(user("anna")));
        cache.invalidate();
        assert!(
            cache.cached("h1").is_err(),
            "a user write forgets every token"
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = TokenCache::default();
        for i in 0..TokenCache::CAPACITY + 10 {
            let generation = cache.cached(&i.to_string()).expect_err("new");
            cache.keep(generation, i.to_string(), user("anna"));
        }
        assert!(cache.len() <= TokenCache::CAPACITY);
        assert!(!cache.is_empty());
    }
}
