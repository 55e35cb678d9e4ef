//! The repository application (kind `imi.repository.entry`): entries owned by competent
//! authorities, replicated by their owner's node to every node on the repository's access
//! list (and only there), each of which checks the list again before storing anything.
//! A node keeps each entry's highest version; only its owner changes or withdraws it.
//!
//! Column [`REPOSITORY`]: repository code ‖ 0 ‖ entry id (16 bytes) → [`StoredEntry`]
//! (CBOR).
use crate::AppError;
use crate::requests::{Cases, cbor, decode};
use crate::services::IdempotencyKey;
use imi_domain::repository::{self as r, Access, ENTRY_VERSION, EntryMessage, check_entry};
use imi_domain::request::CodedAnswer;
use imi_engine::{Application, Engine, Inbound, LocalCtx, LocalOutcome, Refusal, Txn};
use imi_protocol::{
    AuthorityId, CaseId, Draft, Kind, MessageId, NodeId, RejectCode, Role, Timestamp,
};
use imi_store::{Column, ReadStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The application's column.
pub const REPOSITORY: Column = "repository";
/// Its columns.
pub const COLUMNS: &[Column] = &[REPOSITORY];

/// An entry as a node holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEntry {
    /// The owning authority.
    pub owner: AuthorityId,
    /// Its node.
    pub owner_node: NodeId,
    /// The version held.
    pub version: u64,
    /// Withdrawn by its owner.
    pub withdrawn: bool,
    /// The fields.
    pub fields: Vec<CodedAnswer>,
    /// When this version was made (its envelope's signed time, or the receipt time if
    /// that is more than 10 minutes older).
    pub updated: Timestamp,
    /// The envelope of this version (none when no other node holds the repository).
    pub message: Option<MessageId>,
}

fn key(repository: &str, id: &CaseId) -> Vec<u8> {
    let mut k = repository.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

fn app_code(code: &str) -> RejectCode {
    RejectCode::Application(code.into())
}

/// One entry.
pub fn entry(
    store: &dyn ReadStore,
    repository: &str,
    id: &CaseId,
) -> Result<Option<StoredEntry>, AppError> {
    Ok(store
        .get(REPOSITORY, &key(repository, id))?
        .and_then(|v| decode(&v)))
}

/// Every entry of a repository this node holds, by id.
pub fn entries(
    store: &dyn ReadStore,
    repository: &str,
) -> Result<Vec<(CaseId, StoredEntry)>, AppError> {
    let mut prefix = repository.as_bytes().to_vec();
    prefix.push(0);
    Ok(store
        .scan_prefix(REPOSITORY, &prefix, usize::MAX)?
        .into_iter()
        .filter_map(|(k, v)| {
            Some((
                CaseId::from_slice(k.get(prefix.len()..)?)?,
                decode::<StoredEntry>(&v)?,
            ))
        })
        .collect())
}

/// The other member nodes on the trust list that hold `access`'s entries.
pub fn holders(engine: &Engine, access: &Access) -> Vec<NodeId> {
    let me = engine.node();
    let mut v: Vec<NodeId> = engine
        .trust_list()
        .members
        .iter()
        .filter(|m| m.role == Role::National && m.node != me && access.holds(m.node))
        .map(|m| m.node)
        .collect();
    v.sort();
    v.dedup();
    v
}

/// What a change does.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new entry with these fields.
    Create(Vec<CodedAnswer>),
    /// New fields for entry `id`.
    Update(CaseId, Vec<CodedAnswer>),
    /// Withdraws entry `id`.
    Withdraw(CaseId),
}

/// `owner` (an authority of this node) creates, updates or withdraws an entry of
/// `repository`: checked against the catalogue and the access list, then in one commit the
/// new version is stored and sent to every other node holding the repository. Returns the
/// entry's id and what is stored; refused `not_found` for an unknown entry, `not_owner` for
/// another authority's, `stale_version` if it changed meanwhile.
pub async fn change(
    engine: &Engine,
    cases: &Arc<Cases>,
    owner: AuthorityId,
    repository: String,
    change: Change,
    idempotency: Option<IdempotencyKey>,
) -> Result<(CaseId, StoredEntry, bool), AppError> {
    let me = cases.node();
    let refused = |code: &str, d: String| AppError::Refused(Refusal::new(code, d));
    let (id, current) = match &change {
        Change::Create(_) => (CaseId::random(), None),
        Change::Update(id, _) | Change::Withdraw(id) => {
            let (store, repo, id2) = (engine.reader(), repository.clone(), *id);
            let cur = tokio::task::spawn_blocking(move || entry(store.as_ref(), &repo, &id2))
                .await
                .map_err(|e| AppError::Internal(e.to_string()))??
                .ok_or_else(|| refused("not_found", "no such entry".into()))?;
            if cur.owner != owner {
                return Err(refused(
                    "not_owner",
                    "only the entry's owner changes it".into(),
                ));
            }
            (*id, Some(cur))
        }
    };
    let (fields, withdrawn) = match change {
        Change::Create(f) | Change::Update(_, f) => (f, false),
        Change::Withdraw(_) => (
            current
                .as_ref()
                .map(|c| c.fields.clone())
                .unwrap_or_default(),
            true,
        ),
    };
    let msg = EntryMessage {
        v: ENTRY_VERSION,
        repository: repository.clone(),
        version: current.as_ref().map_or(1, |c| c.version + 1),
        withdrawn,
        fields,
    };
    let procedure =
        check_entry(cases.catalogue(), &owner, me, &msg).map_err(|e| refused(e.code, e.detail))?;
    let to = holders(engine, &Access::of(procedure));
    let holders = to.clone();
    let reports = cases.reports_facts();
    let repository_code = repository.clone();
    let draft = if to.is_empty() {
        None
    } else {
        Some(Draft {
            kind: Kind::new(Kind::REPOSITORY_ENTRY)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            step: None,
            authority: owner.clone(),
            to,
            case: Some(id),
            prev: current
                .as_ref()
                .and_then(|c| c.message)
                .into_iter()
                .collect(),
            body: r::encode(&msg),
        })
    };
    let k = key(&repository, &id);
    let expected = current.as_ref().map(|c| c.version);
    let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
        if let Some(idem) = &idempotency
            && let Some(replayed) = crate::idempotency::replay(txn, idem)?
        {
            return Ok(replayed);
        }
        let now: Option<StoredEntry> = txn.get(REPOSITORY, &k)?.and_then(|v| decode(&v));
        if now.as_ref().map(|c| c.version) != expected {
            return Err(Refusal::new("stale_version", "the entry changed meanwhile"));
        }
        let stored = StoredEntry {
            owner: owner.clone(),
            owner_node: me,
            version: msg.version,
            withdrawn: msg.withdrawn,
            fields: msg.fields.clone(),
            updated: ctx.at,
            message: ctx.message_id,
        };
        txn.put(REPOSITORY, k.clone(), cbor(&stored));
        if reports && expected.is_none() {
            let sent = crate::facts::Sent {
                kind: imi_scoreboard::usage::UsageKind::RepositoryEntry,
                id: &id,
                procedure: &repository_code,
                to: &holders,
                at: ctx.at,
                late: false,
            };
            crate::facts::record_usage(txn, me, sent);
        }
        let result = cbor(&stored);
        if let Some(idem) = &idempotency {
            crate::idempotency::record(txn, idem, &result);
        }
        Ok(LocalOutcome {
            write: true,
            result,
        })
    };
    let o = engine.local_step(draft, Box::new(apply)).await?;
    let stored: StoredEntry =
        decode(&o.result).ok_or_else(|| AppError::Internal("entry result".into()))?;
    tracing::info!(entry = %id, repository = %repository, version = stored.version, "repository entry changed");
    Ok((id, stored, o.write))
}

/// The engine application of entries from their owners' nodes.
pub struct RepositoryApp(pub Arc<Cases>);

impl Application for RepositoryApp {
    fn name(&self) -> &'static str {
        "repositories"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::REPOSITORY_ENTRY]
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let h = msg.header;
        let id = h.case.ok_or_else(|| app_code("missing_case"))?;
        if h.step.is_some() {
            return Err(app_code("step_mismatch"));
        }
        let m = r::decode(msg.body).ok_or_else(|| app_code("malformed_body"))?;
        let procedure = check_entry(self.0.catalogue(), &h.authority, h.from, &m)
            .map_err(|e| app_code(e.code))?;
        if !Access::of(procedure).holds(self.0.node()) {
            return Err(app_code("not_on_access_list"));
        }
        let k = key(&m.repository, &id);
        let current: Option<StoredEntry> = txn.get(REPOSITORY, &k)?.and_then(|v| decode(&v));
        if let Some(c) = &current {
            if c.owner != h.authority || c.owner_node != h.from {
                return Err(app_code("not_owner"));
            }
            if m.version <= c.version {
                return Err(app_code("stale_version"));
            }
        }
        let previous = current.as_ref().map(|c| imi_protocol::clock::PreviousStep {
            signed: c.updated,
            defended: c.updated,
        });
        let updated = imi_protocol::clock::step_time(previous, h.created, msg.received, u64::MAX)
            .map_err(|_| app_code("time_before_previous"))?;
        let stored = StoredEntry {
            owner: h.authority.clone(),
            owner_node: h.from,
            version: m.version,
            withdrawn: m.withdrawn,
            fields: m.fields,
            updated,
            message: Some(h.id),
        };
        txn.put(REPOSITORY, k, cbor(&stored));
        tracing::info!(entry = %id, from = %h.from, repository = %m.repository, version = stored.version, "repository entry received");
        Ok(())
    }
}
