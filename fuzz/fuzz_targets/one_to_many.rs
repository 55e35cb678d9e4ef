//! The one-to-many applications' bodies from another node: `imi.notification`
//! (`NotificationApp`), `imi.repository.entry` (`RepositoryApp`) and `imi.alert`
//! (`AlertApp`), each applied by DE's node over an in-memory store that is empty or already
//! holds AT's notification, entry and alert (so acknowledgements, new versions, forwards,
//! grants and closures meet something to refer to).
//!
//! Input: a selector byte (bits 0-1: the kind, 0 notification, 1 repository entry, 2 alert,
//! 3 alert again; bit 2: the store with AT's items; bit 3: the sender is NL rather than AT;
//! bit 4: the header names a wrong step; bit 5: the header names the fixture's message as
//! predecessor), then the body.
//!
//! Asserts: no panic; a body that decodes re-encodes to a fixed point; refusals are
//! application codes, `unsupported_version` or `not_recipient` — never `internal`.
#![no_main]

use imi_apps::alerts::AlertApp;
use imi_apps::notifications::NotificationApp;
use imi_apps::repositories::RepositoryApp;
use imi_apps::requests::{Cases, DataKey};
use imi_domain::{alert, notification, repository};
use imi_engine::{Application, Inbound, Txn};
use imi_fuzz_fixtures::one_to_many::{CASE, FIXTURE_MESSAGE, fixture_bodies};
use imi_fuzz_fixtures::{self as fx, NOW};
use imi_protocol::{AuthorityId, Header, Kind, MessageId, NodeId, RejectCode, TrustList};
use imi_store::{Durability, MemStore, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

struct Fixture {
    trust: TrustList,
    apps: [Arc<dyn Application>; 3],
    /// Empty, and with AT's notification, entry and alert applied.
    stores: [MemStore; 2],
}

const KINDS: [&str; 3] = [Kind::NOTIFICATION, Kind::REPOSITORY_ENTRY, Kind::ALERT];

fn step_of(kind: usize, body: &[u8]) -> Option<Kind> {
    let s = match kind {
        0 => notification::decode(body).map(|m| m.step()),
        2 => alert::decode(body).map(|m| m.step()),
        _ => return None,
    }?;
    Kind::new(s).ok()
}

fn header(
    kind: usize,
    from: NodeId,
    authority: &str,
    step: Option<Kind>,
    prev: Vec<MessageId>,
    to: Vec<NodeId>,
    id: u8,
) -> Header {
    Header {
        v: 1,
        id: MessageId([id; 16]),
        kind: Kind::new(KINDS[kind]).unwrap(),
        step,
        from,
        authority: AuthorityId::new(authority).unwrap(),
        to,
        case: Some(CASE),
        prev,
        created: NOW,
        commitment: [0; 32],
    }
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let cases = Arc::new(Cases::new(
            NodeId::DE,
            DataKey::new([7; 32]),
            Arc::new(fx::catalogue()),
            Arc::new(fx::directory()),
        ));
        let apps: [Arc<dyn Application>; 3] = [
            Arc::new(NotificationApp(cases.clone())),
            Arc::new(RepositoryApp(cases.clone())),
            Arc::new(AlertApp::new(cases, None)),
        ];
        let trust = fx::trust_list();
        let empty = MemStore::new(&imi_apps::columns());
        let held = MemStore::new(&imi_apps::columns());
        for (kind, body) in fixture_bodies().into_iter().enumerate() {
            let to = match kind {
                0 => vec![NodeId::DE, NodeId::HU],
                _ => vec![NodeId::DE],
            };
            let h = header(
                kind,
                NodeId::AT,
                "AT-NC",
                step_of(kind, &body),
                vec![],
                to,
                FIXTURE_MESSAGE,
            );
            let inbound = Inbound {
                header: &h,
                body: &body,
                received: NOW,
                trust: &trust,
            };
            let mut txn = Txn::detached(&held);
            apps[kind]
                .apply(&inbound, &mut txn)
                .unwrap_or_else(|e| panic!("fixture {kind}: {e}"));
            held.write(txn.into_batch(), Durability::Buffered).unwrap();
        }
        Fixture {
            trust,
            apps,
            stores: [empty, held],
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let (sel, body) = fx::split_first(data);
    let kind = usize::from(sel & 3).min(2);
    match kind {
        0 => {
            if let Some(m) = notification::decode(body) {
                let e = notification::encode(&m);
                assert_eq!(notification::encode(&notification::decode(&e).unwrap()), e);
            }
        }
        1 => {
            if let Some(m) = repository::decode(body) {
                let e = repository::encode(&m);
                assert_eq!(repository::encode(&repository::decode(&e).unwrap()), e);
            }
        }
        _ => {
            if let Some(m) = alert::decode(body) {
                let e = alert::encode(&m);
                assert_eq!(alert::encode(&alert::decode(&e).unwrap()), e);
            }
        }
    }
    let store = &f.stores[usize::from(sel >> 2 & 1)];
    let (from, authority) = if sel & 8 == 0 {
        (NodeId::AT, "AT-NC")
    } else {
        (NodeId::NL, "NL-NC")
    };
    let step = if sel & 0x10 == 0 {
        step_of(kind, body)
    } else {
        Kind::new("read").ok()
    };
    let prev = if sel & 0x20 == 0 {
        vec![]
    } else {
        vec![MessageId([FIXTURE_MESSAGE; 16])]
    };
    // Notifications name their recipients in the body; the header must say the same.
    let to = match notification::decode(body) {
        Some(notification::NotificationMessage::Notify(n)) if kind == 0 => n.countries(),
        _ => vec![NodeId::DE],
    };
    let h = header(kind, from, authority, step, prev, to, 0xee);
    let inbound = Inbound {
        header: &h,
        body,
        received: NOW + 1_000,
        trust: &f.trust,
    };
    let mut txn = Txn::detached(store);
    match f.apps[kind].apply(&inbound, &mut txn) {
        Ok(()) => {}
        Err(RejectCode::Application(code)) => assert!(!code.is_empty()),
        Err(RejectCode::UnsupportedVersion | RejectCode::NotRecipient) => {}
        Err(other) => panic!("refused with {other:?}"),
    }
});
