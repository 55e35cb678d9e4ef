//! The partition proxies: one TCP listener per ordered pair of nodes, forwarding to the
//! second node's libp2p port. Each node is told (`[network] peer_addresses`) to dial every
//! peer through its own proxy for that peer, so the simulator sees every connection between
//! two nodes and can cut them: a partition closes the open connections between the two
//! groups and refuses new ones until it heals. Real sockets, real libp2p handshakes; the
//! nodes only see connections fail, as they would on a real network.
use anyhow::{Context, Result};
use imi_protocol::NodeId;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The proxies of a federation.
pub struct Proxies {
    ports: BTreeMap<(NodeId, NodeId), u16>,
    blocked: Arc<Mutex<HashSet<(NodeId, NodeId)>>>,
    cut: watch::Sender<u64>,
    tasks: Vec<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An unordered pair.
fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

impl Proxies {
    /// Listeners for every ordered pair of `members`; `p2p_port(n)` is node n's libp2p port.
    pub async fn start(members: &[NodeId], p2p_port: impl Fn(NodeId) -> u16) -> Result<Proxies> {
        let (cut, _) = watch::channel(0u64);
        let mut p = Proxies {
            ports: BTreeMap::new(),
            blocked: Arc::new(Mutex::new(HashSet::new())),
            cut,
            tasks: Vec::new(),
        };
        for &from in members {
            for &to in members.iter().filter(|t| **t != from) {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .context("binding a proxy port")?;
                p.ports.insert((from, to), listener.local_addr()?.port());
                let target = p2p_port(to);
                let blocked = p.blocked.clone();
                let cut = p.cut.subscribe();
                p.tasks.push(tokio::spawn(serve(
                    listener, from, to, target, blocked, cut,
                )));
            }
        }
        Ok(p)
    }

    /// The `[network] peer_addresses` value of node `from`: every peer through its proxy.
    pub fn peer_addresses(&self, from: NodeId) -> String {
        let entries: Vec<String> = self
            .ports
            .iter()
            .filter(|((f, _), _)| *f == from)
            .map(|((_, to), port)| format!("{to} = [\"/ip4/127.0.0.1/tcp/{port}\"]"))
            .collect();
        format!("{{ {} }}", entries.join(", "))
    }

    /// Cuts every connection between `a` and `b` and refuses new ones.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        {
            let mut blocked = lock(&self.blocked);
            for x in a {
                for y in b {
                    blocked.insert(pair(*x, *y));
                }
            }
        }
        self.cut.send_modify(|g| *g += 1);
    }

    /// Lets every pair connect again.
    pub fn heal(&self) {
        lock(&self.blocked).clear();
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn serve(
    listener: TcpListener,
    from: NodeId,
    to: NodeId,
    target: u16,
    blocked: Arc<Mutex<HashSet<(NodeId, NodeId)>>>,
    cut: watch::Receiver<u64>,
) {
    let is_blocked =
        move |b: &Arc<Mutex<HashSet<(NodeId, NodeId)>>>| lock(b).contains(&pair(from, to));
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        if is_blocked(&blocked) {
            drop(inbound);
            continue;
        }
        let blocked = blocked.clone();
        let mut cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            cut.mark_unchanged();
            let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
            tokio::pin!(copy);
            loop {
                tokio::select! {
                    _ = &mut copy => return,
                    changed = cut.changed() => {
                        if changed.is_err() || is_blocked(&blocked) {
                            // Dropping both sockets closes the connection on both nodes.
                            return;
                        }
                    }
                }
            }
        });
    }
}
