//! The alert application (kind `imi.alert`, steps `alert`, `forward`, `grant`, `modify`,
//! `close`): a competent authority alerts every other member state (or, for a type whose
//! `addressees` are `concerned`, the member states it names; and the Commission where the
//! type says so); each recipient node routes the alert to its incoming-alert coordinator
//! (`<CC>-NC`; `EU-COMMISSION` on the Commission's node), who sees the profession and the
//! measure but not the professional: the identity is sealed under the alert's own key, which the
//! coordinator's node does not hold. The coordinator forwards the alert to authorities of
//! its country; their node sends `forward` to the sender's node, whose `alert-grants` job
//! answers with `grant`: the key, sealed in an envelope to that node alone, for the
//! authorities named. Their users then read the identity.
//!
//! An alert sent more than three days after the decision it reports is sent, marked late,
//! with a warning in the log and `imi_alerts_late_total`. The sender modifies the measure and
//! its validity (`modify`, numbered revisions) and closes the alert (`close`) on every
//! recipient.
//!
//! Column [`ALERTS`] (`id`: the alert's 16-byte id, the header's `case`):
//!
//! | key | value |
//! |---|---|
//! | `i/` id | [`AlertIndex`] (CBOR): what the coordinator may read |
//! | `s/` id | the sealed identity as sent (CBOR `SealedFields`) |
//! | `k/` id | the identity key wrapped under the node's data key (the sender; a recipient once granted) |
//! | `g/` id | the authorities the key was granted for (a recipient) |
//! | `b/` authority `\0` id | [`BoxEntry`]: in this authority's alert box, and why |
//! | `f/` id node | on the sender: the authorities a recipient forwarded to |
//! | `p/` node id | on the sender: a grant to send (authorities; the key stays in `k/`) |
//! | `d/` time (8 bytes, BE) id | empty: the alert's identity falls due for erasure at that time (closed, or its validity ended); what retention reads |
use crate::AppError;
use crate::requests::{Cases, cbor, decode};
use imi_domain::alert::{
    self as a, ALERT_DUE_MS, ALERT_VERSION, Alert, AlertMessage, check_alert, check_measure,
    check_recipients, identity_context, incoming_coordinator,
};
use imi_domain::catalogue::{Addressees, CommissionRule};
use imi_domain::message::SubjectData;
use imi_domain::request::CodedAnswer;
use imi_engine::{Application, Engine, Inbound, LocalCtx, LocalOutcome, PeriodicJob, Refusal, Txn};
use imi_protocol::fields::{
    SealedFields, open_fields, random_field_key, random_nonce, seal_fields,
};
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, MessageId, NodeId, RejectCode, Timestamp};
use imi_store::{Column, Durability, ReadStore, WriteBatch};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The application's column.
pub const ALERTS: Column = "alerts";
/// Its columns.
pub const COLUMNS: &[Column] = &[ALERTS];
/// How often the sender's node sends the grants its recipients asked for.
pub const GRANT_INTERVAL: Duration = Duration::from_millis(500);

const KEY_CONTEXT: &[u8] = b"imi-alert-key-v1";

/// What a node holding an alert may read without its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertIndex {
    /// The alert type.
    pub procedure: String,
    /// The profession.
    pub profession: String,
    /// The measure and its scope.
    pub fields: Vec<CodedAnswer>,
    /// The day of the decision.
    pub decided: Timestamp,
    /// Until when the measure applies.
    pub valid_until: Option<Timestamp>,
    /// The sending authority and node.
    pub sender: AuthorityId,
    /// Its node.
    pub sender_node: NodeId,
    /// The envelope's signed time.
    pub sent_at: Timestamp,
    /// When this node stored it.
    pub received_at: Timestamp,
    /// The alert's envelope.
    pub message: MessageId,
    /// The nodes it was sent to.
    pub recipients: Vec<NodeId>,
    /// Sent more than three days after the decision.
    pub late: bool,
    /// Whether this node sent it.
    pub outgoing: bool,
    /// When the sender closed it, and the day the measure ended.
    #[serde(default)]
    pub closed: Option<(Timestamp, Timestamp)>,
    /// When the retention job erased the identity (and its key).
    #[serde(default)]
    pub erased: Option<Timestamp>,
    /// How many times the sender modified the measure (0: never).
    #[serde(default)]
    pub revision: u32,
    /// When the last modification was signed (the sender) or stored (a recipient).
    #[serde(default)]
    pub modified: Option<Timestamp>,
}

impl AlertIndex {
    /// Whether its identity is due for erasure at `now`: closed, or past its validity.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.closed.is_some() || self.valid_until.is_some_and(|u| u <= now)
    }
}

/// Why an alert is in an authority's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxRole {
    /// It sent the alert.
    Sender,
    /// The incoming-alert coordinator: routes it, never reads the identity.
    Coordinator,
    /// Forwarded to it by the coordinator: reads everything once the key is granted.
    Forwarded,
}

/// An alert in one authority's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxEntry {
    /// Why.
    pub role: BoxRole,
    /// Since when.
    pub at: Timestamp,
}

fn k(prefix: &[u8], id: &CaseId) -> Vec<u8> {
    [prefix, id.as_bytes()].concat()
}
fn box_key(authority: &AuthorityId, id: &CaseId) -> Vec<u8> {
    let mut key = b"b/".to_vec();
    key.extend_from_slice(authority.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}
fn forward_key(id: &CaseId, node: NodeId) -> Vec<u8> {
    [k(b"f/", id).as_slice(), &node.as_bytes()].concat()
}
fn pending_key(node: NodeId, id: &CaseId) -> Vec<u8> {
    [b"p/".as_slice(), &node.as_bytes(), id.as_bytes()].concat()
}

fn app_code(code: &str) -> RejectCode {
    RejectCode::Application(code.into())
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "alert storage failed");
    Refusal::from(RejectCode::Internal)
}

fn wrap(cases: &Cases, id: &CaseId, key: &[u8; 32]) -> Result<Vec<u8>, Refusal> {
    cases
        .data_key()
        .wrap_key(KEY_CONTEXT, id, key)
        .map_err(internal)
}

fn unwrap(cases: &Cases, id: &CaseId, wrapped: &[u8]) -> Option<[u8; 32]> {
    cases.data_key().unwrap_key(KEY_CONTEXT, id, wrapped)
}

/// A step on an incoming alert from its sender (`close`, `modify`): the alert this node
/// holds (`unknown_alert`), signed by its sending node and authority (`not_sender`), naming
/// the alert as predecessor (`wrong_predecessor`), not closed (`already_closed`). Its index
/// key and index.
fn open_from_sender(
    msg: &Inbound<'_>,
    txn: &Txn<'_>,
    id: &CaseId,
) -> Result<(Vec<u8>, AlertIndex), RejectCode> {
    let h = msg.header;
    let key = k(b"i/", id);
    let ix: AlertIndex = txn
        .get(ALERTS, &key)?
        .and_then(|v| decode(&v))
        .filter(|ix: &AlertIndex| !ix.outgoing)
        .ok_or_else(|| app_code("unknown_alert"))?;
    if h.from != ix.sender_node || h.authority != ix.sender {
        return Err(app_code("not_sender"));
    }
    if h.prev != [ix.message] {
        return Err(app_code("wrong_predecessor"));
    }
    if ix.closed.is_some() {
        return Err(app_code("already_closed"));
    }
    Ok((key, ix))
}

/// A stored alert's index.
pub fn index(store: &dyn ReadStore, id: &CaseId) -> Result<Option<AlertIndex>, AppError> {
    Ok(store.get(ALERTS, &k(b"i/", id))?.and_then(|v| decode(&v)))
}

/// `authority`'s box entry for alert `id`.
pub fn box_entry(
    store: &dyn ReadStore,
    authority: &AuthorityId,
    id: &CaseId,
) -> Result<Option<BoxEntry>, AppError> {
    Ok(store
        .get(ALERTS, &box_key(authority, id))?
        .and_then(|v| decode(&v)))
}

/// The alerts in `authority`'s box, by id.
pub fn alert_box(
    store: &dyn ReadStore,
    authority: &AuthorityId,
) -> Result<Vec<(CaseId, BoxEntry, AlertIndex)>, AppError> {
    let mut prefix = b"b/".to_vec();
    prefix.extend_from_slice(authority.as_str().as_bytes());
    prefix.push(0);
    let mut out = Vec::new();
    for (key, v) in store.scan_prefix(ALERTS, &prefix, 1000)? {
        let Some(id) = key.get(prefix.len()..).and_then(CaseId::from_slice) else {
            continue;
        };
        if let (Some(e), Some(ix)) = (decode::<BoxEntry>(&v), index(store, &id)?) {
            out.push((id, e, ix));
        }
    }
    Ok(out)
}

/// The professional's identity, for `authority`: `None` unless this node holds the key and
/// the authority sent the alert or was granted it.
pub fn identity(
    cases: &Cases,
    store: &dyn ReadStore,
    id: &CaseId,
    authority: &AuthorityId,
) -> Result<Option<SubjectData>, AppError> {
    let Some(ix) = index(store, id)? else {
        return Ok(None);
    };
    let allowed = if ix.outgoing {
        ix.sender == *authority
    } else {
        store
            .get(ALERTS, &k(b"g/", id))?
            .and_then(|v| decode::<Vec<AuthorityId>>(&v))
            .is_some_and(|g| g.contains(authority))
    };
    if !allowed {
        return Ok(None);
    }
    let (Some(wrapped), Some(sealed)) = (
        store.get(ALERTS, &k(b"k/", id))?,
        store.get(ALERTS, &k(b"s/", id))?,
    ) else {
        return Ok(None);
    };
    let key = unwrap(cases, id, &wrapped)
        .ok_or_else(|| AppError::Internal("alert key does not open".into()))?;
    let sealed: SealedFields =
        decode(&sealed).ok_or_else(|| AppError::Internal("sealed identity".into()))?;
    let plain = open_fields(&key, &identity_context(id), &sealed)
        .map_err(|_| AppError::Internal("identity does not open".into()))?;
    Ok(decode(&plain))
}

/// `ALERTS` key prefix of the due rows: `d/`, the time an alert's identity falls due for
/// erasure (8 bytes, BE), its id. Retention reads the rows up to now, not every alert the
/// node ever stored.
const DUE: &[u8] = b"d/";
/// Rows read at a time by the retention of alerts.
const RETENTION_CHUNK: usize = 512;

fn due_key(at: Timestamp, id: &CaseId) -> Vec<u8> {
    [DUE, &at.to_be_bytes(), id.as_bytes()].concat()
}

impl AlertIndex {
    /// When its identity falls due for erasure: when it was closed, else the end of its
    /// validity; `None` while neither (or once erased).
    fn due_at(&self) -> Option<Timestamp> {
        if self.erased.is_some() {
            return None;
        }
        self.closed.map(|(at, _)| at).or(self.valid_until)
    }
}

/// Writes alert `id`'s index and, when its identity has a time to fall due, its [`DUE`] row.
/// A row of an earlier time may stay (the validity was extended): retention checks the
/// index when it reaches a row and drops the rows that are not due.
fn put_index(txn: &mut Txn<'_>, id: &CaseId, ix: &AlertIndex) {
    txn.put(ALERTS, k(b"i/", id), cbor(ix));
    if let Some(at) = ix.due_at() {
        txn.put(ALERTS, due_key(at, id), Vec::new());
    }
}

/// Gives every alert its [`DUE`] row as stored now, at the first run of this process (a
/// store written by an earlier release, or restored from a backup, then has them all).
async fn index_due(engine: &Engine, cases: &Cases) -> Result<(), AppError> {
    use std::sync::atomic::Ordering;
    if cases.due_indexed.alerts.load(Ordering::Acquire) {
        return Ok(());
    }
    let store = engine.reader();
    let mut rows = Vec::new();
    let mut unreadable = 0usize;
    imi_store::for_each_entry(
        store.as_ref(),
        ALERTS,
        b"i/",
        Some(b"i0".as_slice()),
        RETENTION_CHUNK,
        |key, v| {
            match (
                key.get(2..).and_then(CaseId::from_slice),
                decode::<AlertIndex>(&v),
            ) {
                (Some(id), Some(ix)) => rows.extend(ix.due_at().map(|at| due_key(at, &id))),
                // As retention always did: a row that does not decode is left alone.
                _ => unreadable += 1,
            }
            true
        },
    )?;
    if unreadable > 0 {
        tracing::warn!(rows = unreadable, "alert index rows that do not decode");
    }
    let n = rows.len();
    if n > 0 {
        let mut batch = WriteBatch::new();
        for key in rows {
            batch.put(ALERTS, key, Vec::new());
        }
        engine.write(batch, Durability::Sync).await?;
    }
    cases.due_indexed.alerts.store(true, Ordering::Release);
    tracing::info!(alerts = n, "alerts given their erasure times");
    Ok(())
}

/// The retention of alerts: erases the identity (the sealed copy, its key, the grant) of
/// every alert closed or past its validity at `now`, each in one commit with a `retention`
/// leaf in the log, then compacts the column so the bytes leave the files. The alert's
/// envelopes stay (the identity inside is sealed under the destroyed key), so its trail
/// still verifies. How many were erased. It reads the `d/` rows up to `now`, not every
/// alert the node ever stored.
pub async fn erase_expired(
    engine: &Engine,
    cases: &Cases,
    now: Timestamp,
) -> Result<usize, AppError> {
    index_due(engine, cases).await?;
    let store = engine.reader();
    // Each due row reached: the alert to erase, or a row that is not due (any more).
    let mut due = Vec::new();
    let mut stale = Vec::new();
    let mut failed = None;
    let end = [DUE, &now.saturating_add(1).to_be_bytes()].concat();
    imi_store::for_each_entry(
        store.as_ref(),
        ALERTS,
        DUE,
        Some(end.as_slice()),
        RETENTION_CHUNK,
        |key, _| {
            let Some(id) = key.get(DUE.len() + 8..).and_then(CaseId::from_slice) else {
                stale.push(key);
                return true;
            };
            match store.get(ALERTS, &k(b"i/", &id)) {
                Ok(v) => {
                    let ix = v.and_then(|v| decode::<AlertIndex>(&v));
                    if ix.is_some_and(|ix| ix.erased.is_none() && ix.expired(now)) {
                        due.push((id, key));
                    } else {
                        stale.push(key);
                    }
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    if !stale.is_empty() {
        let mut batch = WriteBatch::new();
        for key in stale {
            batch.delete(ALERTS, key);
        }
        engine.write(batch, Durability::Sync).await?;
    }
    let mut erased = 0;
    for (id, due_row) in due {
        let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
            let Some(mut ix) = txn
                .get(ALERTS, &k(b"i/", &id))?
                .and_then(|v| decode::<AlertIndex>(&v))
            else {
                return Ok(LocalOutcome {
                    write: false,
                    result: Vec::new(),
                });
            };
            for prefix in [b"s/", b"k/", b"g/"] {
                txn.delete(ALERTS, k(prefix, &id));
            }
            txn.delete(ALERTS, due_row.clone());
            ix.erased = Some(ctx.at);
            txn.put(ALERTS, k(b"i/", &id), cbor(&ix));
            // The same leaf as a case's erasure: the alert's id is its envelopes' `case`.
            txn.log(
                imi_audit::leaf::Leaf::new(
                    "retention",
                    &[&id.to_string(), "delete", &ctx.at.to_string()],
                )
                .text(),
            );
            Ok(LocalOutcome {
                write: true,
                result: Vec::new(),
            })
        };
        engine.local_step(None, Box::new(apply)).await?;
        tracing::info!(alert = %id, "alert identity erased (closed or expired)");
        erased += 1;
    }
    if erased > 0 {
        engine.purge(COLUMNS).await?;
    }
    Ok(erased)
}

/// The nodes an alert goes to: every other member state, or the member states concerned
/// the sender named (each on the trust list); with the Commission where its type requires
/// it or the sender chose it.
fn recipients(
    engine: &Engine,
    catalogue: &imi_domain::catalogue::Catalogue,
    new: &NewAlert,
) -> Result<Vec<NodeId>, imi_domain::message::Refused> {
    use imi_domain::message::Refused;
    let p = catalogue
        .procedure(&new.procedure)
        .filter(|p| p.kind() == imi_domain::catalogue::ProcedureKind::Alert)
        .ok_or_else(|| {
            Refused::new(
                "unknown_alert_type",
                format!("{} is not an alert type of the catalogue", new.procedure),
            )
        })?;
    // Every other member state on the trust list: the holders of a repository open to all.
    let others = crate::repositories::holders(engine, &imi_domain::repository::Access::All);
    let mut to = match p.addressees() {
        Addressees::All if new.member_states.is_empty() => others,
        Addressees::All => {
            return Err(Refused::new(
                "invalid_recipients",
                format!(
                    "an alert of type {} goes to every other member state; name none",
                    new.procedure
                ),
            ));
        }
        Addressees::Concerned => {
            if let Some(n) = new.member_states.iter().find(|n| !others.contains(n)) {
                return Err(Refused::new(
                    "invalid_recipients",
                    format!("{n} is not another member state of the federation"),
                ));
            }
            new.member_states.clone()
        }
    };
    let commission = match p.commission() {
        CommissionRule::Required => true,
        CommissionRule::Optional => new.commission,
        CommissionRule::None => {
            if new.commission {
                return Err(Refused::new(
                    "commission_not_allowed",
                    format!(
                        "an alert of type {} does not go to the Commission",
                        new.procedure
                    ),
                ));
            }
            false
        }
    };
    if commission {
        to.push(NodeId::EU);
    }
    Ok(to)
}

/// What the sender enters.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// The alert type.
    pub procedure: String,
    /// The profession.
    pub profession: String,
    /// The measure and its scope.
    pub fields: Vec<CodedAnswer>,
    /// The day of the decision.
    pub decided: Timestamp,
    /// Until when it applies.
    pub valid_until: Option<Timestamp>,
    /// The professional.
    pub identity: SubjectData,
    /// For a type sent to the member states concerned: those member states. Empty for a
    /// type sent to every other member state.
    pub member_states: Vec<NodeId>,
    /// For a type on which the Commission is optional: whether to send it the alert too.
    pub commission: bool,
}

/// The alert application.
pub struct AlertApp {
    cases: Arc<Cases>,
    /// The professions of the vocabulary (`None`: any non-empty code).
    professions: Option<std::collections::BTreeSet<String>>,
    late: Counter,
    late_closures: Counter,
}

impl AlertApp {
    /// The application over the node's request service (catalogue, directory, data key);
    /// an alert's profession must be one of `professions` (the vocabulary's codes), on the
    /// sending and on every receiving node.
    pub fn new(cases: Arc<Cases>, professions: Option<std::collections::BTreeSet<String>>) -> Self {
        Self {
            cases,
            professions,
            late: Counter::default(),
            late_closures: Counter::default(),
        }
    }

    /// Sends an alert from `sender` to every other member state: its identity sealed under
    /// a new key (kept wrapped under the data key), the rest readable by each recipient's
    /// coordinator; one commit. Its id and index. With an idempotency key already used for
    /// this very request, nothing is sent again: the first alert's id and index.
    pub async fn send(
        &self,
        engine: &Engine,
        sender: AuthorityId,
        new: NewAlert,
        idempotency: Option<crate::services::IdempotencyKey>,
    ) -> Result<(CaseId, AlertIndex), AppError> {
        let cases = self.cases.clone();
        let me = cases.node();
        let refused =
            |r: imi_domain::message::Refused| AppError::Refused(Refusal::new(r.code, r.detail));
        a::check_identity(&new.identity).map_err(refused)?;
        let id = CaseId::random();
        let key = random_field_key();
        let identity = seal_fields(
            &key,
            random_nonce(),
            &identity_context(&id),
            &cbor(&new.identity),
        );
        let alert = Alert {
            v: ALERT_VERSION,
            procedure: new.procedure.clone(),
            profession: new.profession.clone(),
            fields: new.fields.clone(),
            decided: new.decided,
            valid_until: new.valid_until,
            identity,
        };
        check_alert(
            cases.catalogue(),
            self.professions.as_ref(),
            &sender,
            me,
            &alert,
        )
        .map_err(refused)?;
        let to = recipients(engine, cases.catalogue(), &new).map_err(refused)?;
        check_recipients(cases.catalogue(), &alert.procedure, me, &to).map_err(refused)?;
        let msg = AlertMessage::Alert(alert.clone());
        let kind = Kind::new(Kind::ALERT).map_err(|e| AppError::Internal(e.to_string()))?;
        let draft = (!to.is_empty()).then(|| Draft {
            kind,
            step: Kind::new(msg.step()).ok(),
            authority: sender.clone(),
            to: to.clone(),
            case: Some(id),
            prev: vec![],
            body: a::encode(&msg),
        });
        let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
            if let Some(idem) = &idempotency
                && let Some(replayed) = crate::idempotency::replay(txn, idem)?
            {
                return Ok(replayed);
            }
            let ix = AlertIndex {
                procedure: alert.procedure.clone(),
                profession: alert.profession.clone(),
                fields: alert.fields.clone(),
                decided: alert.decided,
                valid_until: alert.valid_until,
                sender: sender.clone(),
                sender_node: me,
                sent_at: ctx.at,
                received_at: ctx.at,
                message: ctx.message_id.unwrap_or(MessageId([0; 16])),
                recipients: to.clone(),
                late: ctx.at.saturating_sub(alert.decided) > ALERT_DUE_MS,
                outgoing: true,
                closed: None,
                erased: None,
                revision: 0,
                modified: None,
            };
            put_index(txn, &id, &ix);
            txn.put(ALERTS, k(b"s/", &id), cbor(&alert.identity));
            txn.put(ALERTS, k(b"k/", &id), wrap(&cases, &id, &key)?);
            if cases.reports_facts() {
                let sent = crate::facts::Sent {
                    kind: imi_scoreboard::usage::UsageKind::Alert,
                    id: &id,
                    procedure: &ix.procedure,
                    to: &ix.recipients,
                    at: ctx.at,
                    late: ix.late,
                };
                crate::facts::record_usage(txn, me, sent);
            }
            txn.put(
                ALERTS,
                box_key(&sender, &id),
                cbor(&BoxEntry {
                    role: BoxRole::Sender,
                    at: ctx.at,
                }),
            );
            let result = cbor(&(id, &ix));
            if let Some(idem) = &idempotency {
                crate::idempotency::record(txn, idem, &result);
            }
            Ok(LocalOutcome {
                write: true,
                result,
            })
        };
        let o = engine.local_step(draft, Box::new(apply)).await?;
        let (id, ix): (CaseId, AlertIndex) =
            decode(&o.result).ok_or_else(|| AppError::Internal("alert".into()))?;
        if !o.write {
            return Ok((id, ix));
        }
        if ix.late {
            self.late.inc();
            tracing::warn!(alert = %id, "alert sent more than three days after the decision (Art. 56a(3))");
        }
        tracing::info!(alert = %id, recipients = ix.recipients.len(), "alert sent");
        Ok((id, ix))
    }

    /// The coordinator (`coordinator`, this node's incoming-alert coordinator) forwards alert
    /// `id` to `authorities` of this country: their box entries and a `forward` to the
    /// sender's node (which grants them the identity key), in one commit.
    pub async fn forward(
        &self,
        engine: &Engine,
        id: CaseId,
        coordinator: AuthorityId,
        authorities: Vec<AuthorityId>,
    ) -> Result<(), AppError> {
        let me = self.cases.node();
        let refused = |code: &str, d: &str| AppError::Refused(Refusal::new(code, d));
        if authorities.is_empty() || authorities.len() > a::MAX_FORWARD_AUTHORITIES {
            return Err(refused(
                "invalid_authorities",
                "forward to 1 to 200 authorities",
            ));
        }
        let dir = self.cases.directory();
        for auth in &authorities {
            if imi_domain::country_of(auth) != Some(me) || !dir.is_active(auth) {
                return Err(refused(
                    "unknown_authority",
                    "forward to active authorities of this country",
                ));
            }
        }
        let store = engine.reader();
        let ix = index(store.as_ref(), &id)?
            .filter(|ix| !ix.outgoing)
            .ok_or_else(|| refused("not_found", "no such alert"))?;
        let msg = AlertMessage::Forward {
            v: ALERT_VERSION,
            authorities: authorities.clone(),
        };
        let draft = Draft {
            kind: Kind::new(Kind::ALERT).map_err(|e| AppError::Internal(e.to_string()))?,
            step: Kind::new(msg.step()).ok(),
            authority: coordinator,
            to: vec![ix.sender_node],
            case: Some(id),
            prev: vec![ix.message],
            body: a::encode(&msg),
        };
        let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
            for auth in &authorities {
                let key = box_key(auth, &id);
                if txn.get(ALERTS, &key)?.is_none() {
                    txn.put(
                        ALERTS,
                        key,
                        cbor(&BoxEntry {
                            role: BoxRole::Forwarded,
                            at: ctx.at,
                        }),
                    );
                }
            }
            Ok(LocalOutcome {
                write: true,
                result: Vec::new(),
            })
        };
        engine.local_step(Some(draft), Box::new(apply)).await?;
        tracing::info!(alert = %id, "alert forwarded");
        Ok(())
    }

    fn apply_alert(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        alert: &Alert,
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let cases = &self.cases;
        check_alert(
            cases.catalogue(),
            self.professions.as_ref(),
            &h.authority,
            h.from,
            alert,
        )
        .map_err(|r| app_code(r.code))?;
        check_recipients(cases.catalogue(), &alert.procedure, h.from, &h.to)
            .map_err(|r| app_code(r.code))?;
        if !h.prev.is_empty() {
            return Err(app_code("unexpected_predecessor"));
        }
        if txn.get(ALERTS, &k(b"i/", &id))?.is_some() {
            return Err(app_code("duplicate_alert"));
        }
        let coordinator = incoming_coordinator(cases.node()).ok_or(RejectCode::Internal)?;
        let received = imi_protocol::clock::step_time(None, h.created, msg.received, u64::MAX)
            .unwrap_or(msg.received);
        let mut recipients = h.to.clone();
        recipients.sort();
        let ix = AlertIndex {
            procedure: alert.procedure.clone(),
            profession: alert.profession.clone(),
            fields: alert.fields.clone(),
            decided: alert.decided,
            valid_until: alert.valid_until,
            sender: h.authority.clone(),
            sender_node: h.from,
            sent_at: h.created,
            received_at: received,
            message: h.id,
            recipients,
            late: h.created.saturating_sub(alert.decided) > ALERT_DUE_MS,
            outgoing: false,
            closed: None,
            erased: None,
            revision: 0,
            modified: None,
        };
        put_index(txn, &id, &ix);
        txn.put(ALERTS, k(b"s/", &id), cbor(&alert.identity));
        txn.put(
            ALERTS,
            box_key(&coordinator, &id),
            cbor(&BoxEntry {
                role: BoxRole::Coordinator,
                at: received,
            }),
        );
        tracing::info!(alert = %id, from = %h.from, "alert received, routed to the incoming-alert coordinator");
        Ok(())
    }

    fn apply_close(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        ended: Timestamp,
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let (_, mut ix) = open_from_sender(msg, txn, &id)?;
        let at = imi_protocol::clock::step_time(None, h.created, msg.received, u64::MAX)
            .unwrap_or(msg.received);
        ix.closed = Some((at, ended));
        put_index(txn, &id, &ix);
        tracing::info!(alert = %id, from = %h.from, "alert closed by its sender");
        Ok(())
    }

    /// The sender (`sender`, the authority that sent alert `id`) closes it: the measure
    /// ended on `ended`. Recorded and sent to every recipient in one commit; a closure more
    /// than three days after the end is logged as a warning and counted. Refused
    /// `not_found` (not this authority's alert), `already_closed`.
    pub async fn close(
        &self,
        engine: &Engine,
        id: CaseId,
        sender: AuthorityId,
        ended: Timestamp,
    ) -> Result<AlertIndex, AppError> {
        let refused = |code: &str, d: &str| AppError::Refused(Refusal::new(code, d));
        let store = engine.reader();
        let ix = index(store.as_ref(), &id)?
            .filter(|ix| ix.outgoing && ix.sender == sender)
            .ok_or_else(|| refused("not_found", "no such alert of this authority"))?;
        let msg = AlertMessage::Close {
            v: ALERT_VERSION,
            ended,
        };
        let kind = Kind::new(Kind::ALERT).map_err(|e| AppError::Internal(e.to_string()))?;
        let draft = (!ix.recipients.is_empty()).then(|| Draft {
            kind: kind.clone(),
            step: Kind::new(msg.step()).ok(),
            authority: sender.clone(),
            to: ix.recipients.clone(),
            case: Some(id),
            prev: vec![ix.message],
            body: a::encode(&msg),
        });
        let key = k(b"i/", &id);
        let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
            let mut now: AlertIndex = txn
                .get(ALERTS, &key)?
                .and_then(|v| decode(&v))
                .ok_or_else(|| Refusal::new("not_found", "no such alert"))?;
            if now.closed.is_some() {
                return Err(Refusal::new("already_closed", "the alert is closed"));
            }
            now.closed = Some((ctx.at, ended));
            put_index(txn, &id, &now);
            Ok(LocalOutcome {
                write: true,
                result: cbor(&now),
            })
        };
        let o = engine.local_step(draft, Box::new(apply)).await?;
        let ix: AlertIndex = decode(&o.result).ok_or_else(|| AppError::Internal("alert".into()))?;
        if let Some((at, ended)) = ix.closed
            && at.saturating_sub(ended) > ALERT_DUE_MS
        {
            self.late_closures.inc();
            tracing::warn!(alert = %id, "alert closed more than three days after the measure ended");
        }
        tracing::info!(alert = %id, "alert closed");
        Ok(ix)
    }

    /// The sender (`sender`) modifies alert `id`: the measure and its scope become `fields`
    /// (every field of the type) and the validity `valid_until`. Recorded and sent to every
    /// recipient in one commit. Refused `not_found` (not this authority's alert),
    /// `already_closed`, `alert_expired` (its identity was erased), and the measure's own
    /// codes.
    pub async fn modify(
        &self,
        engine: &Engine,
        id: CaseId,
        sender: AuthorityId,
        fields: Vec<CodedAnswer>,
        valid_until: Option<Timestamp>,
    ) -> Result<AlertIndex, AppError> {
        let refused = |code: &str, d: &str| AppError::Refused(Refusal::new(code, d));
        let store = engine.reader();
        let ix = index(store.as_ref(), &id)?
            .filter(|ix| ix.outgoing && ix.sender == sender)
            .ok_or_else(|| refused("not_found", "no such alert of this authority"))?;
        check_measure(
            self.cases.catalogue(),
            &ix.procedure,
            &fields,
            ix.decided,
            valid_until,
        )
        .map_err(|r| AppError::Refused(Refusal::new(r.code, r.detail)))?;
        let revision = ix.revision.saturating_add(1);
        let msg = AlertMessage::Modify {
            v: ALERT_VERSION,
            revision,
            fields: fields.clone(),
            valid_until,
        };
        let kind = Kind::new(Kind::ALERT).map_err(|e| AppError::Internal(e.to_string()))?;
        let draft = (!ix.recipients.is_empty()).then(|| Draft {
            kind,
            step: Kind::new(msg.step()).ok(),
            authority: sender.clone(),
            to: ix.recipients.clone(),
            case: Some(id),
            prev: vec![ix.message],
            body: a::encode(&msg),
        });
        let key = k(b"i/", &id);
        let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
            let mut now: AlertIndex = txn
                .get(ALERTS, &key)?
                .and_then(|v| decode(&v))
                .ok_or_else(|| Refusal::new("not_found", "no such alert"))?;
            if now.closed.is_some() {
                return Err(Refusal::new("already_closed", "the alert is closed"));
            }
            if now.erased.is_some() {
                return Err(Refusal::new(
                    "alert_expired",
                    "the alert expired and its identity was erased",
                ));
            }
            if now.revision + 1 != revision {
                return Err(Refusal::new(
                    "stale_version",
                    "the alert was modified meanwhile",
                ));
            }
            now.fields = fields.clone();
            now.valid_until = valid_until;
            now.revision = revision;
            now.modified = Some(ctx.at);
            put_index(txn, &id, &now);
            Ok(LocalOutcome {
                write: true,
                result: cbor(&now),
            })
        };
        let o = engine.local_step(draft, Box::new(apply)).await?;
        let ix: AlertIndex = decode(&o.result).ok_or_else(|| AppError::Internal("alert".into()))?;
        tracing::info!(alert = %id, revision, "alert modified");
        Ok(ix)
    }

    fn apply_modify(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        revision: u32,
        fields: &[CodedAnswer],
        valid_until: Option<Timestamp>,
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let (_, mut ix) = open_from_sender(msg, txn, &id)?;
        check_measure(
            self.cases.catalogue(),
            &ix.procedure,
            fields,
            ix.decided,
            valid_until,
        )
        .map_err(|r| app_code(r.code))?;
        // Delivered in order; a replayed or older modification changes nothing.
        if revision <= ix.revision {
            return Err(app_code("stale_revision"));
        }
        let at = imi_protocol::clock::step_time(None, h.created, msg.received, u64::MAX)
            .unwrap_or(msg.received);
        ix.fields = fields.to_vec();
        ix.valid_until = valid_until;
        ix.revision = revision;
        ix.modified = Some(at);
        put_index(txn, &id, &ix);
        tracing::info!(alert = %id, from = %h.from, revision, "alert modified by its sender");
        Ok(())
    }

    fn apply_forward(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        authorities: &[AuthorityId],
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let ix: AlertIndex = txn
            .get(ALERTS, &k(b"i/", &id))?
            .and_then(|v| decode(&v))
            .filter(|ix: &AlertIndex| ix.outgoing)
            .ok_or_else(|| app_code("unknown_alert"))?;
        if !ix.recipients.contains(&h.from) {
            return Err(app_code("not_addressed"));
        }
        if Some(&h.authority) != incoming_coordinator(h.from).as_ref() {
            return Err(app_code("not_coordinator"));
        }
        if h.prev != [ix.message] {
            return Err(app_code("wrong_predecessor"));
        }
        if authorities.is_empty()
            || authorities.len() > a::MAX_FORWARD_AUTHORITIES
            || authorities
                .iter()
                .any(|x| imi_domain::country_of(x) != Some(h.from))
        {
            return Err(app_code("invalid_authorities"));
        }
        // Every authority forwarded to so far, and a grant to send for them.
        let fk = forward_key(&id, h.from);
        let mut all: Vec<AuthorityId> = txn
            .get(ALERTS, &fk)?
            .and_then(|v| decode(&v))
            .unwrap_or_default();
        for x in authorities {
            if !all.contains(x) {
                all.push(x.clone());
            }
        }
        txn.put(ALERTS, fk, cbor(&all));
        txn.put(ALERTS, pending_key(h.from, &id), cbor(&all));
        tracing::info!(alert = %id, from = %h.from, "alert forwarded by a recipient; key grant queued");
        Ok(())
    }

    fn apply_grant(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        authorities: &[AuthorityId],
        key: &[u8],
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let ix: AlertIndex = txn
            .get(ALERTS, &k(b"i/", &id))?
            .and_then(|v| decode(&v))
            .filter(|ix: &AlertIndex| !ix.outgoing)
            .ok_or_else(|| app_code("unknown_alert"))?;
        if h.from != ix.sender_node || h.authority != ix.sender {
            return Err(app_code("not_sender"));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| app_code("invalid_key"))?;
        // The key must open the identity this node holds.
        let sealed: SealedFields = txn
            .get(ALERTS, &k(b"s/", &id))?
            .and_then(|v| decode(&v))
            .ok_or(RejectCode::Internal)?;
        if open_fields(&key, &identity_context(&id), &sealed).is_err() {
            return Err(app_code("invalid_key"));
        }
        let me = self.cases.node();
        if authorities
            .iter()
            .any(|x| imi_domain::country_of(x) != Some(me))
        {
            return Err(app_code("invalid_authorities"));
        }
        txn.put(
            ALERTS,
            k(b"k/", &id),
            wrap(&self.cases, &id, &key).map_err(|r| r.code)?,
        );
        txn.put(ALERTS, k(b"g/", &id), cbor(&authorities.to_vec()));
        tracing::info!(alert = %id, "alert key granted to forwarded authorities");
        Ok(())
    }
}

/// Sends each grant a recipient asked for (the key, sealed to that node, for the
/// authorities named), then clears it; how many.
pub async fn send_grants(cases: &Cases, engine: &Engine) -> Result<usize, AppError> {
    let store = engine.reader();
    let rows = store.scan_prefix(ALERTS, b"p/", 256)?;
    let mut sent = 0;
    for (key, value) in rows {
        let (Some(node), Some(id)) = (
            key.get(2..4).and_then(NodeId::from_bytes),
            key.get(4..).and_then(CaseId::from_slice),
        ) else {
            continue;
        };
        let (Some(authorities), Some(ix), Some(wrapped)) = (
            decode::<Vec<AuthorityId>>(&value),
            index(store.as_ref(), &id)?,
            store.get(ALERTS, &k(b"k/", &id))?,
        ) else {
            continue;
        };
        let Some(alert_key) = unwrap(cases, &id, &wrapped) else {
            continue;
        };
        let msg = AlertMessage::Grant {
            v: ALERT_VERSION,
            authorities,
            key: alert_key.to_vec(),
        };
        // The grant and the clearing of its row in one commit: sent once, also across a crash.
        engine
            .send_and_clear(
                Draft {
                    kind: Kind::new(Kind::ALERT).map_err(|e| AppError::Internal(e.to_string()))?,
                    step: Kind::new(msg.step()).ok(),
                    authority: ix.sender.clone(),
                    to: vec![node],
                    case: Some(id),
                    prev: vec![ix.message],
                    body: a::encode(&msg),
                },
                ALERTS,
                key,
                value,
            )
            .await?;
        tracing::info!(alert = %id, to = %node, "alert key granted");
        sent += 1;
    }
    Ok(sent)
}

impl Application for AlertApp {
    fn name(&self) -> &'static str {
        "alerts"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::ALERT]
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let (id, body) = crate::stepped(msg, a::decode, |b| b.step())?;
        match &body {
            AlertMessage::Alert(alert) => self.apply_alert(msg, txn, id, alert),
            AlertMessage::Forward { v, authorities } => {
                if *v != ALERT_VERSION {
                    return Err(RejectCode::UnsupportedVersion);
                }
                self.apply_forward(msg, txn, id, authorities)
            }
            AlertMessage::Close { v, ended } => {
                if *v != ALERT_VERSION {
                    return Err(RejectCode::UnsupportedVersion);
                }
                self.apply_close(msg, txn, id, *ended)
            }
            AlertMessage::Modify {
                v,
                revision,
                fields,
                valid_until,
            } => {
                if *v != ALERT_VERSION {
                    return Err(RejectCode::UnsupportedVersion);
                }
                self.apply_modify(msg, txn, id, *revision, fields, *valid_until)
            }
            AlertMessage::Grant {
                v,
                authorities,
                key,
            } => {
                if *v != ALERT_VERSION {
                    return Err(RejectCode::UnsupportedVersion);
                }
                self.apply_grant(msg, txn, id, authorities, key)
            }
        }
    }

    fn jobs(&self) -> Vec<PeriodicJob> {
        let cases = self.cases.clone();
        vec![PeriodicJob::new(
            "alert-grants",
            GRANT_INTERVAL,
            true,
            move |engine: Engine| {
                let cases = cases.clone();
                async move { send_grants(&cases, &engine).await.map(|_| ()) }
            },
        )]
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "imi_alerts_late",
            "Alerts this node sent more than three days after the decision",
            self.late.clone(),
        );
        registry.register(
            "imi_alerts_late_closures",
            "Alerts this node closed more than three days after the measure ended",
            self.late_closures.clone(),
        );
    }
}
