//! The kernel's settings (`[engine]` in a node's config file).
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Engine settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Largest envelope accepted or sent, bytes.
    pub max_envelope_bytes: usize,
    /// How far in the future a creation time may lie, ms.
    pub max_future_skew_ms: u64,
    /// Envelopes in flight per destination.
    pub delivery_window: usize,
    /// Most envelopes of one destination sent together: one request, answered with all their
    /// receipts, where the destination speaks `/imi/envelopes/2` (one envelope per request
    /// otherwise), and their receipts stored in one commit. `1` sends each on its own.
    pub delivery_batch: usize,
    /// Bytes of just-committed envelopes kept in memory for their delivery tasks, which then
    /// send them without reading them back from the store (default 512 KiB). An envelope that
    /// does not fit (a backlog, a large body) is read back from the store when its turn
    /// comes.
    pub fresh_envelope_bytes: usize,
    /// First retry delay, ms.
    pub backoff_initial_ms: u64,
    /// Largest retry delay, ms.
    pub backoff_max_ms: u64,
    /// Most jobs in one group commit.
    pub max_commit_group: usize,
    /// Inbound envelopes processed concurrently.
    pub max_inbound_concurrency: usize,
    /// Capacity of the committer's queue.
    pub commit_queue: usize,
    /// Under load, how long the committer may wait for more commits to share one fsync, µs
    /// (0 disables). Never applies to an isolated commit.
    pub group_commit_linger_us: u64,
    /// Group size at which the committer stops lingering.
    pub group_commit_target: usize,
    /// Inbound envelopes one peer may have in process at once (of
    /// `max_inbound_concurrency`); more are answered `quota_exceeded` at once, without
    /// decoding. Keep it well above the senders' `delivery_window` (256): a receipt reaches
    /// the sender a moment before the receiver frees the slot, and an honest sender must
    /// never meet this limit.
    pub max_inbound_per_peer: usize,
    /// While more than one peer is sending (an envelope from each arrived within the last
    /// second), the envelopes one peer may have in verification and commit at once; the rest
    /// of its `max_inbound_per_peer` wait in its queue, and the others' envelopes pass them
    /// round robin. A lone sender is not limited by it. Keeps a flooding peer's work from
    /// filling the committer's groups ahead of everyone else's.
    pub inbound_share_contended: usize,
    /// Envelope bytes accepted from one peer per UTC day; beyond it envelopes are refused
    /// `quota_exceeded` (the sender retries the next day). `0` = no limit.
    pub peer_bytes_per_day: u64,
    /// The operator's per-peer overrides of `peer_bytes_per_day`: node id → bytes (`0` = no
    /// limit), e.g. `{ EU = 0, DE = 8589934592 }`.
    pub peer_bytes_per_day_overrides: BTreeMap<String, u64>,
    /// Periodic jobs whose interval differs from the application's default: job name
    /// (`redial`, `checkpoint`, `retention`, `fact-report`, …) → interval in ms; `0` turns
    /// the job's schedule off (it still runs on demand, e.g. `imi-node audit checkpoint`).
    /// Tests use this to run jobs only when they say so.
    pub job_interval_ms: BTreeMap<String, u64>,
    /// How many members witness this node's log: its checkpoints go to the `witnesses`
    /// members that follow this node in the ring of the federation's member ids (sorted,
    /// wrapping round), fewer when the federation has fewer other members; `0` = every
    /// other member. Each member so witnesses as many logs as witness its own, and the
    /// checkpoint traffic grows with the federation's size, not with its square.
    pub witnesses: usize,
    /// Addresses to dial a peer at instead of the ones the trust list gives: node id →
    /// multiaddresses. Set from the node config's `[network] peer_addresses` (an egress
    /// proxy, a NAT, the simulator's fault-injecting proxies), not an `[engine]` key.
    #[serde(skip)]
    pub peer_addresses: BTreeMap<imi_protocol::NodeId, Vec<String>>,
}

/// The default daily quota of envelope bytes per peer: 1 GiB (a year of a large member
/// state's requests with attachments is far below it per day; 40 × 1 MB of diagnostics is
/// not).
pub const DEFAULT_PEER_BYTES_PER_DAY: u64 = 1 << 30;

/// The default number of witnesses of a node's log (`engine.witnesses`): an evidence
/// bundle needs one cosignature unless its verifier asks for more, and eight independent
/// members are a quorum no single operator controls.
pub const DEFAULT_WITNESSES: usize = 8;

impl EngineConfig {
    /// The daily byte quota of `peer` (`None`: no limit), with the operator's override.
    pub fn bytes_per_day_of(&self, peer: imi_protocol::NodeId) -> Option<u64> {
        let q = self
            .peer_bytes_per_day_overrides
            .get(peer.as_str())
            .copied()
            .unwrap_or(self.peer_bytes_per_day);
        (q > 0).then_some(q)
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_envelope_bytes: imi_protocol::DEFAULT_MAX_ENVELOPE_BYTES,
            max_future_skew_ms: 5 * 60 * 1000,
            delivery_window: 256,
            delivery_batch: 16,
            fresh_envelope_bytes: crate::fresh::DEFAULT_CAPACITY_BYTES,
            backoff_initial_ms: 200,
            backoff_max_ms: 30_000,
            max_commit_group: 512,
            max_inbound_concurrency: 1024,
            commit_queue: 4096,
            group_commit_linger_us: 500,
            group_commit_target: 32,
            max_inbound_per_peer: 512,
            inbound_share_contended: 16,
            peer_bytes_per_day: DEFAULT_PEER_BYTES_PER_DAY,
            peer_bytes_per_day_overrides: BTreeMap::new(),
            job_interval_ms: BTreeMap::new(),
            witnesses: DEFAULT_WITNESSES,
            peer_addresses: BTreeMap::new(),
        }
    }
}
