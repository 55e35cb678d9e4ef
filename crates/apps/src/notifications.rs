//! The notification application (kind `imi.notification`): one authority notifies named
//! authorities of other member states and/or the Commission; each recipient node stores the
//! notification for the authorities named (its signed receipt goes back through the
//! kernel), and each named authority's acknowledgement that it read it is a signed
//! envelope back to the sender, which shows per recipient when it was delivered and when
//! each authority acknowledged.
//!
//! The envelope is sealed once: its content key is sealed to each recipient node's HPKE key
//! (the kernel's envelope), so only the sender and the recipient nodes can open it, and on
//! each node only the authorities named (and the sender) may read it through the API. At
//! rest the content (fields and files) is encrypted under a key of its own, wrapped under
//! the node's data key, as a case's is; only metadata (type, parties, times) is in the
//! clear.
//!
//! Keys of the one column, [`NOTIFICATIONS`] (`id` is the notification's 16-byte id, the
//! envelope header's `case`):
//!
//! | key | value |
//! |---|---|
//! | `i/` id | [`NotificationIndex`] (CBOR, plaintext metadata) |
//! | `k/` id | the content key, wrapped under the data key |
//! | `c/` id | [`Content`], encrypted under the content key |
//! | `b/` authority `\0` id | [`BoxEntry`]: in this authority's inbox (or sent box) |
//! | `a/` id node `\0` authority | [`Ack`]: on the sender's node, a recipient's acknowledgement |
use crate::AppError;
use crate::requests::{Cases, aad, cbor, decode, open, seal};
use crate::services::IdempotencyKey;
use imi_domain::notification::{
    self as n, Addressee, Notification, NotificationMessage, check_notification,
};
use imi_domain::request::{AttachmentRef, CodedAnswer};
use imi_engine::{
    Application, DeliveryReport, Engine, Inbound, LocalCtx, LocalOutcome, Refusal, Txn,
};
use imi_protocol::{
    AuthorityId, CaseId, Draft, Kind, MessageId, NodeId, Outcome, Receipt, RejectCode, Timestamp,
};
use imi_scoreboard::usage::UsageKind;
use imi_store::{Column, ReadStore};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The application's column.
pub const NOTIFICATIONS: Column = "notifications";
/// Its columns.
pub const COLUMNS: &[Column] = &[NOTIFICATIONS];

const KEY_CONTEXT: &[u8] = b"imi-notification-key-v1";
const CONTENT_CONTEXT: &[u8] = b"imi-notification-content-v1";

/// What every node may read of a notification it holds: who, to whom, when, what type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationIndex {
    /// The notification type (catalogue procedure).
    pub procedure: String,
    /// Its legal area.
    pub area: String,
    /// The sending authority.
    pub sender: AuthorityId,
    /// The sending node.
    pub sender_node: NodeId,
    /// The envelope's signed creation time.
    pub sent_at: Timestamp,
    /// When this node stored it (the sender: `sent_at`).
    pub received_at: Timestamp,
    /// The envelope.
    pub message: MessageId,
    /// Every recipient, as the sender named them.
    pub recipients: Vec<Addressee>,
    /// Whether this node sent it.
    pub outgoing: bool,
}

/// The encrypted part of a stored notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// The fields.
    pub fields: Vec<CodedAnswer>,
    /// The attachment references.
    pub attachments: Vec<AttachmentRef>,
    /// The attachments' bytes, in the order of `attachments`.
    pub files: Vec<serde_bytes::ByteBuf>,
}

/// A notification in one authority's box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxEntry {
    /// Sent by this authority (else received).
    pub outgoing: bool,
    /// When it entered the box.
    pub at: Timestamp,
    /// When the authority acknowledged reading it (received ones).
    pub read: Option<Timestamp>,
}

/// A recipient authority's acknowledgement, on the sender's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The time this node defends for it: the signed time, or the receipt time if the
    /// signed one is more than 10 minutes older ([`imi_protocol::clock::step_time`]).
    pub at: Timestamp,
    /// Its signed time.
    pub signed: Timestamp,
    /// Its envelope.
    pub message: MessageId,
}

/// The delivery of a notification to one recipient node, from the signed receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The receipt's time (the recipient's clock).
    pub at: Timestamp,
    /// `accepted`, `duplicate` or `rejected`.
    pub outcome: String,
    /// The rejection code, if rejected.
    pub code: Option<String>,
}

fn index_key(id: &CaseId) -> Vec<u8> {
    [b"i/".as_slice(), id.as_bytes()].concat()
}
fn wrapped_key(id: &CaseId) -> Vec<u8> {
    [b"k/".as_slice(), id.as_bytes()].concat()
}
fn content_key(id: &CaseId) -> Vec<u8> {
    [b"c/".as_slice(), id.as_bytes()].concat()
}
fn box_key(authority: &AuthorityId, id: &CaseId) -> Vec<u8> {
    let mut k = b"b/".to_vec();
    k.extend_from_slice(authority.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}
fn ack_prefix(id: &CaseId) -> Vec<u8> {
    [b"a/".as_slice(), id.as_bytes()].concat()
}
fn ack_key(id: &CaseId, node: NodeId, authority: &AuthorityId) -> Vec<u8> {
    let mut k = ack_prefix(id);
    k.extend_from_slice(&node.as_bytes());
    k.push(0);
    k.extend_from_slice(authority.as_str().as_bytes());
    k
}

/// The legal area of a catalogue procedure.
fn area_of(cases: &Cases, procedure: &str) -> String {
    cases
        .catalogue()
        .areas()
        .iter()
        .find(|a| a.procedures().iter().any(|p| p.code() == procedure))
        .map(|a| a.code().to_owned())
        .unwrap_or_default()
}

fn internal(e: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %e, "notification storage failed");
    Refusal::from(RejectCode::Internal)
}

fn app_code(code: &str) -> RejectCode {
    RejectCode::Application(code.into())
}

/// Writes a notification (index, encrypted content, box entries of the authorities named
/// at `node`, or the sender's sent box) into `txn`.
fn store(
    cases: &Cases,
    txn: &mut Txn<'_>,
    id: &CaseId,
    ix: &NotificationIndex,
    n: &Notification,
) -> Result<(), Refusal> {
    let key: [u8; 32] = rand::random();
    let wrapped = cases
        .data_key()
        .wrap_key(KEY_CONTEXT, id, &key)
        .map_err(internal)?;
    let content = Content {
        fields: n.fields.clone(),
        attachments: n.attachments.clone(),
        files: order_files(&n.attachments, &n.files),
    };
    let sealed = seal(&key, &aad(CONTENT_CONTEXT, id, &[]), &cbor(&content)).map_err(internal)?;
    txn.put(NOTIFICATIONS, index_key(id), cbor(ix));
    txn.put(NOTIFICATIONS, wrapped_key(id), wrapped);
    txn.put(NOTIFICATIONS, content_key(id), sealed);
    let entry = BoxEntry {
        outgoing: ix.outgoing,
        at: ix.received_at,
        read: None,
    };
    if ix.outgoing {
        txn.put(NOTIFICATIONS, box_key(&ix.sender, id), cbor(&entry));
    } else if let Some(a) = n.addressee(cases.node()) {
        for auth in &a.authorities {
            txn.put(NOTIFICATIONS, box_key(auth, id), cbor(&entry));
        }
    }
    Ok(())
}

/// The files in the order of their references (the checks matched each to one).
fn order_files(
    refs: &[AttachmentRef],
    files: &[serde_bytes::ByteBuf],
) -> Vec<serde_bytes::ByteBuf> {
    refs.iter()
        .filter_map(|r| {
            files
                .iter()
                .find(|f| imi_protocol::sha256(f) == r.sha256.0)
                .cloned()
        })
        .collect()
}

/// A stored notification's metadata.
pub fn index(store: &dyn ReadStore, id: &CaseId) -> Result<Option<NotificationIndex>, AppError> {
    Ok(store
        .get(NOTIFICATIONS, &index_key(id))?
        .and_then(|v| decode(&v)))
}

/// A stored notification's decrypted content (`None`: unknown, or its key destroyed).
pub fn content(
    cases: &Cases,
    store: &dyn ReadStore,
    id: &CaseId,
) -> Result<Option<Content>, AppError> {
    let Some(wrapped) = store.get(NOTIFICATIONS, &wrapped_key(id))? else {
        return Ok(None);
    };
    let Some(sealed) = store.get(NOTIFICATIONS, &content_key(id))? else {
        return Ok(None);
    };
    let key = cases
        .data_key()
        .unwrap_key(KEY_CONTEXT, id, &wrapped)
        .ok_or_else(|| AppError::Internal("notification key does not open".into()))?;
    let plain = open(&key, &aad(CONTENT_CONTEXT, id, &[]), &sealed)
        .ok_or_else(|| AppError::Internal("notification content does not open".into()))?;
    Ok(decode(&plain))
}

/// `authority`'s box entry for notification `id`.
pub fn box_entry(
    store: &dyn ReadStore,
    authority: &AuthorityId,
    id: &CaseId,
) -> Result<Option<BoxEntry>, AppError> {
    Ok(store
        .get(NOTIFICATIONS, &box_key(authority, id))?
        .and_then(|v| decode(&v)))
}

/// Up to `limit` notifications of `authority`'s box after `after` (id order), each with
/// its box entry and index.
pub fn box_page(
    store: &dyn ReadStore,
    authority: &AuthorityId,
    after: Option<&CaseId>,
    limit: usize,
) -> Result<Vec<(CaseId, BoxEntry, NotificationIndex)>, AppError> {
    let mut prefix = b"b/".to_vec();
    prefix.extend_from_slice(authority.as_str().as_bytes());
    prefix.push(0);
    let start = match after {
        Some(a) => {
            let mut s = prefix.clone();
            s.extend_from_slice(a.as_bytes());
            s.push(0);
            s
        }
        None => prefix.clone(),
    };
    // The prefix ends with 0: its successor ends with 1.
    let mut end = prefix.clone();
    end.pop();
    end.push(1);
    let mut out = Vec::new();
    for (k, v) in store.range(NOTIFICATIONS, &start, Some(&end), limit)? {
        let Some(id) = k.get(prefix.len()..).and_then(CaseId::from_slice) else {
            continue;
        };
        let (Some(entry), Some(ix)) = (decode::<BoxEntry>(&v), index(store, &id)?) else {
            continue;
        };
        out.push((id, entry, ix));
    }
    Ok(out)
}

/// On the sender's node: every acknowledgement received for `id`, by node and authority.
pub fn acks(
    store: &dyn ReadStore,
    id: &CaseId,
) -> Result<Vec<(NodeId, AuthorityId, Ack)>, AppError> {
    let prefix = ack_prefix(id);
    let mut out = Vec::new();
    for (k, v) in store.scan_prefix(NOTIFICATIONS, &prefix, usize::MAX)? {
        // id ‖ node (2 bytes) ‖ 0 ‖ authority
        let rest = k.get(prefix.len()..).unwrap_or_default();
        let node = rest.get(..2).and_then(NodeId::from_bytes);
        let auth = rest
            .get(3..)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|s| AuthorityId::new(s).ok());
        if let (Some(node), Some(auth), Some(ack)) = (node, auth, decode::<Ack>(&v)) {
            out.push((node, auth, ack));
        }
    }
    Ok(out)
}

/// On the sender's node: the signed receipt of the notification's envelope from `node`, if
/// back yet (verified against the trust list in force).
pub fn delivery(
    engine: &Engine,
    message: &MessageId,
    node: NodeId,
) -> Result<Option<Delivery>, AppError> {
    let store = engine.reader();
    let key = imi_engine::keys::node_msg_key(node, message);
    let bytes = match store.get(imi_engine::keys::RECEIPTS_OUT, &key)? {
        Some(b) => b,
        None => match store.get(imi_engine::keys::DEAD, &key)? {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    let receipt = Receipt::verify(bytes, &engine.trust_list(), node)
        .map_err(|c| AppError::Internal(format!("stored receipt does not verify: {c}")))?;
    let code = match &receipt.body.outcome {
        Outcome::Rejected(c) => Some(c.label().to_string()),
        _ => None,
    };
    Ok(Some(Delivery {
        at: receipt.body.received,
        outcome: receipt.body.outcome.label().to_owned(),
        code,
    }))
}

/// Builds the response of a send on the commit thread (stored as the idempotency record).
pub type RespondSent = Box<dyn Fn(&CaseId, &NotificationIndex) -> Vec<u8> + Send + Sync>;

/// What a send produced.
#[derive(Debug)]
pub struct Sent {
    /// The response (the first one, for a replayed idempotent request).
    pub response: Vec<u8>,
    /// Whether it was sent now (`false`: a replay).
    pub committed: bool,
    /// One receiver per recipient node, when asked to watch.
    pub deliveries: Vec<oneshot::Receiver<DeliveryReport>>,
    /// The repository entry the notification made, when its type populates a repository
    /// this node holds.
    pub entry: Option<CaseId>,
}

/// Sends notification `notification` from `sender` (an authority of this node): checks it
/// against the catalogue and the directory, then in one atomic commit stores it (the
/// sender's copy) and enqueues one envelope for every recipient node.
pub async fn send(
    engine: &Engine,
    cases: &Arc<Cases>,
    sender: AuthorityId,
    notification: Notification,
    idempotency: Option<IdempotencyKey>,
    respond: RespondSent,
    watch: bool,
) -> Result<Sent, AppError> {
    let me = cases.node();
    check_notification(
        cases.catalogue(),
        Some(&cases.directory()),
        &sender,
        me,
        &notification,
    )
    .map_err(|r| AppError::Refused(Refusal::new(r.code, r.detail)))?;
    let area = area_of(cases, &notification.procedure);
    let id = CaseId::random();
    let procedure_code = notification.procedure.clone();
    let owner = sender.clone();
    let fields = notification.fields.clone();
    let msg = NotificationMessage::Notify(notification.clone());
    let draft = Draft {
        kind: Kind::new(Kind::NOTIFICATION).map_err(|e| AppError::Internal(e.to_string()))?,
        step: Some(Kind::new(msg.step()).map_err(|e| AppError::Internal(e.to_string()))?),
        authority: sender.clone(),
        to: notification.countries(),
        case: Some(id),
        prev: vec![],
        body: n::encode(&msg),
    };
    let cases2 = cases.clone();
    let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
        if let Some(idem) = &idempotency
            && let Some(replayed) = crate::idempotency::replay(txn, idem)?
        {
            return Ok(replayed);
        }
        let message = ctx
            .message_id
            .ok_or_else(|| Refusal::new("internal", "a notification has an envelope"))?;
        let ix = NotificationIndex {
            procedure: notification.procedure.clone(),
            area: area.clone(),
            sender: sender.clone(),
            sender_node: me,
            sent_at: ctx.at,
            received_at: ctx.at,
            message,
            recipients: notification.recipients.clone(),
            outgoing: true,
        };
        store(&cases2, txn, &id, &ix, &notification)?;
        if cases2.reports_facts() {
            let to = notification.countries();
            let sent = crate::facts::Sent {
                kind: UsageKind::Notification,
                id: &id,
                procedure: &notification.procedure,
                to: &to,
                at: ctx.at,
                late: false,
            };
            crate::facts::record_usage(txn, me, sent);
        }
        let result = respond(&id, &ix);
        if let Some(idem) = &idempotency {
            crate::idempotency::record(txn, idem, &result);
        }
        Ok(LocalOutcome {
            write: true,
            result,
        })
    };
    let (o, deliveries) = engine
        .local_step_watched(Some(draft), Box::new(apply), watch)
        .await?;
    let mut entry = None;
    if o.write {
        tracing::info!(notification = %id, "notification sent");
        entry = populate(engine, cases, &owner, &procedure_code, &fields).await?;
    }
    Ok(Sent {
        response: o.result,
        committed: o.write,
        deliveries,
        entry,
    })
}

/// A notification of a type that populates a repository (the catalogue's `repository`)
/// becomes a new entry of it, owned by the sender, with the repository's fields taken from
/// the notification — when this node holds the repository. The entry's id.
async fn populate(
    engine: &Engine,
    cases: &Arc<Cases>,
    sender: &AuthorityId,
    procedure: &str,
    fields: &[CodedAnswer],
) -> Result<Option<CaseId>, AppError> {
    let catalogue = cases.catalogue();
    let Some(repo) = catalogue.procedure(procedure).and_then(|p| p.repository()) else {
        return Ok(None);
    };
    let Some(repo_procedure) = catalogue.procedure(repo) else {
        return Ok(None);
    };
    let access = imi_domain::repository::Access::of(repo_procedure);
    if !access.holds(cases.node()) || !access.reads(sender) {
        return Ok(None);
    }
    let wanted = repo_procedure.question_codes();
    let entry_fields: Vec<CodedAnswer> = fields
        .iter()
        .filter(|f| wanted.contains(&f.question))
        .cloned()
        .collect();
    let (entry, _, _) = crate::repositories::change(
        engine,
        cases,
        sender.clone(),
        repo.to_owned(),
        crate::repositories::Change::Create(entry_fields),
        None,
    )
    .await?;
    tracing::info!(entry = %entry, repository = repo, "notification populated a repository entry");
    Ok(Some(entry))
}

/// `authority` (of this node, named by notification `id`) acknowledges reading it: its box
/// entry records the time and a signed `read` envelope goes back to the sender's node, in
/// one commit. Acknowledging twice returns the first time and sends nothing. `None`: no
/// such notification in the authority's inbox.
pub async fn acknowledge(
    engine: &Engine,
    id: CaseId,
    authority: AuthorityId,
) -> Result<Option<Timestamp>, AppError> {
    let store = engine.reader();
    let (ix, entry) = {
        let (s, a) = (store.clone(), authority.clone());
        tokio::task::spawn_blocking(move || {
            Ok::<_, AppError>((index(s.as_ref(), &id)?, box_entry(s.as_ref(), &a, &id)?))
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??
    };
    let (Some(ix), Some(entry)) = (ix, entry) else {
        return Ok(None);
    };
    if entry.outgoing || ix.outgoing {
        return Ok(None);
    }
    if let Some(at) = entry.read {
        return Ok(Some(at));
    }
    let msg = NotificationMessage::Read {
        v: n::NOTIFICATION_VERSION,
    };
    let draft = Draft {
        kind: Kind::new(Kind::NOTIFICATION).map_err(|e| AppError::Internal(e.to_string()))?,
        step: Some(Kind::new(msg.step()).map_err(|e| AppError::Internal(e.to_string()))?),
        authority: authority.clone(),
        to: vec![ix.sender_node],
        case: Some(id),
        prev: vec![ix.message],
        body: n::encode(&msg),
    };
    let key = box_key(&authority, &id);
    let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
        let current: Option<BoxEntry> = txn.get(NOTIFICATIONS, &key)?.and_then(|v| decode(&v));
        let Some(mut current) = current else {
            return Err(Refusal::new("not_found", "no such notification"));
        };
        if let Some(at) = current.read {
            // Acknowledged meanwhile: nothing to send again.
            return Ok(LocalOutcome {
                write: false,
                result: at.to_be_bytes().to_vec(),
            });
        }
        current.read = Some(ctx.at);
        txn.put(NOTIFICATIONS, key.clone(), cbor(&current));
        Ok(LocalOutcome {
            write: true,
            result: ctx.at.to_be_bytes().to_vec(),
        })
    };
    let o = engine.local_step(Some(draft), Box::new(apply)).await?;
    let at = <[u8; 8]>::try_from(o.result.as_slice())
        .map(u64::from_be_bytes)
        .map_err(|_| AppError::Internal("acknowledgement result".into()))?;
    if o.write {
        tracing::info!(notification = %id, authority = %authority, "notification acknowledged");
    }
    Ok(Some(at))
}

/// The engine application of notifications and acknowledgements from other nodes.
pub struct NotificationApp(pub Arc<Cases>);

impl NotificationApp {
    fn apply_notify(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
        notification: &Notification,
    ) -> Result<(), RejectCode> {
        let cases = &self.0;
        let h = msg.header;
        check_notification(cases.catalogue(), None, &h.authority, h.from, notification)
            .map_err(|r| app_code(r.code))?;
        // The nodes the content key was sealed to are exactly the recipients named.
        let mut sealed_to = h.to.clone();
        sealed_to.sort();
        if sealed_to != notification.countries() {
            return Err(app_code("recipients_mismatch"));
        }
        if notification.addressee(cases.node()).is_none() {
            return Err(RejectCode::NotRecipient);
        }
        if !h.prev.is_empty() {
            return Err(app_code("unexpected_predecessor"));
        }
        if txn.get(NOTIFICATIONS, &index_key(&id))?.is_some() {
            return Err(app_code("duplicate_notification"));
        }
        let area = area_of(cases, &notification.procedure);
        let received = imi_protocol::clock::step_time(None, h.created, msg.received, u64::MAX)
            .unwrap_or(msg.received);
        let ix = NotificationIndex {
            procedure: notification.procedure.clone(),
            area,
            sender: h.authority.clone(),
            sender_node: h.from,
            sent_at: h.created,
            received_at: received,
            message: h.id,
            recipients: notification.recipients.clone(),
            outgoing: false,
        };
        store(cases, txn, &id, &ix, notification).map_err(|r| r.code)?;
        tracing::info!(notification = %id, from = %h.from, procedure = %ix.procedure, "notification received");
        Ok(())
    }

    fn apply_read(
        &self,
        msg: &Inbound<'_>,
        txn: &mut Txn<'_>,
        id: CaseId,
    ) -> Result<(), RejectCode> {
        let h = msg.header;
        let ix: NotificationIndex = txn
            .get(NOTIFICATIONS, &index_key(&id))?
            .and_then(|v| decode(&v))
            .ok_or_else(|| app_code("unknown_notification"))?;
        if !ix.outgoing {
            return Err(app_code("unknown_notification"));
        }
        let named = ix
            .recipients
            .iter()
            .any(|a| a.country == h.from && a.authorities.contains(&h.authority));
        if !named {
            return Err(app_code("not_addressed"));
        }
        if h.prev != [ix.message] {
            return Err(app_code("wrong_predecessor"));
        }
        let key = ack_key(&id, h.from, &h.authority);
        if txn.get(NOTIFICATIONS, &key)?.is_some() {
            return Err(app_code("already_acknowledged"));
        }
        let previous = imi_protocol::clock::PreviousStep {
            signed: ix.sent_at,
            defended: ix.sent_at,
        };
        let at = imi_protocol::clock::step_time(Some(previous), h.created, msg.received, u64::MAX)
            .map_err(|_| app_code("time_before_previous"))?;
        let ack = Ack {
            at,
            signed: h.created,
            message: h.id,
        };
        txn.put(NOTIFICATIONS, key, cbor(&ack));
        tracing::info!(notification = %id, from = %h.from, authority = %h.authority, "notification acknowledged by recipient");
        Ok(())
    }
}

impl Application for NotificationApp {
    fn name(&self) -> &'static str {
        "notifications"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::NOTIFICATION]
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let (id, body) = crate::stepped(msg, n::decode, |b| b.step())?;
        match &body {
            NotificationMessage::Notify(notification) => {
                self.apply_notify(msg, txn, id, notification)
            }
            NotificationMessage::Read { v } => {
                if *v != n::NOTIFICATION_VERSION {
                    return Err(RejectCode::UnsupportedVersion);
                }
                self.apply_read(msg, txn, id)
            }
        }
    }
}
