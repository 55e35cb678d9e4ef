//! `imi-audit`: auditable trails. Pure: no node, no network, no database.
//!
//! * [`merkle`]: RFC 6962 / RFC 9162 hashing, inclusion and consistency proofs (from
//!   `imi-protocol`, whose group receipts use the same tree).
//! * [`note`]: checkpoints as C2SP signed notes with Ed25519 signatures; witness
//!   cosignatures (`cosignature/v1`).
//! * [`leaf`]: what a node's log records (hashes and metadata, never content).
//! * [`bundle`]: evidence bundles and the offline verifier (`imi-node audit verify`).

pub mod bundle;
pub mod leaf;
pub use imi_protocol::merkle;
pub mod note;
