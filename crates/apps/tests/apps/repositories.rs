//! The repository application against hostile senders: AT (in the euro area) runs it and
//! holds the euro-cash register; raw clients sign as DE (on the access list) and HU (not).
//! An entry from a node off the list, of an unknown repository, with fields missing, an
//! older version or another owner's change is a signed `rejected` receipt that changes
//! nothing; an owner's versions are kept in order.

use crate::cases::cases_for;
use crate::rig::Federation;
use imi_apps::diagnostics::DiagnosticApp;
use imi_apps::repositories::{self, REPOSITORY, RepositoryApp};
use imi_domain::repository::{ENTRY_VERSION, EntryMessage, encode};
use imi_domain::request::{AnswerPayload, CodedAnswer};
use imi_engine::Applications;
use imi_protocol::NodeId::{AT, DE, HU};
use imi_protocol::{AuthorityId, CaseId, Draft, Kind, NodeId, Outcome, RejectCode};
use std::sync::Arc;

fn entry(version: u64, holder: &str) -> EntryMessage {
    EntryMessage {
        v: ENTRY_VERSION,
        repository: "CIT-P01".into(),
        version,
        withdrawn: false,
        fields: vec![
            CodedAnswer {
                question: "CIT-Q01".into(),
                answer: AnswerPayload::Text(holder.into()),
            },
            CodedAnswer {
                question: "CIT-Q02".into(),
                answer: AnswerPayload::Date(1_759_276_800_000),
            },
            CodedAnswer {
                question: "CIT-Q03".into(),
                answer: AnswerPayload::Choice("CIT-Q03-VALID".into()),
            },
        ],
    }
}

fn draft(authority: &str, to: NodeId, case: Option<CaseId>, m: &EntryMessage) -> Draft {
    Draft {
        kind: Kind::new(Kind::REPOSITORY_ENTRY).unwrap(),
        step: None,
        authority: AuthorityId::new(authority).unwrap(),
        to: vec![to],
        case,
        prev: vec![],
        body: encode(m),
    }
}

#[tokio::test]
async fn entries_from_off_the_list_or_not_the_owner_are_refused_and_change_nothing() {
    let fed = Federation::new(&[DE, HU, AT]);
    let cases = cases_for(AT);
    let at = fed
        .start_with(
            AT,
            Applications::new(vec![
                Arc::new(DiagnosticApp::default()),
                Arc::new(RepositoryApp(cases.clone())),
            ]),
        )
        .await;
    let de = fed.raw_client(DE, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let hu = fed.raw_client(HU, imi_network::DEFAULT_MAX_MESSAGE_BYTES);
    let id = CaseId::random();
    let refused = |o: Outcome, code: &str, what: &str| {
        assert_eq!(
            o,
            Outcome::Rejected(RejectCode::Application(code.into())),
            "{what}"
        );
        assert!(at.rows(REPOSITORY).is_empty(), "{what}: nothing written");
    };
    let o = fed
        .send_draft(&hu, HU, AT, &draft("HU-NC", AT, Some(id), &entry(1, "x")))
        .await;
    refused(o, "not_on_access_list", "an owner off the access list");
    let mut unknown = entry(1, "x");
    unknown.repository = "CIT-P02".into();
    let o = fed
        .send_draft(&de, DE, AT, &draft("DE-NC", AT, Some(id), &unknown))
        .await;
    refused(o, "unknown_repository", "a notification type as repository");
    let mut missing = entry(1, "x");
    missing.fields.pop();
    let o = fed
        .send_draft(&de, DE, AT, &draft("DE-NC", AT, Some(id), &missing))
        .await;
    refused(o, "missing_field", "a field missing");
    let o = fed
        .send_draft(&de, DE, AT, &draft("AT-NC", AT, Some(id), &entry(1, "x")))
        .await;
    refused(o, "wrong_authority", "an owner of another country");
    let o = fed
        .send_draft(&de, DE, AT, &draft("DE-NC", AT, None, &entry(1, "x")))
        .await;
    refused(o, "missing_case", "no entry id");

    // The owner's versions.
    let o = fed
        .send_draft(
            &de,
            DE,
            AT,
            &draft("DE-NC", AT, Some(id), &entry(1, "Geld AG")),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let o = fed
        .send_draft(
            &de,
            DE,
            AT,
            &draft("DE-NC", AT, Some(id), &entry(2, "Geld AG 2")),
        )
        .await;
    assert_eq!(o, Outcome::Accepted);
    let before = at.rows(REPOSITORY);
    let o = fed
        .send_draft(
            &de,
            DE,
            AT,
            &draft("DE-NC", AT, Some(id), &entry(2, "replayed")),
        )
        .await;
    assert_eq!(
        o,
        Outcome::Rejected(RejectCode::Application("stale_version".into()))
    );
    let o = fed
        .send_draft(
            &de,
            DE,
            AT,
            &draft("DE-BY-BLZK", AT, Some(id), &entry(3, "hijack")),
        )
        .await;
    assert_eq!(
        o,
        Outcome::Rejected(RejectCode::Application("not_owner".into()))
    );
    assert_eq!(at.rows(REPOSITORY), before, "refusals change nothing");
    let store = at.engine().reader();
    let held = repositories::entry(store.as_ref(), "CIT-P01", &id)
        .unwrap()
        .unwrap();
    assert_eq!((held.version, held.owner.as_str()), (2, "DE-NC"));
    drop(store);
    de.stop().await;
    hu.stop().await;
    at.stop().await;
}
