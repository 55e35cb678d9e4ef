//! Integration tests of the kernel (`imi-engine`) and the applications (`imi-apps`): real
//! engines in one process, each with RocksDB in a
//! temporary directory and libp2p on loopback, talking to each other (see [`rig`]).
//!
//! * [`delivery`]: exactly-once delivery, group commit, receiver down, sender restart.
//! * [`hostile`]: hostile inputs on the wire are rejected with signed receipts and change nothing.
//! * [`cases`]: request steps from another node go through the same state machine; invalid
//!   ones are rejected with their code and change nothing.
//! * [`facts`]: indicator facts reach the Commission node and carry nothing personal; a
//!   falsified side is flagged.
//! * [`witness`]: the transparency log, checkpoints and cosignatures; split views,
//!   rollbacks and inconsistent proofs are refused with an alarm.
//! * [`retention`]: blocking and erasure on schedule; no trace in the files; no
//!   resurrection by a replayed envelope or a restored backup.
//! * [`lifecycle`]: periodic jobs run on schedule or on demand and none outlives the engine.
//! * [`quotas`]: per-peer daily byte quota (persisted, with the operator's override) and
//!   fair handler slots under a flood.
//! * [`directory`]: the replicated directory: changes reach every node, forged updates are
//!   refused, duplicates and reorders converge byte for byte, a lost replica catches up by sync.
//! * [`notifications`]: hostile notifications and acknowledgements are refused and change
//!   nothing; a valid one is stored for the authorities named, encrypted at rest.
//! * [`repositories`]: entries from off the access list or not from the owner are refused.
//! * [`alerts`]: forged grants and forwards are refused; only the authorities granted read
//!   the identity.
//! * [`receipts`]: where receipts are stored on both sides; rejected envelopes go to `dead`.
//! * [`trust`]: trust lists offered by a member: the newer adopted, the older, conflicting
//!   or forged refused with their codes and counted.
//! * [`versions`]: a member below the minimum protocol version is refused until it upgrades.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "apps/alerts.rs"]
mod alerts;
#[path = "apps/cases.rs"]
mod cases;
#[path = "apps/facts.rs"]
mod facts;
#[path = "apps/lifecycle.rs"]
mod lifecycle;
#[path = "apps/retention.rs"]
mod retention;
#[path = "apps/witness.rs"]
mod witness;
// The modules live in a subdirectory so that cargo does not take each for a test binary.
#[path = "apps/delivery.rs"]
mod delivery;
#[path = "apps/directory.rs"]
mod directory;
#[path = "apps/hostile.rs"]
mod hostile;
#[path = "apps/notifications.rs"]
mod notifications;
#[path = "apps/quotas.rs"]
mod quotas;
#[path = "apps/receipts.rs"]
mod receipts;
#[path = "apps/repositories.rs"]
mod repositories;
#[path = "apps/rig.rs"]
mod rig;
#[path = "apps/trust.rs"]
mod trust;
#[path = "apps/usage.rs"]
mod usage;
#[path = "apps/versions.rs"]
mod versions;
