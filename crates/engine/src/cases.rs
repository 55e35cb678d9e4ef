//! IMI requests on the substrate: every step of a request's lifecycle is a signed envelope
//! of kind [`KIND_REQUEST`] whose body is a [`CaseMessage`].
//!
//! Both nodes run the same function, [`Cases::apply_step`], on every step: the sending node
//! on the commit thread together with the envelope it sends ([`crate::Engine::local_step`]),
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
use crate::EngineError;
use crate::app::{Application, Inbound, Refusal, Txn};
use crate::keys;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use imi_domain::catalogue::{AnswerType, AnswerValue, Catalogue, ProcedureKind};
use imi_domain::dates::Date;
use imi_domain::request::{
    self, Actor, AnswerPayload, AttachmentRef, RequestCase, SubjectRef, Transition, TransitionBody,
};
use imi_domain::{Directory, country_of};
use imi_protocol::{AuthorityId, CaseId, MessageId, NodeId, RejectCode, Timestamp};
use imi_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The envelope kind of request steps.
pub const KIND_REQUEST: &str = "imi.request";
/// The version of the [`CaseMessage`] encoding.
pub const MESSAGE_VERSION: u16 = 1;
/// Most attachment bytes in one step (the envelope limit is 4 MiB).
pub const MAX_STEP_FILE_BYTES: usize = 3 * 1024 * 1024;
/// Most entries in [`SubjectData::details`].
pub const MAX_SUBJECT_DETAILS: usize = 32;
/// Longest subject detail value, bytes.
pub const MAX_DETAIL_BYTES: usize = 2048;

/// The bytes of an attached file in a [`CaseMessage`].
pub type FileBytes = serde_bytes::ByteBuf;

/// The personal data of a request's subject (a professional, a worker, a patient...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectData {
    /// Full name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    #[serde(default)]
    pub date_of_birth: Option<String>,
    /// Further identifying details (diploma number, registration number, ...).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

impl SubjectData {
    /// Checks sizes and formats; the error names the field (never its value).
    pub fn validate(&self) -> Result<(), Refusal> {
        let bad = |detail: &str| Refusal::new("invalid_subject", detail);
        if self.name.trim().is_empty() || self.name.len() > imi_domain::limits::MAX_NAME_BYTES {
            return Err(bad("subject name must have 1 to 512 bytes"));
        }
        if let Some(d) = &self.date_of_birth
            && Date::parse(d).is_none()
        {
            return Err(bad(
                "subject date_of_birth is not a YYYY-MM-DD calendar date",
            ));
        }
        if self.details.len() > MAX_SUBJECT_DETAILS {
            return Err(bad("too many subject details"));
        }
        for (k, v) in &self.details {
            if !imi_domain::limits::valid_code(k) {
                return Err(bad(
                    "subject detail keys must be codes ([A-Za-z0-9._-], 1-64)",
                ));
            }
            if v.len() > MAX_DETAIL_BYTES {
                return Err(bad("a subject detail is longer than 2048 bytes"));
            }
        }
        Ok(())
    }

    /// The commitment the case carries instead of the data: SHA-256 of the CBOR encoding.
    pub fn commitment(&self) -> SubjectRef {
        SubjectRef(hex::encode(imi_protocol::sha256(&cbor(self))))
    }
}

/// The body of a request envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMessage {
    /// Encoding version, [`MESSAGE_VERSION`].
    pub v: u16,
    /// The step.
    pub step: TransitionBody,
    /// Whether the acting user is an IMI coordinator of the sending country for the area.
    pub coordinator: bool,
    /// The subject's data: with `create` only.
    #[serde(default)]
    pub subject: Option<SubjectData>,
    /// The contents of the step's attachments, in any order.
    #[serde(default)]
    pub files: Vec<FileBytes>,
}

/// A node's copy of a case, stored encrypted under the case key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseRecord {
    /// The request and its history.
    pub case: RequestCase,
    /// The subject's data.
    pub subject: SubjectData,
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

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serializing plain data into a Vec cannot fail.
    let _ = ciborium::into_writer(v, &mut out);
    out
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
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

fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EngineError> {
    let nonce: [u8; 24] = rand::random();
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| EngineError::Internal("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce = sealed.get(..24)?;
    let ct = sealed.get(24..)?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

fn aad(context: &[u8], case: &CaseId, extra: &[u8]) -> Vec<u8> {
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

    fn wrap(&self, case: &CaseId, key: &[u8; 32]) -> Result<Vec<u8>, EngineError> {
        seal(&self.0, &aad(WRAP_CONTEXT, case, &[]), key)
    }

    fn unwrap(&self, case: &CaseId, wrapped: &[u8]) -> Option<[u8; 32]> {
        open(&self.0, &aad(WRAP_CONTEXT, case, &[]), wrapped)?
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
    directory: Arc<Directory>,
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
        directory: Arc<Directory>,
    ) -> Self {
        Self {
            node,
            report_facts: false,
            data_key,
            catalogue,
            directory,
        }
    }

    /// Also record this node's indicator facts with every step, for the reporter to send
    /// to the Commission node ([`crate::facts`]).
    pub fn with_fact_reports(mut self) -> Self {
        self.report_facts = true;
        self
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The authority directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
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
    pub fn index(store: &dyn Store, id: &CaseId) -> Result<Option<CaseIndex>, EngineError> {
        Ok(store
            .get(keys::CASE_INDEX, id.as_bytes())?
            .and_then(|b| decode(&b)))
    }

    /// Up to `limit` index entries in case-id order, starting after `after`.
    pub fn scan_index(
        store: &dyn Store,
        after: Option<&CaseId>,
        limit: usize,
    ) -> Result<Vec<(CaseId, CaseIndex)>, EngineError> {
        let start = match after {
            None => Vec::new(),
            Some(a) => {
                let mut start = a.as_bytes().to_vec();
                start.push(0);
                start
            }
        };
        let rows = store.range(keys::CASE_INDEX, &start, None, limit)?;
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
    pub fn read(&self, store: &dyn Store, id: &CaseId) -> Result<Option<CaseRecord>, EngineError> {
        let Some(wrapped) = store.get(keys::CASE_KEYS, id.as_bytes())? else {
            return Ok(None);
        };
        let key = self
            .data_key
            .unwrap(id, &wrapped)
            .ok_or_else(|| EngineError::Internal("a case key does not unwrap".into()))?;
        let Some(sealed) = store.get(keys::CASES, id.as_bytes())? else {
            return Ok(None);
        };
        let plain = open(&key, &aad(RECORD_CONTEXT, id, &[]), &sealed)
            .ok_or_else(|| EngineError::Internal("a case record does not decrypt".into()))?;
        decode(&plain)
            .map(Some)
            .ok_or_else(|| EngineError::Internal("a case record does not decode".into()))
    }

    /// The case's own data key, unwrapped (for audits and tests: it lets a test prove
    /// that erasure leaves no trace of it).
    pub fn unwrap_case_key(
        &self,
        store: &dyn Store,
        id: &CaseId,
    ) -> Result<Option<[u8; 32]>, EngineError> {
        Ok(store
            .get(keys::CASE_KEYS, id.as_bytes())?
            .and_then(|w| self.data_key.unwrap(id, &w)))
    }

    /// Decrypts an attachment of a case.
    pub fn read_file(
        &self,
        store: &dyn Store,
        id: &CaseId,
        sha256: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let get = |k: &[u8]| store.get(keys::CASE_KEYS, k).ok().flatten();
        let Some(key) = self.case_key(get, id) else {
            return Ok(None);
        };
        let Some(sealed) = store.get(keys::CASE_FILES, &file_key(id, sha256))? else {
            return Ok(None);
        };
        Ok(open(&key, &aad(FILE_CONTEXT, id, sha256), &sealed))
    }

    /// Runs one step of case `id` by `actor` at `at` against the latest state in `txn` and,
    /// if every check passes, writes the new encrypted record, its index entry and the
    /// step's attachments into `txn`. `message_id` is the step's envelope (if any).
    /// `inbound` says whether the step came from another node.
    pub fn apply_step(
        &self,
        txn: &mut Txn<'_>,
        id: CaseId,
        actor: &Actor,
        msg: &CaseMessage,
        at: Timestamp,
        message_id: Option<MessageId>,
    ) -> Result<RequestCase, Refusal> {
        if msg.v != MESSAGE_VERSION {
            return Err(Refusal::new(
                "unsupported_version",
                format!("case message version {}", msg.v),
            ));
        }
        if txn.get(keys::TOMBSTONES, id.as_bytes())?.is_some() {
            return Err(Refusal::new(
                "case_erased",
                "the case's data has been erased",
            ));
        }
        let index = txn
            .get(keys::CASE_INDEX, id.as_bytes())
            .map_err(Refusal::from)?;
        let (previous, key) = match index {
            None => (None, None),
            Some(_) => {
                let wrapped = txn
                    .get(keys::CASE_KEYS, id.as_bytes())
                    .map_err(Refusal::from)?
                    .ok_or_else(|| {
                        Refusal::new("case_erased", "the case's data has been erased")
                    })?;
                let key = self
                    .data_key
                    .unwrap(&id, &wrapped)
                    .ok_or_else(|| internal("case key does not unwrap"))?;
                let sealed = txn
                    .get(keys::CASES, id.as_bytes())
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
        // Whoever sends, this node must hold one of the parties.
        if !self.counterparts_of(&next).contains(&self.node) {
            return Err(Refusal::new(
                "not_party_node",
                format!("{} is not the country of a party of this case", self.node),
            ));
        }
        self.check_catalogue(&msg.step.transition, &next)?;
        let subject = match (&previous, &msg.step.transition, &msg.subject) {
            (None, Transition::Create { subject, .. }, Some(data)) => {
                data.validate()?;
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
        let files = match_files(refs, &msg.files)?;
        let key = match key {
            Some(k) => k,
            None => {
                let k: [u8; 32] = rand::random();
                let wrapped = self.data_key.wrap(&id, &k).map_err(internal)?;
                txn.put(keys::CASE_KEYS, id.as_bytes().to_vec(), wrapped);
                k
            }
        };
        for (sha, bytes) in files {
            let sealed = seal(&key, &aad(FILE_CONTEXT, &id, &sha), bytes).map_err(internal)?;
            txn.put(keys::CASE_FILES, file_key(&id, &sha), sealed);
        }
        let record = CaseRecord {
            case: next.clone(),
            subject,
        };
        let sealed =
            seal(&key, &aad(RECORD_CONTEXT, &id, &[]), &cbor(&record)).map_err(internal)?;
        txn.put(keys::CASES, id.as_bytes().to_vec(), sealed);
        txn.put(
            keys::CASE_INDEX,
            id.as_bytes().to_vec(),
            cbor(&CaseIndex::of(&next, at, message_id)),
        );
        if self.report_facts {
            crate::facts::record_report(txn, self.node, &next);
        }
        if let Some(h) = next.history.last() {
            txn.set_step(h.kind.as_str());
        }
        Ok(next)
    }

    fn counterparts_of(&self, case: &RequestCase) -> Vec<NodeId> {
        [&case.requester, &case.responder]
            .into_iter()
            .filter_map(country_of)
            .collect()
    }

    fn authority_known(&self, id: &AuthorityId) -> Result<(), Refusal> {
        if self.directory.contains(id) {
            Ok(())
        } else {
            Err(Refusal::new(
                "unknown_authority",
                format!("authority {id} is not in the directory"),
            ))
        }
    }

    /// The checks the state machine leaves to its callers.
    fn check_catalogue(&self, t: &Transition, next: &RequestCase) -> Result<(), Refusal> {
        match t {
            Transition::Create {
                requester,
                responder,
                area,
                procedure,
                questions,
                ..
            } => {
                self.authority_known(requester)?;
                self.authority_known(responder)?;
                let a = self.catalogue.area(area).ok_or_else(|| {
                    Refusal::new(
                        "unknown_area",
                        format!("legal area {area} is not in the catalogue"),
                    )
                })?;
                let p = a
                    .procedures()
                    .iter()
                    .find(|p| p.code() == procedure)
                    .ok_or_else(|| {
                        Refusal::new(
                            "unknown_procedure",
                            format!("procedure {procedure} is not in area {area}"),
                        )
                    })?;
                if p.kind() != ProcedureKind::Request {
                    return Err(Refusal::new(
                        "unknown_procedure",
                        format!("procedure {procedure} is not a request procedure"),
                    ));
                }
                for q in questions {
                    if !a.questions().iter().any(|x| x.code() == q) {
                        return Err(Refusal::new(
                            "unknown_question",
                            format!("question {q} is not a question of area {area}"),
                        ));
                    }
                }
            }
            Transition::Forward { to } | Transition::Reassign { to } => self.authority_known(to)?,
            Transition::Answer {
                answers,
                attachments,
                ..
            } => {
                for a in answers {
                    let qtype = self
                        .catalogue
                        .question(&a.question)
                        .map(|q| q.answer_type())
                        .ok_or_else(|| {
                            Refusal::new(
                                "unknown_question",
                                format!("question {} is not in the catalogue", a.question),
                            )
                        })?;
                    let value = match &a.answer {
                        AnswerPayload::NotAvailable => continue,
                        AnswerPayload::Text(t) if qtype == AnswerType::Attachment => {
                            if attachments.iter().any(|r| r.sha256.to_string() == *t) {
                                continue;
                            }
                            return Err(Refusal::new(
                                "invalid_answer",
                                format!(
                                    "question {} needs the SHA-256 of an attachment of the answer",
                                    a.question
                                ),
                            ));
                        }
                        AnswerPayload::Bool(b) => AnswerValue::YesNo(*b),
                        AnswerPayload::Text(t) => AnswerValue::FreeText(t.clone()),
                        AnswerPayload::Number(n) => AnswerValue::Number(*n as f64),
                        AnswerPayload::Date(ms) => AnswerValue::Date(Date::of_ms(*ms).to_string()),
                        AnswerPayload::Choice(c) => AnswerValue::Choice(c.clone()),
                        AnswerPayload::Choices(_) => {
                            return Err(Refusal::new(
                                "invalid_answer",
                                format!("question {} takes one choice", a.question),
                            ));
                        }
                    };
                    self.catalogue
                        .validate_answer(&a.question, &value)
                        .map_err(|e| Refusal::new("invalid_answer", e.to_string()))?;
                }
            }
            _ => {}
        }
        // The state machine keeps parties in one country per side; both must be known.
        self.authority_known(&next.responder)
    }
}

/// The attachment references a step introduces.
fn step_attachments(t: &Transition) -> &[AttachmentRef] {
    match t {
        Transition::Create { attachments, .. }
        | Transition::Answer { attachments, .. }
        | Transition::ProvideInfo { attachments, .. } => attachments,
        _ => &[],
    }
}

/// A file of a step: its SHA-256 and its bytes.
type StepFile<'a> = ([u8; 32], &'a [u8]);

/// Pairs every reference with exactly one file of the right hash and size.
fn match_files<'a>(
    refs: &[AttachmentRef],
    files: &'a [serde_bytes::ByteBuf],
) -> Result<Vec<StepFile<'a>>, Refusal> {
    let bad = |d: &str| Refusal::new("attachment_mismatch", d);
    if refs.len() != files.len() {
        return Err(bad("the step's files do not match its attachment list"));
    }
    let total: usize = files.iter().map(|f| f.len()).sum();
    if total > MAX_STEP_FILE_BYTES {
        return Err(Refusal::new(
            "too_large",
            format!("attachments exceed {MAX_STEP_FILE_BYTES} bytes"),
        ));
    }
    let mut by_hash: BTreeMap<[u8; 32], &[u8]> = BTreeMap::new();
    for f in files {
        by_hash.insert(imi_protocol::sha256(f), f.as_slice());
    }
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let f = by_hash
            .get(&r.sha256.0)
            .ok_or_else(|| bad("an attachment's content is missing"))?;
        if u64::try_from(f.len()).ok() != Some(r.size) {
            return Err(bad("an attachment's size does not match"));
        }
        out.push((r.sha256.0, *f));
    }
    Ok(out)
}

/// The engine application of request steps from other nodes.
pub struct RequestApp(Arc<Cases>);

impl Application for RequestApp {
    fn handles(&self, kind: &str) -> bool {
        kind == KIND_REQUEST
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let id = msg
            .header
            .case
            .ok_or_else(|| RejectCode::Application("missing_case".into()))?;
        let body: CaseMessage =
            decode(msg.body).ok_or_else(|| RejectCode::Application("malformed_body".into()))?;
        let actor = Actor {
            authority: msg.header.authority.clone(),
            country: msg.header.from,
            coordinator: body.coordinator,
        };
        match self.0.apply_step(
            txn,
            id,
            &actor,
            &body,
            msg.header.created,
            Some(msg.header.id),
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

/// Encodes a message body.
pub fn encode_message(m: &CaseMessage) -> Vec<u8> {
    cbor(m)
}
