//! # imi-network: size-checked byte frames between allowed peers
//!
//! The network never decides. It moves opaque, size-checked byte frames between national nodes
//! that are on the trust list, and reports what happened; `engine` decides what the bytes mean.
//!
//! ## Shape
//!
//! ```text
//!   engine ──NetworkClient (clone freely)──► bounded mpsc<Command> ──►┐
//!     ▲         each command carries a oneshot for its reply          │
//!     │                                                               ▼
//!     └──────── bounded mpsc<NetworkEvent> ◄──────────── swarm task (owns the libp2p Swarm)
//! ```
//!
//! * [`spawn`] builds the [`Swarm`](libp2p::Swarm) (TCP with `nodelay`, Noise, Yamux) and moves
//!   it into **one task**, the only code that touches it. The task `select!`s over the
//!   cancellation token, commands, and swarm events, and stops when the token is cancelled.
//! * [`NetworkClient`] is a cheap, cloneable handle. Each method sends a command over a bounded
//!   channel and awaits a oneshot reply. When the task is gone every method returns
//!   [`NetworkError::ShutDown`].
//! * Inbound requests, connection changes and refusals arrive as [`NetworkEvent`]s on a bounded
//!   channel. While that channel is full the task stops polling the swarm (backpressure reaches
//!   the remote peers through the transport) but keeps serving commands, so a consumer that
//!   answers a request with [`NetworkClient::respond`] before reading the next event cannot
//!   deadlock.
//!
//! ## Protocol
//!
//! One request-response protocol, [`PROTOCOL`]: a request frame, then a response frame, on a
//! fresh Yamux stream. A frame is a `u32` big-endian length and the body. Both directions are
//! limited to [`NetworkConfig::max_message_bytes`]:
//!
//! * [`NetworkClient::request`] and [`NetworkClient::respond`] refuse larger bodies with
//!   [`NetworkError::TooLarge`] before anything is sent;
//! * an inbound request declared larger than the limit (but at most four times it) is read and
//!   discarded in 64 KiB chunks and delivered as [`InboundPayload::Oversized`], so the engine can
//!   log it and still answer; anything larger drops the stream;
//! * a response larger than the requester's limit fails the request.
//!
//! Identify and ping run alongside for diagnostics and liveness.
//!
//! ## Batches
//!
//! A second request-response protocol, [`BATCH_PROTOCOL`], carries several requests in one
//! exchange: the request frame's body is a [`batch`] of envelopes, the response's a batch of
//! their answers, one per request, in order. It saves, per request, a stream, its
//! negotiation, a timer and a few system calls on each side. It is optional: a node serves
//! and announces it (through identify's protocol list) when [`NetworkConfig::batching`] is
//! on, and sends batches only to peers that announced it on their current connection. The
//! answers to a batch may be group receipts (`imi_protocol::receipt`): items arrive marked
//! `group_receipts`. The first version of the protocol, [`LEGACY_BATCH_PROTOCOL`], is the
//! same exchange answered with single receipts; it is served for older peers, never sent.
//!
//! * Sending: requests that are queued for one peer when the task hands them to libp2p go
//!   together, up to [`batch::MAX_BATCH_ITEMS`] (fewer if `max_message_bytes` could not hold
//!   as many 4 KiB answers) and [`BATCH_MAX_BYTES`]; a request above
//!   [`BATCH_ITEM_MAX_BYTES`], or alone in the queue, goes on [`PROTOCOL`].
//!   [`NetworkClient::request_many`] queues its requests together. A batch counts its
//!   requests in the per-peer window (half of `max_concurrent_streams`), so batching never
//!   puts more of a peer's requests (or bytes) in flight than single requests would, and
//!   fails as a whole (timeout, closed connection, a malformed
//!   response): each of its requests then gets that error.
//! * Receiving: each item becomes a [`NetworkEvent::InboundRequest`] with an [`InboundId`]
//!   of its own, counted against the unanswered-bytes budget like a request of its own (a
//!   batch over the budget is shed whole); once every item is answered with
//!   [`NetworkClient::respond`], the answers go back in one frame. An item whose event is
//!   dropped, or a batch that times out, leaves the whole batch unanswered. A batch that
//!   does not decode ([`batch::decode`]) or is oversized closes its stream unanswered.
//!
//! [`NetworkClient::batches`] counts batches and the requests they carried.
//!
//! ## Protocol versions
//!
//! Every node announces the IMI protocol version it speaks through identify, as
//! `/imi/<version>.0.0` ([`NetworkConfig::protocol_version`]). When a peer's identify arrives,
//! its version is the number between `/imi/` and the first `.`; if that is below
//! [`NetworkConfig::min_peer_protocol_version`] or does not parse, the peer is refused: its
//! connections are closed, its requests are dropped unanswered, requests to it fail with
//! [`NetworkError::ProtocolTooOld`] without dialing, and [`NetworkEvent::ProtocolRefused`] is
//! reported on every refusal. [`NetworkClient::dial_all`] still dials it, so a peer that was
//! upgraded is accepted as soon as it announces a version that is high enough
//! ([`NetworkEvent::PeerIdentified`]). This is an operational guard for rolling upgrades, not
//! a security boundary: envelopes carry their own signed version, which the engine checks.
//!
//! ## Who may connect
//!
//! Only peers on the allow list ([`spawn`]'s `allowed`, replaced by
//! [`NetworkClient::set_allowed`]) can hold a connection, in either direction. Gating happens
//! right after the Noise handshake, when the remote's [`PeerId`] is proven; refused connections
//! are logged at `warn` and reported as [`NetworkEvent::Refused`]. Requests to peers that are not
//! allowed fail with [`NetworkError::NotAllowed`] without dialing. Only the addresses given with
//! [`AllowedPeer`] are dialed; addresses peers advertise about themselves are ignored.
//!
//! ## Bounds
//!
//! Connections per peer ([`NetworkConfig::max_connections_per_peer`]) and handshakes in
//! progress ([`NetworkConfig::max_pending_incoming`]) are limited; so are the bytes of inbound
//! requests received and not yet answered, in all and per peer
//! ([`NetworkConfig::max_pending_inbound_bytes`]): a request beyond them is dropped unanswered
//! (the sender retries) and reported as [`NetworkEvent::Shed`]. Commands, events, outstanding
//! requests (queued plus in flight, at most
//! [`NetworkConfig::command_buffer`]), concurrent streams per connection
//! ([`NetworkConfig::max_concurrent_streams`]; at most half of them are used for our own
//! requests to one peer, the rest queue in the task), frame sizes, and request lifetimes
//! ([`NetworkConfig::request_timeout`], counted once in the queue and once on the wire) are all
//! bounded.
//!
//! ## Read pacing
//!
//! Refusing a flood after reading it still costs the receiver per request (reading, Noise
//! decryption, a stream, and whatever the engine does to refuse it), so a peer that sends
//! faster than its share could take the node's CPU and disk from the others however its
//! requests are then treated. Every connection's reads therefore pass through a pacer below
//! Noise. Once the handshake has proven a connection's peer, all of that peer's connections
//! draw on one token bucket (before that, the connection has its own). While another peer
//! has sent anything within the last second ([`CONTENTION_WINDOW`]), a peer is read at no more
//! than [`NetworkConfig::contended_read_bytes_per_second`], with a burst of a 64th of a
//! second's bytes (at least [`MIN_BURST_BYTES`]). What is not read yet stays in the kernel's
//! socket buffers and TCP flow control stops the sender: the excess costs nothing. A peer
//! alone is read at full speed. [`NetworkClient::read_pacing`] reports the pauses.
//! Connections are matched to their peer by the remote socket address of the transport's
//! endpoint; one dialed by name (`/dns4/…`) keeps its own bucket.
//!
//! ## Socket writes
//!
//! Yamux flushes after every frame it writes, and each flush would be a Noise frame and a
//! `send` of its own: the stream's protocol proposal, the body and the stream's close on one
//! side, the echo, the answer and the close on the other. Between Noise and Yamux the
//! connection's flushes wait for its next read, which Yamux's loop reaches once no stream has
//! a frame queued, or for its close (`coalesce`), so what one poll of a connection writes
//! leaves in one `send`. [`NetworkClient::socket_writes`] counts the writes.

pub mod batch;
mod coalesce;
pub mod codec;
mod pacing;
mod task;

pub use pacing::{CONTENTION_WINDOW, MIN_BURST_BYTES, ReadPacing};

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use libp2p::request_response::InboundRequestId;
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// The request-response protocol name spoken between nodes.
pub const PROTOCOL: &str = "/imi/envelope/1";

/// The request-response protocol that carries several envelopes in one exchange (see
/// [Batches](crate#batches)), whose answers may be group receipts. Optional: spoken only
/// with peers that announce it.
pub const BATCH_PROTOCOL: &str = "/imi/envelopes/2";

/// The first batch protocol: the same exchange, answered with single receipts only. Served
/// (for peers that do not speak [`BATCH_PROTOCOL`]) and never sent: a peer that announces
/// only it gets each envelope on its own, on [`PROTOCOL`].
pub const LEGACY_BATCH_PROTOCOL: &str = "/imi/envelopes/1";

/// Requests larger than this are never put in a batch: they go alone on [`PROTOCOL`]. A
/// batch saves a fixed cost per request, which an envelope this large dwarfs with its
/// per-byte costs; and a batch of large envelopes lands on the receiver all at once, a burst
/// that other peers' envelopes wait behind (measured with `imi-sim bench flood`: 16 KiB
/// envelopes in batches doubled the other peer's added tail latency).
pub const BATCH_ITEM_MAX_BYTES: usize = 8 * 1024;

/// Most bytes of one batch body (it must also fit [`NetworkConfig::max_message_bytes`]).
pub const BATCH_MAX_BYTES: usize = 256 * 1024;

/// The largest answer one batch item is expected to get (a receipt is at most 4 KiB): a batch
/// holds at most `max_message_bytes / (4 + RESPONSE_ITEM_MAX_BYTES)` items, so that its
/// response fits the limit.
pub const RESPONSE_ITEM_MAX_BYTES: usize = 4096;

/// Default limit for one request or response body: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Default [`NetworkConfig::contended_read_bytes_per_second`]: 1 MiB/s.
pub const DEFAULT_CONTENDED_READ_BYTES_PER_SECOND: u64 = 1024 * 1024;

/// Largest `max_message_bytes` the `u32` length prefix can express.
const MAX_FRAME_LIMIT: usize = u32::MAX as usize;

/// Configuration of the network task.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Limit for one request or response body, in bytes (default 4 MiB).
    pub max_message_bytes: usize,
    /// How long a request may take on the wire, and separately how long it may wait in the
    /// local queue (default 30 s). Also bounds how long an inbound request waits for
    /// [`NetworkClient::respond`].
    pub request_timeout: Duration,
    /// Connections without open streams are closed after this long (default 300 s).
    pub idle_connection_timeout: Duration,
    /// Concurrent request-response streams per connection, inbound plus outbound
    /// (default 256).
    pub max_concurrent_streams: usize,
    /// Capacity of the command channel; also the limit on outstanding requests (default 1024).
    pub command_buffer: usize,
    /// Capacity of the event channel (default 1024).
    pub event_buffer: usize,
    /// Connections one peer may hold at once, in both directions (default 2: one each way
    /// when two nodes dial each other at the same moment).
    pub max_connections_per_peer: u32,
    /// Connections still in their handshake, from anyone (default 64).
    pub max_pending_incoming: u32,
    /// Bytes of inbound requests received and not yet answered, from all peers together
    /// (default 256 MiB). A request beyond it is dropped unanswered, and reported as
    /// [`NetworkEvent::Shed`]: the sender retries later.
    pub max_pending_inbound_bytes: usize,
    /// The same, per peer (default 64 MiB): one peer cannot take the whole budget.
    pub max_pending_inbound_bytes_per_peer: usize,
    /// The IMI protocol version this node speaks, announced through identify as
    /// `/imi/<version>.0.0` (default 1; a node sets it from `imi_protocol::PROTOCOL_VERSION`).
    pub protocol_version: u16,
    /// While another peer is sending too, each peer's connections together are read at no
    /// more than this many bytes per second (default 1 MiB/s; 0 turns pacing off): see
    /// [Read pacing](crate#read-pacing).
    pub contended_read_bytes_per_second: u64,
    /// Peers announcing a lower protocol version (or none that parses) are refused: see
    /// [Protocol versions](crate#protocol-versions). Default 1; at most
    /// [`NetworkConfig::protocol_version`].
    pub min_peer_protocol_version: u16,
    /// Serve [`BATCH_PROTOCOL`] and announce it, and send requests that queue up for a
    /// peer announcing it as batches (default true): see [Batches](crate#batches).
    pub batching: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            request_timeout: Duration::from_secs(30),
            idle_connection_timeout: Duration::from_secs(300),
            max_concurrent_streams: 256,
            command_buffer: 1024,
            event_buffer: 1024,
            max_connections_per_peer: 2,
            max_pending_incoming: 64,
            max_pending_inbound_bytes: 256 * 1024 * 1024,
            max_pending_inbound_bytes_per_peer: 64 * 1024 * 1024,
            protocol_version: 1,
            min_peer_protocol_version: 1,
            contended_read_bytes_per_second: DEFAULT_CONTENDED_READ_BYTES_PER_SECOND,
            batching: true,
        }
    }
}

impl NetworkConfig {
    fn validate(&self) -> Result<(), NetworkError> {
        let invalid = |what: &str| {
            Err(NetworkError::Other(format!(
                "invalid network config: {what}"
            )))
        };
        if self.max_message_bytes == 0 || self.max_message_bytes > MAX_FRAME_LIMIT {
            return invalid("max_message_bytes must be between 1 and 4294967295");
        }
        if self.max_concurrent_streams == 0 {
            return invalid("max_concurrent_streams must be at least 1");
        }
        if self.command_buffer == 0 || self.command_buffer > Semaphore::MAX_PERMITS {
            return invalid("command_buffer must be at least 1");
        }
        if self.event_buffer == 0 {
            return invalid("event_buffer must be at least 1");
        }
        if self.max_connections_per_peer == 0 || self.max_pending_incoming == 0 {
            return invalid("connection limits must be at least 1");
        }
        if self.max_pending_inbound_bytes_per_peer < self.max_message_bytes
            || self.max_pending_inbound_bytes < self.max_pending_inbound_bytes_per_peer
        {
            return invalid(
                "max_message_bytes <= max_pending_inbound_bytes_per_peer <= max_pending_inbound_bytes",
            );
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout must be positive");
        }
        if self.min_peer_protocol_version == 0
            || self.min_peer_protocol_version > self.protocol_version
        {
            return invalid("1 <= min_peer_protocol_version <= protocol_version");
        }
        Ok(())
    }
}

/// A peer on the trust list, with the addresses to dial it at (may be empty if it only dials
/// us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeer {
    /// The peer's libp2p identity.
    pub peer: PeerId,
    /// Where to dial it.
    pub addrs: Vec<Multiaddr>,
}

/// The body of an inbound request.
#[derive(Debug)]
pub enum InboundPayload {
    /// A body within the limit, exactly as received.
    Bytes(Vec<u8>),
    /// The declared length exceeded the limit; the body was drained (not kept).
    Oversized {
        /// The length the sender declared.
        declared: u64,
    },
}

/// Something that happened on the network.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A peer sent a request; answer it with [`NetworkClient::respond`] before
    /// [`NetworkConfig::request_timeout`] runs out.
    InboundRequest {
        /// Who sent it (authenticated by the Noise handshake).
        peer: PeerId,
        /// Handle for the response.
        id: InboundId,
        /// What was sent.
        payload: InboundPayload,
        /// It came in a batch on [`BATCH_PROTOCOL`]: its answer may be a group receipt
        /// (one signature over the receipts of several envelopes). Single requests and
        /// batches on [`LEGACY_BATCH_PROTOCOL`] must be answered with single receipts.
        group_receipts: bool,
    },
    /// The first connection to this peer was established.
    PeerConnected(PeerId),
    /// The last connection to this peer was closed.
    PeerDisconnected(PeerId),
    /// An inbound request was dropped unanswered because the peer's (or everyone's) budget
    /// of unanswered request bytes was spent ([`NetworkConfig::max_pending_inbound_bytes`]).
    Shed {
        /// The peer.
        peer: PeerId,
        /// The request's size.
        bytes: usize,
    },
    /// A connection from/to a peer not on the allow list was refused (logged at `warn`).
    Refused {
        /// The peer, if it got far enough to prove its identity.
        peer: Option<PeerId>,
        /// The remote address, if known.
        addr: Option<Multiaddr>,
    },
    /// A new local listen address.
    ListeningOn(Multiaddr),
    /// A connected peer announced the protocol version it speaks (through identify), and it
    /// is at least [`NetworkConfig::min_peer_protocol_version`].
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// Its protocol version.
        protocol_version: u16,
    },
    /// A peer announced a protocol version below [`NetworkConfig::min_peer_protocol_version`]
    /// (or one that does not parse): its connections were closed, and requests to it fail
    /// with [`NetworkError::ProtocolTooOld`] until it connects announcing a version that is
    /// high enough.
    ProtocolRefused {
        /// The peer.
        peer: PeerId,
        /// What it announced, as received (at most 64 characters kept).
        announced: String,
        /// The version parsed from it, if any.
        protocol_version: Option<u16>,
        /// The minimum in force.
        minimum: u16,
        /// The peer was already refused for the same announcement (a reconnection): the
        /// consumer need not log it again.
        repeated: bool,
    },
}

/// Identifies an inbound request awaiting a response. Opaque; unique within one network task.
/// Each envelope of a batch has its own (the batch's exchange and the item's place in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundId(InboundKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum InboundKey {
    Single(InboundRequestId),
    Part(InboundRequestId, u16),
}

impl fmt::Display for InboundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            InboundKey::Single(id) => write!(f, "inbound#{id}"),
            InboundKey::Part(id, item) => write!(f, "batch#{id}.{item}"),
        }
    }
}

/// What batching has done since the network started (see [Batches](crate#batches)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches sent (each one exchange on [`BATCH_PROTOCOL`]).
    pub sent: u64,
    /// Requests carried by those batches.
    pub sent_items: u64,
    /// Batches received and handed on, item by item.
    pub received: u64,
    /// Requests carried by those batches.
    pub received_items: u64,
}

#[derive(Debug, Default)]
pub(crate) struct BatchCounters {
    sent: AtomicU64,
    sent_items: AtomicU64,
    received: AtomicU64,
    received_items: AtomicU64,
}

impl BatchCounters {
    pub(crate) fn note_sent(&self, items: usize) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.sent_items
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub(crate) fn note_received(&self, items: usize) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.received_items
            .fetch_add(u64::try_from(items).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn stats(&self) -> BatchStats {
        BatchStats {
            sent: self.sent.load(Ordering::Relaxed),
            sent_items: self.sent_items.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            received_items: self.received_items.load(Ordering::Relaxed),
        }
    }
}

/// Everything that can go wrong in the network layer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// A request or response body is larger than the configured limit.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer is not on the allow list; nothing was sent.
    #[error("peer {0} is not on the allow list")]
    NotAllowed(PeerId),
    /// No response arrived in time.
    #[error("request timed out")]
    Timeout,
    /// The connection could not be established or closed before the response arrived.
    #[error("connection failed: {0}")]
    ConnectionFailed(String),
    /// An I/O error on a stream or listener.
    #[error("I/O error: {0}")]
    Io(String),
    /// The peer last announced a protocol version below the configured minimum; nothing was
    /// sent. The peer is dialed again periodically ([`NetworkClient::dial_all`]) and accepted
    /// once it announces a version that is high enough.
    #[error(
        "peer {peer} speaks IMI protocol {}, below this node's minimum {minimum}",
        version.map_or_else(|| "(unknown)".to_owned(), |v| v.to_string())
    )]
    ProtocolTooOld {
        /// The peer.
        peer: PeerId,
        /// The version it announced, if it parsed.
        version: Option<u16>,
        /// The minimum in force.
        minimum: u16,
    },
    /// The network task has stopped.
    #[error("the network task has shut down")]
    ShutDown,
    /// Anything else (invalid configuration, unknown inbound id, protocol mismatch, ...).
    #[error("{0}")]
    Other(String),
}

/// What the client asks of the swarm task.
pub(crate) enum Command {
    Request {
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
        /// Held until the request completes: bounds outstanding requests.
        permit: OwnedSemaphorePermit,
    },
    /// Several requests to one peer, queued together (each with its own reply).
    RequestMany {
        peer: PeerId,
        items: Vec<RequestItem>,
    },
    Respond {
        id: InboundId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    SetAllowed {
        peers: Vec<AllowedPeer>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Result<Vec<Multiaddr>, NetworkError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Result<Vec<PeerId>, NetworkError>>,
    },
    DialAll {
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
}

/// One request of a [`Command::RequestMany`].
pub(crate) struct RequestItem {
    pub(crate) bytes: Vec<u8>,
    pub(crate) reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    pub(crate) permit: OwnedSemaphorePermit,
}

/// Cloneable handle to the network task. See the [crate docs](crate).
#[derive(Clone)]
pub struct NetworkClient {
    commands: mpsc::Sender<Command>,
    request_slots: Arc<Semaphore>,
    max_message_bytes: usize,
    pacer: Arc<pacing::Pacer>,
    batches: Arc<BatchCounters>,
}

impl fmt::Debug for NetworkClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkClient")
            .field("max_message_bytes", &self.max_message_bytes)
            .field("closed", &self.commands.is_closed())
            .finish_non_exhaustive()
    }
}

impl NetworkClient {
    /// What read pacing has done since the network started (see
    /// [Read pacing](crate#read-pacing)).
    pub fn read_pacing(&self) -> ReadPacing {
        self.pacer.stats()
    }

    /// Writes to the sockets of this node's connections since the network started (each a
    /// `send` system call; see [Socket writes](crate#socket-writes)).
    pub fn socket_writes(&self) -> u64 {
        self.pacer.socket_writes()
    }

    /// What batching has done since the network started (see [Batches](crate#batches)).
    pub fn batches(&self) -> BatchStats {
        self.batches.stats()
    }

    fn check_size(&self, len: usize) -> Result<(), NetworkError> {
        if len > self.max_message_bytes {
            return Err(NetworkError::TooLarge {
                size: len,
                limit: self.max_message_bytes,
            });
        }
        Ok(())
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, NetworkError>>) -> Command,
    ) -> Result<T, NetworkError> {
        let (reply, response) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetworkError::ShutDown)?;
        response.await.map_err(|_| NetworkError::ShutDown)?
    }

    /// Send one request frame and wait for the response frame (dial if needed using the known
    /// addresses).
    ///
    /// Fails with [`NetworkError::TooLarge`] before sending if `bytes` exceeds the limit, and
    /// with [`NetworkError::NotAllowed`] without dialing if `peer` is not on the allow list.
    /// Waits (backpressure) while [`NetworkConfig::command_buffer`] requests are outstanding.
    pub async fn request(&self, peer: PeerId, bytes: Vec<u8>) -> Result<Vec<u8>, NetworkError> {
        self.check_size(bytes.len())?;
        let permit = Arc::clone(&self.request_slots)
            .acquire_owned()
            .await
            .map_err(|_| NetworkError::ShutDown)?;
        self.call(|reply| Command::Request {
            peer,
            bytes,
            reply,
            permit,
        })
        .await
    }

    /// Sends several requests to one peer and waits for every response: the answers come
    /// back in the order of `items`, each as [`NetworkClient::request`] would give it.
    ///
    /// The requests are queued together, so that if the peer announces [`BATCH_PROTOCOL`]
    /// they travel as few batches as the limits allow (see [Batches](crate#batches));
    /// otherwise, or with batching off, each goes on its own stream. One request's failure
    /// (too large, for example) does not fail the others, but a batch fails as a whole on
    /// the wire (a timeout, a closed connection).
    pub async fn request_many(
        &self,
        peer: PeerId,
        items: Vec<Vec<u8>>,
    ) -> Vec<Result<Vec<u8>, NetworkError>> {
        let mut queued = Vec::with_capacity(items.len());
        let mut answers = Vec::with_capacity(items.len());
        for bytes in items {
            let (reply, answer) = oneshot::channel();
            answers.push(answer);
            if let Err(e) = self.check_size(bytes.len()) {
                let _ = reply.send(Err(e));
                continue;
            }
            match Arc::clone(&self.request_slots).acquire_owned().await {
                Ok(permit) => queued.push(RequestItem {
                    bytes,
                    reply,
                    permit,
                }),
                Err(_) => {
                    let _ = reply.send(Err(NetworkError::ShutDown));
                }
            }
        }
        if !queued.is_empty() {
            // On failure every reply is dropped with the command: each answer is ShutDown.
            let _ = self
                .commands
                .send(Command::RequestMany {
                    peer,
                    items: queued,
                })
                .await;
        }
        let mut out = Vec::with_capacity(answers.len());
        for answer in answers {
            out.push(answer.await.unwrap_or(Err(NetworkError::ShutDown)));
        }
        out
    }

    /// Reply to an inbound request. Error if unknown/expired id.
    ///
    /// A body over the limit fails with [`NetworkError::TooLarge`] and leaves the request open,
    /// so a smaller answer can still be sent.
    pub async fn respond(&self, id: InboundId, bytes: Vec<u8>) -> Result<(), NetworkError> {
        self.check_size(bytes.len())?;
        self.call(|reply| Command::Respond { id, bytes, reply })
            .await
    }

    /// Replace the allow list (trust-list update). Disconnects peers no longer allowed.
    pub async fn set_allowed(&self, peers: Vec<AllowedPeer>) -> Result<(), NetworkError> {
        self.call(|reply| Command::SetAllowed { peers, reply })
            .await
    }

    /// The addresses the node currently listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetworkError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Peers with at least one established connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// Dial all allowed peers that are not connected (best effort); returns immediately.
    /// Outcomes show up as [`NetworkEvent::PeerConnected`] (or in the logs).
    pub async fn dial_all(&self) -> Result<(), NetworkError> {
        self.call(|reply| Command::DialAll { reply }).await
    }
}

/// Spawns the swarm task on the current tokio runtime. It stops when `cancel` is cancelled.
///
/// Listening starts before this returns; the actual addresses arrive as
/// [`NetworkEvent::ListeningOn`]. Must be called from within a tokio runtime.
pub fn spawn(
    keypair: Keypair,
    config: NetworkConfig,
    allowed: Vec<AllowedPeer>,
    cancel: CancellationToken,
) -> Result<
    (
        NetworkClient,
        mpsc::Receiver<NetworkEvent>,
        tokio::task::JoinHandle<()>,
    ),
    NetworkError,
> {
    config.validate()?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|e| {
        NetworkError::Other(format!("imi_network::spawn needs a tokio runtime: {e}"))
    })?;
    let (command_tx, command_rx) = mpsc::channel(config.command_buffer);
    let (event_tx, event_rx) = mpsc::channel(config.event_buffer);
    let pacer = pacing::Pacer::new(config.contended_read_bytes_per_second);
    let batches = Arc::new(BatchCounters::default());
    let client = NetworkClient {
        commands: command_tx,
        request_slots: Arc::new(Semaphore::new(config.command_buffer)),
        max_message_bytes: config.max_message_bytes,
        pacer: Arc::clone(&pacer),
        batches: Arc::clone(&batches),
    };
    let task = task::SwarmTask::new(keypair, &config, allowed, event_tx, &pacer, batches)?;
    let handle = runtime.spawn(task.run(command_rx, cancel));
    Ok((client, event_rx, handle))
}
