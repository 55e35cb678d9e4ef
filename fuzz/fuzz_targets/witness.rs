//! Checkpoint and cosignature messages between a log node and its witnesses: the bodies of
//! `imi.checkpoint` and `imi.cosignature` envelopes (`imi_apps::witness`) and what the
//! receiving node does with them — `WitnessApp::apply` (DE witnessing AT's log) and
//! `CosignatureApp::apply` (AT collecting DE's cosignature) — over an in-memory store.
//!
//! Input: a selector byte (bits 0-1: DE has seen nothing of AT's log / DE has cosigned AT's
//! checkpoint of size 4 / AT holds its checkpoint of size 4 / AT holds it cosigned by DE
//! already; bit 2: the sender is NL instead), then the body.
//!
//! Asserts: no panic; bodies that decode round-trip (fixed point); refusals carry an
//! application code, never a kernel one; a witness that accepts answers, and whatever it
//! cosigned is a checkpoint of the sender's log signed by the sender, which DE's key
//! verifies, and never a split view or a rollback of what it had cosigned before; a log
//! node that stores a cosignature stores one that verifies under the witness's key.
#![no_main]

use imi_apps::witness::{
    CheckpointMessage, CosignatureApp, CosignatureMessage, WITNESS_OUT, WitnessApp,
};
use imi_audit::bundle::witness_name;
use imi_audit::merkle::Hash;
use imi_audit::note::{Checkpoint, NoteSignature, SignedNote, origin_of};
use imi_engine::{Application, Inbound, Txn, keys};
use imi_fuzz_fixtures::wire::{self, checkpoint, cosigned, log};
use imi_fuzz_fixtures::{self as fx, NOW};
use imi_protocol::{AuthorityId, Header, Kind, MessageId, NodeId, RejectCode, TrustList};
use imi_store::{Durability, MemStore, Op, Store, WriteBatch};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

struct Fixture {
    trust: TrustList,
    witness: WitnessApp,
    cosignatures: CosignatureApp,
    /// DE: fresh; DE: has cosigned AT's size 4; AT: holds its size 4; AT: holds it cosigned.
    stores: [MemStore; 4],
    /// AT's root at size 4.
    root4: Hash,
    de_public: [u8; 32],
    nl_public: [u8; 32],
}

fn header(kind: &str, from: NodeId, to: NodeId) -> Header {
    Header {
        v: 1,
        id: MessageId([0x77; 16]),
        kind: Kind::new(kind).unwrap(),
        step: None,
        from,
        authority: AuthorityId::new(&format!("{from}-IMI")).unwrap(),
        to: vec![to],
        case: None,
        prev: Vec::new(),
        created: NOW,
        commitment: [0; 32],
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let trust = fx::trust_list();
        let witness = WitnessApp::new(fx::signer("DE-1"));
        let tree = log(4);
        let note = checkpoint(&tree, 4);
        let root4 = Checkpoint::parse(&note.body).unwrap().root;
        let stores = [(); 4].map(|_| MemStore::new(&imi_apps::columns()));
        // DE cosigns AT's checkpoint of size 4.
        let h = header(Kind::CHECKPOINT, NodeId::AT, NodeId::DE);
        let body = fx::cbor(&wire::CheckpointMessage {
            note: note.text(),
            base: 0,
            proof: Vec::new(),
        });
        let msg = Inbound {
            header: &h,
            body: &body,
            received: NOW,
            trust: &trust,
        };
        let mut txn = Txn::detached(&stores[1]);
        witness.apply(&msg, &mut txn).expect("DE cosigns");
        stores[1]
            .write(txn.into_batch(), Durability::Buffered)
            .unwrap();
        // AT holds its checkpoint, bare and cosigned by DE.
        for (i, n) in [(2, note.clone()), (3, cosigned(&note, "DE-1"))] {
            let mut b = WriteBatch::new();
            b.put(
                keys::CHECKPOINTS,
                4u64.to_be_bytes().to_vec(),
                n.text().into_bytes(),
            );
            stores[i].write(b, Durability::Buffered).unwrap();
        }
        Fixture {
            trust,
            witness,
            cosignatures: CosignatureApp,
            stores,
            root4,
            de_public: fx::signer("DE-1").public(),
            nl_public: fx::signer("NL-1").public(),
        }
    })
}

fn put<'a>(batch: &'a WriteBatch, column: &str) -> Option<&'a [u8]> {
    batch.ops().iter().find_map(|op| match op {
        Op::Put { col, value, .. } if *col == column => Some(value.as_slice()),
        _ => None,
    })
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    body: &[u8],
) -> Option<T> {
    let v: T = ciborium::from_reader(body).ok()?;
    let encoded = fx::cbor(&v);
    let back: T = ciborium::from_reader(encoded.as_slice()).expect("decodes");
    assert_eq!(back, v);
    assert_eq!(fx::cbor(&back), encoded);
    Some(v)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, body) = fx::split_first(data);
    let mode = usize::from(sel & 3);
    let nl = sel & 4 != 0;
    let refusal = |r: Result<(), RejectCode>| match r {
        Ok(()) => true,
        Err(RejectCode::Application(code)) => {
            assert!(!code.is_empty());
            false
        }
        Err(other) => panic!("refused with a kernel code: {other:?}"),
    };
    if mode < 2 {
        let decoded = roundtrip::<CheckpointMessage>(body);
        let from = if nl { NodeId::NL } else { NodeId::AT };
        let h = header(Kind::CHECKPOINT, from, NodeId::DE);
        let msg = Inbound {
            header: &h,
            body,
            received: NOW,
            trust: &f.trust,
        };
        let mut txn = Txn::detached(&f.stores[mode]);
        if !refusal(f.witness.apply(&msg, &mut txn)) {
            return;
        }
        let m = decoded.expect("accepted a body that does not decode");
        let batch = txn.into_batch();
        let answer: CosignatureMessage =
            ciborium::from_reader(put(&batch, WITNESS_OUT).expect("an answer is queued"))
                .expect("the answer decodes");
        let Some((name, bytes)) = answer.cosignature else {
            return;
        };
        let mut note = SignedNote::parse(&m.note).expect("cosigned a note that does not parse");
        let cp = Checkpoint::parse(&note.body).expect("cosigned a body that is no checkpoint");
        assert_eq!(cp.origin, origin_of(from.as_str()));
        assert_eq!(answer.size, cp.size);
        let signer = fx::signer(if nl { "NL-1" } else { "AT-1" });
        assert!(
            note.verify(&cp.origin, &signer.public()),
            "cosigned an unsigned note"
        );
        note.signatures.push(NoteSignature { name, bytes });
        assert!(
            note.verify_cosignature(&witness_name("DE"), &f.de_public)
                .is_some()
        );
        if mode == 1 && !nl {
            assert!(cp.size >= 4, "cosigned a rollback");
            if cp.size == 4 {
                assert_eq!(cp.root, f.root4, "cosigned a split view");
            }
        }
    } else {
        let decoded = roundtrip::<CosignatureMessage>(body);
        let (from, public) = if nl {
            (NodeId::NL, f.nl_public)
        } else {
            (NodeId::DE, f.de_public)
        };
        let h = header(Kind::COSIGNATURE, from, NodeId::AT);
        let msg = Inbound {
            header: &h,
            body,
            received: NOW,
            trust: &f.trust,
        };
        let mut txn = Txn::detached(&f.stores[mode]);
        if !refusal(f.cosignatures.apply(&msg, &mut txn)) {
            return;
        }
        decoded.expect("accepted a body that does not decode");
        let batch = txn.into_batch();
        if let Some(stored) = put(&batch, keys::CHECKPOINTS) {
            let note = SignedNote::parse(std::str::from_utf8(stored).expect("UTF-8"))
                .expect("stored a note that does not parse");
            assert!(
                note.verify_cosignature(&witness_name(from.as_str()), &public)
                    .is_some(),
                "stored a cosignature that does not verify"
            );
        }
    }
});
