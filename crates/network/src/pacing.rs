//! Read pacing: while several peers are sending, each is read at no more than a set byte rate.
//!
//! Every TCP connection's reads pass through [`Paced`], below Noise and Yamux. A peer that
//! has sent more than its share waits before its next read; while it waits, nothing more is
//! read from its sockets, the kernel's receive buffers fill, and TCP flow control stops the
//! sender. Bytes that are never read cost this node nothing: no decryption, no stream, no
//! verification, no disk and no refusal to sign. That is the difference from refusing a
//! flood after reading it, which costs the receiver per attempt whatever it then decides.
//!
//! Each connection starts on a lane (token bucket) of its own; once Noise has proven the
//! peer, [`Pacer::bind`] moves it, and every other connection from the same remote socket
//! address, to the peer's lane, shared by all of that peer's connections. The pace applies
//! only under contention: a lane reads freely while no other lane has read anything in the
//! last [`CONTENTION_WINDOW`], so one peer alone (a catch-up after a restart, a benchmark
//! pair) gets the whole node. Under contention a lane has
//! [`crate::NetworkConfig::contended_read_bytes_per_second`] with a burst of a 64th of a
//! second's bytes (at least [`MIN_BURST_BYTES`]); a read may take the bucket below zero, and
//! the next read waits until it is back at zero.

use std::{
    collections::HashMap,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock, PoisonError, Weak,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use futures::{AsyncRead, AsyncWrite};
use libp2p::{Multiaddr, PeerId, core::ConnectedPoint, multiaddr::Protocol};
use tokio::time::{Instant, Sleep};

/// A peer is contended while another peer has sent within this window.
pub const CONTENTION_WINDOW: Duration = Duration::from_secs(1);

/// The smallest burst a peer may send at once under contention: one Noise frame.
pub const MIN_BURST_BYTES: u64 = 64 * 1024;

/// What read pacing has done since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadPacing {
    /// Times a connection waited before reading because its peer had sent its share.
    pub pauses: u64,
    /// Time connections spent waiting, summed over connections.
    pub paused: Duration,
}

/// One token bucket: a connection's until its handshake names the peer, then the peer's,
/// shared by all of its connections.
#[derive(Debug)]
struct Lane {
    id: u64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may still be read before the next read waits; negative after a large read.
    tokens: i128,
    refilled: Instant,
}

/// Where a connection's lane is set once its peer is known.
type Slot = OnceLock<Arc<Lane>>;

/// The node's read pacing: the peers' lanes and which of them sent recently.
#[derive(Debug)]
pub(crate) struct Pacer {
    bytes_per_second: u64,
    burst: u64,
    next_id: AtomicU64,
    /// The two most recent distinct lanes that read and when: enough to tell any lane when
    /// some other lane last read.
    recent: Mutex<[(u64, Option<Instant>); 2]>,
    /// Each peer's lane, while one of its connections holds it.
    peers: Mutex<HashMap<PeerId, Weak<Lane>>>,
    /// Connections whose peer is not known yet, by remote socket address.
    unbound: Mutex<Vec<(SocketAddr, Weak<Slot>)>>,
    pauses: AtomicU64,
    paused_micros: AtomicU64,
    /// Writes to the connections' sockets that wrote something.
    writes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The IP address and TCP port of a `/ip4|ip6/…/tcp/…` address.
fn socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut parts = addr.iter();
    let ip: std::net::IpAddr = match parts.next()? {
        Protocol::Ip4(ip) => ip.into(),
        Protocol::Ip6(ip) => ip.into(),
        _ => return None,
    };
    match parts.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

/// The remote socket address of a connection, as the transport's endpoint gives it.
pub(crate) fn remote_socket_addr(endpoint: &ConnectedPoint) -> Option<SocketAddr> {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => socket_addr(address),
        ConnectedPoint::Listener { send_back_addr, .. } => socket_addr(send_back_addr),
    }
}

impl Pacer {
    /// A pacer reading each contended peer at `bytes_per_second` (0: no pacing).
    pub(crate) fn new(bytes_per_second: u64) -> Arc<Self> {
        Arc::new(Self {
            bytes_per_second,
            burst: (bytes_per_second / 64).max(MIN_BURST_BYTES),
            next_id: AtomicU64::new(1),
            recent: Mutex::new([(0, None), (0, None)]),
            peers: Mutex::new(HashMap::new()),
            unbound: Mutex::new(Vec::new()),
            pauses: AtomicU64::new(0),
            paused_micros: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> ReadPacing {
        ReadPacing {
            pauses: self.pauses.load(Ordering::Relaxed),
            paused: Duration::from_micros(self.paused_micros.load(Ordering::Relaxed)),
        }
    }

    /// Writes to the connections' sockets since the network started.
    pub(crate) fn socket_writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn lane(&self) -> Arc<Lane> {
        Arc::new(Lane {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            bucket: Mutex::new(Bucket {
                tokens: i128::from(self.burst),
                refilled: Instant::now(),
            }),
        })
    }

    /// Wraps one connection's byte stream. `remote` is its peer's socket address, by which
    /// [`Pacer::bind`] finds it once the handshake has named the peer.
    pub(crate) fn wrap<S>(self: &Arc<Self>, inner: S, remote: Option<SocketAddr>) -> Paced<S> {
        let slot = Arc::new(Slot::new());
        if let Some(addr) = remote {
            let mut unbound = lock(&self.unbound);
            unbound.retain(|(_, s)| s.strong_count() > 0);
            unbound.push((addr, Arc::downgrade(&slot)));
        }
        Paced {
            inner,
            pacer: Arc::clone(self),
            own: self.lane(),
            slot,
            sleep: None,
            slept_since: None,
        }
    }

    /// The handshake on the connection(s) from `remote` proved them to be `peer`'s: from now
    /// on they read from the peer's lane.
    pub(crate) fn bind(&self, remote: SocketAddr, peer: PeerId) {
        let lane = {
            let mut peers = lock(&self.peers);
            match peers.get(&peer).and_then(Weak::upgrade) {
                Some(lane) => lane,
                None => {
                    peers.retain(|_, l| l.strong_count() > 0);
                    let lane = self.lane();
                    peers.insert(peer, Arc::downgrade(&lane));
                    lane
                }
            }
        };
        let mut unbound = lock(&self.unbound);
        unbound.retain(|(addr, slot)| match slot.upgrade() {
            Some(slot) if *addr == remote => {
                let _ = slot.set(Arc::clone(&lane));
                false
            }
            Some(_) => true,
            None => false,
        });
    }

    /// Records that lane `id` read at `now`; true if another lane read within
    /// [`CONTENTION_WINDOW`] before it.
    fn note_read(&self, id: u64, now: Instant) -> bool {
        let mut recent = lock(&self.recent);
        let [first, second] = &mut *recent;
        if first.0 != id {
            *second = *first;
        }
        *first = (id, Some(now));
        other_within_window(&recent, id, now)
    }

    /// True if a lane other than `id` read within [`CONTENTION_WINDOW`] before `now`.
    fn contended(&self, id: u64, now: Instant) -> bool {
        other_within_window(&lock(&self.recent), id, now)
    }
}

/// Whether the most recent read by a lane other than `id` (in `recent`, the two most recent
/// distinct readers) is within [`CONTENTION_WINDOW`] before `now`.
fn other_within_window(recent: &[(u64, Option<Instant>); 2], id: u64, now: Instant) -> bool {
    let [first, second] = recent;
    let other = if first.0 == id { second.1 } else { first.1 };
    other.is_some_and(|t| now.saturating_duration_since(t) < CONTENTION_WINDOW)
}

/// A byte stream whose reads are paced by a shared [`Pacer`]; writes pass through.
pub(crate) struct Paced<S> {
    inner: S,
    pacer: Arc<Pacer>,
    /// The connection's own lane, used until its peer's is set in `slot`.
    own: Arc<Lane>,
    slot: Arc<Slot>,
    sleep: Option<Pin<Box<Sleep>>>,
    slept_since: Option<Instant>,
}

impl<S> Paced<S> {
    fn lane(&self) -> &Arc<Lane> {
        self.slot.get().unwrap_or(&self.own)
    }

    /// How long to wait before the next read, if at all.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let rate = self.pacer.bytes_per_second;
        if rate == 0 {
            return None;
        }
        let lane = self.lane();
        let mut bucket = lock(&lane.bucket);
        let elapsed = now.saturating_duration_since(bucket.refilled);
        bucket.refilled = now;
        let earned = elapsed.as_nanos().saturating_mul(u128::from(rate)) / 1_000_000_000;
        bucket.tokens = bucket
            .tokens
            .saturating_add(i128::try_from(earned).unwrap_or(i128::MAX))
            .min(i128::from(self.pacer.burst));
        if bucket.tokens >= 0 || !self.pacer.contended(lane.id, now) {
            return None;
        }
        let nanos = bucket.tokens.unsigned_abs().saturating_mul(1_000_000_000) / u128::from(rate);
        Some(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX).max(1),
        ))
    }

    /// Counts a write of `n` bytes to the socket.
    fn count_write(&self, n: usize) {
        if n > 0 {
            self.pacer.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Charges `n` bytes just read to the lane.
    fn charge(&self, n: usize) {
        if self.pacer.bytes_per_second == 0 || n == 0 {
            return;
        }
        let lane = self.lane();
        let contended = self.pacer.note_read(lane.id, Instant::now());
        let mut bucket = lock(&lane.bucket);
        bucket.tokens = bucket
            .tokens
            .saturating_sub(i128::try_from(n).unwrap_or(i128::MAX));
        if !contended {
            // Alone, a peer reads freely and owes nothing when contention starts.
            bucket.tokens = bucket.tokens.max(0);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Paced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                this.sleep = None;
            }
            let now = Instant::now();
            if let Some(since) = this.slept_since.take() {
                let slept = now.saturating_duration_since(since);
                let micros = u64::try_from(slept.as_micros()).unwrap_or(u64::MAX);
                this.pacer
                    .paused_micros
                    .fetch_add(micros, Ordering::Relaxed);
            }
            match this.wait(now) {
                Some(wait) => {
                    this.pacer.pauses.fetch_add(1, Ordering::Relaxed);
                    this.slept_since = Some(now);
                    this.sleep = Some(Box::pin(tokio::time::sleep(wait)));
                }
                None => break,
            }
        }
        let n = ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.charge(n);
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Paced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.count_write(n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.count_write(n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, io::Cursor};

    use super::*;

    const RATE: u64 = 1024 * 1024;

    async fn read_all<S: AsyncRead + Unpin>(stream: &mut S, total: usize) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0;
        while read < total {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream ended after {read} bytes");
            read += n;
        }
    }

    fn source(bytes: usize) -> Cursor<Vec<u8>> {
        Cursor::new(vec![7u8; bytes])
    }

    /// Another connection reads a little: from now on the others are contended, until it has
    /// been silent for the window.
    async fn another_sends(pacer: &Arc<Pacer>) {
        read_all(&mut pacer.wrap(source(1024), None), 1024).await;
    }

    /// How long reading `bytes` takes under contention from a full bucket: the burst and the
    /// 64 KiB read that takes the bucket below zero are free, the rest goes at [`RATE`].
    fn paced(pacer: &Pacer, bytes: u64) -> Duration {
        let free = pacer.burst + 64 * 1024;
        Duration::from_secs_f64((bytes - free) as f64 / RATE as f64)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_alone_reads_freely() {
        let pacer = Pacer::new(RATE);
        let mut a = pacer.wrap(source(8 * 1024 * 1024), None);
        let start = Instant::now();
        read_all(&mut a, 8 * 1024 * 1024).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(pacer.stats(), ReadPacing::default());
    }

    #[tokio::test(start_paused = true)]
    async fn under_contention_a_connection_reads_at_the_rate() {
        let pacer = Pacer::new(RATE);
        let mut b = pacer.wrap(source(4 * 1024 * 1024), None);
        another_sends(&pacer).await;
        let start = Instant::now();
        read_all(&mut b, 512 * 1024).await;
        let elapsed = start.elapsed();
        let expected = paced(&pacer, 512 * 1024);
        assert!(
            elapsed >= expected && elapsed < expected + Duration::from_millis(70),
            "{elapsed:?}"
        );
        let stats = pacer.stats();
        assert!(stats.pauses >= 5, "{stats:?}");
        assert!(stats.paused >= expected, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn contention_ends_when_the_others_fall_silent() {
        let pacer = Pacer::new(RATE);
        let mut b = pacer.wrap(source(8 * 1024 * 1024), None);
        another_sends(&pacer).await;
        let start = Instant::now();
        // 2 MiB: paced at first, then free once A has been silent for the window.
        read_all(&mut b, 2 * 1024 * 1024).await;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= CONTENTION_WINDOW - Duration::from_millis(70)
                && elapsed <= CONTENTION_WINDOW + Duration::from_millis(70),
            "{elapsed:?}"
        );
        // Free again: the next megabyte costs no time.
        let now = Instant::now();
        read_all(&mut b, 1024 * 1024).await;
        assert_eq!(now.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_of_zero_turns_pacing_off() {
        let pacer = Pacer::new(0);
        let mut b = pacer.wrap(source(4 * 1024 * 1024), None);
        another_sends(&pacer).await;
        let start = Instant::now();
        read_all(&mut b, 4 * 1024 * 1024).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(pacer.stats(), ReadPacing::default());
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_not_paced() {
        use futures::AsyncWriteExt;
        let pacer = Pacer::new(RATE);
        another_sends(&pacer).await;
        let mut b = pacer.wrap(Cursor::new(Vec::new()), None);
        let start = Instant::now();
        b.write_all(&vec![1u8; 4 * 1024 * 1024]).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn a_peers_connections_share_one_lane() {
        let pacer = Pacer::new(RATE);
        let (b_peer, a_peer) = (PeerId::random(), PeerId::random());
        // B holds two connections from the same address (both dialed by this node), A one.
        let mut b1 = pacer.wrap(source(4 * 1024 * 1024), Some(addr(4001)));
        let mut b2 = pacer.wrap(source(4 * 1024 * 1024), Some(addr(4001)));
        let mut a = pacer.wrap(source(1024), Some(addr(4002)));
        pacer.bind(addr(4001), b_peer);
        pacer.bind(addr(4002), a_peer);
        // B's two connections alone do not contend with each other: both read freely.
        let start = Instant::now();
        read_all(&mut b1, 1024 * 1024).await;
        read_all(&mut b2, 1024 * 1024).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Under contention they share one rate: 512 KiB over both takes as long as over one.
        read_all(&mut a, 1024).await;
        let start = Instant::now();
        for _ in 0..4 {
            read_all(&mut b1, 64 * 1024).await;
            read_all(&mut b2, 64 * 1024).await;
        }
        let expected = paced(&pacer, 512 * 1024);
        let elapsed = start.elapsed();
        assert!(
            elapsed >= expected && elapsed < expected + Duration::from_millis(70),
            "{elapsed:?} for {expected:?}"
        );
    }

    #[test]
    fn a_connections_remote_address_is_read_from_its_endpoint() {
        let dialed = ConnectedPoint::Dialer {
            address:
                "/ip4/10.0.0.7/tcp/47010/p2p/12D3KooWLRPJAA5o6Z6f2RRGr5BHJ6pDDUv9qSyPDkvJA3WkMsQx"
                    .parse()
                    .unwrap(),
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::New,
        };
        assert_eq!(
            remote_socket_addr(&dialed),
            Some(SocketAddr::from(([10, 0, 0, 7], 47010)))
        );
        let accepted = ConnectedPoint::Listener {
            local_addr: "/ip4/127.0.0.1/tcp/47000".parse().unwrap(),
            send_back_addr: "/ip6/::1/tcp/51234".parse().unwrap(),
        };
        assert_eq!(
            remote_socket_addr(&accepted),
            Some("[::1]:51234".parse().unwrap())
        );
        let named = ConnectedPoint::Listener {
            local_addr: "/ip4/127.0.0.1/tcp/47000".parse().unwrap(),
            send_back_addr: "/dns4/example.org/tcp/1".parse().unwrap(),
        };
        assert_eq!(remote_socket_addr(&named), None);
    }
}
