//! Repository entries' checks (`imi_domain::repository`): the shipped euro-cash register's
//! access list (the euro area), its public fields, and what an entry must be.

use imi_domain::catalogue::Catalogue;
use imi_domain::repository::{Access, ENTRY_VERSION, EntryMessage, check_entry, decode, encode};
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

fn entry() -> EntryMessage {
    EntryMessage {
        v: ENTRY_VERSION,
        repository: "CIT-P01".into(),
        version: 1,
        withdrawn: false,
        fields: vec![
            CodedAnswer {
                question: "CIT-Q01".into(),
                answer: AnswerPayload::Text("Geldtransport GmbH".into()),
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

fn check(owner: &str, m: &EntryMessage) -> Result<(), &'static str> {
    let country = imi_domain::country_of(&id(owner)).unwrap();
    check_entry(&catalogue(), &id(owner), country, m)
        .map(|_| ())
        .map_err(|r| r.code)
}

#[test]
fn the_euro_cash_register_is_held_by_the_euro_area_and_publishes_two_fields() {
    let c = catalogue();
    let p = c.procedure("CIT-P01").unwrap();
    let access = Access::of(p);
    for n in ["DE", "AT", "FR", "BG", "HR"] {
        assert!(access.holds(n.parse().unwrap()), "{n}");
    }
    for n in ["HU", "PL", "SE", "NO", "EU"] {
        assert!(!access.holds(n.parse().unwrap()), "{n}");
    }
    assert!(access.reads(&id("AT-NC")) && !access.reads(&id("HU-NC")));
    assert_eq!(p.public(), ["CIT-Q01", "CIT-Q03"]);
    // Without an access list: every member state, never the Commission.
    let all = Access::All;
    assert!(all.holds(NodeId::HU) && !all.holds(NodeId::EU));
    // Listed authorities: their country's node holds the register, only they read it.
    let listed = Access::Listed {
        countries: Default::default(),
        authorities: [id("HU-OH")].into(),
    };
    assert!(listed.holds(NodeId::HU) && listed.reads(&id("HU-OH")) && !listed.reads(&id("HU-NC")));
}

#[test]
fn an_entry_is_checked_and_round_trips() {
    let m = entry();
    assert_eq!(check("DE-NC", &m), Ok(()));
    assert_eq!(decode(&encode(&m)), Some(m.clone()));
    assert_eq!(check("HU-NC", &m), Err("not_on_access_list"));
    let mut other = m.clone();
    other.repository = "CIT-P02".into(); // a notification type
    assert_eq!(check("DE-NC", &other), Err("unknown_repository"));
    let mut v0 = m.clone();
    v0.version = 0;
    assert_eq!(check("DE-NC", &v0), Err("invalid_version"));
    let mut missing = m.clone();
    missing.fields.pop();
    assert_eq!(check("DE-NC", &missing), Err("missing_field"));
    let mut twice = m.clone();
    twice.fields.push(twice.fields[0].clone());
    assert_eq!(check("DE-NC", &twice), Err("duplicate_field"));
    let mut foreign = m.clone();
    foreign.fields[0].question = "SD-Q13".into();
    assert_eq!(check("DE-NC", &foreign), Err("unknown_field"));
    let mut bad = m.clone();
    bad.fields[2].answer = AnswerPayload::Choice("CIT-Q03-NOPE".into());
    assert_eq!(check("DE-NC", &bad), Err("invalid_field"));
    let c = catalogue();
    let wrong = check_entry(&c, &id("AT-NC"), NodeId::DE, &m).map(|_| ());
    assert_eq!(wrong.map_err(|r| r.code), Err("wrong_authority"));
}
