//! IMI requests on the substrate: every step of a request's lifecycle is a signed envelope
//! of kind [`KIND_REQUEST`] whose body is a [`CaseMessage`].
//!
//! Both nodes run the same function, [`Cases::apply_step`], on every step: the sending node
//! on the commit thread together with the envelope it sends ([`imi_engine::Engine::local_step`]),
//! the receiving node in its [`Application`] before it acknowledges. The function runs the
//! domain's state machine ([`imi_domain::request`]) and the checks the state machine leaves
//! to its callers: codes exist in the catalogue and belong to the case's legal area, answers
//! have the question's type, authorities exist in the directory, attachments match their
//! references, the subject data matches its commitment, and the receiving node is the
//! country of a party. A refused step writes nothing; an inbound refusal is a signed
//! `rejected` receipt with the step's code.
//!
//! # Personal data at rest
//!
//! A case's record (the request with its texts, answers and the subject's data) and its
//! attachments are encrypted with XChaCha20-Poly1305 under a **data key of the case's own**
//! (32 random bytes, chosen by each node for its copy). The case key is stored wrapped under
//! the node's data key (a 0600 key file), in its own column, so that destroying one row
//! makes the case's personal data unreadable (the retention job of the audit issue). Only
//! metadata (ids, legal area, state, dates) is stored in the clear, in the case index that
//! lists and filters read.
use crate::AppError;
use crate::directory::SharedDirectory;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use imi_domain::catalogue::Catalogue;
use imi_domain::request::{self, Actor, RequestCase, Transition};
use imi_domain::{Directory, country_of};
use imi_engine::{Application, Inbound, Refusal, Txn};
use imi_protocol::clock::{PreviousStep, step_time};
use imi_protocol::{AuthorityId, CaseId, MessageId, NodeId, RejectCode, Timestamp};
use imi_store::Column;
use imi_store::ReadStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use imi_domain::message::{
    CaseMessage, FileBytes, MAX_DETAIL_BYTES, MAX_STEP_FILE_BYTES, MAX_SUBJECT_DETAILS,
    MESSAGE_VERSION, SubjectData, encode_message,
};
use imi_domain::message::{match_files, step_attachments};

/// A domain refusal as the kernel's (the same code travels in a `rejected` receipt).
fn refusal(r: imi_domain::message::Refused) -> Refusal {
    Refusal::new(r.code, r.detail)
}

pub use imi_protocol::clock::MAX_PAST_SKEW_MS;

/// The envelope kind of request steps.
pub const KIND_REQUEST: &str = imi_protocol::Kind::REQUEST;

/// Wrapped per-case data keys.
pub const CASE_KEYS: Column = "case_keys";
/// Encrypted case records.
pub const CASES: Column = "cases";
/// Plaintext case metadata for lists and filters.
pub const CASE_INDEX: Column = "case_index";
/// Encrypted attachment contents.
pub const CASE_FILES: Column = "case_files";
/// The columns of the request application.
pub const COLUMNS: &[Column] = &[CASE_KEYS, CASES, CASE_INDEX, CASE_FILES];
/// A node's copy of a case, stored encrypted under the case key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecord {
    /// The request and its history.
    pub case: RequestCase,
    /// The subject's data.
    pub subject: SubjectData,
    /// Beside each step of `case.history`, the time this node defends for it
    /// ([`imi_protocol::clock::step_time`]): the signed time, or this node's receipt time
    /// when the signed one lies more than [`MAX_PAST_SKEW_MS`] before it; never earlier than
    /// the previous step's. Retention and the indicator facts use these times. Records
    /// written before this field have none: their steps' signed times stand.
    #[serde(default)]
    pub defended: Vec<Timestamp>,
}

impl CaseRecord {
    /// The defended time of every step (the signed time where none was recorded).
    pub fn defended_times(&self) -> Vec<Timestamp> {
        self.case
            .history
            .iter()
            .enumerate()
            .map(|(i, h)| self.defended.get(i).copied().unwrap_or(h.at))
            .collect()
    }
}

/// The plaintext metadata of a case: what lists and filters need, no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseIndex {
    /// Legal area.
    pub area: String,
    /// Procedure.
    pub procedure: String,
    /// Requesting authority.
    pub requester: AuthorityId,
    /// Current responder.
    pub responder: AuthorityId,
    /// State name.
    pub state: String,
    /// Agreed answer date (ms, end of day).
    pub answer_by: Timestamp,
    /// Whether the current responder has answered.
    pub answered: bool,
    /// Closed or withdrawn.
    pub terminal: bool,
    /// Created, ms.
    pub created: Timestamp,
    /// Last step, ms.
    pub updated: Timestamp,
    /// The last envelope of the case (the `prev` of the next one).
    pub last_message: Option<MessageId>,
}

impl CaseIndex {
    fn of(case: &RequestCase, updated: Timestamp, last_message: Option<MessageId>) -> Self {
        Self {
            area: case.area.clone(),
            procedure: case.procedure.clone(),
            requester: case.requester.clone(),
            responder: case.responder.clone(),
            state: case.state.name().to_owned(),
            answer_by: case.answer_by,
            answered: case.answered_at.is_some(),
            terminal: case.state.is_terminal(),
            created: case.created,
            updated,
            last_message,
        }
    }

    /// Overdue at `now`: past the agreed date, unanswered, not ended.
    pub fn overdue(&self, now: Timestamp) -> bool {
        now > self.answer_by && !self.answered && !self.terminal
    }

    /// The countries of the two parties.
    pub fn countries(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = [&self.requester, &self.responder]
            .into_iter()
            .filter_map(country_of)
            .collect();
        v.dedup();
        v
    }
}

/// One read of personal data through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// When, ms.
    pub at: Timestamp,
    /// The user id.
    pub user: String,
    /// The user's authority.
    pub authority: AuthorityId,
    /// The case read.
    pub case: CaseId,
    /// What was read (`read_request`, `read_attachment`).
    pub action: String,
}

pub(crate) fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(v, &mut out);
    out
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
    ciborium::from_reader(b).ok()
}

/// The node's data key: wraps the per-case keys.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

const WRAP_CONTEXT: &[u8] = b"imi-case-key-v1";
const RECORD_CONTEXT: &[u8] = b"imi-case-record-v1";
const FILE_CONTEXT: &[u8] = b"imi-case-file-v1";

pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AppError> {
    let nonce: [u8; 24] = rand::random();
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| AppError::Internal("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce = sealed.get(..24)?;
    let ct = sealed.get(24..)?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

pub(crate) fn aad(context: &[u8], case: &CaseId, extra: &[u8]) -> Vec<u8> {
    let mut a = context.to_vec();
    a.extend_from_slice(case.as_bytes());
    a.extend_from_slice(extra);
    a
}

impl DataKey {
    /// From the key file's 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn wrap(&self, case: &CaseId, key: &[u8; 32]) -> Result<Vec<u8>, AppError> {
        self.wrap_key(WRAP_CONTEXT, case, key)
    }

    fn unwrap(&self, case: &CaseId, wrapped: &[u8]) -> Option<[u8; 32]> {
        self.unwrap_key(WRAP_CONTEXT, case, wrapped)
    }

    /// Wraps the per-object `key` of object `id` (a case, a notification, an alert) under
    /// the data key, bound to the application's `context` and the id.
    pub(crate) fn wrap_key(
        &self,
        context: &[u8],
        id: &CaseId,
        key: &[u8; 32],
    ) -> Result<Vec<u8>, AppError> {
        seal(&self.0, &aad(context, id, &[]), key)
    }

    /// The key [`DataKey::wrap_key`] wrapped; `None` if it does not open (another context,
    /// id or data key, or altered bytes).
    pub(crate) fn unwrap_key(
        &self,
        context: &[u8],
        id: &CaseId,
        wrapped: &[u8],
    ) -> Option<[u8; 32]> {
        open(&self.0, &aad(context, id, &[]), wrapped)?
            .try_into()
            .ok()
    }
}

/// Key of an attachment in `case_files`.
pub fn file_key(case: &CaseId, sha256: &[u8; 32]) -> Vec<u8> {
    let mut k = case.as_bytes().to_vec();
    k.extend_from_slice(sha256);
    k
}

/// The request service of a node: its catalogue, directory and data key.
pub struct Cases {
    node: NodeId,
    report_facts: bool,
    data_key: DataKey,
    catalogue: Arc<Catalogue>,
    directory: SharedDirectory,
    /// Whether this process gave every case and alert its retention row yet
    /// ([`crate::retention`]): the first run of each process does, whatever an earlier
    /// release, a restored backup or another catalogue left in the store.
    pub(crate) due_indexed: crate::retention::DueIndexed,
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "case storage failed");
    Refusal::from(RejectCode::Internal)
}

impl Cases {
    /// A node's request service.
    pub fn new(
        node: NodeId,
        data_key: DataKey,
        catalogue: Arc<Catalogue>,
        directory: impl Into<SharedDirectory>,
    ) -> Self {
        Self {
            node,
            report_facts: false,
            data_key,
            catalogue,
            directory: directory.into(),
            due_indexed: Default::default(),
        }
    }

    /// Also record this node's indicator facts with every step, for the reporter to send
    /// to the Commission node ([`crate::facts`]).
    pub fn with_fact_reports(mut self) -> Self {
        self.report_facts = true;
        self
    }

    /// Whether this node reports indicator and usage facts to the Commission node.
    pub fn reports_facts(&self) -> bool {
        self.report_facts
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The node's data key.
    pub(crate) fn data_key(&self) -> &DataKey {
        &self.data_key
    }

    /// The authority directory as it is now (the replica changes as updates arrive).
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.snapshot()
    }

    /// The application to register with the engine.
    pub fn application(self: &Arc<Self>) -> Arc<dyn Application> {
        Arc::new(RequestApp(self.clone()))
    }

    /// The nodes other than this one that must receive a step of a case between these
    /// parties.
    pub fn counterparts(&self, requester: &AuthorityId, responder: &AuthorityId) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = [requester, responder]
            .into_iter()
            .filter_map(country_of)
            .filter(|c| *c != self.node)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// A case's index entry.
    pub fn index(store: &dyn ReadStore, id: &CaseId) -> Result<Option<CaseIndex>, AppError> {
        Ok(store
            .get(CASE_INDEX, id.as_bytes())?
            .and_then(|b| decode(&b)))
    }

    /// Up to `limit` index entries in case-id order, starting after `after`.
    pub fn scan_index(
        store: &dyn ReadStore,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<(CaseId, CaseIndex)>, AppError> {
        let start = match after {
            None => Vec::new(),
            Some(a) => {
                let mut start = a.as_bytes().to_vec();
                start.push(0);
                start
            }
        };
        let rows = store.range(CASE_INDEX, &start, None, limit)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| Some((CaseId::from_slice(&k)?, decode(&v)?)))
            .collect())
    }

    fn case_key(&self, get: impl Fn(&[u8]) -> Option<Vec<u8>>, id: &CaseId) -> Option<[u8; 32]> {
        self.data_key.unwrap(id, &get(id.as_bytes())?)
    }

    /// Decrypts a node's copy of a case. `Ok(None)` when there is no such case or its key
    /// is gone.
    pub fn read(&self, store: &dyn ReadStore, id: &CaseId) -> Result<Option<CaseRecord>, AppError> {
        let Some(wrapped) = store.get(CASE_KEYS, id.as_bytes())? else {
            return Ok(None);
        };
        let key = self
            .data_key
            .unwrap(id, &wrapped)
            .ok_or_else(|| AppError::Internal("a case key does not unwrap".into()))?;
        let Some(sealed) = store.get(CASES, id.as_bytes())? else {
            return Ok(None);
        };
        let plain = open(&key, &aad(RECORD_CONTEXT, id, &[]), &sealed)
            .ok_or_else(|| AppError::Internal("a case record does not decrypt".into()))?;
        decode(&plain)
            .map(Some)
            .ok_or_else(|| AppError::Internal("a case record does not decode".into()))
    }

    /// The case's own data key, unwrapped (for audits and tests: it lets a test prove
    /// that erasure leaves no trace of it).
    pub fn unwrap_case_key(
        &self,
        store: &dyn ReadStore,
        id: &CaseId,
    ) -> Result<Option<[u8; 32]>, AppError> {
        Ok(store
            .get(CASE_KEYS, id.as_bytes())?
            .and_then(|w| self.data_key.unwrap(id, &w)))
    }

    /// Decrypts an attachment of a case.
    pub fn read_file(
        &self,
        store: &dyn ReadStore,
        id: &CaseId,
        sha256: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, AppError> {
        let get = |k: &[u8]| store.get(CASE_KEYS, k).ok().flatten();
        let Some(key) = self.case_key(get, id) else {
            return Ok(None);
        };
        let Some(sealed) = store.get(CASE_FILES, &file_key(id, sha256))? else {
            return Ok(None);
        };
        Ok(open(&key, &aad(FILE_CONTEXT, id, sha256), &sealed))
    }

    /// Runs one step of case `id` by `actor` at `at` (this node's own step: its clock) against
    /// the latest state in `txn` and, if every check passes, writes the new encrypted record,
    /// its index entry and the step's attachments into `txn`. `message_id` is the step's
    /// envelope (if any).
    pub fn apply_step(
        &self,
        txn: &mut Txn<'_>,
        id: CaseId,
        actor: &Actor,
        msg: &CaseMessage,
        at: Timestamp,
        message_id: Option<MessageId>,
    ) -> Result<RequestCase, Refusal> {
        self.apply_received_step(txn, id, actor, msg, at, message_id, at)
    }

    /// Like [`Cases::apply_step`] for a step another node signed at `at` and this node
    /// received at `received`. The case keeps the signed time (both nodes hold the same
    /// history); beside it the record keeps the time this node can defend
    /// ([`imi_protocol::clock::step_time`]: the signed one if it is at most
    /// [`MAX_PAST_SKEW_MS`] older than the receipt, else the receipt time, never before the
    /// previous step's), and the index — what retention schedules from — and the indicator
    /// facts use that one. A sender that backdates its close cannot make this node block or
    /// erase its copy early, nor move the Commission's figures.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_received_step(
        &self,
        txn: &mut Txn<'_>,
        id: CaseId,
        actor: &Actor,
        msg: &CaseMessage,
        at: Timestamp,
        message_id: Option<MessageId>,
        received: Timestamp,
    ) -> Result<RequestCase, Refusal> {
        if msg.v != MESSAGE_VERSION {
            return Err(Refusal::new(
                "unsupported_version",
                format!("case message version {}", msg.v),
            ));
        }
        if txn
            .get(crate::retention::TOMBSTONES, id.as_bytes())?
            .is_some()
        {
            return Err(Refusal::new(
                "case_erased",
                "the case's data has been erased",
            ));
        }
        let index = txn.get(CASE_INDEX, id.as_bytes()).map_err(Refusal::from)?;
        let (previous, key) = match index {
            None => (None, None),
            Some(_) => {
                let wrapped = txn
                    .get(CASE_KEYS, id.as_bytes())
                    .map_err(Refusal::from)?
                    .ok_or_else(|| {
                        Refusal::new("case_erased", "the case's data has been erased")
                    })?;
                let key = self
                    .data_key
                    .unwrap(&id, &wrapped)
                    .ok_or_else(|| internal("case key does not unwrap"))?;
                let sealed = txn
                    .get(CASES, id.as_bytes())
                    .map_err(Refusal::from)?
                    .ok_or_else(|| internal("case record missing"))?;
                let plain = open(&key, &aad(RECORD_CONTEXT, &id, &[]), &sealed)
                    .ok_or_else(|| internal("case record does not decrypt"))?;
                let record: CaseRecord =
                    decode(&plain).ok_or_else(|| internal("case record does not decode"))?;
                (Some(record), Some(key))
            }
        };
        let next = request::step_body(previous.as_ref().map(|r| &r.case), id, actor, &msg.step, at)
            .map_err(|e| Refusal::new(e.code(), e.to_string()))?;
        let mut defended = previous
            .as_ref()
            .map(CaseRecord::defended_times)
            .unwrap_or_default();
        let before = previous
            .as_ref()
            .and_then(|r| r.case.history.last())
            .zip(defended.last())
            .map(|(h, d)| PreviousStep {
                signed: h.at,
                defended: *d,
            });
        // The future bound was checked on the envelope; the bound against the previous step
        // by the transition.
        let now = step_time(before, at, received, Timestamp::MAX)
            .map_err(|e| Refusal::new(e.code(), "the step's time is refused"))?;
        defended.push(now);
        // Whoever sends, this node must hold one of the parties.
        if !self.counterparts_of(&next).contains(&self.node) {
            return Err(Refusal::new(
                "not_party_node",
                format!("{} is not the country of a party of this case", self.node),
            ));
        }
        imi_domain::message::check_step(
            &self.catalogue,
            &self.directory.snapshot(),
            &msg.step.transition,
            &next,
        )
        .map_err(refusal)?;
        let subject = match (&previous, &msg.step.transition, &msg.subject) {
            (None, Transition::Create { subject, .. }, Some(data)) => {
                data.validate().map_err(refusal)?;
                if &data.commitment() != subject {
                    return Err(Refusal::new(
                        "subject_mismatch",
                        "the subject data does not match the request's commitment",
                    ));
                }
                data.clone()
            }
            (None, _, _) => {
                return Err(Refusal::new(
                    "missing_subject",
                    "create needs the subject data",
                ));
            }
            (Some(_), _, Some(_)) => {
                return Err(Refusal::new(
                    "unexpected_subject",
                    "subject data travels with create only",
                ));
            }
            (Some(r), _, None) => r.subject.clone(),
        };
        let refs = step_attachments(&msg.step.transition);
        let files = match_files(refs, &msg.files).map_err(refusal)?;
        let key = match key {
            Some(k) => k,
            None => {
                let k: [u8; 32] = rand::random();
                let wrapped = self.data_key.wrap(&id, &k).map_err(internal)?;
                txn.put(CASE_KEYS, id.as_bytes().to_vec(), wrapped);
                k
            }
        };
        for (sha, bytes) in files {
            let sealed = seal(&key, &aad(FILE_CONTEXT, &id, &sha), bytes).map_err(internal)?;
            txn.put(CASE_FILES, file_key(&id, &sha), sealed);
        }
        let record = CaseRecord {
            case: next.clone(),
            subject,
            defended,
        };
        let sealed =
            seal(&key, &aad(RECORD_CONTEXT, &id, &[]), &cbor(&record)).map_err(internal)?;
        txn.put(CASES, id.as_bytes().to_vec(), sealed);
        let index = CaseIndex::of(&next, now, message_id);
        crate::retention::schedule(txn, self, &id, &index);
        txn.put(CASE_INDEX, id.as_bytes().to_vec(), cbor(&index));
        if self.report_facts {
            crate::facts::record_report(txn, self.node, &next, &record.defended);
        }
        Ok(next)
    }

    fn counterparts_of(&self, case: &RequestCase) -> Vec<NodeId> {
        [&case.requester, &case.responder]
            .into_iter()
            .filter_map(country_of)
            .collect()
    }
}

/// The engine application of request steps from other nodes.
pub struct RequestApp(Arc<Cases>);

impl Application for RequestApp {
    fn name(&self) -> &'static str {
        "requests"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_REQUEST]
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let (id, body) = crate::stepped(msg, decode::<CaseMessage>, |b| {
            b.step.transition.kind().as_str()
        })?;
        let actor = Actor {
            authority: msg.header.authority.clone(),
            country: msg.header.from,
            coordinator: body.coordinator,
        };
        match self.0.apply_received_step(
            txn,
            id,
            &actor,
            &body,
            msg.header.created,
            Some(msg.header.id),
            msg.received,
        ) {
            Ok(case) => {
                tracing::info!(case = %id, from = %msg.header.from, kind = case.history.last().map_or("", |h| h.kind.as_str()), state = case.state.name(), "case step applied");
                Ok(())
            }
            Err(r) => {
                tracing::info!(case = %id, from = %msg.header.from, code = r.code.label(), "case step refused");
                Err(r.code)
            }
        }
    }
}

/// The request columns without the application: a node that takes part in no request (the
/// Commission node) still opens them, so its API answers lists with nothing.
pub const CASE_COLUMNS: crate::OwnedColumns = crate::OwnedColumns::new("request-columns", COLUMNS);

/// The log leaf of a read of personal data (the user appears only as a hash of their id).
pub fn access_leaf(rec: &AccessRecord) -> String {
    imi_audit::leaf::Leaf::new(
        "access",
        &[
            &hex::encode(imi_protocol::sha256(rec.user.as_bytes())),
            rec.authority.as_str(),
            &rec.case.to_string(),
            &rec.action,
            &rec.at.to_string(),
        ],
    )
    .text()
}
