//! RFC 6962 test vectors (the Certificate Transparency reference data), mutated proofs that
//! must fail, random trees, and signed notes with cosignatures ([`notes`]: the C2SP rules,
//! from fuzz inputs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use imi_audit::leaf::{Leaf, Prev};
use imi_audit::merkle::{
    Hash, MemTree, consistency_proof, empty_root, inclusion_proof, leaf_hash, root,
    verify_consistency, verify_inclusion,
};
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_protocol::{NodeId, NodeSigner};
use proptest::prelude::*;

// In a subdirectory so that cargo does not take it for a test binary.
#[path = "audit/notes.rs"]
mod notes;

const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// (leaf index, tree size, path)
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];
/// (old size, new size, proof)
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn tree() -> MemTree {
    let mut t = MemTree::new();
    for l in LEAVES {
        t.push(leaf_hash(&hex::decode(l).unwrap()));
    }
    t
}

/// The root of the reference tree at `size` (1..=9; the 9th leaf is an extra one, so that
/// "size + 1" can be tried on the largest vector).
fn root_at(size: u64) -> Hash {
    let mut t = tree();
    t.push(leaf_hash(b"ninth"));
    root(&t, size).unwrap()
}

#[test]
fn roots_match_rfc6962() {
    assert_eq!(
        hex::encode(empty_root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let t = tree();
    for (n, r) in ROOTS.iter().enumerate() {
        assert_eq!(
            hex::encode(root(&t, n as u64 + 1).unwrap()),
            *r,
            "size {}",
            n + 1
        );
    }
}

#[test]
fn inclusion_vectors_and_mutations() {
    let t = tree();
    for (index, size, path) in INCLUSION {
        let want: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        assert_eq!(
            inclusion_proof(&t, index, size).unwrap(),
            want,
            "{index}/{size}"
        );
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        let r = h(ROOTS[size as usize - 1]);
        assert!(verify_inclusion(index, size, &leaf, &want, &r));
        // wrong index, size ± 1, a flipped hash, a truncated or extended path, wrong root
        assert!(
            !verify_inclusion(index ^ 1, size, &leaf, &want, &r),
            "wrong index"
        );
        // A verifier holds the root of the size it is told (from a checkpoint).
        assert!(
            !verify_inclusion(index, size + 1, &leaf, &want, &root_at(size + 1)),
            "size + 1"
        );
        assert!(
            !verify_inclusion(index, size - 1, &leaf, &want, &root_at(size - 1)),
            "size - 1"
        );
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i][0] ^= 1;
            assert!(
                !verify_inclusion(index, size, &leaf, &bad, &r),
                "flipped {i}"
            );
        }
        if !want.is_empty() {
            assert!(
                !verify_inclusion(index, size, &leaf, &want[..want.len() - 1], &r),
                "truncated"
            );
        }
        let mut longer = want.clone();
        longer.push(r);
        assert!(
            !verify_inclusion(index, size, &leaf, &longer, &r),
            "extended"
        );
        assert!(
            !verify_inclusion(index, size, &leaf, &want, &h(ROOTS[0])),
            "wrong root"
        );
    }
}

#[test]
fn consistency_vectors_and_mutations() {
    let t = tree();
    for (m, n, path) in CONSISTENCY {
        let want: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        assert_eq!(consistency_proof(&t, m, n).unwrap(), want, "{m}->{n}");
        let (rm, rn) = (h(ROOTS[m as usize - 1]), h(ROOTS[n as usize - 1]));
        assert!(verify_consistency(m, n, &want, &rm, &rn));
        if m == n {
            continue;
        }
        assert!(
            !verify_consistency(m + 1, n, &want, &root_at(m + 1), &rn),
            "old size + 1"
        );
        assert!(
            !verify_consistency(m, n - 1, &want, &rm, &root_at(n - 1)),
            "new size - 1"
        );
        assert!(
            !verify_consistency(m, n + 1, &want, &rm, &root_at(n + 1)),
            "new size + 1"
        );
        assert!(!verify_consistency(m, n, &want, &rn, &rm), "roots swapped");
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i][31] ^= 0x80;
            assert!(!verify_consistency(m, n, &bad, &rm, &rn), "flipped {i}");
        }
        assert!(
            !verify_consistency(m, n, &want[..want.len() - 1], &rm, &rn),
            "truncated"
        );
        assert!(!verify_consistency(m, n, &[], &rm, &rn), "empty");
    }
    // A split view: same size, another root, is not consistent with anything.
    let mut other = MemTree::new();
    for l in LEAVES.iter().rev() {
        other.push(leaf_hash(&hex::decode(l).unwrap()));
    }
    let proof = consistency_proof(&other, 6, 8).unwrap();
    assert!(!verify_consistency(
        6,
        8,
        &proof,
        &h(ROOTS[5]),
        &other.root()
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn every_proof_of_random_trees_verifies(n in 1u64..70, seed in any::<u64>()) {
        let mut t = MemTree::new();
        for i in 0..n {
            t.push(leaf_hash(&(seed ^ i).to_be_bytes()));
        }
        let roots: Vec<Hash> = (1..=n).map(|s| root(&t, s).unwrap()).collect();
        for s in 1..=n {
            let r = roots[s as usize - 1];
            for i in (0..s).step_by(1 + (s / 7) as usize) {
                let p = inclusion_proof(&t, i, s).unwrap();
                prop_assert!(verify_inclusion(i, s, &leaf_hash(&(seed ^ i).to_be_bytes()), &p, &r));
            }
            for m in (1..=s).step_by(1 + (s / 5) as usize) {
                let p = consistency_proof(&t, m, s).unwrap();
                prop_assert!(verify_consistency(m, s, &p, &roots[m as usize - 1], &r));
            }
        }
    }
}

#[test]
fn checkpoints_sign_verify_and_cosign() {
    let log = NodeSigner::generate(NodeId::DE);
    let witness = NodeSigner::generate(NodeId::HU);
    let cp = Checkpoint {
        origin: origin_of("DE"),
        size: 8,
        root: h(ROOTS[7]),
    };
    assert_eq!(
        cp.body(),
        format!(
            "{}\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
            origin_of("DE")
        )
    );
    let mut note = SignedNote::sign(&cp.body(), &cp.origin, &log);
    assert!(note.verify(&cp.origin, &log.public()));
    assert!(!note.verify(&cp.origin, &witness.public()));
    note.cosign("imi-federation.invalid/witness/HU", &witness, 1_700_000_000);
    let text = note.text();
    assert!(text.contains("\n\n— imi-federation.invalid/log/DE "));
    let parsed = SignedNote::parse(&text).unwrap();
    assert_eq!(parsed, note);
    assert_eq!(Checkpoint::parse(&parsed.body).unwrap(), cp);
    assert!(parsed.verify(&cp.origin, &log.public()));
    assert_eq!(
        parsed.verify_cosignature("imi-federation.invalid/witness/HU", &witness.public()),
        Some(1_700_000_000)
    );
    // Any change to the body breaks both.
    let tampered = text.replacen("\n8\n", "\n9\n", 1);
    let t = SignedNote::parse(&tampered).unwrap();
    assert!(!t.verify(&cp.origin, &log.public()));
    assert!(
        t.verify_cosignature("imi-federation.invalid/witness/HU", &witness.public())
            .is_none()
    );
}

#[test]
fn leaves_round_trip() {
    let l = Leaf::new("retention", &["00ff", "delete", "123"]);
    assert_eq!(
        l.text(),
        "imi-leaf/1\ntype=retention\ncase=00ff\naction=delete\nat=123\nprev=-\n"
    );
    assert_eq!(Leaf::parse(&l.text()).unwrap(), l);
    assert_eq!(l.prev(), Prev::First);
    let mut chained = l.clone();
    chained.set("prev", "41");
    assert!(chained.text().ends_with("at=123\nprev=41\n"));
    assert_eq!(chained.prev(), Prev::After(41));
    for bad in ["041", "", "x", "-1", "18446744073709551616"] {
        chained.set("prev", bad);
        assert_eq!(chained.prev(), Prev::Invalid, "{bad:?}");
    }
    assert!(
        Leaf::parse("imi-leaf/1\ntype=retention\naction=delete\ncase=00ff\nat=123\nprev=-\n")
            .is_none()
    );
    assert!(Leaf::parse("imi-leaf/1\ntype=unknown\n").is_none());
}

// ---------------------------------------------------------------------------------------
// case.lifecycle against the table of docs/request-lifecycle.md
// ---------------------------------------------------------------------------------------

const LIFECYCLE_DOC: &str = include_str!("../../../docs/request-lifecycle.md");

/// The table at node level: (step, nodes that may send it, from states, next state), with
/// `info_requested` split by who asked and nodes `q` (requester's) and `s` (responder's).
fn node_level_rows() -> Vec<(String, Vec<char>, Vec<String>)> {
    let states = |cell: &str| -> Vec<String> {
        if cell.starts_with("(none") {
            return vec!["none".into()];
        }
        cell.split("`, `")
            .flat_map(|s| s.split(", `"))
            .map(|item| {
                let name = item.trim().trim_start_matches('`');
                let (name, rest) = name.split_once('`').unwrap_or((name, ""));
                match rest {
                    r if r.contains("by the requester") => format!("{name}:q"),
                    r if r.contains("by the responder") => format!("{name}:s"),
                    _ => name.to_owned(),
                }
            })
            .collect()
    };
    LIFECYCLE_DOC
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            let nodes = cells[1]
                .split(", ")
                .map(|w| if w == "requester" { 'q' } else { 's' })
                .collect();
            (
                cells[0].trim_matches('`').to_owned(),
                nodes,
                states(cells[2]),
            )
        })
        .collect()
}

/// Every step, from either node, after a path to every state: `case.lifecycle` accepts it
/// exactly where the documented table does (at node level).
#[test]
fn the_verifier_lifecycle_is_the_documented_table() {
    use imi_audit::bundle::lifecycle;
    let rows = node_level_rows();
    assert_eq!(rows.len(), 16);
    let (q, s) = (NodeId::FR, NodeId::DE);
    let node = |c: char| if c == 'q' { q } else { s };
    // Paths to every state: (step, sending node).
    let paths: Vec<(&str, Vec<(&str, char)>)> = vec![
        ("sent", vec![("create", 'q')]),
        ("accepted", vec![("create", 'q'), ("accept", 's')]),
        (
            "deadline_proposed",
            vec![("create", 'q'), ("accept", 's'), ("propose_deadline", 's')],
        ),
        (
            "info_requested:s",
            vec![("create", 'q'), ("accept", 's'), ("request_info", 's')],
        ),
        (
            "answered",
            vec![("create", 'q'), ("accept", 's'), ("answer", 's')],
        ),
        (
            "info_requested:q",
            vec![
                ("create", 'q'),
                ("accept", 's'),
                ("answer", 's'),
                ("request_info", 'q'),
            ],
        ),
        (
            "referred",
            vec![("create", 'q'), ("accept", 's'), ("refer", 'q')],
        ),
        (
            "closed",
            vec![
                ("create", 'q'),
                ("accept", 's'),
                ("answer", 's'),
                ("close", 'q'),
            ],
        ),
        ("withdrawn", vec![("create", 'q'), ("withdraw", 'q')]),
    ];
    let steps: Vec<&str> = rows
        .iter()
        .map(|r| r.0.as_str())
        .filter(|s| *s != "create")
        .collect();
    let mut allowed = 0;
    for (state, path) in &paths {
        let mut seq: Vec<(u64, String, NodeId, Vec<NodeId>)> = path
            .iter()
            .enumerate()
            .map(|(i, (st, by))| {
                let from = node(*by);
                let to = if from == q { s } else { q };
                (i as u64, (*st).to_owned(), from, vec![to])
            })
            .collect();
        assert!(lifecycle(&seq).0, "the path to {state}");
        for step in &steps {
            for by in ['q', 's'] {
                let want = rows.iter().any(|(st, nodes, from)| {
                    st == step
                        && nodes.contains(&by)
                        && from
                            .iter()
                            .any(|f| f == state || state.starts_with(&format!("{f}:")))
                });
                let from = node(by);
                let to = if from == q { s } else { q };
                seq.push((99, (*step).to_owned(), from, vec![to]));
                let (got, detail) = lifecycle(&seq);
                seq.pop();
                assert_eq!(got, want, "{step} from {by} in {state}: {detail}");
                allowed += usize::from(got);
            }
        }
    }
    assert!(allowed >= 20, "{allowed}");
}

#[test]
fn case_head_statements_have_one_encoding() {
    use imi_audit::note::{CaseHead, head_origin_of};
    let h = CaseHead {
        origin: head_origin_of("DE"),
        case: "0123456789abcdef0123456789abcdef".into(),
        size: 42,
        head: Some(40),
    };
    let body = h.body();
    assert_eq!(
        body,
        "imi-federation.invalid/case-head/DE\ncase 0123456789abcdef0123456789abcdef\nsize 42\nhead 40\n"
    );
    assert_eq!(CaseHead::parse(&body).unwrap(), h);
    let none = CaseHead {
        head: None,
        ..h.clone()
    };
    assert_eq!(CaseHead::parse(&none.body()).unwrap(), none);
    for bad in [
        body.replace("size 42", "size 042"),
        body.replace("head 40", "head 040"),
        body.replace("0123456789abcdef0123", "0123456789ABCDEF0123"),
        body.replace("case ", "case  "),
        body.trim_end().to_owned(),
        format!("{body}extra\n"),
        body.replace("head 40", "head"),
    ] {
        assert!(CaseHead::parse(&bad).is_err(), "{bad:?}");
    }
}

/// `case.lifecycle` of alerts and notifications (docs/evidence-bundle.md §6, rule 8): their
/// steps in the order each kind allows, one kind per case.
#[test]
fn alert_and_notification_lifecycles() {
    use imi_audit::bundle::case_lifecycle;
    use imi_protocol::NodeId::{AT, DE, HU};
    let kinds = |k: &[&str]| k.iter().map(|s| s.to_string()).collect();
    let s =
        |at: u64, step: &str, from: NodeId, to: &[NodeId]| (at, step.to_owned(), from, to.to_vec());
    let alert = [
        s(1, "alert", DE, &[AT, HU]),
        s(2, "forward", HU, &[DE]),
        s(3, "grant", DE, &[HU]),
        s(4, "modify", DE, &[HU, AT]),
        s(5, "close", DE, &[AT, HU]),
    ];
    assert!(case_lifecycle(&kinds(&["imi.alert"]), &alert).0);
    // A grant to a node that never forwarded; a forward from a non-recipient; anything
    // after the close; a close by a recipient; not starting with the alert; a modification
    // by a recipient, to other nodes, or after the close.
    type Steps<'a> = &'a [(u64, String, NodeId, Vec<NodeId>)];
    let bad: [Steps; 8] = [
        &[s(1, "alert", DE, &[AT, HU]), s(2, "grant", DE, &[AT])],
        &[s(1, "alert", DE, &[HU]), s(2, "forward", AT, &[DE])],
        &[
            s(1, "alert", DE, &[HU]),
            s(2, "close", DE, &[HU]),
            s(3, "forward", HU, &[DE]),
        ],
        &[s(1, "alert", DE, &[HU]), s(2, "close", HU, &[DE])],
        &[s(1, "forward", HU, &[DE])],
        &[s(1, "alert", DE, &[HU]), s(2, "modify", HU, &[DE])],
        &[s(1, "alert", DE, &[AT, HU]), s(2, "modify", DE, &[HU])],
        &[
            s(1, "alert", DE, &[HU]),
            s(2, "close", DE, &[HU]),
            s(3, "modify", DE, &[HU]),
        ],
    ];
    for steps in bad {
        assert!(
            !case_lifecycle(&kinds(&["imi.alert"]), steps).0,
            "{steps:?}"
        );
    }
    let notification = [
        s(1, "notify", DE, &[AT, HU]),
        s(2, "read", HU, &[DE]),
        s(3, "read", AT, &[DE]),
    ];
    assert!(case_lifecycle(&kinds(&["imi.notification"]), &notification).0);
    assert!(!case_lifecycle(&kinds(&["imi.notification"]), &notification[1..]).0);
    let stranger = [s(1, "notify", DE, &[HU]), s(2, "read", AT, &[DE])];
    assert!(!case_lifecycle(&kinds(&["imi.notification"]), &stranger).0);
    // Kinds mixed in one case, and a request's steps under an alert's kind.
    assert!(!case_lifecycle(&kinds(&["imi.alert", "imi.request"]), &alert).0);
    assert!(!case_lifecycle(&kinds(&["imi.alert"]), &[s(1, "create", DE, &[HU])]).0);
    assert!(case_lifecycle(&kinds(&["imi.request"]), &[s(1, "create", DE, &[HU])]).0);
}
