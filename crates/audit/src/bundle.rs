//! Evidence bundles and their offline verification. The format is specified in
//! `docs/evidence-bundle.md`; this module is one implementation of that page.
use crate::leaf::{Leaf, Prev};
use crate::merkle::{self, Hash};
use crate::note::{CaseHead, Checkpoint, SignedNote, head_origin_of, origin_of};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use imi_protocol::{Envelope, NodeId, Receipt, TrustList};
use serde::{Deserialize, Serialize};

/// The format tag.
pub const FORMAT: &str = "imi-evidence-bundle/1";
/// Largest envelope the verifier parses.
pub const MAX_ENVELOPE: usize = 8 * 1024 * 1024;

/// A consistency proof between two checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consistency {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
    /// The proof, hex hashes.
    pub proof: Vec<String>,
}

/// One log entry with its inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Leaf index.
    pub index: u64,
    /// The leaf text.
    pub leaf: String,
    /// Inclusion proof in the bundle's last checkpoint, hex hashes.
    pub proof: Vec<String>,
    /// The exact bytes of the envelope or receipt the leaf commits to, base64 (absent for
    /// other leaves).
    pub bytes: Option<String>,
}

/// The log part of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogPart {
    /// The log's node.
    pub node: String,
    /// Its origin line.
    pub origin: String,
    /// Signed checkpoints (with cosignatures), ascending size.
    pub checkpoints: Vec<String>,
    /// Consistency proofs between consecutive checkpoints.
    pub consistency: Vec<Consistency>,
}

/// An evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// [`FORMAT`].
    pub format: String,
    /// The case, 32 hex (or null for a time-range bundle).
    pub case: Option<String>,
    /// The governance public key the exporting node trusts, hex (pin your own with
    /// `--governance-key`).
    pub governance_public_key: String,
    /// The trust list in force, base64 of its COSE bytes.
    pub trust_list: String,
    /// The exporting node's log.
    pub log: LogPart,
    /// A case bundle: the node's signed case-head statement ([`CaseHead`]) for the last
    /// checkpoint's size; `null` for a time-range bundle.
    pub head: Option<String>,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// One check and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// Detail.
    pub detail: String,
}

/// Options of the verifier.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The governance key to trust instead of the bundle's.
    pub governance_key: Option<[u8; 32]>,
    /// Witness cosignatures required on the last checkpoint.
    pub min_witnesses: usize,
}

/// How far a cosignature's time may lie before the newest entry of the tree it cosigns: the
/// wire's future skew (5 minutes), since entry times are the senders' clocks.
pub const COSIGNATURE_SKEW_MS: u64 = 5 * 60 * 1000;

/// Lowercase hex only: a bundle has one encoding.
fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex32(s: &str) -> Option<Hash> {
    if !lower_hex(s, 64) {
        return None;
    }
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// The name a witness cosigns with.
pub fn witness_name(node: &str) -> String {
    format!("imi-federation.invalid/witness/{node}")
}

struct Report(Vec<Check>);

impl Report {
    fn add(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) -> bool {
        self.0.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
        ok
    }
}

/// What an envelope leaf says (checked against the signed header), for its receipts.
struct EnvelopeLabels {
    sha256: String,
    case: String,
    from: String,
    to: Vec<String>,
}

/// Verifies a bundle's bytes; returns every check made. The bundle verifies if all pass.
pub fn verify(bytes: &[u8], options: &Options) -> Vec<Check> {
    let mut r = Report(Vec::new());
    let bundle: Bundle = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(e) => {
            r.add("bundle.parse", false, e.to_string());
            return r.0;
        }
    };
    if !r.add("bundle.format", bundle.format == FORMAT, &bundle.format) {
        return r.0;
    }
    // One encoding: lowercase hex, entries in strictly ascending index order (so none
    // twice), one consistency proof per pair of consecutive checkpoints, in order (the
    // checkpoints' own order is checked once they are parsed).
    let ascending = bundle
        .entries
        .windows(2)
        .all(|w| matches!(w, [a, b] if a.index < b.index));
    r.add(
        "bundle.canonical",
        lower_hex(&bundle.governance_public_key, 64)
            && bundle.case.as_deref().is_none_or(|c| lower_hex(c, 32))
            && bundle.case.is_some() == bundle.head.is_some()
            && ascending
            && bundle.log.consistency.len() + 1 == bundle.log.checkpoints.len().max(1),
        "lowercase hex, entries strictly ascending, one consistency proof per consecutive pair, a head exactly for a case",
    );
    // 1. The trust list.
    let gov = match options.governance_key {
        Some(k) => Some(k),
        None => hex32(&bundle.governance_public_key),
    };
    if let Some(pinned) = options.governance_key {
        r.add(
            "governance_key.matches_pinned",
            hex32(&bundle.governance_public_key) == Some(pinned),
            "the bundle names the governance key the auditor pinned",
        );
    }
    let trust = match (gov, B64.decode(&bundle.trust_list)) {
        (Some(g), Ok(tl)) => match TrustList::verify(&tl, &g) {
            Ok(t) => {
                r.add(
                    "trust_list.signature",
                    true,
                    format!(
                        "version {}, governance key {}",
                        t.version,
                        if options.governance_key.is_some() {
                            "pinned"
                        } else {
                            "from the bundle"
                        }
                    ),
                );
                Some(t)
            }
            Err(e) => {
                r.add("trust_list.signature", false, e.to_string());
                None
            }
        },
        _ => {
            r.add(
                "trust_list.signature",
                false,
                "undecodable trust list or key",
            );
            None
        }
    };
    let Some(trust) = trust else { return r.0 };
    let node: Option<NodeId> = bundle.log.node.parse().ok();
    let Some(node) = node else {
        r.add("log.node", false, "unknown node");
        return r.0;
    };
    r.add(
        "log.origin",
        bundle.log.origin == origin_of(node.as_str()),
        &bundle.log.origin,
    );
    // 2. Checkpoints: the node's signature, witnesses' cosignatures, consistency.
    let node_keys: Vec<[u8; 32]> = trust
        .member(node)
        .map(|m| m.signing_keys.iter().map(|k| k.public).collect())
        .unwrap_or_default();
    // The newest time any entry below a tree size records: a witness cannot have cosigned a
    // tree before a leaf in it was written.
    let times: Vec<(u64, u64)> = bundle
        .entries
        .iter()
        .filter_map(|e| Some((e.index, Leaf::parse(&e.leaf)?.time()?)))
        .collect();
    let newest_below = |size: u64| {
        times
            .iter()
            .filter(|(i, _)| *i < size)
            .map(|(_, t)| *t)
            .max()
            .unwrap_or(0)
    };
    let mut checkpoints: Vec<(Checkpoint, SignedNote)> = Vec::new();
    for (i, text) in bundle.log.checkpoints.iter().enumerate() {
        let name = format!("checkpoint[{i}]");
        let parsed = SignedNote::parse(text)
            .map_err(|e| e.to_string())
            .and_then(|n| {
                Checkpoint::parse(&n.body)
                    .map(|c| (c, n))
                    .map_err(|e| e.to_string())
            });
        match parsed {
            Ok((c, n)) => {
                let signed = node_keys.iter().any(|k| n.verify(&bundle.log.origin, k));
                r.add(
                    format!("{name}.signature"),
                    signed && c.origin == bundle.log.origin,
                    format!("size {}", c.size),
                );
                // A cosignature counts when it verifies under a key of the witness and is
                // dated (seconds) inside that key's validity period, and not before the
                // newest entry of the tree it cosigns (less the clock skew allowed).
                let not_before = newest_below(c.size).saturating_sub(COSIGNATURE_SKEW_MS);
                let witnesses: Vec<String> = trust
                    .members
                    .iter()
                    .filter(|m| m.node != node)
                    .filter(|m| {
                        m.signing_keys.iter().any(|k| {
                            n.verify_cosignature(&witness_name(m.node.as_str()), &k.public)
                                .is_some_and(|ts| {
                                    let ms = ts.saturating_mul(1000);
                                    k.valid_from <= ms && ms < k.valid_until && ms >= not_before
                                })
                        })
                    })
                    .map(|m| m.node.to_string())
                    .collect();
                let cosig_lines = n.signatures.len().saturating_sub(1);
                r.add(
                    format!("{name}.cosignatures"),
                    witnesses.len() == cosig_lines,
                    format!(
                        "{} valid of {cosig_lines}: {}",
                        witnesses.len(),
                        witnesses.join(", ")
                    ),
                );
                if i + 1 == bundle.log.checkpoints.len() {
                    r.add(
                        format!("{name}.witnesses"),
                        witnesses.len() >= options.min_witnesses,
                        format!(
                            "{} witnesses, {} required",
                            witnesses.len(),
                            options.min_witnesses
                        ),
                    );
                }
                checkpoints.push((c, n));
            }
            Err(e) => {
                r.add(format!("{name}.parse"), false, e);
            }
        }
    }
    let Some((last, _)) = checkpoints.last().cloned() else {
        r.add("checkpoints", false, "no checkpoint");
        return r.0;
    };
    r.add(
        "checkpoints.ascending",
        checkpoints
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.0.size < b.0.size)),
        "strictly ascending sizes",
    );
    for (i, w) in checkpoints.windows(2).enumerate() {
        let [(a, _), (b, _)] = w else { continue };
        let proof = bundle
            .log
            .consistency
            .get(i)
            .filter(|c| c.from == a.size && c.to == b.size);
        let ok = proof.is_some_and(|p| {
            let hashes: Option<Vec<Hash>> = p.proof.iter().map(|h| hex32(h)).collect();
            hashes.is_some_and(|h| merkle::verify_consistency(a.size, b.size, &h, &a.root, &b.root))
        });
        r.add(format!("consistency[{}->{}]", a.size, b.size), ok, "");
    }
    // 3. Entries. Cases whose data this log records as deleted (their envelope bytes may be
    // gone): the deletion leaves must themselves be included (checked below like any leaf).
    let erased_cases: Vec<String> = bundle
        .entries
        .iter()
        .filter_map(|e| Leaf::parse(&e.leaf))
        .filter(|l| l.kind == "retention" && l.get("action") == Some("delete"))
        .filter_map(|l| l.get("case").map(str::to_owned))
        .collect();
    // The envelopes of the bundle (id → hash, from their leaves, which are checked against
    // the signed bytes below): every receipt must name one of them.
    let envelopes: std::collections::HashMap<String, EnvelopeLabels> = bundle
        .entries
        .iter()
        .filter_map(|e| Leaf::parse(&e.leaf))
        .filter(|l| l.kind == "envelope_out" || l.kind == "envelope_in")
        .filter_map(|l| {
            Some((
                l.get("id")?.to_owned(),
                EnvelopeLabels {
                    sha256: l.get("sha256")?.to_owned(),
                    case: l.get("case")?.to_owned(),
                    from: l.get("from")?.to_owned(),
                    to: l.get("to")?.split(',').map(str::to_owned).collect(),
                },
            ))
        })
        .collect();
    let mut steps: Vec<(u64, String, NodeId, Vec<NodeId>)> = Vec::new();
    // The kinds of the case's envelopes: which lifecycle their steps must follow.
    let mut kinds: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    for e in &bundle.entries {
        let name = format!("entry[{}]", e.index);
        let leaf = Leaf::parse(&e.leaf);
        let proof: Option<Vec<Hash>> = e.proof.iter().map(|h| hex32(h)).collect();
        let included = proof.is_some_and(|p| {
            merkle::verify_inclusion(
                e.index,
                last.size,
                &merkle::leaf_hash(e.leaf.as_bytes()),
                &p,
                &last.root,
            )
        });
        r.add(
            format!("{name}.inclusion"),
            included,
            format!("in tree of size {}", last.size),
        );
        let Some(leaf) = leaf else {
            r.add(format!("{name}.leaf"), false, "not a valid leaf");
            continue;
        };
        if let Some(case) = &bundle.case
            && let Some(c) = leaf.get("case")
            && c != "-"
        {
            r.add(format!("{name}.case"), c == case, c);
        }
        let raw = e.bytes.as_ref().and_then(|b| B64.decode(b).ok());
        match leaf.kind.as_str() {
            "envelope_out" | "envelope_in" => {
                let Some(raw) = raw else {
                    // Erased by retention: allowed only when the same signed log holds the
                    // case's deletion leaf; the envelope's hash and metadata stay proven by
                    // its leaf, and its receipt names the same hash.
                    let case = leaf.get("case").unwrap_or("-").to_owned();
                    let erased = erased_cases.contains(&case);
                    r.add(
                        format!("{name}.erased"),
                        erased,
                        if erased {
                            "envelope bytes erased by the case's retention (delete) leaf".to_owned()
                        } else {
                            "missing envelope bytes".to_owned()
                        },
                    );
                    if let Some(step) = leaf.get("step").filter(|s| *s != "-")
                        && let (Some(created), Some(from)) = (
                            leaf.get("created").and_then(|c| c.parse::<u64>().ok()),
                            leaf.get("from").and_then(|f| f.parse::<NodeId>().ok()),
                        )
                    {
                        let to: Vec<NodeId> = leaf
                            .get("to")
                            .unwrap_or("")
                            .split(',')
                            .filter_map(|n| n.parse().ok())
                            .collect();
                        steps.push((created, step.to_owned(), from, to));
                        kinds.insert(leaf.get("kind").unwrap_or("-").to_owned());
                    }
                    continue;
                };
                let hash_ok =
                    leaf.get("sha256") == Some(hex::encode(imi_protocol::sha256(&raw)).as_str());
                r.add(format!("{name}.sha256"), hash_ok, "");
                match Envelope::parse(raw, MAX_ENVELOPE) {
                    Ok(env) => {
                        let h = env.header().clone();
                        let me = h.to.first().copied().unwrap_or(NodeId::EU);
                        let sig = env.verify(&trust, me, h.created, 0).map(|_| ());
                        r.add(
                            format!("{name}.signature"),
                            sig.is_ok(),
                            format!(
                                "by {} ({})",
                                h.from,
                                sig.err().map(|c| c.label().to_owned()).unwrap_or_default()
                            ),
                        );
                        let to: Vec<String> = h.to.iter().map(|n| n.to_string()).collect();
                        let meta_ok = leaf.get("id") == Some(h.id.to_string().as_str())
                            && leaf.get("kind") == Some(h.kind.as_str())
                            && leaf.get("from") == Some(h.from.as_str())
                            && leaf.get("to") == Some(to.join(",").as_str())
                            && leaf.get("case")
                                == Some(h.case.map_or("-".to_owned(), |c| c.to_string()).as_str())
                            && leaf.get("created") == Some(h.created.to_string().as_str())
                            && leaf.get("step")
                                == Some(h.step.as_ref().map_or("-", |k| k.as_str()));
                        r.add(
                            format!("{name}.metadata"),
                            meta_ok,
                            "leaf matches the signed header (id, kind, from, to, case, created, step)",
                        );
                        // The direction the leaf claims is the signed header's: this log's
                        // node sent an `envelope_out` and is a recipient of an `envelope_in`.
                        let direction = if leaf.kind == "envelope_out" {
                            h.from == node
                        } else {
                            h.from != node && h.to.contains(&node)
                        };
                        r.add(
                            format!("{name}.direction"),
                            direction,
                            format!("{} in the log of {node}", leaf.kind),
                        );
                        if let Some(step) = leaf.get("step").filter(|s| *s != "-") {
                            steps.push((h.created, step.to_owned(), h.from, h.to.clone()));
                            kinds.insert(h.kind.as_str().to_owned());
                        }
                    }
                    Err(c) => {
                        r.add(format!("{name}.signature"), false, c.label());
                    }
                }
            }
            "receipt_in" | "receipt_out" => {
                let Some(raw) = raw else {
                    r.add(format!("{name}.bytes"), false, "missing receipt bytes");
                    continue;
                };
                let hash_ok =
                    leaf.get("sha256") == Some(hex::encode(imi_protocol::sha256(&raw)).as_str());
                r.add(format!("{name}.sha256"), hash_ok, "");
                let receiver: Option<NodeId> = leaf.get("receiver").and_then(|n| n.parse().ok());
                match receiver.map(|rcv| Receipt::verify(raw, &trust, rcv)) {
                    Some(Ok(rc)) => {
                        let ok = leaf.get("id")
                            == Some(
                                rc.body
                                    .message_id
                                    .map_or(String::new(), |m| m.to_string())
                                    .as_str(),
                            )
                            && leaf.get("received") == Some(rc.body.received.to_string().as_str())
                            && leaf.get("outcome") == Some(rc.body.outcome.label());
                        r.add(
                            format!("{name}.signature"),
                            true,
                            format!("by {}", rc.body.receiver),
                        );
                        r.add(
                            format!("{name}.metadata"),
                            ok,
                            "leaf matches the signed receipt (message, receiver, outcome, time)",
                        );
                        // This log's node signed a `receipt_out` and received a `receipt_in`
                        // for an envelope it sent.
                        let direction = if leaf.kind == "receipt_out" {
                            rc.body.receiver == node
                        } else {
                            rc.body.receiver != node && rc.body.sender == Some(node)
                        };
                        r.add(
                            format!("{name}.direction"),
                            direction,
                            format!("{} in the log of {node}", leaf.kind),
                        );
                        // The receipt answers an envelope of this bundle: named by id, with
                        // that envelope's hash (a receipt cannot be moved to another case,
                        // nor outlive its envelope's removal).
                        // Its leaf's case is that envelope's.
                        let envelope = rc
                            .body
                            .message_id
                            .and_then(|m| envelopes.get(&m.to_string()));
                        // And its counterpart is that envelope's: signed by one of its
                        // recipients, for its sender.
                        let answered = envelope.is_some_and(|e| {
                            e.sha256 == hex::encode(rc.body.envelope_hash)
                                && leaf.get("case") == Some(e.case.as_str())
                                && e.to.iter().any(|t| t == rc.body.receiver.as_str())
                                && rc.body.sender.is_some_and(|s| s.as_str() == e.from)
                        });
                        if bundle.case.is_some() || envelope.is_some() {
                            r.add(
                                format!("{name}.envelope"),
                                answered,
                                "names an envelope of this bundle, its hash, its case, a recipient and its sender",
                            );
                        }
                    }
                    Some(Err(c)) => {
                        r.add(format!("{name}.signature"), false, c.label());
                    }
                    None => {
                        r.add(format!("{name}.signature"), false, "unknown receiver");
                    }
                }
            }
            _ => {
                r.add(format!("{name}.leaf"), true, leaf.kind.clone());
            }
        }
    }
    // 4. Completeness: the node's signed head of the case at the last checkpoint's size, and
    // the case's `prev` chain from it, every link in the bundle.
    if let Some(case) = &bundle.case {
        complete(&mut r, &bundle, case, node, &node_keys, last.size);
    }
    // 5. The case's steps form a valid lifecycle (node level).
    if bundle.case.is_some() {
        steps.sort_by_key(|s| s.0);
        steps.dedup();
        let (ok, detail) = case_lifecycle(&kinds, &steps);
        r.add("case.lifecycle", ok, detail);
    }
    r.0
}

/// `case.head` and `case.chain`: the bundle holds every leaf of the case the node's log has
/// below the last checkpoint's size. The node's signed head statement names the case's
/// latest leaf; each leaf of the case names the one before it (`prev`, in the leaf, so under
/// the checkpoint); following the links from the head must visit every entry of the bundle
/// and find each link in it, down to a leaf with `prev=-`.
fn complete(
    r: &mut Report,
    bundle: &Bundle,
    case: &str,
    node: NodeId,
    node_keys: &[[u8; 32]],
    size: u64,
) {
    let name = head_origin_of(node.as_str());
    let statement = bundle.head.as_deref().and_then(|text| {
        let note = SignedNote::parse(text).ok()?;
        let head = CaseHead::parse(&note.body).ok()?;
        Some((note, head))
    });
    let Some((note, head)) = statement else {
        r.add("case.head", false, "no parsable case-head statement");
        return;
    };
    let signed = node_keys.iter().any(|k| note.verify(&name, k)) && note.signatures.len() == 1;
    let ok = signed && head.origin == name && head.case == case && head.size == size;
    let detail = format!(
        "signed by {node}: the case's latest leaf below size {} is {}",
        head.size,
        head.head
            .map_or_else(|| "none".to_owned(), |h| h.to_string())
    );
    if !r.add("case.head", ok, detail) {
        return;
    }
    let by_index: std::collections::BTreeMap<u64, Option<Leaf>> = bundle
        .entries
        .iter()
        .map(|e| (e.index, Leaf::parse(&e.leaf)))
        .collect();
    let mut visited = std::collections::BTreeSet::new();
    let mut next = head.head;
    let mut broken = None;
    let mut from: Option<u64> = None;
    while let Some(i) = next {
        let Some(Some(leaf)) = by_index.get(&i) else {
            broken = Some(match from {
                Some(from) => format!("entry {from} names prev {i}, which the bundle lacks"),
                None => format!("the head, entry {i}, is not in the bundle"),
            });
            break;
        };
        if leaf.case() != Some(case) {
            broken = Some(format!("entry {i} on the chain is not a leaf of the case"));
            break;
        }
        visited.insert(i);
        from = Some(i);
        next = match leaf.prev() {
            Prev::After(p) if p < i => Some(p),
            Prev::First => None,
            _ => {
                broken = Some(format!("entry {i} has no valid prev"));
                break;
            }
        };
    }
    let detail = match broken {
        Some(b) => b,
        None => match by_index.keys().find(|i| !visited.contains(*i)) {
            Some(extra) => format!("entry {extra} is not on the case's chain"),
            None => {
                r.add(
                    "case.chain",
                    true,
                    format!("{} leaves, each linked to the one before", visited.len()),
                );
                return;
            }
        },
    };
    r.add("case.chain", false, detail);
}

/// The lifecycle check of a case whose envelopes are of `kinds`: one kind only, and its
/// steps in an order that kind allows ([`lifecycle`] for `imi.request`,
/// [`alert_lifecycle`] for `imi.alert`, [`notification_lifecycle`] for
/// `imi.notification`).
pub fn case_lifecycle(
    kinds: &std::collections::BTreeSet<String>,
    steps: &[(u64, String, NodeId, Vec<NodeId>)],
) -> (bool, String) {
    let mut it = kinds.iter();
    match (it.next().map(String::as_str), it.next()) {
        (Some("imi.alert"), None) => alert_lifecycle(steps),
        (Some("imi.notification"), None) => notification_lifecycle(steps),
        (Some("imi.request") | None, None) => lifecycle(steps),
        _ => (
            false,
            format!(
                "envelopes of several kinds in one case: {}",
                kinds.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

/// An alert at node level: `alert` first (its sender S, its recipients R); then `forward`
/// from a node of R to S; `grant` from S to one node that forwarded before; `modify` from
/// S to R; `close` from S, once, after which nothing follows.
pub fn alert_lifecycle(steps: &[(u64, String, NodeId, Vec<NodeId>)]) -> (bool, String) {
    let Some((_, first, sender, recipients)) = steps.first() else {
        return (false, "no step".into());
    };
    if first != "alert" {
        return (false, format!("an alert starts with alert, not {first}"));
    }
    let mut forwarded: Vec<NodeId> = Vec::new();
    let mut closed = false;
    for (at, step, from, to) in steps.iter().skip(1) {
        let ok = !closed
            && match step.as_str() {
                "forward" => {
                    let ok = recipients.contains(from) && to.as_slice() == [*sender];
                    if ok {
                        forwarded.push(*from);
                    }
                    ok
                }
                "grant" => {
                    from == sender && to.len() == 1 && to.iter().all(|n| forwarded.contains(n))
                }
                "modify" => {
                    let (mut a, mut b) = (to.clone(), recipients.clone());
                    a.sort();
                    b.sort();
                    from == sender && a == b
                }
                "close" => {
                    closed = true;
                    from == sender
                }
                _ => false,
            };
        if !ok {
            return (
                false,
                format!("{step} by {from} at {at} is not allowed there"),
            );
        }
    }
    (true, format!("{} steps", steps.len()))
}

/// A notification at node level: `notify` first (its sender S, its recipients R); then
/// `read` acknowledgements, each from a node of R to S.
pub fn notification_lifecycle(steps: &[(u64, String, NodeId, Vec<NodeId>)]) -> (bool, String) {
    let Some((_, first, sender, recipients)) = steps.first() else {
        return (false, "no step".into());
    };
    if first != "notify" {
        return (
            false,
            format!("a notification starts with notify, not {first}"),
        );
    }
    for (at, step, from, to) in steps.iter().skip(1) {
        if !(step == "read" && recipients.contains(from) && to.as_slice() == [*sender]) {
            return (
                false,
                format!("{step} by {from} at {at} is not allowed there"),
            );
        }
    }
    (true, format!("{} steps", steps.len()))
}

/// Checks the sequence of request steps at node level: each step allowed in the state the
/// earlier ones led to, sent by the right side's node.
pub fn lifecycle(steps: &[(u64, String, NodeId, Vec<NodeId>)]) -> (bool, String) {
    #[derive(Clone, PartialEq)]
    enum S {
        None,
        Sent,
        Accepted,
        Proposed,
        Info(bool),
        Answered,
        Referred(Box<S>),
        Closed,
        Withdrawn,
    }
    let mut state = S::None;
    let (mut requester, mut responder) = (None, None);
    for (at, step, from, to) in steps {
        let by_req = Some(*from) == requester;
        let by_resp = Some(*from) == responder;
        let next = match (step.as_str(), &state) {
            ("create", S::None) => {
                requester = Some(*from);
                responder = to.first().copied();
                Some(S::Sent)
            }
            ("accept", S::Sent) if by_resp => Some(S::Accepted),
            ("forward", S::Sent | S::Accepted) if by_resp => Some(S::Sent),
            ("propose_deadline", S::Accepted) if by_resp => Some(S::Proposed),
            ("accept_deadline" | "refuse_deadline", S::Proposed) if by_req => Some(S::Accepted),
            ("answer", S::Accepted | S::Proposed) if by_resp => Some(S::Answered),
            ("request_info", S::Accepted) if by_resp => Some(S::Info(false)),
            ("request_info", S::Answered) if by_req => Some(S::Info(true)),
            ("provide_info", S::Info(false)) if by_req => Some(S::Accepted),
            ("provide_info", S::Info(true)) if by_resp => Some(S::Answered),
            ("close", S::Answered | S::Info(true)) if by_req => Some(S::Closed),
            ("withdraw", s) if by_req && !matches!(s, S::None | S::Closed | S::Withdrawn) => {
                Some(S::Withdrawn)
            }
            ("refer", s @ (S::Sent | S::Accepted | S::Proposed | S::Info(_) | S::Answered))
                if by_req || by_resp =>
            {
                Some(S::Referred(Box::new(s.clone())))
            }
            ("reassign", S::Referred(_)) if by_resp => Some(S::Sent),
            ("resolve", S::Referred(prev)) if by_resp => Some((**prev).clone()),
            _ => None,
        };
        match next {
            Some(n) => state = n,
            None => {
                return (
                    false,
                    format!("{step} by {from} at {at} is not allowed there"),
                );
            }
        }
    }
    (
        steps.first().is_some_and(|s| s.1 == "create"),
        format!("{} steps", steps.len()),
    )
}

/// Cross-checks the case bundles of the case's two nodes (each verified on its own first,
/// with [`verify`]): what one node's signed records say the other received or sent must be
/// in the other's bundle. A node's log can leave out what its own software chose not to log;
/// it cannot make its counterpart's records, nor the receipts it signed, disappear.
///
/// For each side `X` and the other side `Y`:
/// * `cross.<Y>.envelope_in`: every envelope `X` sent to `Y` for which `X` holds `Y`'s signed
///   receipt `accepted` or `duplicate` is an `envelope_in` of `Y`'s bundle, with the same
///   SHA-256;
/// * `cross.<Y>.envelope_out`: every envelope `X` accepted from `Y` is an `envelope_out` of
///   `Y`'s bundle, with the same SHA-256.
///
/// No allowance is made for when each bundle was exported: a bundle's dates are its own
/// node's word, and a node that left out its last records would look merely older. Export
/// both after the case's last exchange; an honest node's fresh bundle then passes.
pub fn cross_check(a: &[u8], b: &[u8], options: &Options) -> Vec<Check> {
    let mut r = Report(Vec::new());
    let parse = |bytes: &[u8]| serde_json::from_slice::<Bundle>(bytes).ok();
    let (Some(a), Some(b)) = (parse(a), parse(b)) else {
        r.add("cross.parse", false, "both files must be evidence bundles");
        return r.0;
    };
    let same_case = a.case.is_some() && a.case == b.case && a.log.node != b.log.node;
    if !r.add(
        "cross.case",
        same_case,
        format!(
            "{} and {}, case {}",
            a.log.node,
            b.log.node,
            a.case.as_deref().unwrap_or("null")
        ),
    ) {
        return r.0;
    }
    // Each bundle's leaves (with their bytes), parsed once for both directions.
    let leaves = |bundle: &Bundle| -> Vec<(Leaf, Option<Vec<u8>>)> {
        bundle
            .entries
            .iter()
            .filter_map(|e| {
                Some((
                    Leaf::parse(&e.leaf)?,
                    e.bytes.as_ref().and_then(|s| B64.decode(s).ok()),
                ))
            })
            .collect()
    };
    let (al, bl) = (leaves(&a), leaves(&b));
    for ((x, xl), (y, yl)) in [((&a, &al), (&b, &bl)), ((&b, &bl), (&a, &al))] {
        let gov = options
            .governance_key
            .or_else(|| hex32(&x.governance_public_key));
        let trust = gov
            .zip(B64.decode(&x.trust_list).ok())
            .and_then(|(g, tl)| TrustList::verify(&tl, &g).ok());
        let Some(trust) = trust else {
            r.add(
                format!("cross.{}.trust_list", x.log.node),
                false,
                "does not verify",
            );
            continue;
        };
        let Ok(y_node) = y.log.node.parse::<NodeId>() else {
            r.add("cross.case", false, "unknown node");
            continue;
        };
        let y_has = |kind: &str, id: &str, sha: &str| {
            yl.iter().any(|(l, _)| {
                l.kind == kind && l.get("id") == Some(id) && l.get("sha256") == Some(sha)
            })
        };
        let yn = y.log.node.as_str();
        // Envelopes X sent that Y signed it accepted.
        let mut missing_in = Vec::new();
        let mut checked_in = 0;
        for (l, raw) in xl {
            if l.kind != "receipt_in" || l.get("receiver") != Some(yn) {
                continue;
            }
            let Some(rc) = raw.as_ref().and_then(|b| {
                Receipt::verify(b.clone(), &trust, y_node)
                    .ok()
                    .filter(|rc| rc.body.outcome.label() != "rejected")
            }) else {
                continue;
            };
            let (Some(id), sha) = (rc.body.message_id, hex::encode(rc.body.envelope_hash)) else {
                continue;
            };
            checked_in += 1;
            if !y_has("envelope_in", &id.to_string(), &sha) {
                missing_in.push(id.to_string());
            }
        }
        r.add(
            format!("cross.{yn}.envelope_in"),
            missing_in.is_empty(),
            if missing_in.is_empty() {
                format!("{checked_in} envelopes {yn} signed receipts for are in its bundle")
            } else {
                format!(
                    "{yn} signed receipts for envelopes its bundle lacks (or it was exported \
                     before them): {}",
                    missing_in.join(", ")
                )
            },
        );
        // Envelopes X accepted from Y.
        let mut missing_out = Vec::new();
        let mut checked_out = 0;
        for (l, _) in xl {
            if l.kind != "envelope_in" || l.get("from") != Some(yn) {
                continue;
            }
            let (Some(id), Some(sha)) = (l.get("id"), l.get("sha256")) else {
                continue;
            };
            checked_out += 1;
            if !y_has("envelope_out", id, sha) {
                missing_out.push(id.to_owned());
            }
        }
        r.add(
            format!("cross.{yn}.envelope_out"),
            missing_out.is_empty(),
            if missing_out.is_empty() {
                format!("{checked_out} envelopes {yn} signed are in its bundle")
            } else {
                format!(
                    "{yn} signed envelopes its bundle lacks (or it was exported before \
                     them): {}",
                    missing_out.join(", ")
                )
            },
        );
    }
    r.0
}
