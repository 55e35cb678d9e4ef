//! Indicator facts: what the Commission node (`EU`) learns about requests, and nothing else.
//!
//! **On a member-state node**, every step of a case ([`crate::requests::Cases::apply_step`],
//! on the sending and on the receiving side) writes, in the same atomic batch as the step,
//! the case's current [`FactReport`] to `facts` (what this node reported last; the export)
//! and to `facts_pending`. The [`FactReporter`] job sends each pending report to `EU` as a
//! signed envelope through the normal durable outbox (retried until `EU`'s receipt), in the
//! same commit that clears the pending row (unless a newer report replaced it meanwhile): a
//! lone report as [`KIND_FACT`], with its case in the header; several pending together as
//! [`KIND_FACTS`] envelopes of up to [`MAX_BATCH_REPORTS`] (one signature, one seal, one
//! fsync and one receipt for all of them).
//! A report holds only [`Fact`]'s fields: an opaque case id, legal area, the two countries,
//! times, the agreed date and the ratings. No name, text, attachment or user ever leaves.
//! The times are those the node defends ([`fact_of`]); when one differs from the signed
//! time of its step, the signed facts travel beside them ([`FactReport::signed`]).
//!
//! **On the Commission node**, [`FactApp`] accepts a report only from a party of the case,
//! for its own side, naming the same parties as every report already held for the case,
//! with times in order (no defended time before its signed one) and a plausible step count;
//! anything else is refused with a signed code and alarmed. It keeps the newest report per
//! case and side (by the number of steps it reflects). The scoreboard cross-checks the two
//! sides' signed facts ([`imi_scoreboard::crosscheck`]); a case reported by one side only
//! counts on that side's word and is listed as one-sided ([`CaseFacts::one_sided`]).
//!
//! **Usage facts.** Sending a notification, an alert or a new repository entry writes, in
//! the same commit, its [`UsageFact`] (kind, type, sending and recipient countries, signed
//! send time, late) to `usage` and `usage_pending`; the same reporter sends it as
//! [`KIND_USAGE`] (several pending together as [`KIND_USAGES`] envelopes of up to
//! [`MAX_BATCH_USAGE`], checked one by one and kept all or none, as the fact reports of a
//! [`KIND_FACTS`]). The Commission node accepts one only from the sending country, about an
//! exchange sent in the year before the report and not after it (one minute of clock skew
//! allowed), and keeps one per sender
//! and id (a resend of the same fact is accepted and changes nothing; a different one is
//! refused and alarmed). [`imi_scoreboard::usage::Usage`] counts them.
use crate::AppError;
use imi_domain::request::{RequestCase, RequestState};
use imi_engine::metrics::PeerCodeLabel;
use imi_engine::{Application, Engine, Inbound, PeriodicJob, Txn};
use imi_protocol::dates::Date;
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, NodeId, RejectCode, Timestamp};
use imi_scoreboard::crosscheck::{Checked, Side, check};
use imi_scoreboard::usage::UsageFact;
use imi_scoreboard::{Fact, Record};
use imi_store::Column;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The envelope kind of indicator fact reports.
pub const KIND_FACT: &str = imi_protocol::Kind::FACT;
/// The envelope kind of several fact reports at once (a CBOR array, no case in the header).
pub const KIND_FACTS: &str = imi_protocol::Kind::FACTS;
/// Most reports in one [`KIND_FACTS`] envelope (about 20 KiB of body).
pub const MAX_BATCH_REPORTS: usize = 64;
/// Most pending reports one run of the reporter sends.
const REPORTS_PER_RUN: usize = 256;
/// Indicator facts: a member node's last report per case; the Commission node's reports
/// per case and side.
pub const FACTS: Column = "facts";
/// Fact reports waiting to be enqueued for the Commission node.
pub const FACTS_PENDING: Column = "facts_pending";
/// The envelope kind of usage facts.
pub const KIND_USAGE: &str = imi_protocol::Kind::USAGE;
/// The envelope kind of several usage facts at once (a CBOR array, no case in the header).
pub const KIND_USAGES: &str = imi_protocol::Kind::USAGES;
/// Most usage facts in one [`KIND_USAGES`] envelope (about 12 KiB of body).
pub const MAX_BATCH_USAGE: usize = 64;
/// Usage facts: a member node's own, by exchange id; the Commission node's, by sending
/// country and id.
pub const USAGE: Column = "usage";
/// Usage facts waiting to be enqueued for the Commission node.
pub const USAGE_PENDING: Column = "usage_pending";
/// How far before its report an exchange may say it was sent (a node down for a long
/// time still reports what it sent; nothing older).
pub const USAGE_MAX_AGE_MS: u64 = 366 * 86_400_000;
/// The version of the [`FactReport`] encoding.
pub const REPORT_VERSION: u16 = 1;
/// How often the reporter looks for pending reports.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// One side's report of a case's facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FactReport {
    /// Encoding version.
    pub v: u16,
    /// Which side reports.
    pub side: Side,
    /// How many steps of the case this report reflects (newer reports have more).
    pub steps: u32,
    /// The facts, with the times this node defends ([`fact_of`]): what the figures use.
    pub fact: Fact,
    /// The same facts with the signed times of the steps, when any differs from `fact`'s
    /// (a step this node received more than 10 minutes after it was signed). Both sides hold
    /// the same signed history, so the Commission compares these; absent, they equal
    /// `fact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<Fact>,
}

impl FactReport {
    /// The facts with the signed times (what both sides must agree on).
    pub fn signed_fact(&self) -> &Fact {
        self.signed.as_ref().unwrap_or(&self.fact)
    }
}

/// The facts of a case as one node sees it, with the times it defends: `defended` holds,
/// beside each step of the history, the time this node defends for it
/// ([`crate::requests::CaseRecord::defended`]); a step time the case records (sent, accepted,
/// answered, ended) is replaced by the defended time of the first step signed at that time.
/// Missing entries keep the signed time.
pub fn fact_of(case: &RequestCase, defended: &[Timestamp]) -> Fact {
    let country =
        |a: &AuthorityId| imi_domain::country_of(a).map_or_else(String::new, |c| c.to_string());
    let defend = |t: Timestamp| {
        let d = case
            .history
            .iter()
            .position(|h| h.at == t)
            .and_then(|i| defended.get(i).copied())
            .unwrap_or(t);
        Fact::time(d)
    };
    Fact {
        case: case.id.to_string(),
        area: case.area.clone(),
        requester: country(&case.requester),
        responder: country(&case.responder),
        sent_at: defend(case.created),
        accepted_at: case.accepted_at.map(defend),
        withdrawn_at: match case.state {
            RequestState::Withdrawn => case.ended_at.map(defend),
            _ => None,
        },
        answered_at: case.answered_at.map(defend),
        deadline: Some(Date::of_ms(case.answer_by).to_string()),
        timeliness: case.ratings.timeliness.map(|r| r.score()),
        efforts: case.ratings.efforts.map(|r| r.score()),
    }
}

fn cbor<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::into_writer(v, &mut out);
    out
}

/// Writes this node's report of `case` (after a step) into `txn`: the export row and the
/// pending row the reporter sends, with the times this node defends (`defended`, beside
/// each step: [`fact_of`]). Nothing when `me` is party to neither side.
pub fn record_report(txn: &mut Txn<'_>, me: NodeId, case: &RequestCase, defended: &[Timestamp]) {
    let fact = fact_of(case, defended);
    let signed = Some(fact_of(case, &[])).filter(|s| *s != fact);
    let side = if fact.requester == me.as_str() {
        Side::Requester
    } else if fact.responder == me.as_str() {
        Side::Responder
    } else {
        return;
    };
    let report = FactReport {
        v: REPORT_VERSION,
        side,
        steps: u32::try_from(case.history.len()).unwrap_or(u32::MAX),
        fact,
        signed,
    };
    let bytes = cbor(&report);
    txn.put(FACTS, case.id.as_bytes().to_vec(), bytes.clone());
    txn.put(FACTS_PENDING, case.id.as_bytes().to_vec(), bytes);
}

/// What this node sent, for [`record_usage`].
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// Notification, alert or repository entry.
    pub kind: imi_scoreboard::usage::UsageKind,
    /// Its id (the envelopes' `case`).
    pub id: &'a CaseId,
    /// Its catalogue type.
    pub procedure: &'a str,
    /// The nodes it went to.
    pub to: &'a [NodeId],
    /// The signed time of its envelope.
    pub at: Timestamp,
    /// An alert sent late.
    pub late: bool,
}

/// Writes this node's (`me`) usage fact of an exchange it sends into `txn` (the export row
/// and the pending row the reporter sends), keyed by the exchange's id.
pub fn record_usage(txn: &mut Txn<'_>, me: NodeId, sent: Sent<'_>) {
    let mut recipients: Vec<String> = sent.to.iter().map(|n| n.to_string()).collect();
    recipients.sort();
    recipients.dedup();
    let fact = UsageFact {
        v: imi_scoreboard::usage::USAGE_VERSION,
        kind: sent.kind,
        id: sent.id.to_string(),
        procedure: sent.procedure.to_owned(),
        sender: me.to_string(),
        recipients,
        sent_at: UsageFact::time(sent.at),
        late: sent.late,
    };
    let id = sent.id;
    let bytes = cbor(&fact);
    txn.put(USAGE, id.as_bytes().to_vec(), bytes.clone());
    txn.put(USAGE_PENDING, id.as_bytes().to_vec(), bytes);
}

/// A member node's reporter: sends pending fact reports to the Commission node (the
/// `fact-report` job, every [`REPORT_INTERVAL`]).
#[derive(Debug, Clone, Copy)]
pub struct FactReporter {
    to: NodeId,
}

impl FactReporter {
    /// Reports to `to` (the Commission node).
    pub fn new(to: NodeId) -> Self {
        Self { to }
    }
}

impl Application for FactReporter {
    fn name(&self) -> &'static str {
        "fact-reporter"
    }
    fn sends(&self) -> &'static [&'static str] {
        &[KIND_FACT, KIND_FACTS, KIND_USAGE, KIND_USAGES]
    }
    fn columns(&self) -> &'static [Column] {
        &[FACTS, FACTS_PENDING, USAGE, USAGE_PENDING]
    }
    fn jobs(&self) -> Vec<PeriodicJob> {
        let to = self.to;
        vec![PeriodicJob::new(
            "fact-report",
            REPORT_INTERVAL,
            false,
            move |engine: Engine| async move {
                let n = report_pending(&engine, to).await?;
                if n > 0 {
                    tracing::debug!(reports = n, "indicator facts enqueued for the Commission");
                }
                Ok::<(), AppError>(())
            },
        )]
    }
}

/// Enqueues every pending report and usage fact once (up to 256 of each per call);
/// returns how many.
pub async fn report_pending(engine: &Engine, to: NodeId) -> Result<usize, AppError> {
    let facts = send_batched(
        engine,
        to,
        FACTS_PENDING,
        (KIND_FACT, KIND_FACTS),
        MAX_BATCH_REPORTS,
    )
    .await?;
    let usage = send_batched(
        engine,
        to,
        USAGE_PENDING,
        (KIND_USAGE, KIND_USAGES),
        MAX_BATCH_USAGE,
    )
    .await?;
    Ok(facts + usage)
}

/// Sends the pending rows of `col` (fact reports or usage facts, keyed by their case or
/// exchange id; up to [`REPORTS_PER_RUN`]): a lone one as `single`, its id in the header,
/// several as `batch` envelopes of up to `max` (a CBOR array, no case in the header); each
/// envelope in one commit with the clearing of its rows. Returns how many rows were sent.
async fn send_batched(
    engine: &Engine,
    to: NodeId,
    col: Column,
    (single, batch): (&str, &str),
    max: usize,
) -> Result<usize, AppError> {
    let rows = engine.reader().scan_prefix(col, &[], REPORTS_PER_RUN)?;
    let authority = engine.operations_authority()?;
    let mut sent = 0;
    for chunk in rows.chunks(max) {
        let draft = |kind: &str, case, body| -> Result<Draft, AppError> {
            Ok(Draft {
                kind: Kind::new(kind).map_err(|e| AppError::Internal(e.to_string()))?,
                step: None,
                authority: authority.clone(),
                to: vec![to],
                case,
                prev: Vec::new(),
                body,
            })
        };
        if let [(key, value)] = chunk {
            let d = draft(single, CaseId::from_slice(key), value.clone())?;
            engine
                .send_and_clear(d, col, key.clone(), value.clone())
                .await?;
        } else {
            let d = draft(batch, None, cbor_array(chunk.iter().map(|(_, v)| v)))?;
            engine.send_and_clear_all(d, col, chunk.to_vec()).await?;
        }
        sent += chunk.len();
    }
    Ok(sent)
}

/// A CBOR array of items that are each one encoded CBOR value.
fn cbor_array<'a>(items: impl ExactSizeIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let n = items.len() as u64;
    let mut out = Vec::new();
    // The head of major type 4 (array): the count in the initial byte, or after it in 1, 2,
    // 4 or 8 bytes (RFC 8949, 3.1).
    match n {
        0..=23 => out.push(0x80 | n as u8),
        24..=0xff => out.extend_from_slice(&[0x98, n as u8]),
        0x100..=0xffff => {
            out.push(0x99);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0x9a);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0x9b);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// The item count in the head of a definite-length CBOR array, read before anything is
/// decoded (`None`: not an array, or one of indefinite length).
fn array_len(body: &[u8]) -> Option<u64> {
    let (&first, rest) = body.split_first()?;
    if first >> 5 != 4 {
        return None;
    }
    let be = |n: usize| -> Option<u64> {
        let b = rest.get(..n)?;
        Some(b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    };
    match first & 0x1f {
        n @ 0..=23 => Some(u64::from(n)),
        24 => be(1),
        25 => be(2),
        26 => be(4),
        27 => be(8),
        _ => None,
    }
}

/// The items of a batch envelope (`imi.facts`, `imi.usages`): 1 to `max` of them, counted
/// before anything is decoded (nothing of a list too long is). A batch names no case in its
/// header: each item names its own.
fn batch<T: serde::de::DeserializeOwned>(
    msg: &Inbound<'_>,
    max: usize,
) -> Result<Vec<T>, RejectCode> {
    let bad = |c: &str| RejectCode::Application(c.to_owned());
    if msg.header.case.is_some() {
        return Err(bad("case_mismatch"));
    }
    let n = array_len(msg.body).ok_or_else(|| bad("malformed_report"))?;
    if n == 0 || n > max as u64 {
        return Err(bad("malformed_report"));
    }
    ciborium::from_reader(msg.body).map_err(|_| bad("malformed_report"))
}

/// What the Commission node stores per case and side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReport {
    /// The report.
    pub report: FactReport,
    /// When it was received, ms.
    pub received: u64,
}

fn stored_key(case: &str, side: Side) -> Vec<u8> {
    let mut k = case.as_bytes().to_vec();
    k.push(0);
    k.push(match side {
        Side::Requester => b'q',
        Side::Responder => b's',
    });
    k
}

/// Whether a fact's times (as its validated [`Record`]) are in the order a request lives
/// them: sent ≤ accepted ≤ first answered, and sent ≤ withdrawn.
pub fn timeline_ordered(r: &Record) -> bool {
    r.accepted.is_none_or(|a| a >= r.sent)
        && r.answered
            .is_none_or(|x| x >= r.sent && r.accepted.is_none_or(|a| x >= a))
        && r.withdrawn.is_none_or(|w| w >= r.sent)
}

/// The Commission node's application: accepts fact reports from a party of the case for
/// its own side, with the case's parties, a plausible number of steps and times in order;
/// anything else is refused with a signed code and counted as an alarm
/// (`imi_fact_alarms_total{peer, code}`) with an error log line.
#[derive(Debug, Default)]
pub struct FactApp {
    alarms: Family<PeerCodeLabel, Counter>,
}

impl FactApp {
    /// The alarm counter (`imi_fact_alarms`).
    pub fn alarm_counter(&self) -> &Family<PeerCodeLabel, Counter> {
        &self.alarms
    }

    fn alarm(&self, msg: &Inbound<'_>, code: &'static str) -> RejectCode {
        tracing::error!(peer = %msg.header.from, msg = %msg.header.id, code, "FACT ALARM: a fact report the Commission node cannot accept");
        self.alarms
            .get_or_create(&PeerCodeLabel {
                peer: msg.header.from.to_string(),
                code: code.to_owned(),
            })
            .inc();
        RejectCode::Application(code.to_owned())
    }
}

impl FactApp {
    /// A usage fact: from its sender, about an exchange sent before the report (at most a
    /// year before); one per sender and id. `in_header` says whether the envelope's header
    /// names the fact's exchange (an `imi.usage`), which must then be the fact's id (32
    /// lowercase hex digits in either kind: [`UsageFact::validate`]).
    fn apply_usage(
        &self,
        msg: &Inbound<'_>,
        fact: UsageFact,
        in_header: bool,
        txn: &mut Txn<'_>,
    ) -> Result<(), RejectCode> {
        let bad = |c: &str| RejectCode::Application(c.to_owned());
        if fact.v != imi_scoreboard::usage::USAGE_VERSION {
            return Err(bad("unsupported_version"));
        }
        let sent = fact.validate().map_err(|_| bad("invalid_fact"))?;
        if in_header && msg.header.case.map(|c| c.to_string()) != Some(fact.id.clone()) {
            return Err(bad("case_mismatch"));
        }
        if fact.sender != msg.header.from.as_str() {
            return Err(self.alarm(msg, "not_sender"));
        }
        // Sent before the report, give or take the clock skew tolerated between two steps
        // (the node's clock may have been set back between the commit and the report).
        let created = i64::try_from(msg.header.created).unwrap_or(i64::MAX);
        let latest = created.saturating_add(imi_protocol::clock::MAX_STEP_CLOCK_SKEW_MS as i64);
        let oldest = created.saturating_sub(USAGE_MAX_AGE_MS as i64);
        if sent > latest || sent < oldest {
            return Err(self.alarm(msg, "impossible_timeline"));
        }
        let key = usage_key(&fact.sender, &fact.id);
        if let Some(existing) = txn.get(USAGE, &key)? {
            let old: Option<StoredUsage> = ciborium::from_reader(existing.as_slice()).ok();
            if old.is_some_and(|o| o.fact == fact) {
                // Resent (the reporter sends before it clears): counted once.
                return Ok(());
            }
            return Err(self.alarm(msg, "conflicting_report"));
        }
        txn.put(
            USAGE,
            key,
            cbor(&StoredUsage {
                fact,
                received: msg.received,
            }),
        );
        Ok(())
    }
}

/// What the Commission node stores per usage fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUsage {
    /// The fact.
    pub fact: UsageFact,
    /// When it was received, ms.
    pub received: u64,
}

fn usage_key(sender: &str, id: &str) -> Vec<u8> {
    [sender.as_bytes(), id.as_bytes()].concat()
}

/// The usage facts the Commission node holds, or a member node's own (by id).
pub fn usage_facts(store: &dyn imi_store::ReadStore) -> Result<Vec<UsageFact>, AppError> {
    let mut out = Vec::new();
    for_each_usage_fact(store, |f| out.push(f))?;
    Ok(out)
}

/// [`usage_facts`] one at a time, a chunk of rows in memory at once.
pub fn for_each_usage_fact(
    store: &dyn imi_store::ReadStore,
    mut f: impl FnMut(UsageFact),
) -> Result<(), AppError> {
    for_each_row(store, USAGE, FACT_CHUNK, |_, v| {
        let fact = ciborium::from_reader::<StoredUsage, _>(v.as_slice())
            .map(|s| s.fact)
            .or_else(|_| ciborium::from_reader::<UsageFact, _>(v.as_slice()));
        if let Ok(fact) = fact {
            f(fact);
        }
    })
}

impl Application for FactApp {
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "imi_fact_alarms",
            "Fact reports refused as forged or impossible (other parties, impossible timeline, implausible steps), by sending node and code",
            self.alarms.clone(),
        );
    }

    fn name(&self) -> &'static str {
        "facts"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[KIND_FACT, KIND_FACTS, KIND_USAGE, KIND_USAGES]
    }

    fn columns(&self) -> &'static [Column] {
        &[FACTS, USAGE]
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let bad = |c: &str| RejectCode::Application(c.to_owned());
        match msg.header.kind.as_str() {
            KIND_USAGE => {
                let fact: UsageFact =
                    ciborium::from_reader(msg.body).map_err(|_| bad("malformed_report"))?;
                self.apply_usage(msg, fact, true, txn)
            }
            // One refused item refuses the whole envelope, and nothing of it is kept.
            KIND_USAGES => {
                for fact in batch::<UsageFact>(msg, MAX_BATCH_USAGE)? {
                    self.apply_usage(msg, fact, false, txn)?;
                }
                Ok(())
            }
            KIND_FACTS => {
                for report in batch::<FactReport>(msg, MAX_BATCH_REPORTS)? {
                    self.apply_report(msg, report, false, txn)?;
                }
                Ok(())
            }
            _ => {
                let report: FactReport =
                    ciborium::from_reader(msg.body).map_err(|_| bad("malformed_report"))?;
                self.apply_report(msg, report, true, txn)
            }
        }
    }
}

impl FactApp {
    /// Checks and keeps one report; `in_header` says whether the envelope's header names the
    /// report's case (an `imi.fact`), which must then be the report's.
    fn apply_report(
        &self,
        msg: &Inbound<'_>,
        report: FactReport,
        in_header: bool,
        txn: &mut Txn<'_>,
    ) -> Result<(), RejectCode> {
        let bad = |c: &str| RejectCode::Application(c.to_owned());
        if report.v != REPORT_VERSION {
            return Err(bad("unsupported_version"));
        }
        let record = report.fact.record().map_err(|_| bad("invalid_fact"))?;
        let case_ok = report.fact.case.len() == 32
            && report.fact.case.bytes().all(|b| b.is_ascii_hexdigit())
            && (!in_header
                || msg.header.case.map(|c| c.to_string()) == Some(report.fact.case.clone()));
        if !case_ok {
            return Err(bad("case_mismatch"));
        }
        let own = match report.side {
            Side::Requester => &report.fact.requester,
            Side::Responder => &report.fact.responder,
        };
        if own != msg.header.from.as_str() {
            return Err(bad("not_own_side"));
        }
        // A case has at most `MAX_HISTORY` steps: a report claiming more could never be
        // superseded by a genuine one.
        if usize::try_from(report.steps).map_or(true, |s| s > imi_domain::limits::MAX_HISTORY) {
            return Err(self.alarm(msg, "implausible_steps"));
        }
        if !timeline_ordered(&record) {
            return Err(self.alarm(msg, "impossible_timeline"));
        }
        // The signed facts: the same case and parties, in order, and no defended time earlier
        // than the signed one (a receiver only ever moves a time later, to its receipt).
        if let Some(signed) = &report.signed {
            let s = signed.record().map_err(|_| bad("invalid_fact"))?;
            let same = signed.case == report.fact.case
                && signed.area == report.fact.area
                && signed.requester == report.fact.requester
                && signed.responder == report.fact.responder;
            if !same {
                return Err(self.alarm(msg, "parties_mismatch"));
            }
            let later = |d: Option<i64>, s: Option<i64>| match (d, s) {
                (Some(d), Some(s)) => d >= s,
                (None, None) => true,
                _ => false,
            };
            if !timeline_ordered(&s)
                || record.sent < s.sent
                || !later(record.accepted, s.accepted)
                || !later(record.answered, s.answered)
                || !later(record.withdrawn, s.withdrawn)
            {
                return Err(self.alarm(msg, "impossible_timeline"));
            }
        }
        // The parties of a case are those of the reports already held for it: a member that
        // is not one of them (or claims other parties) cannot report it. Each side's row is
        // read and decoded once; the reporting side's also says whether this one is late.
        let mut held_steps = None;
        for side in [Side::Requester, Side::Responder] {
            let Some(old) = txn
                .get(FACTS, &stored_key(&report.fact.case, side))?
                .and_then(|r| ciborium::from_reader::<StoredReport, _>(r.as_slice()).ok())
            else {
                continue;
            };
            if old.report.fact.requester != report.fact.requester
                || old.report.fact.responder != report.fact.responder
            {
                return Err(self.alarm(msg, "parties_mismatch"));
            }
            if side == report.side {
                held_steps = Some(old.report.steps);
            }
        }
        if held_steps.is_some_and(|held| held > report.steps) {
            // An older report arriving late: already superseded.
            return Ok(());
        }
        let key = stored_key(&report.fact.case, report.side);
        txn.put(
            FACTS,
            key,
            cbor(&StoredReport {
                report,
                received: msg.received,
            }),
        );
        Ok(())
    }
}

/// A case as the Commission node sees it: both sides' latest reports, cross-checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseFacts {
    /// The case.
    pub case: String,
    /// The requester side's steps, if reported.
    pub requester_steps: Option<u32>,
    /// The responder side's steps, if reported.
    pub responder_steps: Option<u32>,
    /// The cross-check (flags only when both sides reported the same number of steps; a
    /// difference in steps is a step still in flight).
    pub checked: Checked,
}

impl CaseFacts {
    /// Flagged: both sides reported the same steps and disagree.
    pub fn flagged(&self) -> bool {
        self.requester_steps.is_some()
            && self.requester_steps == self.responder_steps
            && !self.checked.disagreements.is_empty()
    }

    /// The side whose report is the only one held, if only one is: its figures count
    /// unconfirmed by the other side (published as such).
    pub fn one_sided(&self) -> Option<Side> {
        match (self.requester_steps, self.responder_steps) {
            (Some(_), None) => Some(Side::Requester),
            (None, Some(_)) => Some(Side::Responder),
            _ => None,
        }
    }
}

/// Every case the Commission node holds reports for, in case order, cross-checked.
pub fn commission_cases(store: &dyn imi_store::ReadStore) -> Result<Vec<CaseFacts>, AppError> {
    let mut out = Vec::new();
    for_each_commission_case(store, |c| out.push(c))?;
    Ok(out)
}

/// How many stored rows the walks over every fact read at a time.
const FACT_CHUNK: usize = 1024;

/// Calls `f` with every stored row of `col` in key order, reading `chunk` rows at a time
/// ([`FACT_CHUNK`]): memory stays bounded by a chunk whatever the number of cases.
fn for_each_row(
    store: &dyn imi_store::ReadStore,
    col: imi_store::Column,
    chunk: usize,
    mut f: impl FnMut(Vec<u8>, Vec<u8>),
) -> Result<(), AppError> {
    Ok(imi_store::for_each_entry(
        store,
        col,
        &[],
        None,
        chunk,
        |k, v| {
            f(k, v);
            true
        },
    )?)
}

/// [`commission_cases`] one case at a time, in case order: what is held at once is a chunk of
/// rows and one case, so the scoreboard of millions of cases folds in bounded memory.
pub fn for_each_commission_case(
    store: &dyn imi_store::ReadStore,
    f: impl FnMut(CaseFacts),
) -> Result<(), AppError> {
    commission_cases_in_chunks(store, FACT_CHUNK, f)
}

fn commission_cases_in_chunks(
    store: &dyn imi_store::ReadStore,
    chunk: usize,
    f: impl FnMut(CaseFacts),
) -> Result<(), AppError> {
    commission_cases_from(store, &[], chunk, usize::MAX, f).map(|_| ())
}

/// A page of [`for_each_commission_case`]: the cases whose rows start at key `start` (the
/// empty key: the first), until at least `rows` (at least 1) stored rows are read and the next
/// case begins; a case's rows never straddle two pages. Returns the key the next page starts
/// at, `None` after the last case. What it holds at once is a chunk of rows and one case,
/// and a caller that serves pages between two reads holds nothing while it waits.
pub fn commission_cases_page(
    store: &dyn imi_store::ReadStore,
    start: &[u8],
    rows: usize,
    f: impl FnMut(CaseFacts),
) -> Result<Option<Vec<u8>>, AppError> {
    // One read per page: its rows and the first of the next case (a case has two rows).
    let rows = rows.max(1);
    commission_cases_from(store, start, rows.saturating_add(2), rows, f)
}

fn commission_cases_from(
    store: &dyn imi_store::ReadStore,
    start: &[u8],
    chunk: usize,
    max_rows: usize,
    mut f: impl FnMut(CaseFacts),
) -> Result<Option<Vec<u8>>, AppError> {
    // A case's two rows may lie in different chunks: the case in hand carries over.
    let mut current: Option<(String, Option<StoredReport>, Option<StoredReport>)> = None;
    let flush = |c: Option<(String, Option<StoredReport>, Option<StoredReport>)>,
                 f: &mut dyn FnMut(CaseFacts)| {
        if let Some((case, q, s)) = c {
            // The sides agree or not on the signed facts; the figures use the defended ones
            // of the side the cross-check chose (the requester's when both reported).
            let mut checked = check(
                q.as_ref().map(|r| r.report.signed_fact()),
                s.as_ref().map(|r| r.report.signed_fact()),
            );
            if let Some(c) = checked.as_mut()
                && let Some(chosen) = q.as_ref().or(s.as_ref())
            {
                c.fact = chosen.report.fact.clone();
            }
            let (qs, ss) = (q.map(|r| r.report.steps), s.map(|r| r.report.steps));
            if let Some(c) = checked.as_mut()
                && qs != ss
            {
                c.disagreements.clear();
            }
            if let Some(checked) = checked {
                f(CaseFacts {
                    case,
                    requester_steps: qs,
                    responder_steps: ss,
                    checked,
                });
            }
        }
    };
    let mut read = 0usize;
    let mut next = None;
    imi_store::for_each_entry(store, FACTS, start, None, chunk, |k, v| {
        let split = k.iter().position(|b| *b == 0);
        let case = k.get(..split.unwrap_or(k.len())).unwrap_or_default();
        // A page ends where a new case begins once it has read enough rows.
        if read >= max_rows
            && current
                .as_ref()
                .is_none_or(|(c, _, _)| c.as_bytes() != case)
        {
            next = Some(k);
            return false;
        }
        read += 1;
        let Some(split) = split else {
            return true;
        };
        let (case, side) = (
            String::from_utf8_lossy(case).into_owned(),
            k.get(split + 1).copied(),
        );
        let Ok(stored) = ciborium::from_reader::<StoredReport, _>(v.as_slice()) else {
            return true;
        };
        if current.as_ref().is_none_or(|(c, _, _)| *c != case) {
            flush(current.take(), &mut f);
            current = Some((case, None, None));
        }
        if let Some((_, q, s)) = current.as_mut() {
            match side {
                Some(b'q') => *q = Some(stored),
                Some(b's') => *s = Some(stored),
                _ => {}
            }
        }
        true
    })?;
    flush(current.take(), &mut f);
    Ok(next)
}

/// The facts this member node reported last, per case.
pub fn own_reports(store: &dyn imi_store::ReadStore) -> Result<Vec<FactReport>, AppError> {
    let mut out = Vec::new();
    for_each_own_report(store, |r| out.push(r))?;
    Ok(out)
}

/// [`own_reports`] one at a time, in case order, a chunk of rows in memory at once.
pub fn for_each_own_report(
    store: &dyn imi_store::ReadStore,
    mut f: impl FnMut(FactReport),
) -> Result<(), AppError> {
    for_each_row(store, FACTS, FACT_CHUNK, |_, v| {
        if let Ok(r) = ciborium::from_reader(v.as_slice()) {
            f(r);
        }
    })
}

/// A page of [`for_each_own_report`]: the reports whose rows start at key `start` (the empty
/// key: the first), at most `rows` (at least 1) stored rows; returns the key the next page
/// starts at, `None` after the last report.
pub fn own_reports_page(
    store: &dyn imi_store::ReadStore,
    start: &[u8],
    rows: usize,
    mut f: impl FnMut(FactReport),
) -> Result<Option<Vec<u8>>, AppError> {
    let rows = rows.max(1);
    let mut read = 0usize;
    let mut next = None;
    // One read per page: its rows and the first of the next page.
    imi_store::for_each_entry(store, FACTS, start, None, rows.saturating_add(1), |k, v| {
        if read >= rows {
            next = Some(k);
            return false;
        }
        read += 1;
        if let Ok(r) = ciborium::from_reader(v.as_slice()) {
            f(r);
        }
        true
    })?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::{array_len, cbor_array};

    #[test]
    fn the_commission_cases_are_the_same_whatever_the_chunks_they_are_read_in() {
        use super::*;
        use imi_store::{Durability, MemStore, Store, WriteBatch};
        let store = MemStore::new(&[FACTS]);
        let report = |case: &str, side: Side, steps: u32, answered: Option<&str>| StoredReport {
            report: FactReport {
                v: REPORT_VERSION,
                side,
                steps,
                fact: Fact {
                    case: case.to_owned(),
                    area: "PQ".to_owned(),
                    requester: "AT".to_owned(),
                    responder: "DE".to_owned(),
                    sent_at: "2021-03-01T10:00:00Z".to_owned(),
                    accepted_at: None,
                    withdrawn_at: None,
                    answered_at: answered.map(str::to_owned),
                    deadline: None,
                    timeliness: None,
                    efforts: None,
                },
                signed: None,
            },
            received: 1,
        };
        let mut batch = WriteBatch::new();
        let rows = [
            report("c1", Side::Requester, 2, None),
            report("c1", Side::Responder, 2, None),
            report("c2", Side::Responder, 1, None),
            report("c3", Side::Requester, 3, Some("2021-03-02T10:00:00Z")),
            report("c3", Side::Responder, 3, Some("2021-03-05T10:00:00Z")),
            report("c4", Side::Requester, 1, None),
            report("c5", Side::Requester, 4, None),
            report("c5", Side::Responder, 3, None),
        ];
        for r in &rows {
            let mut v = Vec::new();
            ciborium::into_writer(r, &mut v).unwrap();
            batch.put(FACTS, stored_key(&r.report.fact.case, r.report.side), v);
        }
        store.write(batch, Durability::Sync).unwrap();
        let whole = commission_cases(&store).unwrap();
        let names: Vec<&str> = whole.iter().map(|c| c.case.as_str()).collect();
        assert_eq!(names, ["c1", "c2", "c3", "c4", "c5"]);
        assert!(whole[2].flagged(), "c3's sides disagree on the answer");
        assert_eq!(whole[1].one_sided(), Some(Side::Responder));
        for chunk in [1, 2, 3, 7, 8, 9] {
            let mut got = Vec::new();
            commission_cases_in_chunks(&store, chunk, |c| got.push(c)).unwrap();
            assert_eq!(got, whole, "chunks of {chunk}");
        }
        // Pages of any size, each started where the last said, give every case once and
        // never split a case's two rows: with pages of one row, c1, c3 and c5 (two rows
        // each) still come whole, each in a page of its own.
        for rows in [0, 1, 2, 3, 7, 8, 9] {
            let mut got = Vec::new();
            let mut pages = 0;
            let mut start = Vec::new();
            loop {
                pages += 1;
                let next = commission_cases_page(&store, &start, rows, |c| got.push(c)).unwrap();
                match next {
                    Some(k) => {
                        assert!(k > start, "pages of {rows}: a page moved forward");
                        start = k;
                    }
                    None => break,
                }
            }
            assert_eq!(got, whole, "pages of {rows}");
            let expected = match rows {
                0 | 1 => 5,
                2 | 3 => 3,
                _ => 1,
            };
            assert_eq!(pages, expected, "pages of {rows}");
        }
        // A member node's own reports (one row each), in pages.
        let own = MemStore::new(&[FACTS]);
        let mut batch = WriteBatch::new();
        for r in &rows {
            let mut v = Vec::new();
            ciborium::into_writer(&r.report, &mut v).unwrap();
            let key = format!("{}-{:?}", r.report.fact.case, r.report.side);
            batch.put(FACTS, key.into_bytes(), v);
        }
        own.write(batch, Durability::Sync).unwrap();
        let whole = own_reports(&own).unwrap();
        assert_eq!(whole.len(), rows.len());
        for page in [1, 3, 8, 9] {
            let mut got = Vec::new();
            let mut start = Vec::new();
            let mut pages = 0;
            while let Some(k) = own_reports_page(&own, &start, page, |r| got.push(r)).unwrap() {
                start = k;
                pages += 1;
            }
            assert_eq!(got, whole, "pages of {page}");
            assert_eq!(pages + 1, rows.len().div_ceil(page), "pages of {page}");
        }
    }

    #[test]
    fn array_heads_are_written_and_read_as_ciborium_does() {
        for n in [0usize, 1, 23, 24, 64, 255, 256, 65_535, 65_536] {
            let items: Vec<Vec<u8>> = (0..n)
                .map(|i| vec![u8::try_from(i % 24).unwrap()])
                .collect();
            let ours = cbor_array(items.iter());
            let mut theirs = Vec::new();
            let values: Vec<u8> = (0..n).map(|i| u8::try_from(i % 24).unwrap()).collect();
            // A Vec<u8> is a CBOR byte string to serde; a list of small integers is what the
            // items above encode.
            let as_ints: Vec<u32> = values.iter().map(|&v| u32::from(v)).collect();
            ciborium::into_writer(&as_ints, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "{n} items");
            assert_eq!(array_len(&ours), Some(n as u64));
        }
        assert_eq!(array_len(&[]), None);
        assert_eq!(array_len(&[0x9f, 0x01, 0xff]), None, "indefinite length");
        assert_eq!(array_len(&[0xa1, 0x01, 0x02]), None, "a map");
        assert_eq!(array_len(&[0x98]), None, "count cut off");
    }
}
