//! The node's applications as the HTTP API sees them. The API calls these methods and never
//! a column: every read of stored state runs on a blocking thread (off the async workers),
//! every write is one local step whose decisions — the step's predecessor, the idempotency
//! record, the access-log sequence number — are taken on the commit thread against the
//! latest state.
use crate::AppError;
use crate::access_log;
use crate::evidence::{Selection, evidence_bundle};
use crate::facts::{self, CaseFacts};
use crate::requests::{AccessRecord, CaseIndex, CaseMessage, CaseRecord, Cases, encode_message};
use crate::retention::{self, Retention};
use crate::users::{self, UserRecord};
use crate::witness::{self, Alarm};
use imi_audit::bundle::Bundle;
use imi_domain::request::{Actor, RequestCase};
use imi_domain::user::User;
use imi_engine::{DeliveryReport, Engine, LocalCtx, LocalOutcome, Refusal, Txn};
use imi_protocol::{CaseId, Draft, Kind, NodeId, Timestamp};
use imi_store::ReadStore;
use std::sync::Arc;
use tokio::sync::oneshot;

/// How often a step is re-sealed when another step of the same case committed between its
/// sealing and its commit (its predecessor went stale).
pub const STALE_RETRIES: usize = 3;

/// An idempotent POST: the key (user ‖ 0 ‖ Idempotency-Key) and the SHA-256 of the request
/// (route ‖ 0 ‖ body).
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    /// user ‖ 0 ‖ key.
    pub key: Vec<u8>,
    /// SHA-256 of route ‖ 0 ‖ body.
    pub request_sha256: [u8; 32],
}

/// Builds a step's response on the commit thread (it is stored as the idempotency record,
/// so a retry gets the very same bytes).
pub type Respond = Box<dyn Fn(&RequestCase, &LocalCtx) -> Vec<u8> + Send + Sync>;

/// What a submitted step produced.
#[derive(Debug)]
pub struct Submitted {
    /// The response (the first one, for a replayed idempotent request).
    pub response: Vec<u8>,
    /// Whether the step was committed now (`false`: a replay, nothing written or sent).
    pub committed: bool,
    /// One receiver per recipient node of the step's envelope, when asked to watch.
    pub deliveries: Vec<oneshot::Receiver<DeliveryReport>>,
}

/// A case as its page shows it ([`Services::case_page`]).
#[derive(Debug)]
pub struct CasePage {
    /// Its index entry.
    pub index: CaseIndex,
    /// Its decrypted record.
    pub record: CaseRecord,
    /// The delivery state of its steps.
    pub deliveries: Vec<crate::evidence::StepDelivery>,
}

/// The applications of a node, for the API.
#[derive(Clone)]
pub struct Services {
    engine: Engine,
    store: Arc<dyn ReadStore>,
    cases: Arc<Cases>,
    retention: Arc<Retention>,
    directory: Arc<crate::directory::DirectoryApp>,
    alerts: Arc<crate::alerts::AlertApp>,
    governance: [u8; 32],
    tokens: Arc<users::TokenCache>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
}

impl Services {
    /// The services of `engine`'s applications; `governance` goes into evidence bundles.
    pub fn new(engine: Engine, apps: &crate::NodeApps, governance: [u8; 32]) -> Self {
        Self {
            store: engine.reader(),
            engine,
            cases: apps.cases.clone(),
            retention: apps.retention.clone(),
            directory: apps.directory.clone(),
            alerts: apps.alerts.clone(),
            governance,
            tokens: Arc::default(),
        }
    }

    /// The engine (messaging: trust list, peers, queues, diagnostics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.engine.node()
    }

    /// Now, on the node's clock.
    pub fn now_ms(&self) -> Timestamp {
        self.engine.now_ms()
    }

    /// The request service (catalogue, directory, rendering).
    pub fn cases(&self) -> &Arc<Cases> {
        &self.cases
    }

    /// The directory replica.
    pub fn directory(&self) -> &Arc<crate::directory::DirectoryApp> {
        &self.directory
    }

    /// The replica's entry for an authority.
    pub async fn directory_entry(
        &self,
        id: imi_protocol::AuthorityId,
    ) -> Result<Option<imi_directory::Entry>, AppError> {
        let store = self.store.clone();
        let dir = self.directory.clone();
        blocking(move || dir.entry(store.as_ref(), &id)).await
    }

    /// Creates, updates or retires this country's authorities (published to every member).
    pub async fn directory_change(
        &self,
        records: Vec<(imi_domain::Authority, bool)>,
    ) -> Result<Vec<crate::directory::Change>, AppError> {
        self.directory.change(&self.engine, records).await
    }

    /// Every entry of the replica, ordered by id.
    pub async fn directory_entries(&self) -> Result<Vec<imi_directory::Entry>, AppError> {
        let store = self.store.clone();
        blocking(move || crate::directory::read_all(store.as_ref())).await
    }

    /// What the replica has seen of each country's sequence.
    pub async fn directory_coverage(
        &self,
    ) -> Result<Vec<(imi_protocol::NodeId, crate::directory::Coverage)>, AppError> {
        let store = self.store.clone();
        let dir = self.directory.clone();
        blocking(move || dir.coverage(store.as_ref())).await
    }

    /// The federation's governance key.
    pub fn governance(&self) -> [u8; 32] {
        self.governance
    }

    // --- users -----------------------------------------------------------------------

    /// The active user a token belongs to (`None`: unknown or revoked); active users are
    /// cached ([`users::TokenCache`]).
    pub async fn authenticate(&self, token: String) -> Result<Option<User>, AppError> {
        let hash = users::token_hash(&token);
        let generation = match self.tokens.cached(&hash) {
            Ok(user) => return Ok(Some(user)),
            Err(generation) => generation,
        };
        let store = self.store.clone();
        let key = hash.clone();
        let user = blocking(move || users::by_hash(store.as_ref(), &key)).await?;
        if let Some(u) = &user {
            self.tokens.keep(generation, hash, u.clone());
        }
        Ok(user)
    }

    /// Stores a new user; refused `user_exists` when the id is taken.
    pub async fn add_user(&self, record: UserRecord) -> Result<(), AppError> {
        let result = users::insert(&self.engine, record).await;
        self.tokens.invalidate();
        result
    }

    /// Every user, by id.
    pub async fn users(&self) -> Result<Vec<UserRecord>, AppError> {
        let store = self.store.clone();
        blocking(move || users::list(store.as_ref())).await
    }

    /// Revokes a user's token; refused `not_found` for an unknown user.
    pub async fn revoke_user(&self, id: String) -> Result<UserRecord, AppError> {
        let result = users::revoke(&self.engine, id).await;
        self.tokens.invalidate();
        result
    }

    // --- requests --------------------------------------------------------------------

    /// A case's index entry and whether it is blocked (retention).
    pub async fn case(&self, id: CaseId) -> Result<Option<(CaseIndex, bool)>, AppError> {
        let store = self.store.clone();
        blocking(move || {
            let Some(ix) = Cases::index(store.as_ref(), &id)? else {
                return Ok(None);
            };
            let blocked = retention::is_blocked(store.as_ref(), &id)?;
            Ok(Some((ix, blocked)))
        })
        .await
    }

    /// Up to `limit` cases after `after` in id order, each with whether it is blocked.
    pub async fn cases_after(
        &self,
        after: Option<CaseId>,
        limit: usize,
    ) -> Result<Vec<(CaseId, CaseIndex, bool)>, AppError> {
        let store = self.store.clone();
        blocking(move || {
            let rows = Cases::scan_index(store.as_ref(), after.as_ref(), limit)?;
            rows.into_iter()
                .map(|(id, ix)| {
                    let blocked = retention::is_blocked(store.as_ref(), &id)?;
                    Ok((id, ix, blocked))
                })
                .collect()
        })
        .await
    }

    /// A case read for its page, in one trip to the blocking pool: its index entry, and,
    /// only when `show` allows it (given the index and whether the case is blocked), its
    /// decrypted record and the delivery state of its steps. `None`: no such case, or
    /// `show` said no (nothing decrypted). Personal data: record the read before returning
    /// it.
    pub async fn case_page(
        &self,
        id: CaseId,
        show: impl FnOnce(&CaseIndex, bool) -> bool + Send + 'static,
    ) -> Result<Option<CasePage>, AppError> {
        let (store, cases) = (self.store.clone(), self.cases.clone());
        blocking(move || {
            let Some(index) = Cases::index(store.as_ref(), &id)? else {
                return Ok(None);
            };
            if !show(&index, retention::is_blocked(store.as_ref(), &id)?) {
                return Ok(None);
            }
            let Some(record) = cases.read(store.as_ref(), &id)? else {
                return Ok(None);
            };
            let deliveries = crate::evidence::step_deliveries(store.as_ref(), &id)?;
            Ok(Some(CasePage {
                index,
                record,
                deliveries,
            }))
        })
        .await
    }

    /// A case's decrypted record (personal data: record the read first).
    pub async fn record(&self, id: CaseId) -> Result<Option<CaseRecord>, AppError> {
        let (store, cases) = (self.store.clone(), self.cases.clone());
        blocking(move || cases.read(store.as_ref(), &id)).await
    }

    /// An attachment's decrypted bytes (personal data: record the read first).
    pub async fn attachment(
        &self,
        id: CaseId,
        sha256: [u8; 32],
    ) -> Result<Option<Vec<u8>>, AppError> {
        let (store, cases) = (self.store.clone(), self.cases.clone());
        blocking(move || cases.read_file(store.as_ref(), &id, &sha256)).await
    }

    /// One step of case `id` by `actor`, in one atomic commit with its envelope to the other
    /// party's node (when there is one), its idempotency record and its log leaf. The step's
    /// predecessor and recipients come from the case as it is when the step is sealed; the
    /// commit thread checks that no other step committed meanwhile and, if one did, the step
    /// is sealed again against the new state (at most [`STALE_RETRIES`] times). With `watch`,
    /// also returns a receiver per recipient for its signed receipt.
    ///
    /// `read` is the case's index as the caller just read it (to check the actor may see
    /// the case): the first attempt is sealed against it instead of reading it again. A
    /// stale one costs a retry, never a wrong step: the commit thread compares it with the
    /// case as it is.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit(
        &self,
        actor: Actor,
        id: CaseId,
        msg: CaseMessage,
        idempotency: Option<IdempotencyKey>,
        respond: Respond,
        watch: bool,
        mut read: Option<CaseIndex>,
    ) -> Result<Submitted, AppError> {
        let respond = Arc::new(respond);
        let msg = Arc::new(msg);
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The case as it is now: its recipients and the predecessor of this step. A
            // create names a new case: nothing to read (the commit thread checks it is new).
            let seen = match (&msg.step.transition, read.take()) {
                (imi_domain::request::Transition::Create { .. }, _) if attempt == 1 => None,
                (_, Some(ix)) => Some(ix),
                (_, None) => self.case(id).await?.map(|(ix, _)| ix),
            };
            let to = match (&seen, &msg.step.transition) {
                (Some(ix), _) => self.cases.counterparts(&ix.requester, &ix.responder),
                (
                    None,
                    imi_domain::request::Transition::Create {
                        requester,
                        responder,
                        ..
                    },
                ) => self.cases.counterparts(requester, responder),
                (None, _) => Vec::new(),
            };
            let draft = if to.is_empty() {
                None
            } else {
                Some(Draft {
                    kind: Kind::new(Kind::REQUEST)
                        .map_err(|e| AppError::Internal(e.to_string()))?,
                    step: Some(
                        Kind::new(msg.step.transition.kind().as_str())
                            .map_err(|e| AppError::Internal(e.to_string()))?,
                    ),
                    authority: actor.authority.clone(),
                    to,
                    case: Some(id),
                    prev: seen
                        .as_ref()
                        .and_then(|ix| ix.last_message)
                        .into_iter()
                        .collect(),
                    body: encode_message(&msg),
                })
            };
            let (cases, actor2, msg2, idem, respond2) = (
                self.cases.clone(),
                actor.clone(),
                msg.clone(),
                idempotency.clone(),
                respond.clone(),
            );
            let apply = move |txn: &mut Txn<'_>, ctx: &LocalCtx| -> Result<LocalOutcome, Refusal> {
                if let Some(idem) = &idem
                    && let Some(replayed) = crate::idempotency::replay(txn, idem)?
                {
                    return Ok(replayed);
                }
                // The predecessor decided on the commit thread: the case must be as it was
                // when the step was sealed.
                let now = txn
                    .get(crate::requests::CASE_INDEX, id.as_bytes())?
                    .and_then(|v| ciborium::from_reader::<CaseIndex, _>(v.as_slice()).ok());
                if now != seen {
                    return Err(Refusal::new(
                        "stale_predecessor",
                        "another step of this case committed first",
                    ));
                }
                let case = cases.apply_step(txn, id, &actor2, &msg2, ctx.at, ctx.message_id)?;
                let result = respond2(&case, ctx);
                if let Some(idem) = &idem {
                    crate::idempotency::record(txn, idem, &result);
                }
                Ok(LocalOutcome {
                    write: true,
                    result,
                })
            };
            match self
                .engine
                .local_step_watched(draft, Box::new(apply), watch)
                .await
            {
                Err(imi_engine::EngineError::Refused(r))
                    if r.code.label() == "stale_predecessor" && attempt <= STALE_RETRIES =>
                {
                    tracing::debug!(case = %id, attempt, "step sealed against a stale state; again");
                }
                Err(e) => return Err(e.into()),
                Ok((o, deliveries)) => {
                    return Ok(Submitted {
                        response: o.result,
                        committed: o.write,
                        deliveries,
                    });
                }
            }
        }
    }

    // --- notifications -----------------------------------------------------------------

    /// Sends a notification from `sender` ([`crate::notifications::send`]).
    pub async fn notify(
        &self,
        sender: imi_protocol::AuthorityId,
        notification: imi_domain::notification::Notification,
        idempotency: Option<IdempotencyKey>,
        respond: crate::notifications::RespondSent,
        watch: bool,
    ) -> Result<crate::notifications::Sent, AppError> {
        crate::notifications::send(
            &self.engine,
            &self.cases,
            sender,
            notification,
            idempotency,
            respond,
            watch,
        )
        .await
    }

    /// A notification's metadata and `authority`'s box entry for it.
    pub async fn notification(
        &self,
        id: CaseId,
        authority: imi_protocol::AuthorityId,
    ) -> Result<
        (
            Option<crate::notifications::NotificationIndex>,
            Option<crate::notifications::BoxEntry>,
        ),
        AppError,
    > {
        let store = self.store.clone();
        blocking(move || {
            Ok((
                crate::notifications::index(store.as_ref(), &id)?,
                crate::notifications::box_entry(store.as_ref(), &authority, &id)?,
            ))
        })
        .await
    }

    /// A notification's decrypted content (personal data: record the read first).
    pub async fn notification_content(
        &self,
        id: CaseId,
    ) -> Result<Option<crate::notifications::Content>, AppError> {
        let (store, cases) = (self.store.clone(), self.cases.clone());
        blocking(move || crate::notifications::content(&cases, store.as_ref(), &id)).await
    }

    /// On the sender's node: per recipient node the delivery of the notification's envelope
    /// `message` (its signed receipt, if back), and every acknowledgement.
    #[allow(clippy::type_complexity)]
    pub async fn notification_status(
        &self,
        id: CaseId,
        message: imi_protocol::MessageId,
        nodes: Vec<NodeId>,
    ) -> Result<
        (
            Vec<(NodeId, Option<crate::notifications::Delivery>)>,
            Vec<(NodeId, imi_protocol::AuthorityId, crate::notifications::Ack)>,
        ),
        AppError,
    > {
        let engine = self.engine.clone();
        blocking(move || {
            let deliveries = nodes
                .into_iter()
                .map(|n| Ok((n, crate::notifications::delivery(&engine, &message, n)?)))
                .collect::<Result<Vec<_>, AppError>>()?;
            let acks = crate::notifications::acks(engine.reader().as_ref(), &id)?;
            Ok((deliveries, acks))
        })
        .await
    }

    /// A page of `authority`'s notification box ([`crate::notifications::box_page`]).
    pub async fn notification_box(
        &self,
        authority: imi_protocol::AuthorityId,
        after: Option<CaseId>,
        limit: usize,
    ) -> Result<
        Vec<(
            CaseId,
            crate::notifications::BoxEntry,
            crate::notifications::NotificationIndex,
        )>,
        AppError,
    > {
        let store = self.store.clone();
        blocking(move || {
            crate::notifications::box_page(store.as_ref(), &authority, after.as_ref(), limit)
        })
        .await
    }

    /// `authority` acknowledges reading notification `id`
    /// ([`crate::notifications::acknowledge`]).
    pub async fn acknowledge_notification(
        &self,
        id: CaseId,
        authority: imi_protocol::AuthorityId,
    ) -> Result<Option<Timestamp>, AppError> {
        crate::notifications::acknowledge(&self.engine, id, authority).await
    }

    // --- repositories ------------------------------------------------------------------

    /// `owner` creates, updates or withdraws an entry ([`crate::repositories::change`]):
    /// the entry's id, what is stored, and whether it was written now (else a replay).
    pub async fn repository_change(
        &self,
        owner: imi_protocol::AuthorityId,
        repository: String,
        change: crate::repositories::Change,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<(CaseId, crate::repositories::StoredEntry, bool), AppError> {
        crate::repositories::change(
            &self.engine,
            &self.cases,
            owner,
            repository,
            change,
            idempotency,
        )
        .await
    }

    /// A page of the entries of a repository this node holds, by id: up to `limit` after
    /// `after` (withdrawn ones only if `withdrawn`), and whether more follow.
    pub async fn repository_entries(
        &self,
        repository: String,
        after: Option<CaseId>,
        limit: usize,
        withdrawn: bool,
    ) -> Result<(Vec<(CaseId, crate::repositories::StoredEntry)>, bool), AppError> {
        let store = self.store.clone();
        blocking(move || {
            crate::repositories::entries_page(
                store.as_ref(),
                &repository,
                after.as_ref(),
                limit,
                |e| withdrawn || !e.withdrawn,
            )
        })
        .await
    }

    /// The `n` most recently updated entries of a repository this node holds that are not
    /// withdrawn, newest first.
    pub async fn repository_newest(
        &self,
        repository: String,
        n: usize,
    ) -> Result<Vec<(CaseId, crate::repositories::StoredEntry)>, AppError> {
        let store = self.store.clone();
        blocking(move || {
            crate::repositories::newest_entries(store.as_ref(), &repository, n, |e| !e.withdrawn)
        })
        .await
    }

    // --- alerts ------------------------------------------------------------------------

    /// Sends an alert from `sender` to the member states (and the Commission) its type names.
    pub async fn send_alert(
        &self,
        sender: imi_protocol::AuthorityId,
        new: crate::alerts::NewAlert,
        idempotency: Option<IdempotencyKey>,
    ) -> Result<(CaseId, crate::alerts::AlertIndex), AppError> {
        self.alerts
            .send(&self.engine, sender, new, idempotency)
            .await
    }

    /// The coordinator forwards alert `id` to `authorities` of this country.
    pub async fn forward_alert(
        &self,
        id: CaseId,
        coordinator: imi_protocol::AuthorityId,
        authorities: Vec<imi_protocol::AuthorityId>,
    ) -> Result<(), AppError> {
        self.alerts
            .forward(&self.engine, id, coordinator, authorities)
            .await
    }

    /// The sender closes alert `id`: the measure ended on `ended`.
    pub async fn close_alert(
        &self,
        id: CaseId,
        sender: imi_protocol::AuthorityId,
        ended: Timestamp,
    ) -> Result<crate::alerts::AlertIndex, AppError> {
        self.alerts.close(&self.engine, id, sender, ended).await
    }

    /// The sender modifies alert `id`: its measure becomes `fields`, its validity
    /// `valid_until`.
    pub async fn modify_alert(
        &self,
        id: CaseId,
        sender: imi_protocol::AuthorityId,
        fields: Vec<imi_domain::request::CodedAnswer>,
        valid_until: Option<Timestamp>,
    ) -> Result<crate::alerts::AlertIndex, AppError> {
        self.alerts
            .modify(&self.engine, id, sender, fields, valid_until)
            .await
    }

    /// Alert `id` as `authority` may see it: its index, the authority's box entry, and the
    /// professional's identity when the authority may read it and this node holds the key.
    #[allow(clippy::type_complexity)]
    pub async fn alert(
        &self,
        id: CaseId,
        authority: imi_protocol::AuthorityId,
    ) -> Result<
        Option<(
            crate::alerts::AlertIndex,
            crate::alerts::BoxEntry,
            Option<crate::requests::SubjectData>,
        )>,
        AppError,
    > {
        let (store, cases) = (self.store.clone(), self.cases.clone());
        blocking(move || {
            let (Some(ix), Some(entry)) = (
                crate::alerts::index(store.as_ref(), &id)?,
                crate::alerts::box_entry(store.as_ref(), &authority, &id)?,
            ) else {
                return Ok(None);
            };
            let identity = crate::alerts::identity(&cases, store.as_ref(), &id, &authority)?;
            Ok(Some((ix, entry, identity)))
        })
        .await
    }

    /// The alerts in `authority`'s box.
    pub async fn alert_box(
        &self,
        authority: imi_protocol::AuthorityId,
    ) -> Result<Vec<(CaseId, crate::alerts::BoxEntry, crate::alerts::AlertIndex)>, AppError> {
        let store = self.store.clone();
        blocking(move || crate::alerts::alert_box(store.as_ref(), &authority)).await
    }

    // --- access log ------------------------------------------------------------------

    /// Records a read of personal data, durably, before the data is returned.
    pub async fn record_access(
        &self,
        user: &User,
        case: CaseId,
        action: &str,
    ) -> Result<(), AppError> {
        access_log::record(
            &self.engine,
            AccessRecord {
                at: self.engine.now_ms(),
                user: user.id.clone(),
                authority: user.authority.clone(),
                case,
                action: action.to_owned(),
            },
        )
        .await
    }

    /// Up to `limit` access-log records from sequence number `from` on.
    pub async fn access_log(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, AccessRecord)>, AppError> {
        let store = self.store.clone();
        blocking(move || access_log::page(store.as_ref(), from, limit)).await
    }

    // --- audit -----------------------------------------------------------------------

    /// The signed envelopes of a case in this node's log, oldest first, with their receipts
    /// (the delivery state of each step).
    pub async fn step_deliveries(
        &self,
        case: CaseId,
    ) -> Result<Vec<crate::evidence::StepDelivery>, AppError> {
        let store = self.store.clone();
        blocking(move || crate::evidence::step_deliveries(store.as_ref(), &case)).await
    }

    /// The evidence bundle of a case or time range; `None` for a case this node does not
    /// hold.
    pub async fn bundle(&self, selection: Selection) -> Result<Option<Bundle>, AppError> {
        if let Selection::Case(case) = selection
            && self.case(case).await?.is_none()
        {
            // Whatever application chained envelopes under the id (alerts, notifications,
            // repository entries): the log holds the chain's head.
            let store = self.store.clone();
            let known =
                blocking(move || Ok(imi_engine::log::case_head(store.as_ref(), &case)?.is_some()))
                    .await?;
            if !known {
                return Ok(None);
            }
        }
        Ok(Some(
            evidence_bundle(&self.engine, selection, &self.governance).await?,
        ))
    }

    /// Up to `limit` witness alarms this node raised from sequence number `from` on,
    /// oldest first ([`witness::alarms`]).
    pub async fn alarms(&self, from: u64, limit: usize) -> Result<Vec<(u64, Alarm)>, AppError> {
        let engine = self.engine.clone();
        blocking(move || witness::alarms(&engine, from, limit)).await
    }

    /// Runs the retention schedule now.
    pub async fn run_retention(&self) -> Result<retention::RetentionReport, AppError> {
        self.retention.run(&self.engine, self.engine.now_ms()).await
    }

    /// Signs a checkpoint now, sends it to the witnesses with this node's own witness
    /// answers, and returns it.
    pub async fn checkpoint(&self) -> Result<String, AppError> {
        witness::distribute_checkpoint(&self.engine).await?;
        Ok(self.engine.checkpoint().await?)
    }

    // --- indicator facts --------------------------------------------------------------

    /// Folds `f` over the indicator facts this node holds, one at a time (on `EU` the
    /// cross-checked fact of every case, elsewhere the node's own latest reports), starting
    /// from `acc`: the scoreboard of any number of cases in bounded memory.
    pub async fn fold_facts<A: Send + 'static>(
        &self,
        mut acc: A,
        mut f: impl FnMut(&mut A, imi_scoreboard::Fact) + Send + 'static,
    ) -> Result<A, AppError> {
        let store = self.store.clone();
        let commission = self.node() == NodeId::EU;
        blocking(move || {
            if commission {
                facts::for_each_commission_case(store.as_ref(), |c| f(&mut acc, c.checked.fact))?;
            } else {
                facts::for_each_own_report(store.as_ref(), |r| f(&mut acc, r.fact))?;
            }
            Ok(acc)
        })
        .await
    }

    /// One page of the facts [`Services::fold_facts`] folds over: those whose stored rows
    /// start at key `start` (the empty key: the first), about `rows` rows (a case's two
    /// reports on `EU` never split); and the key the next page starts at, `None` after the
    /// last. Between two pages nothing is held: a reader as slow as it likes costs no thread.
    pub async fn facts_page(
        &self,
        start: Vec<u8>,
        rows: usize,
    ) -> Result<(Vec<imi_scoreboard::Fact>, Option<Vec<u8>>), AppError> {
        let store = self.store.clone();
        let commission = self.node() == NodeId::EU;
        blocking(move || {
            let mut out = Vec::new();
            let next = if commission {
                facts::commission_cases_page(store.as_ref(), &start, rows, |c| {
                    out.push(c.checked.fact);
                })?
            } else {
                facts::own_reports_page(store.as_ref(), &start, rows, |r| out.push(r.fact))?
            };
            Ok((out, next))
        })
        .await
    }

    /// On `EU`: folds `f` over every case it holds reports for, cross-checked, one case at a
    /// time in case order ([`facts::commission_cases`] without holding them all).
    pub async fn fold_commission_cases<A: Send + 'static>(
        &self,
        mut acc: A,
        mut f: impl FnMut(&mut A, CaseFacts) + Send + 'static,
    ) -> Result<A, AppError> {
        let store = self.store.clone();
        blocking(move || {
            facts::for_each_commission_case(store.as_ref(), |c| f(&mut acc, c))?;
            Ok(acc)
        })
        .await
    }

    /// Folds `f` over the usage facts this node holds (on the Commission node every
    /// member's, on a member node its own), one at a time, starting from `acc`.
    pub async fn fold_usage_facts<A: Send + 'static>(
        &self,
        mut acc: A,
        mut f: impl FnMut(&mut A, imi_scoreboard::usage::UsageFact) + Send + 'static,
    ) -> Result<A, AppError> {
        let store = self.store.clone();
        blocking(move || {
            facts::for_each_usage_fact(store.as_ref(), |u| f(&mut acc, u))?;
            Ok(acc)
        })
        .await
    }

    /// The persistent count of applied diagnostics.
    pub async fn diagnostics_applied(&self) -> Result<u64, AppError> {
        let store = self.store.clone();
        blocking(move || Ok(crate::diagnostics::applied(store.as_ref())?)).await
    }
}
