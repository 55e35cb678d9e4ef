//! Alerts' content checks (`imi_domain::alert::check_alert`) on the shipped catalogue: the
//! type, the profession, the fields, the validity, the sealed identity; and the encoding.

use imi_domain::alert::{
    ALERT_VERSION, Alert, AlertMessage, check_alert, decode, encode, identity_context,
    incoming_coordinator,
};
use imi_domain::catalogue::Catalogue;
use imi_domain::request::{AnswerPayload, CodedAnswer};
use imi_protocol::fields::{open_fields, seal_fields};
use imi_protocol::{AuthorityId, CaseId, NodeId};
use std::path::{Path, PathBuf};

struct Disk;

impl imi_domain::catalogue::CatalogueFiles for Disk {
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }
    fn read(&self, path: &Path, _limit: u64) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

fn catalogue() -> Catalogue {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/catalogue");
    Catalogue::load(&dir, &Disk).unwrap()
}

const DAY: u64 = 86_400_000;

fn alert(id: &CaseId) -> Alert {
    Alert {
        v: ALERT_VERSION,
        procedure: "PQ-P02".into(),
        profession: "PROF-DOCTOR".into(),
        fields: vec![
            CodedAnswer {
                question: "PQ-Q12".into(),
                answer: AnswerPayload::Choice("PQ-Q12-RESTRICTION".into()),
            },
            CodedAnswer {
                question: "PQ-Q13".into(),
                answer: AnswerPayload::Date(20_000 * DAY),
            },
        ],
        decided: 20_000 * DAY,
        valid_until: Some(20_400 * DAY),
        identity: seal_fields(&[9; 32], [1; 12], &identity_context(id), b"identity"),
    }
}

fn check(a: &Alert) -> Result<(), &'static str> {
    let de = AuthorityId::new("DE-NC").unwrap();
    check_alert(&catalogue(), None, &de, NodeId::DE, a).map_err(|r| r.code)
}

#[test]
fn a_valid_alert_passes_round_trips_and_its_identity_opens_only_with_its_key_and_id() {
    let id = CaseId::random();
    let a = alert(&id);
    assert_eq!(check(&a), Ok(()));
    let m = AlertMessage::Alert(a.clone());
    assert_eq!(decode(&encode(&m)), Some(m));
    assert_eq!(
        open_fields(&[9; 32], &identity_context(&id), &a.identity).unwrap(),
        b"identity"
    );
    assert!(open_fields(&[8; 32], &identity_context(&id), &a.identity).is_err());
    let other = CaseId::random();
    assert!(open_fields(&[9; 32], &identity_context(&other), &a.identity).is_err());
    assert_eq!(incoming_coordinator(NodeId::HU).unwrap().as_str(), "HU-NC");
}

#[test]
fn bad_alerts_are_refused_with_their_code() {
    let id = CaseId::random();
    let mut no_profession = alert(&id);
    no_profession.profession = " ".into();
    assert_eq!(check(&no_profession), Err("missing_profession"));
    let mut request_type = alert(&id);
    request_type.procedure = "PQ-P01".into();
    assert_eq!(check(&request_type), Err("unknown_alert_type"));
    let mut missing = alert(&id);
    missing.fields.pop();
    assert_eq!(check(&missing), Err("missing_field"));
    let mut foreign = alert(&id);
    foreign.fields[0].question = "SD-Q10".into();
    assert_eq!(check(&foreign), Err("unknown_field"));
    let mut bad_option = alert(&id);
    bad_option.fields[0].answer = AnswerPayload::Choice("PQ-Q12-NOPE".into());
    assert_eq!(check(&bad_option), Err("invalid_field"));
    let mut backwards = alert(&id);
    backwards.valid_until = Some(backwards.decided);
    assert_eq!(check(&backwards), Err("invalid_validity"));
    let mut empty = alert(&id);
    empty.identity.ct.clear();
    assert_eq!(check(&empty), Err("invalid_identity"));
    let mut huge = alert(&id);
    huge.identity.ct = vec![0; 10 * 1024 * 1024];
    assert_eq!(check(&huge), Err("invalid_identity"));
    let a = alert(&id);
    let at = AuthorityId::new("AT-NC").unwrap();
    let r = check_alert(&catalogue(), None, &at, NodeId::DE, &a).map_err(|r| r.code);
    assert_eq!(r, Err("wrong_authority"));
    let professions = ["PROF-NURSE".to_owned()].into();
    let r = check_alert(
        &catalogue(),
        Some(&professions),
        &AuthorityId::new("DE-NC").unwrap(),
        NodeId::DE,
        &a,
    )
    .map_err(|r| r.code);
    assert_eq!(r, Err("unknown_profession"));
}

fn sd_alert(id: &CaseId) -> Alert {
    Alert {
        procedure: "SD-P02".into(),
        profession: String::new(),
        fields: vec![
            CodedAnswer {
                question: "SD-Q10".into(),
                answer: AnswerPayload::Text("Unsafe gas installations".into()),
            },
            CodedAnswer {
                question: "SD-Q11".into(),
                answer: AnswerPayload::Bool(true),
            },
        ],
        ..alert(id)
    }
}

#[test]
fn a_services_alert_goes_to_the_member_states_concerned_and_the_commission() {
    let c = catalogue();
    let id = CaseId::random();
    // No profession: optional for the Services Directive type, required for PQ-P02.
    assert_eq!(check(&sd_alert(&id)), Ok(()));
    let mut pq = alert(&id);
    pq.profession = String::new();
    assert_eq!(check(&pq), Err("missing_profession"));
    let recipients = |p: &str, to: &[NodeId]| {
        imi_domain::alert::check_recipients(&c, p, NodeId::DE, to).map_err(|r| r.code)
    };
    assert_eq!(recipients("SD-P02", &[NodeId::AT, NodeId::EU]), Ok(()));
    assert_eq!(
        recipients("SD-P02", &[NodeId::AT]),
        Err("commission_required")
    );
    assert_eq!(
        recipients("SD-P02", &[NodeId::EU]),
        Err("missing_member_states")
    );
    assert_eq!(
        recipients("SD-P02", &[NodeId::AT, NodeId::AT, NodeId::EU]),
        Err("invalid_recipients")
    );
    assert_eq!(
        recipients("SD-P02", &[NodeId::DE, NodeId::EU]),
        Err("invalid_recipients")
    );
    assert_eq!(recipients("PQ-P02", &[NodeId::AT, NodeId::HU]), Ok(()));
    assert_eq!(
        recipients("PQ-P02", &[NodeId::AT, NodeId::EU]),
        Err("commission_not_allowed")
    );
    assert_eq!(
        recipients("PQ-P01", &[NodeId::AT]),
        Err("unknown_alert_type")
    );
    assert_eq!(
        incoming_coordinator(NodeId::EU).unwrap().as_str(),
        "EU-COMMISSION"
    );
}

#[test]
fn a_modification_carries_a_full_measure_and_a_validity_after_the_decision() {
    let c = catalogue();
    let a = alert(&CaseId::random());
    let m = AlertMessage::Modify {
        v: ALERT_VERSION,
        revision: 1,
        fields: a.fields.clone(),
        valid_until: Some(a.decided + DAY),
    };
    assert_eq!(m.step(), "modify");
    assert_eq!(decode(&encode(&m)), Some(m));
    let measure = |fields: &[CodedAnswer], until| {
        imi_domain::alert::check_measure(&c, "PQ-P02", fields, a.decided, until).map_err(|r| r.code)
    };
    assert_eq!(measure(&a.fields, None), Ok(()));
    assert_eq!(measure(&a.fields[..1], None), Err("missing_field"));
    assert_eq!(measure(&a.fields, Some(a.decided)), Err("invalid_validity"));
}
