//! JSON bodies of the API: `POST /api/v1/requests` and `POST /api/v1/requests/{id}/<action>`
//! (`imi_api::requests::create_message`, `step_message`: the body → the step to submit),
//! `POST /operator/users` (`NewUser`) and `POST /operator/diag/send` (`DiagRequest`), each
//! parsed as its handler parses it after authentication and the content-type check.
//!
//! Input: a selector byte (0: create; 1-14: the fourteen actions; 15: a new user; 16: a
//! diagnostic request; bits 5-6: the caller — an authority user, a national coordinator,
//! a delegated coordinator for another area, an auditor), then the JSON body.
//!
//! Asserts: no panic; a refusal is a 4xx with a code; an accepted body becomes a step whose
//! envelope body the receiving node decodes to the same message (encode → decode →
//! encode, fixed point), by the caller's authority, with the subject committed as sent and
//! attachments that match their references; the state machine runs on it without panicking;
//! operator bodies round-trip through their JSON form.
#![no_main]

use imi_api::operator::DiagRequest;
use imi_api::requests::{create_message, json_body, step_message};
use imi_api::users::NewUser;
use imi_domain::message::{decode_message, encode_message, match_files, step_attachments};
use imi_domain::request::{Transition, step_body};
use imi_domain::user::{CoordinatorScope, Role, User};
use imi_fuzz_fixtures::NOW;
use imi_fuzz_fixtures::cases::CASE;
use imi_protocol::AuthorityId;
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

const ACTIONS: [&str; 14] = [
    "accept",
    "forward",
    "reassign",
    "propose-deadline",
    "accept-deadline",
    "refuse-deadline",
    "answer",
    "request-info",
    "provide-info",
    "close",
    "withdraw",
    "refer",
    "resolve",
    "no-such-action",
];

fn user(sel: u8) -> User {
    let role = match sel >> 5 & 3 {
        0 => Role::AuthorityUser,
        1 => Role::Coordinator {
            scope: CoordinatorScope::National,
        },
        2 => Role::Coordinator {
            scope: CoordinatorScope::Delegated(vec!["SD".to_owned()]),
        },
        _ => Role::Auditor,
    };
    User {
        id: "fuzz".to_owned(),
        authority: AuthorityId::new("AT-NC").unwrap(),
        role,
    }
}

fn json_roundtrip<T: Serialize + DeserializeOwned>(body: &[u8]) {
    let Ok(v) = json_body::<T>(body) else {
        return;
    };
    let value = serde_json::to_value(&v).expect("encodes");
    let back: T = serde_json::from_value(value.clone()).expect("what we encode decodes");
    assert_eq!(serde_json::to_value(&back).expect("encodes"), value);
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let user = user(sel);
    let route = sel & 0x1f;
    let result = match route {
        0 => create_message(&user, body, NOW),
        1..=14 => step_message(&user, "PQ", ACTIONS[usize::from(route - 1)], body, NOW),
        15 => return json_roundtrip::<NewUser>(body),
        16 => return json_roundtrip::<DiagRequest>(body),
        _ => return,
    };
    let (actor, msg) = match result {
        Ok(r) => r,
        Err(e) => {
            assert!(e.status.is_client_error(), "{} for a body: {e:?}", e.status);
            assert!(!e.code.is_empty());
            return;
        }
    };
    assert_eq!(actor.authority, user.authority);
    assert_eq!(msg.v, imi_domain::message::MESSAGE_VERSION);
    let encoded = encode_message(&msg);
    let received = decode_message(&encoded).expect("the receiving node decodes the step");
    assert_eq!(encode_message(&received), encoded);
    let refs = step_attachments(&msg.step.transition);
    if let Err(e) = match_files(refs, &msg.files) {
        assert_eq!(
            e.code, "too_large",
            "the API's attachments do not match: {e}"
        );
    }
    if let Transition::Create { subject, .. } = &msg.step.transition {
        let data = msg.subject.as_ref().expect("create carries the subject");
        assert_eq!(&data.commitment(), subject);
        if let Ok(case) = step_body(None, CASE, &actor, &msg.step, NOW) {
            assert_eq!(case.history.len(), 1);
        }
    } else {
        assert!(msg.subject.is_none());
    }
});
