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

/// How many rows a page of entries reads from the store at a time.
const PAGE_CHUNK: usize = 256;

/// Calls `f` with the entries of `repository` this node holds, by id, from just after
/// `after` (from the first without it), reading [`PAGE_CHUNK`] rows at a time, until `f`
/// returns `false` or the entries end.
fn walk_entries(
    store: &dyn ReadStore,
    repository: &str,
    after: Option<&CaseId>,
    mut f: impl FnMut(CaseId, StoredEntry) -> bool,
) -> Result<(), AppError> {
    let start = match after {
        Some(id) => {
            let mut k = key(repository, id);
            k.push(0);
            k
        }
        None => key_prefix(repository),
    };
    // The end of the repository's keys: its code and the byte after the separator.
    let mut end = repository.as_bytes().to_vec();
    end.push(1);
    let prefix = repository.len() + 1;
    Ok(imi_store::for_each_entry(
        store,
        REPOSITORY,
        &start,
        Some(&end),
        PAGE_CHUNK,
        |k, v| match (
            k.get(prefix..).and_then(CaseId::from_slice),
            decode::<StoredEntry>(&v),
        ) {
            (Some(id), Some(e)) => f(id, e),
            _ => true,
        },
    )?)
}

fn key_prefix(repository: &str) -> Vec<u8> {
    let mut prefix = repository.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

/// A page of a repository's entries, by id: up to `limit` of those `keep` accepts after
/// `after`, and whether more follow (then the last one's id is the next page's cursor).
pub fn entries_page(
    store: &dyn ReadStore,
    repository: &str,
    after: Option<&CaseId>,
    limit: usize,
    keep: impl Fn(&StoredEntry) -> bool,
) -> Result<(Vec<(CaseId, StoredEntry)>, bool), AppError> {
    let mut page = Vec::new();
    let mut more = false;
    walk_entries(store, repository, after, |id, e| {
        if !keep(&e) {
            return true;
        }
        if page.len() == limit {
            more = true;
            return false;
        }
        page.push((id, e));
        true
    })?;
    Ok((page, more))
}

/// The `n` most recently updated entries of a repository that `keep` accepts, newest first
/// (the whole repository is read a chunk at a time; at most `2n` are held).
pub fn newest_entries(
    store: &dyn ReadStore,
    repository: &str,
    n: usize,
    keep: impl Fn(&StoredEntry) -> bool,
) -> Result<Vec<(CaseId, StoredEntry)>, AppError> {
    // The newest so far, kept to at most 2n between trims: one sort per n entries read.
    let newest_first = |v: &mut Vec<(CaseId, StoredEntry)>| {
        v.sort_by_key(|(id, e)| std::cmp::Reverse((e.updated, *id)));
        v.truncate(n);
    };
    let mut kept = Vec::new();
    walk_entries(store, repository, None, |id, e| {
        if keep(&e) {
            kept.push((id, e));
            if kept.len() >= n.saturating_mul(2).max(1) {
                newest_first(&mut kept);
            }
        }
        true
    })?;
    newest_first(&mut kept);
    Ok(kept)
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

#[cfg(test)]
mod tests {
    use super::*;
    use imi_store::{Durability, MemStore, Store, WriteBatch};

    fn stored(updated: Timestamp, withdrawn: bool) -> StoredEntry {
        StoredEntry {
            owner: AuthorityId::new("DE-NC").unwrap(),
            owner_node: NodeId::DE,
            version: 1,
            withdrawn,
            fields: Vec::new(),
            updated,
            message: None,
        }
    }

    #[test]
    fn pages_and_the_newest_cross_chunks_and_stay_in_their_repository() {
        let store = MemStore::new(COLUMNS);
        let mut batch = WriteBatch::new();
        // 600 entries in R1 (more than two chunks), some withdrawn, times in no id order;
        // neighbours whose codes share its prefix.
        let mut all = Vec::new();
        for i in 0..600u64 {
            let id = CaseId::random();
            let e = stored((i * 7) % 601, i % 5 == 0);
            batch.put(REPOSITORY, key("R1", &id), cbor(&e));
            all.push((id, e));
        }
        for code in ["R", "R10", "R1\u{1}"] {
            for _ in 0..10 {
                batch.put(
                    REPOSITORY,
                    key(code, &CaseId::random()),
                    cbor(&stored(9_999, false)),
                );
            }
        }
        store.write(batch, Durability::Sync).unwrap();
        all.sort_by_key(|(id, _)| *id);
        let live: Vec<CaseId> = all
            .iter()
            .filter(|(_, e)| !e.withdrawn)
            .map(|(id, _)| *id)
            .collect();

        for (limit, keep_withdrawn) in [
            (1, false),
            (100, true),
            (240, false),
            (480, false),
            (600, true),
        ] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let (page, more) = entries_page(&store, "R1", after.as_ref(), limit, |e| {
                    keep_withdrawn || !e.withdrawn
                })
                .unwrap();
                assert!(page.len() <= limit);
                seen.extend(page.iter().map(|(id, _)| *id));
                if !more {
                    break;
                }
                assert_eq!(page.len(), limit, "a page before the last is full");
                after = page.last().map(|(id, _)| *id);
            }
            let want: Vec<CaseId> = if keep_withdrawn {
                all.iter().map(|(id, _)| *id).collect()
            } else {
                live.clone()
            };
            assert_eq!(seen, want, "limit {limit}");
        }

        let mut newest: Vec<(Timestamp, CaseId)> = all
            .iter()
            .filter(|(_, e)| !e.withdrawn)
            .map(|(id, e)| (e.updated, *id))
            .collect();
        newest.sort_by(|a, b| b.cmp(a));
        for n in [0, 1, 50, 480, 1000] {
            let got: Vec<(Timestamp, CaseId)> = newest_entries(&store, "R1", n, |e| !e.withdrawn)
                .unwrap()
                .into_iter()
                .map(|(id, e)| (e.updated, id))
                .collect();
            let want: Vec<(Timestamp, CaseId)> = newest.iter().take(n).copied().collect();
            assert_eq!(got, want, "the {n} newest");
        }
    }
}
