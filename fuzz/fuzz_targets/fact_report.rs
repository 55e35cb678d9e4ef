//! Fact reports: the body of an `imi.fact` envelope (`imi_apps::facts::FactReport`), of an
//! `imi.facts` envelope (a list of them), or of an `imi.usage` envelope (`imi_scoreboard::usage::UsageFact`) or an `imi.usages`
//! envelope (a list of those), and what the Commission
//! node does with one — `FactApp::apply` (`crates/apps/src/facts.rs`): decode,
//! the fact's validation, the case and side checks, the parties and timeline checks against
//! the reports held — over an in-memory store.
//!
//! Input: a selector byte (bits 0-1: what `EU` holds for the fixture case — nothing, AT's
//! requester report, DE's responder report, both; bits 2-3: the sending node; bit 4: the
//! envelope names another case; bit 5: the envelope is `imi.usage`; bit 6: the envelope is
//! `imi.facts` (without bit 5) or `imi.usages` (with it), naming no case unless bit 4),
//! then the body.
//!
//! Asserts: no panic; a body that decodes round-trips (decode → encode → decode, fixed
//! point); refusals carry an application code, never a kernel one; an accepted report
//! decoded, validates, is the sender's own side, has its times in order and a plausible
//! number of steps; an accepted `imi.facts` body is a list of 1 to 64 such reports, its
//! header naming no case; an accepted usage fact decoded, validates, names the envelope's case and
//! is the sender's; an accepted `imi.usages` body is a list of 1 to 64 facts that validate
//! and are the sender's, its header naming no case.
#![no_main]

use imi_apps::facts::{FactApp, FactReport, MAX_BATCH_REPORTS, MAX_BATCH_USAGE, timeline_ordered};
use imi_engine::{Application, Inbound, Txn};
use imi_fuzz_fixtures::cases::CASE;
use imi_fuzz_fixtures::wire::fact_report;
use imi_fuzz_fixtures::{self as fx, NOW};
use imi_protocol::{AuthorityId, CaseId, Header, Kind, MessageId, NodeId, RejectCode, TrustList};
use imi_scoreboard::crosscheck::Side;
use imi_scoreboard::usage::UsageFact;
use imi_store::{Durability, MemStore, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SENDERS: [NodeId; 4] = [NodeId::AT, NodeId::DE, NodeId::NL, NodeId::EU];

struct Fixture {
    trust: TrustList,
    app: FactApp,
    stores: Vec<MemStore>,
}

fn header(from: NodeId, case: CaseId) -> Header {
    Header {
        v: 1,
        id: MessageId([0xfa; 16]),
        kind: Kind::new(Kind::FACT).unwrap(),
        step: None,
        from,
        authority: AuthorityId::new(&format!("{from}-OPS")).unwrap(),
        to: vec![NodeId::EU],
        case: Some(case),
        prev: Vec::new(),
        created: NOW,
        commitment: [0; 32],
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let trust = fx::trust_list();
        let app = FactApp::default();
        let held: [&[(NodeId, Side)]; 4] = [
            &[],
            &[(NodeId::AT, Side::Requester)],
            &[(NodeId::DE, Side::Responder)],
            &[(NodeId::AT, Side::Requester), (NodeId::DE, Side::Responder)],
        ];
        let stores = held
            .iter()
            .map(|reports| {
                let store = MemStore::new(&imi_apps::columns());
                for (from, side) in *reports {
                    let h = header(*from, CASE);
                    let body = fx::cbor(&fact_report(*side, 3));
                    let msg = Inbound {
                        header: &h,
                        body: &body,
                        received: NOW,
                        trust: &trust,
                    };
                    let mut txn = Txn::detached(&store);
                    app.apply(&msg, &mut txn)
                        .expect("the fixture's reports are valid");
                    store.write(txn.into_batch(), Durability::Buffered).unwrap();
                }
                store
            })
            .collect();
        Fixture { trust, app, stores }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, body) = fx::split_first(data);
    let decoded = ciborium::from_reader::<FactReport, _>(body).ok();
    if let Some(r) = &decoded {
        let encoded = fx::cbor(r);
        let back: FactReport = ciborium::from_reader(encoded.as_slice()).expect("decodes");
        assert_eq!(&back, r);
        assert_eq!(fx::cbor(&back), encoded);
    }
    let store = &f.stores[usize::from(sel & 3)];
    let from = SENDERS[usize::from(sel >> 2 & 3)];
    let case = if sel & 0x10 == 0 {
        CASE
    } else {
        CaseId([0x0d; 16])
    };
    let mut h = header(from, case);
    if sel & 0x20 != 0 {
        let batch = sel & 0x40 != 0;
        let usage = if batch {
            h.kind = Kind::new(Kind::USAGES).unwrap();
            if sel & 0x10 == 0 {
                h.case = None;
            }
            ciborium::from_reader::<Vec<UsageFact>, _>(body).ok()
        } else {
            h.kind = Kind::new(Kind::USAGE).unwrap();
            ciborium::from_reader::<UsageFact, _>(body)
                .ok()
                .map(|u| vec![u])
        };
        let msg = Inbound {
            header: &h,
            body,
            received: NOW,
            trust: &f.trust,
        };
        let mut txn = Txn::detached(store);
        match f.app.apply(&msg, &mut txn) {
            Ok(()) => {
                let facts = usage.expect("accepted a usage body that does not decode");
                if batch {
                    assert!(h.case.is_none(), "accepted a usage batch naming a case");
                    assert!((1..=MAX_BATCH_USAGE).contains(&facts.len()));
                }
                for u in facts {
                    assert!(u.validate().is_ok(), "accepted an invalid usage fact");
                    if !batch {
                        assert_eq!(u.id, case.to_string());
                    }
                    assert_eq!(u.sender, from.as_str());
                }
            }
            Err(RejectCode::Application(code)) => assert!(!code.is_empty()),
            Err(other) => panic!("refused with a kernel code: {other:?}"),
        }
        return;
    }
    let batch = sel & 0x40 != 0;
    let reports = if batch {
        h.kind = Kind::new(Kind::FACTS).unwrap();
        if sel & 0x10 == 0 {
            h.case = None;
        }
        ciborium::from_reader::<Vec<FactReport>, _>(body).ok()
    } else {
        decoded.map(|r| vec![r])
    };
    let msg = Inbound {
        header: &h,
        body,
        received: NOW,
        trust: &f.trust,
    };
    let mut txn = Txn::detached(store);
    match f.app.apply(&msg, &mut txn) {
        Ok(()) => {
            let reports = reports.expect("accepted a body that does not decode");
            assert!((1..=MAX_BATCH_REPORTS).contains(&reports.len()));
            if batch {
                assert!(h.case.is_none(), "accepted a batch naming a case");
            }
            for r in reports {
                let record = r.fact.record().expect("accepted an invalid fact");
                assert!(timeline_ordered(&record));
                assert!(r.steps as usize <= imi_domain::limits::MAX_HISTORY);
                if !batch {
                    assert_eq!(r.fact.case, case.to_string());
                }
                let own = match r.side {
                    Side::Requester => &r.fact.requester,
                    Side::Responder => &r.fact.responder,
                };
                assert_eq!(own, from.as_str());
            }
        }
        Err(RejectCode::Application(code)) => assert!(!code.is_empty()),
        Err(other) => panic!("refused with a kernel code: {other:?}"),
    }
});
