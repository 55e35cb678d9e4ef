//! The one-to-many traffic: notifications and alerts, planned in advance like the requests
//! (deterministic for scenario, scale, seed and catalogue; drawn from streams of their own,
//! so the requests' plan, and with it the calibration, is the same with or without them).
//!
//! * **How many**: `traffic.notifications_per_year` and `traffic.alerts_per_year` (IMI 2023:
//!   43,948 and 5,538) times the scale, for the sending window; sent at office hours, working
//!   days busier, like the requests.
//! * **Who sends**: a member state drawn in proportion to its profile's `send` share, as its
//!   national coordinator `<CC>-NC`.
//! * **Notifications**: a notification type of the catalogue, uniformly; to 1 to 5 other
//!   member states (their `<CC>-NC`), and to the Commission when the type requires it (types
//!   that require it are left out of a run without `EU`); every required field filled.
//! * **Alerts**: 9 in 10 of the professional-qualification type to every other member state
//!   (a health profession), 1 in 10 of the Services Directive type to 1 to 3 member states
//!   concerned and the Commission (without `EU`: none of those). One in ten is reported
//!   five days after the decision, so the nodes mark it late.

use super::planner::{answer_value, sending_times, stream_of};
use super::scenario::Scenario;
use anyhow::Result;
use imi_domain::catalogue::{Catalogue, CommissionRule, ProcedureKind};
use imi_protocol::NodeId;
use imi_protocol::dates::Date;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const DAY_MS: u64 = 86_400_000;
/// The health professions alerts name (vocabulary codes).
const PROFESSIONS: [&str; 5] = [
    "PROF-DOCTOR",
    "PROF-NURSE",
    "PROF-DENTIST",
    "PROF-MIDWIFE",
    "PROF-PHARMACIST",
];

/// Notification or alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastKind {
    /// `POST /api/v1/notifications`.
    Notification,
    /// `POST /api/v1/alerts`.
    Alert,
}

/// One notification or alert, as the sender's coordinator will post it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedBroadcast {
    /// 0.. in sending order.
    pub seq: u64,
    /// Simulated unix ms when it is sent.
    pub at_ms: u64,
    /// Notification or alert.
    pub kind: BroadcastKind,
    /// The sending country.
    pub sender: NodeId,
    /// Its authority (`<CC>-NC`).
    pub authority: String,
    /// The API request body.
    pub body: Value,
    /// An alert posted more than three days after its decision.
    pub late: bool,
}

impl PlannedBroadcast {
    /// The API path it is posted to.
    pub fn path(&self) -> &'static str {
        match self.kind {
            BroadcastKind::Notification => "/api/v1/notifications",
            BroadcastKind::Alert => "/api/v1/alerts",
        }
    }
}

/// Picks `k` distinct members of `from`, in `NodeId` order.
fn some_of(from: &[NodeId], k: usize, rng: &mut ChaCha8Rng) -> Vec<NodeId> {
    let mut v: Vec<NodeId> = from
        .choose_multiple(rng, k.min(from.len()))
        .copied()
        .collect();
    v.sort();
    v
}

/// Every notification and alert of the run, in sending order.
pub fn plan_broadcasts(
    s: &Scenario,
    scale: f64,
    seed: u64,
    catalogue: &Catalogue,
) -> Result<Vec<PlannedBroadcast>> {
    let nationals = s.nationals();
    if nationals.len() < 2 {
        return Ok(Vec::new());
    }
    let with_eu = s.members().contains(&NodeId::EU);
    let n_notifications = s.per_window(s.traffic().notifications_per_year, scale);
    let n_alerts = s.per_window(s.traffic().alerts_per_year, scale);
    let total = n_notifications + n_alerts;
    if total == 0 {
        return Ok(Vec::new());
    }
    let times = sending_times(s, total, &mut stream_of(seed, 5))?;
    let mut rng = stream_of(seed, 6);
    // Which of the time-ordered slots are alerts: spread evenly.
    let alert_slots = super::planner::spread(total, n_alerts, &mut rng);
    let weights: Vec<f64> = nationals.iter().map(|n| s.profile(*n).send).collect();
    let notification_types: Vec<_> = catalogue
        .areas()
        .iter()
        .flat_map(|a| a.procedures())
        .filter(|p| p.kind() == ProcedureKind::Notification)
        .filter(|p| with_eu || p.commission() != CommissionRule::Required)
        .collect();
    let alert_type = |code: &str| {
        catalogue
            .procedure(code)
            .filter(|p| p.kind() == ProcedureKind::Alert)
    };
    let (pq, sd) = (
        alert_type("PQ-P02"),
        alert_type("SD-P02").filter(|_| with_eu),
    );
    let mut out = Vec::with_capacity(total);
    for (seq, (at_ms, is_alert)) in times.into_iter().zip(alert_slots).enumerate() {
        let sender = *nationals
            .iter()
            .zip(&weights)
            .collect::<Vec<_>>()
            .choose_weighted(&mut rng, |(_, w)| **w)
            .map(|(n, _)| *n)
            .unwrap_or(&nationals[0]);
        let others: Vec<NodeId> = nationals.iter().copied().filter(|n| *n != sender).collect();
        let authority = format!("{sender}-NC");
        let (kind, body, late) = if is_alert {
            let services = rng.random_bool(0.1) && sd.is_some();
            let Some(p) = (if services { sd } else { pq }) else {
                continue;
            };
            let late = rng.random_bool(0.1);
            let decided_ms = if late { at_ms - 5 * DAY_MS } else { at_ms };
            let fields: Vec<Value> = p
                .question_codes()
                .iter()
                .filter_map(|q| catalogue.question(q))
                .map(|q| answer_value(q, &mut rng))
                .collect();
            let mut body = json!({
                "type": p.code(),
                "fields": fields,
                "decided": Date::of_ms(decided_ms).to_string(),
                "professional": {"name": format!("Simulated professional {seq}")},
            });
            if services {
                let k = rng.random_range(1..=3);
                body["member_states"] = json!(
                    some_of(&others, k, &mut rng)
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                );
            } else {
                body["profession"] = json!(PROFESSIONS[rng.random_range(0..PROFESSIONS.len())]);
            }
            (BroadcastKind::Alert, body, late)
        } else {
            let Some(p) = notification_types.choose(&mut rng) else {
                continue;
            };
            let k = rng.random_range(1..=5);
            let mut recipients: Vec<Value> = some_of(&others, k, &mut rng)
                .iter()
                .map(|n| json!({"country": n.to_string(), "authorities": [format!("{n}-NC")]}))
                .collect();
            if p.commission() == CommissionRule::Required {
                recipients.push(json!({"country": "EU", "authorities": ["EU-COMMISSION"]}));
            }
            let fields: Vec<Value> = p
                .question_codes()
                .iter()
                .filter(|q| p.required(q))
                .filter_map(|q| catalogue.question(q))
                .map(|q| answer_value(q, &mut rng))
                .collect();
            let body = json!({"type": p.code(), "recipients": recipients, "fields": fields});
            (BroadcastKind::Notification, body, false)
        };
        out.push(PlannedBroadcast {
            seq: seq as u64,
            at_ms,
            kind,
            sender,
            authority,
            body,
            late,
        });
    }
    Ok(out)
}
