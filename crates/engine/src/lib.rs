//! `imi-engine`: the messaging kernel of a national node. It knows no application: it
//! depends on `imi-protocol`, `imi-store`, `imi-network` and `imi-audit` (for the log) only,
//! never on `imi-domain` or `imi-scoreboard`.
//!
//! The path of a message:
//!
//! * **Sending** ([`Engine::send`], [`Engine::local_step`]): the draft is sealed and signed
//!   (on a blocking thread), then the committer ([`commit`]) writes the envelope, its log
//!   leaf and one outbox entry per recipient in one atomic, synced batch. Each destination
//!   has a delivery task ([`delivery`]) that sends the oldest entries first, several in
//!   flight, verifies each signed receipt, stores it (with its log leaf) and removes the
//!   entry; failures are retried with capped exponential backoff and jitter.
//! * **Receiving** ([`inbound`]): size check → decode → verify against the sender's key
//!   valid at creation time → check this node is a recipient → de-duplicate by message id →
//!   decrypt → the [`Application`] that handles the kind → one atomic commit (grouped with
//!   other messages into one fsync) → signed receipt, sent only after the commit is
//!   durable. Every rejection is a signed `rejected` receipt with a code and changes no
//!   state.
//!
//! Applications plug in through [`Application`]: the kinds they handle and send, whether
//! their traffic is logged, the columns they own, their periodic jobs. The engine spawns
//! its tasks and those jobs on one task tracker and joins them at shutdown
//! ([`EngineTasks::join`]).
//!
//! Modules, lowest first (each uses only modules above it): [`error`], [`config`],
//! [`keys`], [`metrics`], [`apply`] (what an application sees), [`log`], [`checkpoint`],
//! `outbox`, [`inbox`], [`trust`], [`commit`], `shared`, [`delivery`],
//! [`inbound`], [`engine`].

pub mod apply;
pub mod checkpoint;
pub mod commit;
pub mod config;
pub mod delivery;
pub mod engine;
pub mod error;
mod fresh;
pub mod inbound;
pub mod inbox;
pub mod keys;
pub mod log;
pub mod metrics;
mod outbox;
pub mod prune;
mod shared;
mod tail;
pub mod trust;

pub use apply::{Inbound, LocalCtx, LocalFn, LocalOutcome, Refusal, Txn, read_counter};
pub use config::{DEFAULT_WITNESSES, EngineConfig};
pub use engine::{
    Application, Applications, Engine, EngineTasks, JobError, JobFn, PeriodicJob, REDIAL_INTERVAL,
    Start, witness_ring,
};
pub use error::EngineError;
pub use inbox::InboxRecord;
pub use keys::TRUST_LIST_KEY;
pub use metrics::Metrics;
pub use shared::{DeliveryReport, PeerProtocol};
pub use trust::{Identity, allowed_peers, libp2p_keypair, peer_id_of, settle_trust_list};
