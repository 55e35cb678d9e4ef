//! Trust-list propagation (kind `imi.trust-list`): a newer governance-signed trust list
//! that one node accepted (the operator's `imi-node federation push`) travels to every
//! other member over the substrate, so the operator pushes it once.
//!
//! * **Sending.** [`propagate`]: one envelope whose body is the signed trust list as issued
//!   (COSE_Sign1 bytes), to every member of the new list but this node. The durable outbox
//!   keeps retrying a member that is down. Receivers do not forward it again.
//! * **Receiving.** [`TrustApp::apply`] verifies the governance signature and compares
//!   with the list in force. Newer: accepted and kept in `trust_offers` until the
//!   `trust-list` job adopts it ([`imi_engine::Engine::update_trust_list`]: persisted,
//!   swapped in, the allow list updated). The same list again: accepted, nothing to do.
//!   Older (a rollback or a replay) or another list under the same version: rejected
//!   (`{"application": "stale_trust_list"}`, `conflicting_trust_list`), counted in
//!   `imi_trust_list_offers_refused_total{peer, code}` and logged as an alarm; a bad
//!   signature is `bad_trust_list`. A refusal changes nothing.
use crate::error::AppError;
use imi_engine::metrics::PeerCodeLabel;
use imi_engine::{Application, Engine, Inbound, PeriodicJob, Txn};
use imi_protocol::{Draft, Kind, NodeId, RejectCode, TrustList};
use imi_store::{Column, WriteBatch};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Trust lists received and not yet adopted: version (8, BE) → signed bytes.
pub const TRUST_OFFERS: Column = "trust_offers";

/// How often the `trust-list` job adopts a received list.
pub const ADOPT_INTERVAL: Duration = Duration::from_secs(1);

fn app_code(code: &str) -> RejectCode {
    RejectCode::Application(code.into())
}

/// The trust-list application.
pub struct TrustApp {
    governance: [u8; 32],
    refused: Family<PeerCodeLabel, Counter>,
}

impl TrustApp {
    /// The application, verifying lists with the governance public key.
    pub fn new(governance: [u8; 32]) -> Self {
        Self {
            governance,
            refused: Family::default(),
        }
    }

    /// Lists `peer` offered that were refused with `code` (`imi_trust_list_offers_refused`).
    pub fn refused(&self, peer: NodeId, code: &str) -> u64 {
        self.refused
            .get_or_create(&PeerCodeLabel {
                peer: peer.to_string(),
                code: code.to_owned(),
            })
            .get()
    }

    fn refuse(&self, from: NodeId, code: &str, detail: &str) -> RejectCode {
        self.refused
            .get_or_create(&PeerCodeLabel {
                peer: from.to_string(),
                code: code.to_owned(),
            })
            .inc();
        tracing::error!(peer = %from, code, detail, "TRUST LIST ALARM: a member offered a trust list this node refuses");
        app_code(code)
    }
}

impl Application for TrustApp {
    fn name(&self) -> &'static str {
        "trust-list"
    }

    fn kinds(&self) -> &'static [&'static str] {
        &[Kind::TRUST_LIST]
    }

    fn columns(&self) -> &'static [Column] {
        &[TRUST_OFFERS]
    }

    fn jobs(&self) -> Vec<PeriodicJob> {
        let governance = self.governance;
        vec![PeriodicJob::new(
            "trust-list",
            ADOPT_INTERVAL,
            true,
            move |engine: Engine| async move { adopt(&engine, &governance).await.map(|_| ()) },
        )]
    }

    fn apply(&self, msg: &Inbound<'_>, txn: &mut Txn<'_>) -> Result<(), RejectCode> {
        let from = msg.header.from;
        if msg.header.case.is_some() {
            return Err(app_code("unexpected_case"));
        }
        let offered = TrustList::verify(msg.body, &self.governance)
            .map_err(|e| self.refuse(from, "bad_trust_list", &e.to_string()))?;
        let held = msg.trust;
        if offered.version == held.version && offered == *held {
            // The list in force, again: nothing to do.
            return Ok(());
        }
        if offered.version == held.version {
            return Err(self.refuse(
                from,
                "conflicting_trust_list",
                &format!("another list under version {}", held.version),
            ));
        }
        if offered.version < held.version {
            return Err(self.refuse(
                from,
                "stale_trust_list",
                &format!(
                    "version {} offered, {} in force",
                    offered.version, held.version
                ),
            ));
        }
        let key = offered.version.to_be_bytes().to_vec();
        match txn.get(TRUST_OFFERS, &key)? {
            Some(kept) if kept != msg.body => Err(self.refuse(
                from,
                "conflicting_trust_list",
                &format!("another list under version {}", offered.version),
            )),
            Some(_) => Ok(()),
            None => {
                txn.put(TRUST_OFFERS, key, msg.body.to_vec());
                tracing::info!(peer = %from, version = offered.version, "received a newer trust list");
                Ok(())
            }
        }
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "imi_trust_list_offers_refused",
            "Trust lists members offered that this node refused (older, conflicting, badly signed), by member and code",
            self.refused.clone(),
        );
    }
}

/// Adopts the newest received trust list, if it is newer than the one in force; removes
/// every offer it has dealt with. Returns the version adopted.
pub async fn adopt(engine: &Engine, governance: &[u8; 32]) -> Result<Option<u64>, AppError> {
    let offers = engine.reader().range(TRUST_OFFERS, &[], None, usize::MAX)?;
    let Some((_, newest)) = offers.last() else {
        return Ok(None);
    };
    let adopted = if TrustList::verify(newest, governance)
        .is_ok_and(|t| t.version > engine.trust_list().version)
    {
        match engine.update_trust_list(newest.clone(), governance).await {
            Ok(v) => Some(v),
            Err(e) => {
                // Refused (the engine counts and logs why, e.g. `not_listed`): not retried.
                tracing::error!(error = %e, "a received trust list was not adopted");
                None
            }
        }
    } else {
        None
    };
    let mut batch = WriteBatch::new();
    for (k, _) in offers {
        batch.delete(TRUST_OFFERS, k);
    }
    engine.write(batch, imi_store::Durability::Sync).await?;
    Ok(adopted)
}

/// Sends the signed trust list `bytes` (just accepted by this node) to every other member
/// it lists. Returns the number of members it goes to.
pub async fn propagate(engine: &Engine, bytes: Vec<u8>) -> Result<usize, AppError> {
    let me = engine.node();
    let to: Vec<NodeId> = engine
        .trust_list()
        .members
        .iter()
        .map(|m| m.node)
        .filter(|n| *n != me)
        .collect();
    if to.is_empty() {
        return Ok(0);
    }
    let n = to.len();
    engine
        .send(Draft {
            kind: Kind::new(Kind::TRUST_LIST).map_err(|e| AppError::Internal(e.to_string()))?,
            step: None,
            authority: engine.operations_authority()?,
            to,
            case: None,
            prev: Vec::new(),
            body: bytes,
        })
        .await?;
    tracing::info!(members = n, "trust list sent to the members");
    Ok(n)
}
