//! Integration tests of `imi-engine`: real engines in one process, each with RocksDB in a
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
//! * [`receipts`]: where receipts are stored on both sides; rejected envelopes go to `dead`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "engine/cases.rs"]
mod cases;
#[path = "engine/facts.rs"]
mod facts;
#[path = "engine/retention.rs"]
mod retention;
#[path = "engine/witness.rs"]
mod witness;
// The modules live in a subdirectory so that cargo does not take each for a test binary.
#[path = "engine/delivery.rs"]
mod delivery;
#[path = "engine/hostile.rs"]
mod hostile;
#[path = "engine/receipts.rs"]
mod receipts;
#[path = "engine/rig.rs"]
mod rig;
