//! Integration tests: real swarms on 127.0.0.1, one tokio runtime. Every wait is on an event or a
//! reply; timeouts only guard against hangs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{future::Future, time::Duration};

use imi_network::{
    AllowedPeer, InboundPayload, Keypair, Multiaddr, NetworkClient, NetworkConfig, NetworkError,
    NetworkEvent, PeerId, spawn,
};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// Failure guard for every wait.
const GUARD: Duration = Duration::from_secs(60);

async fn guarded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn local_config(max_message_bytes: usize) -> NetworkConfig {
    NetworkConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        max_message_bytes,
        ..NetworkConfig::default()
    }
}

struct Node {
    peer: PeerId,
    addr: Multiaddr,
    client: NetworkClient,
    events: mpsc::Receiver<NetworkEvent>,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

impl Node {
    async fn start(keypair: Keypair, config: NetworkConfig, allowed: Vec<AllowedPeer>) -> Self {
        let peer = keypair.public().to_peer_id();
        let cancel = CancellationToken::new();
        let (client, mut events, handle) = spawn(keypair, config, allowed, cancel.clone()).unwrap();
        let addr = match guarded("a listen address", events.recv()).await {
            Some(NetworkEvent::ListeningOn(addr)) => addr,
            other => panic!("unexpected event before listening: {other:?}"),
        };
        assert_eq!(client.listen_addrs().await.unwrap(), vec![addr.clone()]);
        Node {
            peer,
            addr,
            client,
            events,
            cancel,
            handle,
        }
    }

    fn allowed_entry(&self) -> AllowedPeer {
        AllowedPeer {
            peer: self.peer,
            addrs: vec![self.addr.clone()],
        }
    }

    /// Waits for the first event matching `pred`, skipping others.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&NetworkEvent) -> bool) -> NetworkEvent {
        let events = &mut self.events;
        guarded(what, async {
            loop {
                let event = events.recv().await.expect("event channel open");
                if pred(&event) {
                    break event;
                }
            }
        })
        .await
    }

    /// Answers every inbound request in a background task, see [`answer`]. Every event is
    /// forwarded to the returned receiver for inspection.
    fn serve(self) -> (ServingNode, mpsc::Receiver<NetworkEvent>) {
        let Node {
            peer,
            addr,
            client,
            mut events,
            cancel,
            handle,
        } = self;
        let (seen_tx, seen_rx) = mpsc::channel(10_000);
        let responder = client.clone();
        let server = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let reply = match &event {
                    NetworkEvent::InboundRequest { id, payload, .. } => {
                        Some((*id, answer(payload)))
                    }
                    _ => None,
                };
                // Record before answering, so the requester cannot see the answer first.
                let _ = seen_tx.try_send(event);
                if let Some((id, body)) = reply {
                    responder.respond(id, body).await.unwrap();
                }
            }
        });
        (
            ServingNode {
                peer,
                addr,
                client,
                cancel,
                handle,
                server,
            },
            seen_rx,
        )
    }

    async fn stop(self) {
        self.cancel.cancel();
        guarded("the network task to stop", self.handle)
            .await
            .unwrap();
    }
}

struct ServingNode {
    peer: PeerId,
    addr: Multiaddr,
    client: NetworkClient,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    server: JoinHandle<()>,
}

impl ServingNode {
    fn allowed_entry(&self) -> AllowedPeer {
        AllowedPeer {
            peer: self.peer,
            addrs: vec![self.addr.clone()],
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        guarded("the network task to stop", self.handle)
            .await
            .unwrap();
        // The task dropped its event sender, so the server loop ends.
        guarded("the responder to stop", self.server).await.unwrap();
    }
}

/// Size of the answer to `b"big response"`.
const BIG_RESPONSE: usize = 100 * 1024;

/// The test responder's transformation: `ack:` + the reversed payload; oversized requests are
/// answered with a note; `big response` gets a 100 KiB answer.
fn answer(payload: &InboundPayload) -> Vec<u8> {
    match payload {
        InboundPayload::Bytes(bytes) if bytes == b"big response" => vec![9u8; BIG_RESPONSE],
        InboundPayload::Bytes(bytes) => {
            let mut out = b"ack:".to_vec();
            out.extend(bytes.iter().rev());
            out
        }
        InboundPayload::Oversized { declared } => format!("oversized:{declared}").into_bytes(),
    }
}

fn expected(bytes: &[u8]) -> Vec<u8> {
    answer(&InboundPayload::Bytes(bytes.to_vec()))
}

fn drain_now(rx: &mut mpsc::Receiver<NetworkEvent>) -> Vec<NetworkEvent> {
    let mut out = Vec::new();
    while let Ok(event) = rx.try_recv() {
        out.push(event);
    }
    out
}

/// Starts B (serving, allows A), then A (allows B at B's address).
async fn pair(
    a_config: NetworkConfig,
    b_config: NetworkConfig,
) -> (Node, ServingNode, mpsc::Receiver<NetworkEvent>) {
    let a_key = Keypair::generate_ed25519();
    let a_peer = a_key.public().to_peer_id();
    let b = Node::start(
        Keypair::generate_ed25519(),
        b_config,
        vec![AllowedPeer {
            peer: a_peer,
            addrs: vec![],
        }],
    )
    .await;
    let (b, b_seen) = b.serve();
    let a = Node::start(a_key, a_config, vec![b.allowed_entry()]).await;
    (a, b, b_seen)
}

/// libp2p's timers (substream upgrades, request timeouts, idle connections) are kept in the
/// runtime's timer wheel: the workspace patches `futures-timer` (crates/futures-timer), whose
/// crates.io version starts a `futures-timer` thread and wakes it for every timer made or
/// dropped, several times per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_timers_start_no_thread_of_their_own() {
    let (a, b, _b_seen) = pair(local_config(1024 * 1024), local_config(1024 * 1024)).await;
    for i in 0..10u32 {
        let body = format!("timer {i}").into_bytes();
        let reply = guarded("a response", a.client.request(b.peer, body.clone())).await;
        assert_eq!(reply.unwrap(), expected(&body));
    }
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t.starts_with("tokio-r")),
        "{threads:?}"
    );
    assert!(
        !threads.iter().any(|t| t == "futures-timer"),
        "a futures-timer thread runs: {threads:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_and_1000_concurrent_requests() {
    let (mut a, b, mut b_seen) = pair(local_config(1024 * 1024), local_config(1024 * 1024)).await;

    let reply = guarded(
        "first response",
        a.client.request(b.peer, b"hello".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"ack:olleh");
    a.wait_for(
        "A's PeerConnected",
        |e| matches!(e, NetworkEvent::PeerConnected(p) if *p == b.peer),
    )
    .await;
    assert_eq!(a.client.connected_peers().await.unwrap(), vec![b.peer]);

    let requests = (0..1000u32).map(|i| {
        let client = a.client.clone();
        let peer = b.peer;
        async move {
            let body = format!("request number {i}").into_bytes();
            let reply = client.request(peer, body.clone()).await;
            (body, reply)
        }
    });
    let results = guarded("1000 responses", futures::future::join_all(requests)).await;
    for (body, reply) in results {
        assert_eq!(reply.unwrap(), expected(&body));
    }

    let inbound = drain_now(&mut b_seen)
        .into_iter()
        .filter(|e| matches!(e, NetworkEvent::InboundRequest { peer, .. } if *peer == a.peer))
        .count();
    assert_eq!(inbound, 1001);

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_off_the_allow_list_are_refused() {
    let (a, b, mut b_seen) = pair(local_config(1024), local_config(1024)).await;
    // C trusts B, but B does not trust C.
    let c = Node::start(
        Keypair::generate_ed25519(),
        local_config(1024),
        vec![b.allowed_entry()],
    )
    .await;

    let result = guarded(
        "C's request to fail",
        c.client.request(b.peer, b"let me in".to_vec()),
    )
    .await;
    let err = result.expect_err("B must not answer C");
    assert!(
        matches!(err, NetworkError::ConnectionFailed(_) | NetworkError::Io(_)),
        "unexpected error: {err:?}"
    );

    // B reports the refusal, with C's proven identity.
    let refused = guarded("B's Refused event", async {
        loop {
            match b_seen.recv().await.unwrap() {
                NetworkEvent::Refused { peer, addr } => break (peer, addr),
                NetworkEvent::InboundRequest { peer, .. } => {
                    panic!("B saw a request from {peer}")
                }
                _ => {}
            }
        }
    })
    .await;
    assert_eq!(refused.0, Some(c.peer));
    assert!(refused.1.is_some());

    // A (allowed) is still served, and B never saw anything from C.
    let reply = guarded("A's request", a.client.request(b.peer, b"abc".to_vec()))
        .await
        .unwrap();
    assert_eq!(reply, b"ack:cba");
    for event in drain_now(&mut b_seen) {
        match event {
            NetworkEvent::InboundRequest { peer, .. } => assert_eq!(peer, a.peer),
            NetworkEvent::PeerConnected(peer) => assert_ne!(peer, c.peer),
            _ => {}
        }
    }
    assert!(!b.client.connected_peers().await.unwrap().contains(&c.peer));

    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_client_side() {
    let (a, b, mut b_seen) = pair(local_config(1024), local_config(1024)).await;

    let err = a.client.request(b.peer, vec![0u8; 1025]).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetworkError::TooLarge {
                size: 1025,
                limit: 1024
            }
        ),
        "unexpected error: {err:?}"
    );
    assert_eq!(
        err.to_string(),
        "message of 1025 bytes exceeds the 1024-byte limit"
    );
    // Exactly at the limit is fine.
    let body = vec![1u8; 1024 - 4];
    let reply = guarded("at-limit request", a.client.request(b.peer, body.clone()))
        .await
        .unwrap();
    assert_eq!(reply, expected(&body));
    // Nothing oversized reached B.
    for event in drain_now(&mut b_seen) {
        if let NetworkEvent::InboundRequest { payload, .. } = event {
            assert!(matches!(payload, InboundPayload::Bytes(ref b) if b.len() == 1020));
        }
    }

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_from_allowed_peers_are_drained_and_reported() {
    const RECEIVER_LIMIT: usize = 64 * 1024;
    const SENDER_LIMIT: usize = 1024 * 1024;
    let (mut a, b, mut b_seen) =
        pair(local_config(SENDER_LIMIT), local_config(RECEIVER_LIMIT)).await;

    // Over the receiver's limit but within 4x: drained, reported, answerable.
    let big = vec![5u8; 200 * 1024];
    let reply = guarded(
        "answer to the oversized request",
        a.client.request(b.peer, big),
    )
    .await
    .unwrap();
    assert_eq!(reply, format!("oversized:{}", 200 * 1024).into_bytes());
    let seen = guarded("B's Oversized event", async {
        loop {
            if let NetworkEvent::InboundRequest { payload, .. } = b_seen.recv().await.unwrap() {
                break payload;
            }
        }
    })
    .await;
    assert!(
        matches!(seen, InboundPayload::Oversized { declared } if declared == 200 * 1024),
        "unexpected payload: {seen:?}"
    );

    // The connection keeps working for normal requests.
    let reply = guarded(
        "normal request after",
        a.client.request(b.peer, b"xy".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"ack:yx");

    // Beyond 4x the receiver's limit: the stream is dropped, the sender gets an error...
    let huge = vec![6u8; 4 * RECEIVER_LIMIT + 1];
    let err = guarded("the huge request to fail", a.client.request(b.peer, huge))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NetworkError::Io(_) | NetworkError::ConnectionFailed(_)),
        "unexpected error: {err:?}"
    );
    // ...and normal requests still work.
    let reply = guarded(
        "normal request after huge",
        a.client.request(b.peer, b"ok".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"ack:ko");
    // All of the above ran on the one connection A opened at the start.
    let a_events = drain_now(&mut a.events);
    let connects = a_events
        .iter()
        .filter(|e| matches!(e, NetworkEvent::PeerConnected(p) if *p == b.peer))
        .count();
    assert_eq!(connects, 1, "events: {a_events:?}");
    assert!(
        !a_events
            .iter()
            .any(|e| matches!(e, NetworkEvent::PeerDisconnected(_))),
        "events: {a_events:?}"
    );

    // A response over the requester's limit fails the request with TooLarge. (B's limit is
    // 64 KiB, so use a fresh pair where the responder may send more than the requester takes.)
    a.stop().await;
    b.stop().await;

    let (a, b, _b_seen) = pair(local_config(64 * 1024), local_config(SENDER_LIMIT)).await;
    let err = guarded(
        "big response to fail",
        a.client.request(b.peer, b"big response".to_vec()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NetworkError::TooLarge { size: BIG_RESPONSE, limit } if limit == 64 * 1024),
        "unexpected error: {err:?}"
    );
    let reply = guarded(
        "normal request after big response",
        a.client.request(b.peer, b"z".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"ack:z");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_peer_from_the_allow_list_disconnects_and_refuses_it() {
    let (mut a, b, mut b_seen) = pair(local_config(1024), local_config(1024)).await;

    let reply = guarded("first request", a.client.request(b.peer, b"1".to_vec()))
        .await
        .unwrap();
    assert_eq!(reply, b"ack:1");
    a.wait_for(
        "A's PeerConnected",
        |e| matches!(e, NetworkEvent::PeerConnected(p) if *p == b.peer),
    )
    .await;

    // B drops A from its trust list.
    b.client.set_allowed(vec![]).await.unwrap();
    a.wait_for(
        "A's PeerDisconnected",
        |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == b.peer),
    )
    .await;
    guarded("B's PeerDisconnected", async {
        loop {
            if let NetworkEvent::PeerDisconnected(p) = b_seen.recv().await.unwrap()
                && p == a.peer
            {
                break;
            }
        }
    })
    .await;
    assert!(b.client.connected_peers().await.unwrap().is_empty());

    // B will not send to A any more...
    let err = b.client.request(a.peer, b"2".to_vec()).await.unwrap_err();
    assert!(matches!(err, NetworkError::NotAllowed(p) if p == a.peer));

    // ...and refuses A's new connection.
    let err = guarded(
        "A's request to fail",
        a.client.request(b.peer, b"3".to_vec()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, NetworkError::ConnectionFailed(_) | NetworkError::Io(_)),
        "unexpected error: {err:?}"
    );
    guarded("B's Refused event", async {
        loop {
            match b_seen.recv().await.unwrap() {
                NetworkEvent::Refused { peer, .. } if peer == Some(a.peer) => break,
                NetworkEvent::InboundRequest { peer, .. } => panic!("request from {peer}"),
                _ => {}
            }
        }
    })
    .await;

    // Allowing A again restores service.
    b.client
        .set_allowed(vec![AllowedPeer {
            peer: a.peer,
            addrs: vec![a.addr.clone()],
        }])
        .await
        .unwrap();
    let reply = guarded(
        "request after re-allowing",
        a.client.request(b.peer, b"4".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(reply, b"ack:4");

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_unknown_peers_are_not_allowed() {
    let a = Node::start(Keypair::generate_ed25519(), local_config(1024), vec![]).await;
    let stranger = Keypair::generate_ed25519().public().to_peer_id();
    let err = a
        .client
        .request(stranger, b"hi".to_vec())
        .await
        .unwrap_err();
    assert!(matches!(err, NetworkError::NotAllowed(p) if p == stranger));
    assert_eq!(
        err.to_string(),
        format!("peer {stranger} is not on the allow list")
    );
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_all_connects_allowed_peers() {
    let (mut a, b, mut b_seen) = pair(local_config(1024), local_config(1024)).await;
    a.client.dial_all().await.unwrap();
    a.wait_for(
        "A's PeerConnected",
        |e| matches!(e, NetworkEvent::PeerConnected(p) if *p == b.peer),
    )
    .await;
    guarded("B's PeerConnected", async {
        loop {
            if let NetworkEvent::PeerConnected(p) = b_seen.recv().await.unwrap()
                && p == a.peer
            {
                break;
            }
        }
    })
    .await;
    // Already connected: dialing again is a no-op.
    a.client.dial_all().await.unwrap();
    assert_eq!(a.client.connected_peers().await.unwrap(), vec![b.peer]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_checked_and_ids_expire() {
    let mut b = Node::start(Keypair::generate_ed25519(), local_config(1024), vec![]).await;
    let a = Node::start(
        Keypair::generate_ed25519(),
        local_config(1024),
        vec![b.allowed_entry()],
    )
    .await;
    b.client
        .set_allowed(vec![AllowedPeer {
            peer: a.peer,
            addrs: vec![],
        }])
        .await
        .unwrap();

    let request = tokio::spawn({
        let client = a.client.clone();
        let peer = b.peer;
        async move { client.request(peer, b"q".to_vec()).await }
    });
    let NetworkEvent::InboundRequest {
        id, peer, payload, ..
    } = b
        .wait_for("the inbound request", |e| {
            matches!(e, NetworkEvent::InboundRequest { .. })
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(peer, a.peer);
    assert!(matches!(payload, InboundPayload::Bytes(ref q) if q == b"q"));

    // Too large a response is refused and the request stays open...
    let err = b.client.respond(id, vec![0u8; 1025]).await.unwrap_err();
    assert!(matches!(
        err,
        NetworkError::TooLarge {
            size: 1025,
            limit: 1024
        }
    ));
    // ...so a proper one can follow.
    b.client.respond(id, b"r".to_vec()).await.unwrap();
    assert_eq!(
        guarded("the response", request).await.unwrap().unwrap(),
        b"r"
    );
    // The id is now spent.
    let err = b.client.respond(id, b"again".to_vec()).await.unwrap_err();
    assert!(
        matches!(err, NetworkError::Other(_)),
        "unexpected error: {err:?}"
    );

    // After shutdown every call reports ShutDown.
    let client = a.client.clone();
    a.stop().await;
    assert!(matches!(
        client.request(b.peer, b"late".to_vec()).await,
        Err(NetworkError::ShutDown)
    ));
    assert!(matches!(
        client.connected_peers().await,
        Err(NetworkError::ShutDown)
    ));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_bytes_are_bounded_per_peer_and_the_excess_is_shed() {
    const LIMIT: usize = 64 * 1024;
    let a_key = Keypair::generate_ed25519();
    let a_peer = a_key.public().to_peer_id();
    let mut b = Node::start(
        Keypair::generate_ed25519(),
        NetworkConfig {
            max_pending_inbound_bytes_per_peer: 2 * LIMIT,
            max_pending_inbound_bytes: 16 * LIMIT,
            ..local_config(LIMIT)
        },
        vec![AllowedPeer {
            peer: a_peer,
            addrs: vec![],
        }],
    )
    .await;
    let a = Node::start(a_key, local_config(LIMIT), vec![b.allowed_entry()]).await;
    // Three requests of almost the limit each; B answers none of them yet.
    let mut requests = Vec::new();
    for i in 0..3u8 {
        let (client, peer) = (a.client.clone(), b.peer);
        requests.push(tokio::spawn(async move {
            client.request(peer, vec![i; LIMIT - 100]).await
        }));
    }
    let (mut held, mut shed) = (Vec::new(), 0);
    while held.len() + shed < 3 {
        match b
            .wait_for("B's requests", |e| {
                matches!(
                    e,
                    NetworkEvent::InboundRequest { .. } | NetworkEvent::Shed { .. }
                )
            })
            .await
        {
            NetworkEvent::InboundRequest { id, .. } => held.push(id),
            NetworkEvent::Shed { peer, bytes } => {
                assert_eq!((peer, bytes), (a_peer, LIMIT - 100));
                shed += 1;
            }
            _ => unreachable!(),
        }
    }
    // Two fit in the peer's budget of unanswered bytes; the third was dropped unanswered.
    assert_eq!((held.len(), shed), (2, 1));
    // Answering one frees its bytes: the next request is delivered.
    b.client
        .respond(held.remove(0), b"done".to_vec())
        .await
        .unwrap();
    let (client, peer) = (a.client.clone(), b.peer);
    let next = tokio::spawn(async move { client.request(peer, vec![9; LIMIT - 100]).await });
    let id = match b
        .wait_for("the next request", |e| {
            matches!(
                e,
                NetworkEvent::InboundRequest { .. } | NetworkEvent::Shed { .. }
            )
        })
        .await
    {
        NetworkEvent::InboundRequest { id, .. } => id,
        other => panic!("the freed budget did not admit the next request: {other:?}"),
    };
    for id in held.into_iter().chain([id]) {
        b.client.respond(id, b"done".to_vec()).await.unwrap();
    }
    let mut answered = 0;
    for r in requests {
        if guarded("A's request ends", r).await.unwrap().is_ok() {
            answered += 1;
        }
    }
    assert_eq!(
        answered, 2,
        "the shed request failed at A, the others were answered"
    );
    assert_eq!(
        guarded("the next request", next).await.unwrap().unwrap(),
        b"done"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_holds_at_most_the_allowed_number_of_connections() {
    let a_key = Keypair::generate_ed25519();
    let a_peer = a_key.public().to_peer_id();
    let b = Node::start(
        Keypair::generate_ed25519(),
        NetworkConfig {
            max_connections_per_peer: 2,
            ..local_config(1024)
        },
        vec![AllowedPeer {
            peer: a_peer,
            addrs: vec![],
        }],
    )
    .await;
    let (b, _seen) = b.serve();
    // Three endpoints with A's identity, each with its own connection to B.
    let mut nodes = Vec::new();
    let mut results = Vec::new();
    for _ in 0..3 {
        let n = Node::start(a_key.clone(), local_config(1024), vec![b.allowed_entry()]).await;
        results.push(guarded("a request", n.client.request(b.peer, b"hi".to_vec())).await);
        nodes.push(n);
    }
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        results[2].is_err(),
        "a third connection of the same peer was accepted: {results:?}"
    );
    for n in nodes {
        n.stop().await;
    }
    b.stop().await;
}

fn versioned_config(protocol_version: u16, min_peer_protocol_version: u16) -> NetworkConfig {
    NetworkConfig {
        protocol_version,
        min_peer_protocol_version,
        ..local_config(1024)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_below_the_minimum_protocol_version_are_refused_until_they_upgrade() {
    let a_key = Keypair::generate_ed25519();
    let a_peer = a_key.public().to_peer_id();
    let b_key = Keypair::generate_ed25519();
    let allows_a = || {
        vec![AllowedPeer {
            peer: a_peer,
            addrs: vec![],
        }]
    };
    // B still speaks protocol 1 and accepts it; A speaks 2 and requires it.
    let (b, _b_seen) = Node::start(b_key.clone(), versioned_config(1, 1), allows_a())
        .await
        .serve();
    let mut a = Node::start(a_key, versioned_config(2, 2), vec![b.allowed_entry()]).await;

    a.client.dial_all().await.unwrap();
    let refused = a
        .wait_for("A refusing B", |e| {
            matches!(e, NetworkEvent::ProtocolRefused { .. })
        })
        .await;
    let NetworkEvent::ProtocolRefused {
        peer,
        announced,
        protocol_version,
        minimum,
        repeated,
    } = refused
    else {
        unreachable!()
    };
    assert_eq!(
        (
            peer,
            announced.as_str(),
            protocol_version,
            minimum,
            repeated
        ),
        (b.peer, "/imi/1.0.0", Some(1), 2, false)
    );
    a.wait_for(
        "A dropping B",
        |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == b.peer),
    )
    .await;
    // Requests to B fail without dialing, naming both versions.
    let err = a
        .client
        .request(b.peer, b"hello".to_vec())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            NetworkError::ProtocolTooOld { peer, version: Some(1), minimum: 2 } if peer == b.peer
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("protocol 1, below this node's minimum 2")
    );
    assert!(a.client.connected_peers().await.unwrap().is_empty());
    // The redial still reaches B, which is refused again: reported as a repeat.
    a.client.dial_all().await.unwrap();
    let again = a
        .wait_for("A refusing B again", |e| {
            matches!(e, NetworkEvent::ProtocolRefused { .. })
        })
        .await;
    assert!(matches!(
        again,
        NetworkEvent::ProtocolRefused { repeated: true, .. }
    ));
    // Until the refused connection is gone, `dial_all` sees B as connected and skips it.
    a.wait_for(
        "A dropping B again",
        |e| matches!(e, NetworkEvent::PeerDisconnected(p) if *p == b.peer),
    )
    .await;
    b.stop().await;

    // B is upgraded: same identity, protocol 2, a new port.
    let (b2, mut b2_seen) = Node::start(b_key, versioned_config(2, 1), allows_a())
        .await
        .serve();
    a.client
        .set_allowed(vec![b2.allowed_entry()])
        .await
        .unwrap();
    a.client.dial_all().await.unwrap();
    let identified = a
        .wait_for("A accepting the upgraded B", |e| {
            matches!(e, NetworkEvent::PeerIdentified { .. })
        })
        .await;
    assert!(matches!(
        identified,
        NetworkEvent::PeerIdentified { peer, protocol_version: 2 } if peer == b2.peer
    ));
    assert_eq!(
        a.client.request(b2.peer, b"hello".to_vec()).await.unwrap(),
        expected(b"hello")
    );
    // B2, whose minimum is 1, accepted A's higher version too.
    guarded("B2 identifying A", async {
        loop {
            if let NetworkEvent::PeerIdentified {
                peer,
                protocol_version,
            } = b2_seen.recv().await.unwrap()
            {
                assert_eq!((peer, protocol_version), (a.peer, 2));
                break;
            }
        }
    })
    .await;
    a.stop().await;
    b2.stop().await;
}

#[tokio::test]
async fn a_minimum_above_the_spoken_version_is_refused_at_spawn() {
    for (version, minimum) in [(1, 2), (2, 0)] {
        let err = spawn(
            Keypair::generate_ed25519(),
            versioned_config(version, minimum),
            vec![],
            CancellationToken::new(),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            err.to_string().contains("min_peer_protocol_version"),
            "{err}"
        );
    }
}

/// While A keeps sending, B's large request is read at the contended pace: the node paused
/// B's connection instead of reading it at once, and the request still arrives whole. With
/// pacing off nothing pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contended_connection_is_read_at_its_pace() {
    const LIMIT: usize = 1024 * 1024;
    for rate in [512 * 1024, 0] {
        let (a_key, b_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let peers = [a_key.public().to_peer_id(), b_key.public().to_peer_id()];
        let x = Node::start(
            Keypair::generate_ed25519(),
            NetworkConfig {
                contended_read_bytes_per_second: rate,
                ..local_config(LIMIT)
            },
            peers
                .iter()
                .map(|&peer| AllowedPeer {
                    peer,
                    addrs: vec![],
                })
                .collect(),
        )
        .await;
        let (x, _seen) = x.serve();
        let a = Node::start(a_key, local_config(LIMIT), vec![x.allowed_entry()]).await;
        let b = Node::start(b_key, local_config(LIMIT), vec![x.allowed_entry()]).await;

        // A sends small requests one after another until told to stop.
        let stop = CancellationToken::new();
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        let sender = {
            let (client, peer, stop) = (a.client.clone(), x.peer, stop.clone());
            tokio::spawn(async move {
                let mut first = Some(first_tx);
                let mut sent = 0u64;
                while !stop.is_cancelled() {
                    let body = sent.to_be_bytes().to_vec();
                    assert_eq!(
                        client.request(peer, body.clone()).await.unwrap(),
                        expected(&body)
                    );
                    sent += 1;
                    if let Some(tx) = first.take() {
                        let _ = tx.send(());
                    }
                }
                sent
            })
        };
        guarded("A's first answer", first_rx).await.unwrap();

        let body: Vec<u8> = (0..LIMIT - 1024).map(|i| (i % 251) as u8).collect();
        let answer = guarded("B's large request", b.client.request(x.peer, body.clone()))
            .await
            .unwrap();
        assert_eq!(answer, expected(&body));
        stop.cancel();
        assert!(guarded("A's sender", sender).await.unwrap() > 0);

        let pacing = x.client.read_pacing();
        if rate > 0 {
            assert!(pacing.pauses > 0, "{pacing:?}");
            assert!(pacing.paused > Duration::ZERO, "{pacing:?}");
        } else {
            assert_eq!(pacing, imi_network::ReadPacing::default());
        }
        a.stop().await;
        b.stop().await;
        x.stop().await;
    }
}

/// A requests of B once and waits until B's identify has told A what B speaks.
async fn connected_and_identified(a: &mut Node, b: PeerId) {
    let reply = guarded("the first response", a.client.request(b, b"hi".to_vec()))
        .await
        .unwrap();
    assert_eq!(reply, b"ack:ih");
    a.wait_for(
        "B identified",
        |e| matches!(e, NetworkEvent::PeerIdentified { peer, .. } if *peer == b),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_queued_together_travel_as_batches_to_a_peer_that_speaks_them() {
    let (mut a, b, mut b_seen) = pair(local_config(1024 * 1024), local_config(1024 * 1024)).await;
    connected_and_identified(&mut a, b.peer).await;
    assert_eq!(a.client.batches(), imi_network::BatchStats::default());

    // 100 small requests, one above the batch item limit (alone on /imi/envelope/1), one
    // above the frame limit (refused before sending; the others still go).
    let mut items: Vec<Vec<u8>> = (0..100u32)
        .map(|i| format!("item {i}").into_bytes())
        .collect();
    items.insert(50, vec![b'x'; imi_network::BATCH_ITEM_MAX_BYTES + 1]);
    items.insert(70, vec![b'y'; 1024 * 1024 + 1]);
    let answers = guarded(
        "the batched answers",
        a.client.request_many(b.peer, items.clone()),
    )
    .await;
    assert_eq!(answers.len(), items.len());
    for (item, answer) in items.iter().zip(&answers) {
        if item.len() > 1024 * 1024 {
            assert!(
                matches!(answer, Err(NetworkError::TooLarge { .. })),
                "{answer:?}"
            );
        } else {
            assert_eq!(answer.as_ref().unwrap(), &expected(item));
        }
    }
    // The 50 before the large one, and the 50 after it: two batches at least (at most 64
    // items each), 100 requests in them; the large one went alone.
    let sent = a.client.batches();
    assert_eq!(sent.sent_items, 100, "{sent:?}");
    assert!((2..=50).contains(&sent.sent), "{sent:?}");
    let received = b.client.batches();
    assert_eq!(
        (received.received, received.received_items),
        (sent.sent, 100)
    );
    // B's consumer saw each request as one inbound request of its own.
    let inbound = drain_now(&mut b_seen)
        .into_iter()
        .filter(|e| matches!(e, NetworkEvent::InboundRequest { .. }))
        .count();
    assert_eq!(inbound, 1 + 101);

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answers_of_a_batch_go_back_in_order_whatever_order_they_are_given_in() {
    let a_key = Keypair::generate_ed25519();
    let mut b = Node::start(
        Keypair::generate_ed25519(),
        local_config(1024 * 1024),
        vec![AllowedPeer {
            peer: a_key.public().to_peer_id(),
            addrs: vec![],
        }],
    )
    .await;
    let mut a = Node::start(a_key, local_config(1024 * 1024), vec![b.allowed_entry()]).await;
    // Connect and identify with one request B answers by hand.
    let first = tokio::spawn({
        let client = a.client.clone();
        let peer = b.peer;
        async move { client.request(peer, b"hi".to_vec()).await }
    });
    let NetworkEvent::InboundRequest {
        id, group_receipts, ..
    } = b
        .wait_for("the first request", |e| {
            matches!(e, NetworkEvent::InboundRequest { .. })
        })
        .await
    else {
        unreachable!()
    };
    // A request alone must be answered with a single receipt.
    assert!(!group_receipts);
    b.client.respond(id, b"hello".to_vec()).await.unwrap();
    assert_eq!(
        guarded("the first answer", first).await.unwrap().unwrap(),
        b"hello"
    );
    let b_peer = b.peer;
    a.wait_for(
        "B identified",
        |e| matches!(e, NetworkEvent::PeerIdentified { peer, .. } if *peer == b_peer),
    )
    .await;

    let items: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i]).collect();
    let batch = tokio::spawn({
        let client = a.client.clone();
        let items = items.clone();
        async move { client.request_many(b_peer, items).await }
    });
    let mut pending = Vec::new();
    while pending.len() < items.len() {
        if let NetworkEvent::InboundRequest {
            id,
            payload,
            group_receipts,
            ..
        } = b
            .wait_for("a batch item", |e| {
                matches!(e, NetworkEvent::InboundRequest { .. })
            })
            .await
        {
            let InboundPayload::Bytes(bytes) = payload else {
                panic!("an item is not bytes")
            };
            // Items of a batch on /imi/envelopes/2 may be answered with group receipts.
            assert!(group_receipts);
            pending.push((id, bytes));
        }
    }
    // Answer last to first, each with its own item doubled; one id answered twice fails.
    for (id, bytes) in pending.iter().rev() {
        b.client
            .respond(*id, [bytes.clone(), bytes.clone()].concat())
            .await
            .unwrap();
    }
    let (id, _) = &pending[0];
    assert!(b.client.respond(*id, b"again".to_vec()).await.is_err());
    let answers = guarded("the batch's answers", batch).await.unwrap();
    for (item, answer) in items.iter().zip(answers) {
        assert_eq!(answer.unwrap(), [item.clone(), item.clone()].concat());
    }
    assert_eq!(a.client.batches().sent, 1);
    assert_eq!(a.client.batches().sent_items, 10);

    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_batching_gets_one_request_per_stream() {
    let b_config = NetworkConfig {
        batching: false,
        ..local_config(1024 * 1024)
    };
    let (mut a, b, mut b_seen) = pair(local_config(1024 * 1024), b_config).await;
    connected_and_identified(&mut a, b.peer).await;
    let items: Vec<Vec<u8>> = (0..20u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let answers = guarded("the answers", a.client.request_many(b.peer, items.clone())).await;
    for (item, answer) in items.iter().zip(answers) {
        assert_eq!(answer.unwrap(), expected(item));
    }
    assert_eq!(a.client.batches(), imi_network::BatchStats::default());
    assert_eq!(b.client.batches(), imi_network::BatchStats::default());
    let inbound = drain_now(&mut b_seen)
        .into_iter()
        .filter(|e| matches!(e, NetworkEvent::InboundRequest { .. }))
        .count();
    assert_eq!(inbound, 21);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_counts_its_requests_in_the_per_peer_window() {
    // 8 streams: A keeps at most 4 of its own requests in flight to B, batched or not.
    let a_config = NetworkConfig {
        max_concurrent_streams: 8,
        ..local_config(1024 * 1024)
    };
    let (mut a, b, _b_seen) = pair(a_config, local_config(1024 * 1024)).await;
    connected_and_identified(&mut a, b.peer).await;
    let items: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
    let answers = guarded("the answers", a.client.request_many(b.peer, items.clone())).await;
    for (item, answer) in items.iter().zip(answers) {
        assert_eq!(answer.unwrap(), expected(item));
    }
    // No batch held more than the window's 4 requests: 20 requests took 5 batches or more.
    let sent = a.client.batches();
    assert_eq!(sent.sent_items, 20, "{sent:?}");
    assert!(sent.sent >= 5, "a batch exceeded the window: {sent:?}");
    a.stop().await;
    b.stop().await;
}

/// What one poll of a connection writes leaves in one `send` (`coalesce`): a request is the
/// dialer's proposal, body and close in one write; the answer is the listener's echo, then
/// its body and close. Without it each Yamux frame was a write of its own: seven per
/// exchange for the two sides, nine before the length prefix and the body went in one write
/// (BENCHMARKS.md, *One socket write per poll*).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_takes_few_socket_writes() {
    let config = NetworkConfig {
        batching: false,
        ..local_config(1024 * 1024)
    };
    let (mut a, b, _b_seen) = pair(config.clone(), config).await;
    connected_and_identified(&mut a, b.peer).await;
    let before = a.client.socket_writes() + b.client.socket_writes();
    const EXCHANGES: u64 = 50;
    for i in 0..EXCHANGES {
        let body = vec![u8::try_from(i).unwrap(); 1500];
        let reply = guarded("a response", a.client.request(b.peer, body.clone())).await;
        assert_eq!(reply.unwrap(), expected(&body));
    }
    let writes = a.client.socket_writes() + b.client.socket_writes() - before;
    // Three per exchange, and a ping or identify push of either side meanwhile.
    assert!(writes >= EXCHANGES, "{writes} writes: the counter counts");
    assert!(
        writes <= 3 * EXCHANGES + 8,
        "{writes} socket writes for {EXCHANGES} exchanges"
    );
    a.stop().await;
    b.stop().await;
}
