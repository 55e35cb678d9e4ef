//! The swarm task: the only owner of the libp2p [`Swarm`].

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Instant,
};

use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport, allow_block_list, connection_limits,
    identify,
    identity::Keypair,
    noise, ping,
    request_response::{
        self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
    },
    swarm::{
        DialError, ListenError, NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
    tcp, yamux,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, trace, warn};

use crate::{
    AllowedPeer, BATCH_ITEM_MAX_BYTES, BATCH_MAX_BYTES, BATCH_PROTOCOL, BatchCounters, Command,
    InboundId, InboundKey, InboundPayload, LEGACY_BATCH_PROTOCOL, NetworkConfig, NetworkError,
    NetworkEvent, PROTOCOL, RESPONSE_ITEM_MAX_BYTES, RequestItem, batch,
    codec::{Frame, FrameCodec, FrameTooLarge},
    pacing::{Pacer, remote_socket_addr},
};

/// Characters of a peer's announced protocol version kept for logs and events.
const ANNOUNCED_KEPT_CHARS: usize = 64;

/// The identify protocol version string for IMI protocol `version`.
fn identify_protocol_version(version: u16) -> String {
    format!("/imi/{version}.0.0")
}

/// The IMI protocol version in an identify protocol version string: the decimal number
/// between `/imi/` and the first `.` (or the end).
pub(crate) fn announced_version(announced: &str) -> Option<u16> {
    let major = announced.strip_prefix("/imi/")?.split('.').next()?;
    if major.is_empty() || !major.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    major.parse().ok()
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    /// Connection gating: only allowed peers keep a connection.
    gate: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    /// Connections per peer and handshakes in progress.
    limits: connection_limits::Behaviour,
    request_response: request_response::Behaviour<FrameCodec>,
    /// `/imi/envelopes/2` (and, inbound only, `/imi/envelopes/1`), when batching is on.
    batch: Toggle<request_response::Behaviour<FrameCodec>>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A request accepted from the client, not yet handed to libp2p.
struct QueuedRequest {
    bytes: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    permit: OwnedSemaphorePermit,
    queued_at: Instant,
}

/// An inbound request waiting for the consumer's response.
struct Awaiting {
    /// Where the answer goes: its own stream, or its place in a batch (the batch's
    /// exchange is in the [`InboundId`]).
    channel: Option<ResponseChannel<Vec<u8>>>,
    peer: PeerId,
    bytes: usize,
}

/// A batch received: the answers given so far, sent together once all are in.
struct InboundBatch {
    channel: ResponseChannel<Vec<u8>>,
    answers: Vec<Option<Vec<u8>>>,
    remaining: usize,
}

/// A request handed to libp2p, awaiting its response.
struct InFlight {
    peer: PeerId,
    reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
    /// Released (dropped) when the request completes.
    _permit: OwnedSemaphorePermit,
}

/// A batch handed to libp2p: its requests' replies, in order.
struct InFlightBatch {
    peer: PeerId,
    replies: Vec<QueuedRequest>,
}

pub(crate) struct SwarmTask {
    swarm: Swarm<Behaviour>,
    max_message_bytes: usize,
    request_timeout: std::time::Duration,
    /// Our own in-flight requests per peer are capped here, leaving the rest of the remote's
    /// stream budget for its requests to us. A batch counts its requests, so that batching
    /// never puts more of a peer's bytes in flight than single requests would.
    per_peer_window: usize,
    allowed: HashMap<PeerId, Vec<Multiaddr>>,
    queued: HashMap<PeerId, VecDeque<QueuedRequest>>,
    in_flight: HashMap<OutboundRequestId, InFlight>,
    in_flight_batches: HashMap<OutboundRequestId, InFlightBatch>,
    /// Requests in flight per peer (alone or in batches).
    in_flight_per_peer: HashMap<PeerId, usize>,
    awaiting_response: HashMap<InboundId, Awaiting>,
    inbound_batches: HashMap<request_response::InboundRequestId, InboundBatch>,
    /// Whether batches are served and sent at all.
    batching: bool,
    /// Connected peers that announced [`BATCH_PROTOCOL`].
    batch_peers: HashSet<PeerId>,
    /// Most requests in one batch.
    max_batch_items: usize,
    batch_counters: Arc<BatchCounters>,
    /// Bytes of inbound requests not yet answered, in all and per peer, with their limits.
    pending_bytes: usize,
    pending_bytes_per_peer: HashMap<PeerId, usize>,
    max_pending_bytes: usize,
    max_pending_bytes_per_peer: usize,
    /// Peers refused for the protocol version they announced (the version, if it parsed).
    refused_version: HashMap<PeerId, Option<u16>>,
    min_peer_protocol_version: u16,
    events: mpsc::Sender<NetworkEvent>,
    /// Events the consumer has not taken yet; while non-empty the swarm is not polled, so this
    /// holds at most the events of one swarm event.
    outbox: VecDeque<NetworkEvent>,
    events_closed: bool,
}

fn build_swarm(
    keypair: Keypair,
    config: &NetworkConfig,
    pacer: &std::sync::Arc<Pacer>,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let codec = FrameCodec::new(config.max_message_bytes);
    let rr_config = request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(config.max_concurrent_streams);
    let batch_behaviour = config.batching.then(|| {
        request_response::Behaviour::with_codec(
            codec,
            [
                (StreamProtocol::new(BATCH_PROTOCOL), ProtocolSupport::Full),
                (
                    StreamProtocol::new(LEGACY_BATCH_PROTOCOL),
                    ProtocolSupport::Inbound,
                ),
            ],
            rr_config.clone(),
        )
    });
    let idle = config.idle_connection_timeout;
    let announce = config.protocol_version;
    let negotiating = config.max_concurrent_streams;
    let (max_per_peer, max_pending_incoming) =
        (config.max_connections_per_peer, config.max_pending_incoming);
    let pacer = std::sync::Arc::clone(pacer);
    let noise = noise::Config::new(&keypair)
        .map_err(|e| NetworkError::Other(format!("cannot set up the Noise transport: {e}")))?;
    // What `SwarmBuilder::with_tcp` builds, with every connection's reads paced (see
    // `pacing`) below Noise, so that bytes a contended peer may not send yet stay in its
    // socket; once Noise has proven the peer, its connections share one lane.
    let bind = std::sync::Arc::clone(&pacer);
    let transport = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .map(move |stream: tcp::tokio::TcpStream, _| {
            let remote = stream.0.peer_addr().ok();
            pacer.wrap(stream, remote)
        })
        .upgrade(libp2p::core::upgrade::Version::V1Lazy)
        .authenticate(noise)
        .multiplex_ext(move |peer, endpoint| {
            if let Some(remote) = remote_socket_addr(endpoint) {
                bind.bind(remote, *peer);
            }
            crate::coalesce::CoalescedYamux(yamux::Config::default())
        });
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(|_| transport)
        .map_err(|e| NetworkError::Other(format!("cannot set up the transport: {e}")))?
        .with_behaviour(|key| Behaviour {
            gate: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(max_per_peer))
                    .with_max_pending_incoming(Some(max_pending_incoming)),
            ),
            request_response: request_response::Behaviour::with_codec(
                codec,
                [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                rr_config,
            ),
            batch: Toggle::from(batch_behaviour),
            // Cache size 0: never learn dial addresses from what peers say about themselves.
            identify: identify::Behaviour::new(
                identify::Config::new(identify_protocol_version(announce), key.public())
                    .with_agent_version(format!("imi-network/{}", env!("CARGO_PKG_VERSION")))
                    .with_cache_size(0),
            ),
            ping: ping::Behaviour::default(),
        })
        .map_err(|e| NetworkError::Other(format!("cannot build the network behaviour: {e}")))?
        .with_swarm_config(|c| {
            // V1Lazy: the dialer sends its data right after proposing the (single) protocol
            // instead of waiting a round trip for the echo. Same bytes on the wire.
            c.with_idle_connection_timeout(idle)
                .with_max_negotiating_inbound_streams(negotiating)
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .build();
    Ok(swarm)
}

fn map_outbound_failure(peer: PeerId, error: OutboundFailure) -> NetworkError {
    match error {
        OutboundFailure::DialFailure => {
            NetworkError::ConnectionFailed(format!("could not connect to {peer}"))
        }
        OutboundFailure::Timeout => NetworkError::Timeout,
        OutboundFailure::ConnectionClosed => NetworkError::ConnectionFailed(format!(
            "connection to {peer} closed before the response arrived"
        )),
        OutboundFailure::UnsupportedProtocols => {
            NetworkError::Other(format!("peer {peer} does not speak {PROTOCOL}"))
        }
        OutboundFailure::Io(e) => match FrameTooLarge::find(&e) {
            Some(too_large) => NetworkError::TooLarge {
                size: usize::try_from(too_large.size).unwrap_or(usize::MAX),
                limit: too_large.limit,
            },
            None => NetworkError::Io(e.to_string()),
        },
    }
}

impl SwarmTask {
    pub(crate) fn new(
        keypair: Keypair,
        config: &NetworkConfig,
        allowed: Vec<AllowedPeer>,
        events: mpsc::Sender<NetworkEvent>,
        pacer: &std::sync::Arc<Pacer>,
        batch_counters: Arc<BatchCounters>,
    ) -> Result<Self, NetworkError> {
        let mut swarm = build_swarm(keypair, config, pacer)?;
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Io(format!("cannot listen on {addr}: {e}")))?;
        }
        let mut task = Self {
            swarm,
            max_message_bytes: config.max_message_bytes,
            request_timeout: config.request_timeout,
            per_peer_window: (config.max_concurrent_streams / 2).max(1),
            allowed: HashMap::new(),
            queued: HashMap::new(),
            in_flight: HashMap::new(),
            in_flight_batches: HashMap::new(),
            in_flight_per_peer: HashMap::new(),
            awaiting_response: HashMap::new(),
            inbound_batches: HashMap::new(),
            batching: config.batching,
            batch_peers: HashSet::new(),
            max_batch_items: (config.max_message_bytes
                / (RESPONSE_ITEM_MAX_BYTES + batch::ITEM_PREFIX_BYTES))
                .clamp(1, batch::MAX_BATCH_ITEMS),
            batch_counters,
            pending_bytes: 0,
            pending_bytes_per_peer: HashMap::new(),
            max_pending_bytes: config.max_pending_inbound_bytes,
            max_pending_bytes_per_peer: config.max_pending_inbound_bytes_per_peer,
            refused_version: HashMap::new(),
            min_peer_protocol_version: config.min_peer_protocol_version,
            events,
            outbox: VecDeque::new(),
            events_closed: false,
        };
        task.set_allowed(allowed);
        Ok(task)
    }

    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        cancel: CancellationToken,
    ) {
        let span = tracing::info_span!("network", local_peer = %self.swarm.local_peer_id());
        // A second handle, so that a reserved slot does not borrow `self`.
        let events = self.events.clone();
        async move {
            info!("network task started");
            loop {
                // Unbiased: neither a busy client nor a busy swarm can starve the other.
                tokio::select! {
                    () = cancel.cancelled() => {
                        info!("network task cancelled");
                        break;
                    }
                    permit = events.reserve(), if !self.outbox.is_empty() => match permit {
                        Ok(permit) => {
                            if let Some(event) = self.outbox.pop_front() {
                                permit.send(event);
                            }
                        }
                        Err(_) => self.close_events(),
                    },
                    command = commands.recv() => match command {
                        Some(command) => self.on_command(command),
                        None => {
                            info!("all network clients dropped; stopping the network task");
                            break;
                        }
                    },
                    event = self.swarm.select_next_some(), if self.outbox.is_empty() => {
                        self.on_swarm_event(event);
                    }
                }
            }
            // Dropping `self` fails every pending reply with `ShutDown` and drops every
            // connection.
        }
        .instrument(span)
        .await;
    }

    // ---- events ------------------------------------------------------------------------------

    fn emit(&mut self, event: NetworkEvent) {
        if self.events_closed {
            self.discard(event);
        } else if !self.outbox.is_empty() {
            self.outbox.push_back(event);
        } else {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => self.outbox.push_back(event),
                Err(mpsc::error::TrySendError::Closed(event)) => {
                    self.close_events();
                    self.discard(event);
                }
            }
        }
    }

    fn close_events(&mut self) {
        if !self.events_closed {
            warn!("network event receiver dropped; inbound requests will go unanswered");
            self.events_closed = true;
        }
        let pending: Vec<NetworkEvent> = self.outbox.drain(..).collect();
        for event in pending {
            self.discard(event);
        }
    }

    fn discard(&mut self, event: NetworkEvent) {
        if let NetworkEvent::InboundRequest { id, .. } = event {
            // Dropping the channel tells the remote there will be no answer; for a part of a
            // batch, to the whole batch (the sender retries each of its requests).
            match id.0 {
                InboundKey::Single(_) => drop(self.take_awaiting(id)),
                InboundKey::Part(batch, _) => self.drop_inbound_batch(batch),
            }
        }
    }

    /// Removes an inbound request from those awaiting a response and releases its bytes.
    fn take_awaiting(&mut self, id: InboundId) -> Option<Awaiting> {
        let a = self.awaiting_response.remove(&id)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(a.bytes);
        if let Some(n) = self.pending_bytes_per_peer.get_mut(&a.peer) {
            *n = n.saturating_sub(a.bytes);
            if *n == 0 {
                self.pending_bytes_per_peer.remove(&a.peer);
            }
        }
        Some(a)
    }

    /// Forgets an inbound batch and every item of it still awaiting an answer; dropping its
    /// channel closes the stream unanswered.
    fn drop_inbound_batch(&mut self, batch: request_response::InboundRequestId) {
        if let Some(b) = self.inbound_batches.remove(&batch) {
            for item in 0..b.answers.len() {
                let item = u16::try_from(item).unwrap_or(u16::MAX);
                drop(self.take_awaiting(InboundId(InboundKey::Part(batch, item))));
            }
        }
    }

    // ---- commands ----------------------------------------------------------------------------

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Request {
                peer,
                bytes,
                reply,
                permit,
            } => {
                if self.admit(peer, bytes, reply, permit) {
                    self.pump(peer);
                }
            }
            Command::RequestMany { peer, items } => {
                let mut any = false;
                for RequestItem {
                    bytes,
                    reply,
                    permit,
                } in items
                {
                    any |= self.admit(peer, bytes, reply, permit);
                }
                if any {
                    self.pump(peer);
                }
            }
            Command::Respond { id, bytes, reply } => {
                let _ = reply.send(self.respond(id, bytes));
            }
            Command::SetAllowed { peers, reply } => {
                self.set_allowed(peers);
                let _ = reply.send(Ok(()));
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(Ok(self.swarm.listeners().cloned().collect()));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(Ok(self.swarm.connected_peers().copied().collect()));
            }
            Command::DialAll { reply } => {
                self.dial_all();
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Queues a request for `peer` (true), or answers it at once with why it cannot be sent.
    fn admit(
        &mut self,
        peer: PeerId,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, NetworkError>>,
        permit: OwnedSemaphorePermit,
    ) -> bool {
        if bytes.len() > self.max_message_bytes {
            let _ = reply.send(Err(NetworkError::TooLarge {
                size: bytes.len(),
                limit: self.max_message_bytes,
            }));
            return false;
        }
        if !self.allowed.contains_key(&peer) {
            debug!(peer = %peer, "request to a peer that is not allowed");
            let _ = reply.send(Err(NetworkError::NotAllowed(peer)));
            return false;
        }
        if let Some(&version) = self.refused_version.get(&peer) {
            let _ = reply.send(Err(self.too_old(peer, version)));
            return false;
        }
        self.queued
            .entry(peer)
            .or_default()
            .push_back(QueuedRequest {
                bytes,
                reply,
                permit,
                queued_at: Instant::now(),
            });
        true
    }

    /// The next queued request for `peer` still worth sending.
    fn next_queued(&mut self, peer: PeerId) -> Option<QueuedRequest> {
        loop {
            let queue = self.queued.get_mut(&peer)?;
            let Some(request) = queue.pop_front() else {
                self.queued.remove(&peer);
                return None;
            };
            if request.reply.is_closed() {
                // The caller gave up; don't send.
                continue;
            }
            if request.queued_at.elapsed() > self.request_timeout {
                let _ = request.reply.send(Err(NetworkError::Timeout));
                continue;
            }
            return Some(request);
        }
    }

    /// Hands queued requests for `peer` to libp2p while the per-peer window has room: in
    /// batches when the peer speaks [`BATCH_PROTOCOL`] and more than one is queued.
    fn pump(&mut self, peer: PeerId) {
        let cap = BATCH_MAX_BYTES.min(self.max_message_bytes);
        loop {
            let in_flight = self.in_flight_per_peer.get(&peer).copied().unwrap_or(0);
            if in_flight >= self.per_peer_window {
                return;
            }
            let Some(first) = self.next_queued(peer) else {
                return;
            };
            let addrs = self.allowed.get(&peer).cloned().unwrap_or_default();
            let batchable = |r: &QueuedRequest| r.bytes.len() <= BATCH_ITEM_MAX_BYTES;
            if !(self.batching && self.batch_peers.contains(&peer) && batchable(&first)) {
                self.in_flight_per_peer
                    .insert(peer, in_flight.saturating_add(1));
                self.send_one(peer, addrs, first);
                continue;
            }
            let room = self.per_peer_window.saturating_sub(in_flight);
            let mut bytes = batch::encoded_len([first.bytes.len()]);
            let mut batch = vec![first];
            while batch.len() < self.max_batch_items.min(room) {
                let Some(next) = self.next_queued(peer) else {
                    break;
                };
                let more = batch::encoded_len([next.bytes.len()]);
                if !batchable(&next) || bytes.saturating_add(more) > cap {
                    // It goes first next time, alone or in the next batch.
                    self.queued.entry(peer).or_default().push_front(next);
                    break;
                }
                bytes = bytes.saturating_add(more);
                batch.push(next);
            }
            self.in_flight_per_peer
                .insert(peer, in_flight.saturating_add(batch.len()));
            if batch.len() == 1 {
                if let Some(only) = batch.pop() {
                    self.send_one(peer, addrs, only);
                }
            } else {
                self.send_batch(peer, addrs, batch);
            }
        }
    }

    /// Sends requests as one batch on [`BATCH_PROTOCOL`].
    fn send_batch(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, replies: Vec<QueuedRequest>) {
        let items: Vec<&[u8]> = replies.iter().map(|r| r.bytes.as_slice()).collect();
        let (Some(body), Some(behaviour)) = (
            batch::encode(&items),
            self.swarm.behaviour_mut().batch.as_mut(),
        ) else {
            // Not reachable: the batch is within the limits and batching is on. Its place in
            // the window is given back without pumping (the caller's loop goes on).
            if let Some(count) = self.in_flight_per_peer.get_mut(&peer) {
                *count = count.saturating_sub(replies.len());
            }
            for r in replies {
                let _ = r
                    .reply
                    .send(Err(NetworkError::Other("batch not sendable".into())));
            }
            return;
        };
        let id = behaviour.send_request_with_addresses(&peer, Frame::Bytes(body), addrs);
        trace!(peer = %peer, request = %id, items = replies.len(), "batch sent");
        self.batch_counters.note_sent(replies.len());
        self.in_flight_batches
            .insert(id, InFlightBatch { peer, replies });
    }

    /// Sends one request on [`PROTOCOL`].
    fn send_one(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, request: QueuedRequest) {
        let id = self
            .swarm
            .behaviour_mut()
            .request_response
            .send_request_with_addresses(&peer, Frame::Bytes(request.bytes), addrs);
        trace!(peer = %peer, request = %id, "request sent");
        self.in_flight.insert(
            id,
            InFlight {
                peer,
                reply: request.reply,
                _permit: request.permit,
            },
        );
    }

    /// Fails every queued (not yet sent) request to `peer`.
    fn fail_queued(&mut self, peer: PeerId, error: impl Fn() -> NetworkError) {
        if let Some(queue) = self.queued.remove(&peer) {
            for request in queue {
                let _ = request.reply.send(Err(error()));
            }
        }
    }

    fn finish_outbound(&mut self, id: OutboundRequestId, result: Result<Vec<u8>, NetworkError>) {
        let Some(request) = self.in_flight.remove(&id) else {
            debug!(request = %id, "result for an unknown outbound request");
            return;
        };
        let _ = request.reply.send(result);
        self.requests_done(request.peer, 1);
    }

    /// `n` requests to `peer` (alone or in a batch) completed: their places in the window
    /// are free.
    fn requests_done(&mut self, peer: PeerId, n: usize) {
        match self.in_flight_per_peer.get_mut(&peer) {
            Some(count) if *count > n => *count -= n,
            _ => {
                self.in_flight_per_peer.remove(&peer);
            }
        }
        self.pump(peer);
    }

    /// A batch's response (split into its items' answers) or its failure.
    fn finish_batch(&mut self, id: OutboundRequestId, result: Result<Vec<u8>, NetworkError>) {
        let Some(InFlightBatch { peer, replies }) = self.in_flight_batches.remove(&id) else {
            debug!(request = %id, "result for an unknown outbound batch");
            return;
        };
        let n = replies.len();
        let answers = result.and_then(|body| {
            let answers = batch::decode(&body)
                .map_err(|e| NetworkError::Io(format!("malformed batch response: {e}")))?;
            if answers.len() == replies.len() {
                Ok(answers)
            } else {
                Err(NetworkError::Io(format!(
                    "malformed batch response: {} answers to {} requests",
                    answers.len(),
                    replies.len()
                )))
            }
        });
        match answers {
            Ok(answers) => {
                for (request, answer) in replies.into_iter().zip(answers) {
                    let _ = request.reply.send(Ok(answer));
                }
            }
            Err(error) => {
                debug!(peer = %peer, request = %id, %error, "batch failed");
                for request in replies {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
        self.requests_done(peer, n);
    }

    fn respond(&mut self, id: InboundId, bytes: Vec<u8>) -> Result<(), NetworkError> {
        if bytes.len() > self.max_message_bytes {
            return Err(NetworkError::TooLarge {
                size: bytes.len(),
                limit: self.max_message_bytes,
            });
        }
        let unknown = || NetworkError::Other(format!("unknown or expired inbound request {id}"));
        let expired = || {
            NetworkError::Other(format!(
                "inbound request {id} expired (timed out or connection closed)"
            ))
        };
        let InboundKey::Part(batch_id, item) = id.0 else {
            let channel = self
                .take_awaiting(id)
                .and_then(|a| a.channel)
                .ok_or_else(unknown)?;
            return self
                .swarm
                .behaviour_mut()
                .request_response
                .send_response(channel, bytes)
                .map_err(|_| expired());
        };
        self.take_awaiting(id).ok_or_else(unknown)?;
        let batch = self
            .inbound_batches
            .get_mut(&batch_id)
            .ok_or_else(unknown)?;
        let slot = batch
            .answers
            .get_mut(usize::from(item))
            .ok_or_else(unknown)?;
        *slot = Some(bytes);
        batch.remaining = batch.remaining.saturating_sub(1);
        if batch.remaining > 0 {
            return Ok(());
        }
        let Some(InboundBatch {
            channel, answers, ..
        }) = self.inbound_batches.remove(&batch_id)
        else {
            return Err(unknown());
        };
        let answers: Vec<Vec<u8>> = answers.into_iter().flatten().collect();
        let body = batch::encode(&answers)
            .filter(|body| body.len() <= self.max_message_bytes)
            .ok_or_else(|| {
                warn!(request = %id, "batch answers exceed the response limit; the batch goes unanswered");
                NetworkError::TooLarge {
                    size: batch::encoded_len(answers.iter().map(Vec::len)),
                    limit: self.max_message_bytes,
                }
            })?;
        let behaviour = self
            .swarm
            .behaviour_mut()
            .batch
            .as_mut()
            .ok_or_else(expired)?;
        behaviour
            .send_response(channel, body)
            .map_err(|_| expired())
    }

    fn set_allowed(&mut self, peers: Vec<AllowedPeer>) {
        let mut next: HashMap<PeerId, Vec<Multiaddr>> = HashMap::with_capacity(peers.len());
        for AllowedPeer { peer, addrs } in peers {
            let known = next.entry(peer).or_default();
            for addr in addrs {
                if !known.contains(&addr) {
                    known.push(addr);
                }
            }
        }
        let removed: Vec<PeerId> = self
            .allowed
            .keys()
            .filter(|peer| !next.contains_key(peer))
            .copied()
            .collect();
        for peer in removed {
            info!(peer = %peer, "peer removed from the allow list; disconnecting");
            self.refused_version.remove(&peer);
            // Closes every connection to the peer; in-flight requests fail as the connections go.
            self.swarm.behaviour_mut().gate.disallow_peer(peer);
            self.fail_queued(peer, || NetworkError::NotAllowed(peer));
        }
        for (peer, addrs) in &next {
            if self.swarm.behaviour_mut().gate.allow_peer(*peer) {
                info!(peer = %peer, addrs = ?addrs, "peer added to the allow list");
            }
            for addr in addrs {
                self.swarm.add_peer_address(*peer, addr.clone());
            }
        }
        self.allowed = next;
    }

    fn dial_all(&mut self) {
        let targets: Vec<(PeerId, Vec<Multiaddr>)> = self
            .allowed
            .iter()
            .filter(|(peer, addrs)| !addrs.is_empty() && !self.swarm.is_connected(peer))
            .map(|(peer, addrs)| (*peer, addrs.clone()))
            .collect();
        for (peer, addrs) in targets {
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            match self.swarm.dial(opts) {
                Ok(()) => debug!(peer = %peer, "dialing"),
                Err(DialError::DialPeerConditionFalse(_)) => {}
                Err(e) => debug!(peer = %peer, error = %e, "cannot dial"),
            }
        }
    }

    // ---- swarm events ------------------------------------------------------------------------

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::RequestResponse(event)) => {
                self.on_request_response(event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Batch(event)) => self.on_batch(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if self.allowed.contains_key(&peer_id)
                    && info.protocols.iter().any(|p| p.as_ref() == BATCH_PROTOCOL)
                {
                    self.batch_peers.insert(peer_id);
                } else {
                    self.batch_peers.remove(&peer_id);
                }
                self.on_identified(peer_id, &info.protocol_version);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(event)) => {
                trace!(?event, "identify");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => {
                trace!(?event, "ping");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gate(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                debug!(peer = %peer_id, addr = %endpoint.get_remote_address(), "connection established");
                if num_established.get() == 1 {
                    info!(peer = %peer_id, "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, cause = ?cause, "connection closed");
                if num_established == 0 {
                    // Its next connection announces again what it speaks.
                    self.batch_peers.remove(&peer_id);
                    info!(peer = %peer_id, "peer disconnected");
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::IncomingConnectionError {
                peer_id,
                send_back_addr,
                error,
                ..
            } => match error {
                ListenError::Denied { cause } => {
                    match peer_id {
                        Some(peer) => {
                            warn!(peer = %peer, addr = %send_back_addr, %cause, "refused inbound connection")
                        }
                        None => warn!(addr = %send_back_addr, %cause, "refused inbound connection"),
                    }
                    self.emit(NetworkEvent::Refused {
                        peer: peer_id,
                        addr: Some(send_back_addr),
                    });
                }
                error => {
                    debug!(peer = ?peer_id, addr = %send_back_addr, %error, "inbound connection failed");
                }
            },
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => match error {
                DialError::Denied { cause } => {
                    match peer_id {
                        Some(peer) => warn!(peer = %peer, %cause, "refused outbound connection"),
                        None => warn!(%cause, "refused outbound connection"),
                    }
                    self.emit(NetworkEvent::Refused {
                        peer: peer_id,
                        addr: None,
                    });
                }
                error => debug!(peer = ?peer_id, %error, "outbound connection failed"),
            },
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(addr = %address, "listening");
                self.emit(NetworkEvent::ListeningOn(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                info!(addr = %address, "listen address expired");
            }
            SwarmEvent::ListenerClosed {
                addresses, reason, ..
            } => match reason {
                Ok(()) => info!(addrs = ?addresses, "listener closed"),
                Err(e) => warn!(addrs = ?addresses, error = %e, "listener failed"),
            },
            SwarmEvent::ListenerError { error, .. } => warn!(error = %error, "listener error"),
            other => trace!(event = ?other, "swarm event"),
        }
    }

    fn too_old(&self, peer: PeerId, version: Option<u16>) -> NetworkError {
        NetworkError::ProtocolTooOld {
            peer,
            version,
            minimum: self.min_peer_protocol_version,
        }
    }

    /// A peer announced its protocol version: accept it, or refuse it if the version is below
    /// the minimum (or does not parse).
    fn on_identified(&mut self, peer: PeerId, announced: &str) {
        if !self.allowed.contains_key(&peer) {
            return;
        }
        let version = announced_version(announced);
        match version {
            Some(v) if v >= self.min_peer_protocol_version => {
                if self.refused_version.remove(&peer).is_some() {
                    info!(peer = %peer, protocol_version = v, "peer accepted: its protocol version is now high enough");
                }
                self.emit(NetworkEvent::PeerIdentified {
                    peer,
                    protocol_version: v,
                });
            }
            _ => {
                let kept: String = announced
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(ANNOUNCED_KEPT_CHARS)
                    .collect();
                let repeated = self.refused_version.insert(peer, version) == Some(version);
                let minimum = self.min_peer_protocol_version;
                debug!(peer = %peer, announced = %kept, minimum, repeated, "peer refused: protocol version below the minimum");
                self.fail_queued(peer, || NetworkError::ProtocolTooOld {
                    peer,
                    version,
                    minimum,
                });
                let _ = self.swarm.disconnect_peer_id(peer);
                self.emit(NetworkEvent::ProtocolRefused {
                    peer,
                    announced: kept,
                    protocol_version: version,
                    minimum,
                    repeated,
                });
            }
        }
    }

    /// A request or batch to `peer` failed on the wire: the error its requesters get. A
    /// failed dial also fails everything queued for the peer (not one redial per request).
    fn outbound_failed(&mut self, peer: PeerId, error: OutboundFailure) -> NetworkError {
        if matches!(error, OutboundFailure::DialFailure) {
            self.fail_queued(peer, || {
                NetworkError::ConnectionFailed(format!("could not connect to {peer}"))
            });
        }
        map_outbound_failure(peer, error)
    }

    /// Whether a request from `peer` is handed on: not if the peer was just removed from the
    /// allow list or refused for its protocol version (its connections are going away).
    fn accepts_requests_from(&self, peer: PeerId, id: InboundId) -> bool {
        if !self.allowed.contains_key(&peer) {
            warn!(peer = %peer, request = %id, "dropping request from a peer no longer allowed");
            return false;
        }
        if self.refused_version.contains_key(&peer) {
            debug!(peer = %peer, request = %id, "dropping request from a peer refused for its protocol version");
            return false;
        }
        true
    }

    /// Whether `size` more unanswered bytes from `peer` would exceed its budget or everyone's;
    /// if so the request is shed (logged and reported).
    fn over_budget(&mut self, peer: PeerId, id: InboundId, size: usize) -> bool {
        let of_peer = self.pending_bytes_per_peer.get(&peer).copied().unwrap_or(0);
        if of_peer.saturating_add(size) <= self.max_pending_bytes_per_peer
            && self.pending_bytes.saturating_add(size) <= self.max_pending_bytes
        {
            return false;
        }
        warn!(peer = %peer, request = %id, bytes = size, peer_pending = of_peer, pending = self.pending_bytes, "inbound request shed: unanswered request bytes over budget");
        self.emit(NetworkEvent::Shed { peer, bytes: size });
        true
    }

    /// Records an inbound request as awaiting the consumer's answer, its bytes counted.
    fn await_response(
        &mut self,
        id: InboundId,
        peer: PeerId,
        channel: Option<ResponseChannel<Vec<u8>>>,
        bytes: usize,
    ) {
        self.pending_bytes = self.pending_bytes.saturating_add(bytes);
        let of_peer = self.pending_bytes_per_peer.entry(peer).or_default();
        *of_peer = of_peer.saturating_add(bytes);
        self.awaiting_response.insert(
            id,
            Awaiting {
                channel,
                peer,
                bytes,
            },
        );
    }

    /// Events of [`BATCH_PROTOCOL`]. A batch received is handed on item by item, each with an
    /// [`InboundId`] of its own, and answered once every item has its answer; a batch that
    /// is oversized or malformed is dropped unanswered (the stream closes), as a malformed
    /// frame on [`PROTOCOL`] is.
    fn on_batch(&mut self, event: request_response::Event<Frame, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let first = InboundId(InboundKey::Part(request_id, 0));
                if !self.accepts_requests_from(peer, first) {
                    return;
                }
                let (items, group_receipts) = match request {
                    Frame::Bytes(body) => (batch::decode(&body), true),
                    Frame::Legacy(body) => (batch::decode(&body), false),
                    Frame::Oversized(declared) => {
                        warn!(peer = %peer, request = %first, declared, limit = self.max_message_bytes, "oversized inbound batch drained and dropped");
                        return;
                    }
                };
                let items = match items {
                    Ok(items) => items,
                    Err(error) => {
                        warn!(peer = %peer, request = %first, %error, "malformed inbound batch dropped");
                        return;
                    }
                };
                let size = items
                    .iter()
                    .map(Vec::len)
                    .fold(0usize, usize::saturating_add);
                if self.over_budget(peer, first, size) {
                    drop(channel);
                    return;
                }
                debug!(peer = %peer, request = %first, items = items.len(), bytes = size, "inbound batch");
                self.batch_counters.note_received(items.len());
                self.inbound_batches.insert(
                    request_id,
                    InboundBatch {
                        channel,
                        answers: vec![None; items.len()],
                        remaining: items.len(),
                    },
                );
                for (item, bytes) in items.into_iter().enumerate() {
                    // At most MAX_BATCH_ITEMS items: the index fits.
                    let id = InboundId(InboundKey::Part(
                        request_id,
                        u16::try_from(item).unwrap_or(u16::MAX),
                    ));
                    self.await_response(id, peer, None, bytes.len());
                    self.emit(NetworkEvent::InboundRequest {
                        peer,
                        id,
                        payload: InboundPayload::Bytes(bytes),
                        group_receipts,
                    });
                }
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                trace!(peer = %peer, request = %request_id, bytes = response.len(), "batch response received");
                self.finish_batch(request_id, Ok(response));
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(peer = %peer, request = %request_id, %error, "outbound batch failed");
                let error = self.outbound_failed(peer, error);
                self.finish_batch(request_id, Err(error));
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.drop_inbound_batch(request_id);
                debug!(peer = %peer, request = %request_id, %error, "inbound batch failed");
            }
            request_response::Event::ResponseSent {
                peer, request_id, ..
            } => {
                trace!(peer = %peer, request = %request_id, "batch response sent");
            }
        }
    }

    fn on_request_response(&mut self, event: request_response::Event<Frame, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let id = InboundId(InboundKey::Single(request_id));
                if !self.accepts_requests_from(peer, id) {
                    return;
                }
                let size = match &request {
                    Frame::Bytes(bytes) | Frame::Legacy(bytes) => bytes.len(),
                    Frame::Oversized(_) => 0,
                };
                if size > 0 && self.over_budget(peer, id, size) {
                    // Dropping the channel closes the stream unanswered; the sender's delivery
                    // retries later. Nothing of it was queued.
                    drop(channel);
                    return;
                }
                let payload = match request {
                    Frame::Bytes(bytes) | Frame::Legacy(bytes) => {
                        debug!(peer = %peer, request = %id, bytes = bytes.len(), "inbound request");
                        InboundPayload::Bytes(bytes)
                    }
                    Frame::Oversized(declared) => {
                        warn!(peer = %peer, request = %id, declared, limit = self.max_message_bytes, "oversized inbound request drained");
                        InboundPayload::Oversized { declared }
                    }
                };
                self.await_response(id, peer, Some(channel), size);
                self.emit(NetworkEvent::InboundRequest {
                    peer,
                    id,
                    payload,
                    group_receipts: false,
                });
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                trace!(peer = %peer, request = %request_id, bytes = response.len(), "response received");
                self.finish_outbound(request_id, Ok(response));
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(peer = %peer, request = %request_id, %error, "outbound request failed");
                let error = self.outbound_failed(peer, error);
                self.finish_outbound(request_id, Err(error));
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let id = InboundId(InboundKey::Single(request_id));
                drop(self.take_awaiting(id));
                match error {
                    request_response::InboundFailure::Io(e) => {
                        warn!(peer = %peer, request = %id, error = %e, "inbound request failed");
                    }
                    error => debug!(peer = %peer, request = %id, %error, "inbound request failed"),
                }
            }
            request_response::Event::ResponseSent {
                peer, request_id, ..
            } => {
                trace!(peer = %peer, request = %request_id, "response sent");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{announced_version, identify_protocol_version};

    #[test]
    fn the_version_is_the_number_after_imi() {
        assert_eq!(announced_version(&identify_protocol_version(1)), Some(1));
        assert_eq!(
            announced_version(&identify_protocol_version(65535)),
            Some(65535)
        );
        assert_eq!(announced_version("/imi/2"), Some(2));
        assert_eq!(announced_version("/imi/3.1.4"), Some(3));
        for bad in [
            "",
            "/imi/",
            "/imi/.1",
            "/imi/+1.0.0",
            "/imi/x.0.0",
            "/ipfs/0.1.0",
            "/imi/65536.0.0",
            "imi/1.0.0",
        ] {
            assert_eq!(announced_version(bad), None, "{bad}");
        }
    }
}
