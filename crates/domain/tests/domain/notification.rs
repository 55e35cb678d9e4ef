//! Notifications' content checks (`imi_domain::notification::check_notification`), run on
//! the shipped catalogue: the type, the recipients (countries, authorities, the Commission
//! as the type says), the fields (required, known, typed), the sizes; and the encoding.

use imi_domain::authority::{Authority, Directory, Level};
use imi_domain::catalogue::{Catalogue, CommissionRule};
use imi_domain::notification::{
    Addressee, MAX_RECIPIENT_AUTHORITIES, NOTIFICATION_VERSION, Notification, NotificationMessage,
    check_notification, decode, encode,
};
use imi_domain::request::{AnswerPayload, CodedAnswer};
use imi_protocol::{AuthorityId, NodeId};
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

fn id(s: &str) -> AuthorityId {
    AuthorityId::new(s).unwrap()
}

fn node(s: &str) -> NodeId {
    s.parse().unwrap()
}

fn authority(s: &str) -> Authority {
    Authority {
        id: id(s),
        country: imi_domain::country_of(&id(s)).unwrap(),
        names: [("en".to_owned(), format!("Authority {s}"))].into(),
        level: Level::National,
        areas: vec!["SD".into(), "CIT".into()],
        procedures: vec![],
        professions: vec![],
        competences: vec![],
        city: None,
        region: None,
    }
}

fn directory() -> Directory {
    let mut d =
        Directory::from_authorities(["DE-NC", "HU-NC", "AT-NC", "HU-OLD"].map(authority)).unwrap();
    d.set(authority("HU-OLD"), true).unwrap();
    d
}

fn text(q: &str, t: &str) -> CodedAnswer {
    CodedAnswer {
        question: q.into(),
        answer: AnswerPayload::Text(t.into()),
    }
}

fn cit(recipients: Vec<Addressee>) -> Notification {
    Notification {
        v: NOTIFICATION_VERSION,
        procedure: "CIT-P02".into(),
        recipients,
        fields: vec![
            text("CIT-Q01", "Geldtransport GmbH"),
            CodedAnswer {
                question: "CIT-Q02".into(),
                answer: AnswerPayload::Date(1_764_547_200_000),
            },
            CodedAnswer {
                question: "CIT-Q03".into(),
                answer: AnswerPayload::Choice("CIT-Q03-VALID".into()),
            },
            CodedAnswer {
                question: "CIT-Q04".into(),
                answer: AnswerPayload::Date(1_764_547_200_000),
            },
        ],
        attachments: vec![],
        files: vec![],
    }
}

fn to(country: &str, authorities: &[&str]) -> Addressee {
    Addressee {
        country: node(country),
        authorities: authorities.iter().map(|a| id(a)).collect(),
    }
}

fn check(n: &Notification) -> Result<(), &'static str> {
    check_notification(
        &catalogue(),
        Some(&directory()),
        &id("DE-NC"),
        node("DE"),
        n,
    )
    .map_err(|r| r.code)
}

#[test]
fn the_shipped_types_are_notifications_with_their_commission_rule() {
    let c = catalogue();
    let rule = |p: &str| c.procedure(p).unwrap().commission();
    assert_eq!(rule("SD-P03"), CommissionRule::Required);
    assert_eq!(rule("EC-P01"), CommissionRule::Required);
    assert_eq!(rule("SDG-P01"), CommissionRule::Required);
    assert_eq!(rule("CIT-P02"), CommissionRule::None);
    assert_eq!(
        c.procedure("CIT-P02").unwrap().repository(),
        Some("CIT-P01")
    );
    let sd = c.procedure("SD-P03").unwrap();
    assert!(sd.required("SD-Q13") && !sd.required("SD-Q17"));
}

#[test]
fn a_valid_notification_passes_and_round_trips() {
    let n = cit(vec![to("AT", &["AT-NC"]), to("HU", &["HU-NC"])]);
    assert_eq!(check(&n), Ok(()));
    let m = NotificationMessage::Notify(n);
    assert_eq!(decode(&encode(&m)), Some(m));
    assert_eq!(decode(b"\xff\x00garbage"), None);
}

#[test]
fn the_type_must_be_a_notification_of_the_catalogue() {
    let mut n = cit(vec![to("HU", &["HU-NC"])]);
    n.procedure = "XX-P99".into();
    assert_eq!(check(&n), Err("unknown_notification_type"));
    n.procedure = "PQ-P01".into(); // a request procedure
    assert_eq!(check(&n), Err("unknown_notification_type"));
    n.procedure = "PQ-P02".into(); // an alert
    assert_eq!(check(&n), Err("unknown_notification_type"));
}

#[test]
fn recipients_are_other_countries_in_order_with_their_own_known_authorities() {
    let cases: Vec<(Vec<Addressee>, &str)> = vec![
        (vec![], "no_recipients"),
        (vec![to("DE", &["DE-NC"])], "invalid_recipients"),
        (
            vec![to("HU", &["HU-NC"]), to("AT", &["AT-NC"])],
            "invalid_recipients",
        ),
        (
            vec![to("HU", &["HU-NC"]), to("HU", &["HU-NC"])],
            "invalid_recipients",
        ),
        (vec![to("HU", &[])], "invalid_recipients"),
        (vec![to("HU", &["AT-NC"])], "invalid_recipients"),
        (vec![to("HU", &["HU-NC", "HU-NC"])], "invalid_recipients"),
        (vec![to("HU", &["HU-NOBODY"])], "unknown_authority"),
        (vec![to("HU", &["HU-OLD"])], "retired_authority"),
        (vec![to("EU", &["EU-COMMISSION"])], "commission_not_allowed"),
        (vec![to("EU", &["EU-SOMEONE"])], "unknown_authority"),
    ];
    for (recipients, code) in cases {
        let n = cit(recipients.clone());
        assert_eq!(check(&n), Err(code), "{recipients:?}");
    }
}

#[test]
fn a_recipient_list_of_10000_is_refused() {
    let many: Vec<AuthorityId> = (0..10_000).map(|i| id(&format!("HU-X{i}"))).collect();
    let n = cit(vec![Addressee {
        country: node("HU"),
        authorities: many,
    }]);
    assert_eq!(check(&n), Err("too_many_recipients"));
    // Spread over countries, the total still counts.
    let per: Vec<Addressee> = ["AT", "HU", "PL", "SE", "SK", "SI"]
        .iter()
        .map(|c| Addressee {
            country: node(c),
            authorities: (0..200).map(|i| id(&format!("{c}-X{i}"))).collect(),
        })
        .collect();
    assert!(per.iter().map(|a| a.authorities.len()).sum::<usize>() > MAX_RECIPIENT_AUTHORITIES);
    assert_eq!(check(&cit(per)), Err("too_many_recipients"));
}

#[test]
fn the_commission_goes_exactly_as_the_type_says() {
    let mut n = cit(vec![to("HU", &["HU-NC"])]);
    n.procedure = "SD-P03".into();
    n.fields = vec![
        CodedAnswer {
            question: "SD-Q12".into(),
            answer: AnswerPayload::Choice("SD-Q12-TARIFFS".into()),
        },
        text("SD-Q13", "Act 1"),
        text("SD-Q14", "Minimum fees"),
        text("SD-Q15", "Consumer protection"),
        CodedAnswer {
            question: "SD-Q16".into(),
            answer: AnswerPayload::Date(1_764_547_200_000),
        },
    ];
    assert_eq!(check(&n), Err("commission_required"));
    n.recipients.push(to("EU", &["EU-COMMISSION"]));
    assert_eq!(check(&n), Ok(()), "the optional attachment may be left out");
}

#[test]
fn fields_are_required_known_single_and_typed() {
    let base = cit(vec![to("HU", &["HU-NC"])]);
    let mut missing = base.clone();
    missing.fields.remove(0);
    assert_eq!(check(&missing), Err("missing_field"));
    let mut foreign = base.clone();
    foreign.fields.push(text("SD-Q13", "not of this type"));
    assert_eq!(check(&foreign), Err("unknown_field"));
    let mut twice = base.clone();
    twice.fields.push(text("CIT-Q01", "again"));
    assert_eq!(check(&twice), Err("duplicate_field"));
    let mut wrong = base.clone();
    wrong.fields[1] = text("CIT-Q02", "not a date");
    assert_eq!(check(&wrong), Err("invalid_field"));
    let mut option = base.clone();
    option.fields[2].answer = AnswerPayload::Choice("CIT-Q03-NOPE".into());
    assert_eq!(check(&option), Err("invalid_field"));
    let mut long = base.clone();
    long.fields[0] = text("CIT-Q01", &"x".repeat(10 * 1024 * 1024));
    assert_eq!(check(&long), Err("invalid_field"));
    let mut na = base;
    na.fields[0].answer = AnswerPayload::NotAvailable;
    assert_eq!(check(&na), Err("invalid_field"));
}

#[test]
fn the_sender_must_be_of_the_signing_country_and_the_version_known() {
    let n = cit(vec![to("HU", &["HU-NC"])]);
    let r = check_notification(&catalogue(), None, &id("AT-NC"), node("DE"), &n);
    assert_eq!(r.map_err(|r| r.code), Err("wrong_authority"));
    let mut v2 = n;
    v2.v = 2;
    assert_eq!(check(&v2), Err("unsupported_version"));
}
