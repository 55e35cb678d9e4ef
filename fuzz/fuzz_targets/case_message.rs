//! Case messages: the body of an `imi.request` envelope (`imi_domain::message::CaseMessage`)
//! and everything DE's node does with one from another node — `RequestApp::apply`
//! (`crates/apps/src/requests.rs`): decode, the state machine, the catalogue, directory,
//! subject and attachment checks, the encrypted writes and the fact report — over an
//! in-memory store holding the fixture case in one of several states.
//!
//! Input: a selector byte (bits 0-2: the state of the case at DE; bits 3-4: the sending
//! node and authority; bit 5: the signed header names `withdraw` rather than the body's
//! step), a byte for the step's signed time (quarter hours after the case
//! was created), then the body.
//!
//! Asserts: no panic; a body that decodes re-encodes to a fixed point; the application
//! refuses only with an application code (never `internal`, which would mean a bug, nor a
//! kernel code); a step it accepts decoded and writes the case's index entry.
#![no_main]

use imi_apps::requests::{CASE_INDEX, Cases, DataKey};
use imi_domain::message::{CaseMessage, decode_message, encode_message};
use imi_domain::request::Actor;
use imi_engine::{Application, Inbound, Txn};
use imi_fuzz_fixtures::cases::{self, CASE, HOUR};
use imi_fuzz_fixtures::{self as fx, NOW};
use imi_protocol::{
    AuthorityId, Header, Kind, MessageId, NodeId, RejectCode, Timestamp, TrustList,
};
use imi_store::{Durability, MemStore, Op, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

/// Who may send DE a step: a node and the authority its signed header names.
const SENDERS: [(NodeId, &str); 4] = [
    (NodeId::AT, "AT-NC"),
    (NodeId::AT, "AT-AEK"),
    (NodeId::NL, "NL-NC"),
    (NodeId::AT, "DE-NC"),
];

struct Fixture {
    trust: TrustList,
    cases: Arc<Cases>,
    app: Arc<dyn Application>,
    /// DE's store with the case: absent, sent, accepted, a deadline proposed, answered,
    /// information requested by the requester, referred, closed.
    stores: Vec<MemStore>,
}

fn header(from: NodeId, authority: &str, created: Timestamp, id: u8, step: Option<Kind>) -> Header {
    Header {
        v: 1,
        id: MessageId([id; 16]),
        kind: Kind::new(Kind::REQUEST).unwrap(),
        step,
        from,
        authority: AuthorityId::new(authority).unwrap(),
        to: vec![NodeId::DE],
        case: Some(CASE),
        prev: Vec::new(),
        created,
        commitment: [0; 32],
    }
}

fn message(kind: &str) -> CaseMessage {
    cases::steps()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, m)| m)
        .unwrap()
}

impl Fixture {
    fn new() -> Self {
        let cases = Arc::new(
            Cases::new(
                NodeId::DE,
                DataKey::new([7; 32]),
                Arc::new(fx::catalogue()),
                Arc::new(fx::directory()),
            )
            .with_fact_reports(),
        );
        Fixture {
            trust: fx::trust_list(),
            app: cases.application(),
            cases,
            stores: Vec::new(),
        }
    }

    /// A copy of `store` (or an empty store) with `steps` applied: `(AT, kind)` received from
    /// AT-NC, `(DE, kind)` DE-NC's own; an hour apart from `NOW`.
    fn store(&self, steps: &[(NodeId, &str)]) -> MemStore {
        let store = MemStore::new(&imi_apps::columns());
        for (i, (node, kind)) in steps.iter().enumerate() {
            let at = NOW + i as u64 * HOUR;
            let msg = message(kind);
            let mut txn = Txn::detached(&store);
            if *node == NodeId::DE {
                let actor = Actor {
                    authority: AuthorityId::new(cases::RESPONDER).unwrap(),
                    country: NodeId::DE,
                    coordinator: false,
                };
                self.cases
                    .apply_step(&mut txn, CASE, &actor, &msg, at, None)
                    .unwrap_or_else(|e| panic!("fixture step {kind}: {e}"));
            } else {
                let h = header(
                    *node,
                    cases::REQUESTER,
                    at,
                    i as u8,
                    Some(Kind::new(kind).unwrap()),
                );
                let body = encode_message(&msg);
                let inbound = Inbound {
                    header: &h,
                    body: &body,
                    received: at,
                    trust: &self.trust,
                };
                self.app
                    .apply(&inbound, &mut txn)
                    .unwrap_or_else(|e| panic!("fixture step {kind}: {e}"));
            }
            let batch = txn.into_batch();
            store.write(batch, Durability::Buffered).unwrap();
        }
        store
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        use NodeId::{AT, DE};
        let mut f = Fixture::new();
        let sent = [(AT, "create")];
        let accepted = [(AT, "create"), (DE, "accept")];
        let proposed = [(AT, "create"), (DE, "accept"), (DE, "propose_deadline")];
        let answered = [(AT, "create"), (DE, "accept"), (DE, "answer")];
        let info = [
            (AT, "create"),
            (DE, "accept"),
            (DE, "answer"),
            (AT, "request_info"),
        ];
        let referred = [(AT, "create"), (DE, "accept"), (DE, "refer")];
        let closed = [
            (AT, "create"),
            (DE, "accept"),
            (DE, "answer"),
            (AT, "close"),
        ];
        let lists: [&[(NodeId, &str)]; 8] = [
            &[],
            &sent,
            &accepted,
            &proposed,
            &answered,
            &info,
            &referred,
            &closed,
        ];
        f.stores = lists.iter().map(|steps| f.store(steps)).collect();
        f
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let [sel, time, body @ ..] = data else {
        return;
    };
    if let Some(m) = decode_message(body) {
        let encoded = encode_message(&m);
        let again = decode_message(&encoded).expect("what we encode decodes");
        assert_eq!(encode_message(&again), encoded, "not a fixed point");
    }
    let store = &f.stores[usize::from(sel & 7)];
    let (from, authority) = SENDERS[usize::from(sel >> 3 & 3)];
    let created = NOW + u64::from(*time) * HOUR / 4;
    // The signed header names the body's step, as an honest sender's does; with bit 5 of
    // the selector it names `withdraw` instead (refused `step_mismatch` unless the body is one).
    let step = if sel & 0x20 == 0 {
        decode_message(body).and_then(|m| Kind::new(m.step.transition.kind().as_str()).ok())
    } else {
        Kind::new("withdraw").ok()
    };
    let h = header(from, authority, created, 0xee, step);
    let inbound = Inbound {
        header: &h,
        body,
        received: created + 1_000,
        trust: &f.trust,
    };
    let mut txn = Txn::detached(store);
    match f.app.apply(&inbound, &mut txn) {
        Ok(()) => {
            assert!(
                decode_message(body).is_some(),
                "accepted a body that does not decode"
            );
            let batch = txn.into_batch();
            assert!(
                batch.ops().iter().any(|op| matches!(op,
                    Op::Put { col, key, .. } if *col == CASE_INDEX && key == CASE.as_bytes())),
                "an accepted step did not write the case's index"
            );
        }
        Err(RejectCode::Application(code)) => {
            assert!(!code.is_empty());
        }
        Err(other) => panic!("refused with a kernel code: {other:?}"),
    }
});
