//! The search index over the shipped vocabularies: the issue's cross-language queries, one
//! inflected query per stemmed language, typos, filters, ranking, retirement and bad input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use imi_directory::analysis::{Analyzer, stemmed_languages};
use imi_directory::{SearchError, SearchIndex, SearchQuery};
use imi_domain::{Authority, Level};
use imi_protocol::ids::{AuthorityId, NodeId};
use std::collections::BTreeMap;

fn authority(
    id: &str,
    names: &[(&str, &str)],
    level: Level,
    professions: &[&str],
    city: &str,
) -> Authority {
    let country: NodeId = id.split('-').next().unwrap().parse().unwrap();
    Authority {
        id: AuthorityId::new(id).unwrap(),
        country,
        names: names
            .iter()
            .map(|(l, n)| ((*l).to_owned(), (*n).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        level,
        areas: vec!["PQ".into()],
        procedures: vec!["PQ-P01".into()],
        professions: professions.iter().map(|p| (*p).to_owned()).collect(),
        competences: vec!["COMP-RECOGNITION-QUALIFICATIONS".into()],
        city: Some(city.to_owned()),
        region: None,
    }
}

fn directory() -> Vec<Authority> {
    vec![
        authority(
            "HU-ENKK",
            &[
                ("hu", "Egészségügyi Nyilvántartási és Képzési Központ"),
                ("en", "Health Registration and Training Centre"),
            ],
            Level::National,
            &["PROF-DENTIST", "PROF-PHARMACIST"],
            "Budapest",
        ),
        authority(
            "FR-CNOM",
            &[
                ("fr", "Conseil national de l'Ordre des médecins"),
                ("en", "National Council of the Order of Physicians"),
            ],
            Level::National,
            &["PROF-DOCTOR"],
            "Paris",
        ),
        authority(
            "DE-BY-BLAEK",
            &[
                ("de", "Bayerische Landesärztekammer"),
                ("en", "Bavarian Chamber of Physicians"),
            ],
            Level::Regional,
            &["PROF-DOCTOR"],
            "München",
        ),
        authority(
            "EL-ATE",
            &[
                ("el", "Αρχιτεκτονικό Επιμελητήριο"),
                ("en", "Chamber of Architects"),
            ],
            Level::National,
            &["PROF-ARCHITECT"],
            "Αθήνα",
        ),
        authority(
            "EE-RPN",
            &[
                ("et", "Raamatupidajate nõukogu"),
                ("en", "Council of Accountants"),
            ],
            Level::National,
            &["PROF-ACCOUNTANT"],
            "Tallinn",
        ),
        authority(
            "BG-MH",
            &[
                ("bg", "Министерство на здравеопазването"),
                ("en", "Ministry of Health"),
            ],
            Level::National,
            &["PROF-DOCTOR", "PROF-DENTIST"],
            "София",
        ),
    ]
}

fn index() -> SearchIndex {
    let dir = directory();
    SearchIndex::build(common::vocabulary(), dir.iter().map(|a| (a, false))).unwrap()
}

fn q(text: &str, lang: Option<&str>) -> SearchQuery {
    SearchQuery {
        text: text.to_owned(),
        lang: lang.map(str::to_owned),
        limit: 20,
        ..SearchQuery::default()
    }
}

fn ids(index: &SearchIndex, query: &SearchQuery) -> Vec<String> {
    index
        .search(query)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.id.to_string())
        .collect()
}

#[test]
fn the_issues_cross_language_queries() {
    let index = index();
    // "Zahnarzt" (de) finds the Hungarian authority competent for dentists
    assert!(ids(&index, &q("Zahnarzt", Some("de"))).contains(&"HU-ENKK".to_owned()));
    // "οδοντίατρος" (el) finds it too
    assert!(ids(&index, &q("οδοντίατρος", Some("el"))).contains(&"HU-ENKK".to_owned()));
    // uppercase Greek with accents, and without any
    assert!(ids(&index, &q("ΟΔΟΝΤΊΑΤΡΟΣ", None)).contains(&"HU-ENKK".to_owned()));
    // "medecin" without accents finds authorities for doctors
    let found = ids(&index, &q("medecin", Some("fr")));
    assert!(found.contains(&"FR-CNOM".to_owned()) && found.contains(&"DE-BY-BLAEK".to_owned()));
    assert!(!found.contains(&"EL-ATE".to_owned()));
    // Bulgarian (no stemmer): folded, found in any case
    assert_eq!(ids(&index, &q("ЗДРАВЕОПАЗВАНЕТО", Some("bg"))), ["BG-MH"]);
    // a city in its own script
    assert_eq!(ids(&index, &q("Αθηνα", None)), ["EL-ATE"]);
}

/// One inflected form per stemmed language: the stemmer reduces it to the stem of the
/// vocabulary's name, and the search in that language finds the authority tagged with it.
#[test]
fn one_inflected_query_per_stemmed_language() {
    let index = index();
    let cases: &[(&str, &str, &str)] = &[
        ("cs", "lékaři", "FR-CNOM"),
        ("da", "tandlæger", "HU-ENKK"),
        ("de", "Zahnärzte", "HU-ENKK"),
        ("el", "οδοντίατροι", "HU-ENKK"),
        ("en", "dentists", "HU-ENKK"),
        ("es", "farmacéuticos", "HU-ENKK"),
        ("et", "raamatupidajatele", "EE-RPN"),
        ("fi", "hammaslääkärit", "HU-ENKK"),
        ("fr", "pharmaciens", "HU-ENKK"),
        ("ga", "fhiaclóir", "HU-ENKK"),
        ("hu", "fogorvosok", "HU-ENKK"),
        ("it", "farmacisti", "HU-ENKK"),
        ("lt", "vaistininkai", "HU-ENKK"),
        ("nl", "tandartsen", "HU-ENKK"),
        ("no", "tannleger", "HU-ENKK"),
        ("pl", "farmaceutów", "HU-ENKK"),
        ("pt", "farmacêuticos", "HU-ENKK"),
        ("ro", "farmaciști", "HU-ENKK"),
        ("sv", "tandläkarna", "HU-ENKK"),
    ];
    let langs: Vec<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(langs, stemmed_languages().collect::<Vec<_>>());
    let mut failures = Vec::new();
    for (lang, word, expected) in cases {
        let found = ids(&index, &q(word, Some(lang)));
        if !found.contains(&(*expected).to_owned()) {
            failures.push(format!(
                "{lang}: {word:?} -> {:?} found {found:?}",
                Analyzer::Stemmed(lang).terms(word)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn one_typo_is_tolerated_two_are_not() {
    let index = index();
    assert!(ids(&index, &q("Zahnartz", Some("de"))).contains(&"HU-ENKK".to_owned()));
    assert!(ids(&index, &q("pharmacits", None)).contains(&"HU-ENKK".to_owned()));
    assert!(ids(&index, &q("Zxhnartz", Some("de"))).is_empty());
}

/// The one-typo alternative looks terms up in a deletion neighbourhood instead of running
/// tantivy's Levenshtein automaton: for every word of the index and its one- and two-edit
/// variants, both match exactly the same documents.
#[test]
fn one_typo_lookup_matches_what_a_levenshtein_automaton_matches() {
    use tantivy::collector::DocSetCollector;
    use tantivy::query::{FuzzyTermQuery, TermSetQuery};
    let dir = directory();
    let index = SearchIndex::build(common::vocabulary(), dir.iter().map(|a| (a, false))).unwrap();
    // A replaced document: its old terms stay filed but must match nothing new.
    let mut renamed = dir[0].clone();
    renamed
        .names
        .insert("de".into(), "Zentrale für Zahnärzte".into());
    index.apply([(&renamed, false)]).unwrap();
    let tantivy = index.tantivy();
    let folded = tantivy.schema().get_field("folded").unwrap();
    let searcher = tantivy.reader().unwrap().searcher();
    let mut words: Vec<String> = Vec::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(folded).unwrap();
        let mut stream = inverted.terms().stream().unwrap();
        while stream.advance() {
            words.push(String::from_utf8(stream.key().to_vec()).unwrap());
        }
    }
    words.sort();
    words.dedup();
    assert!(words.len() > 50, "{}", words.len());
    let mut probes = Vec::new();
    for w in &words {
        let c: Vec<char> = w.chars().collect();
        probes.push(w.clone());
        for i in 0..c.len() {
            let mut d = c.clone();
            d.remove(i);
            probes.push(d.iter().collect());
            let mut s = c.clone();
            s[i] = 'q';
            probes.push(s.iter().collect());
            let mut t = c.clone();
            t.insert(i, 'e');
            probes.push(t.iter().collect());
            if i + 2 < c.len() {
                let mut two = c.clone();
                two.swap(i, i + 2);
                probes.push(two.iter().collect());
            }
        }
    }
    let docs = |q: &dyn tantivy::query::Query| searcher.search(q, &DocSetCollector).unwrap();
    let mut compared = 0;
    for p in probes.iter().step_by(2) {
        let automaton = FuzzyTermQuery::new(tantivy::Term::from_field_text(folded, p), 1, true);
        let lookup = TermSetQuery::new(
            index
                .near_terms(p)
                .iter()
                .map(|t| tantivy::Term::from_field_text(folded, t)),
        );
        assert_eq!(
            docs(&automaton),
            docs(&lookup),
            "documents one edit from {p:?}"
        );
        compared += 1;
    }
    assert!(compared > 500, "{compared}");
}

#[test]
fn filters_ranking_and_retirement() {
    let dir = directory();
    let index = SearchIndex::build(common::vocabulary(), dir.iter().map(|a| (a, false))).unwrap();
    let mut query = q("doctor", Some("en"));
    query.country = Some(NodeId::DE);
    assert_eq!(ids(&index, &query), ["DE-BY-BLAEK"]);
    query.country = None;
    query.level = Some(Level::Regional);
    assert_eq!(ids(&index, &query), ["DE-BY-BLAEK"]);
    // filters alone list authorities
    let only = SearchQuery {
        profession: Some("PROF-DENTIST".into()),
        limit: 10,
        ..SearchQuery::default()
    };
    assert_eq!(ids(&index, &only), ["BG-MH", "HU-ENKK"]);
    // the authority's own name ranks before a match through a profession only
    let hits = index.search(&q("médecins", Some("fr"))).unwrap();
    assert_eq!(hits.hits[0].id.as_str(), "FR-CNOM", "{hits:?}");
    // paging: totals stay, pages do not overlap
    let mut page = q("doctor", None);
    page.limit = 1;
    let first = index.search(&page).unwrap();
    page.offset = 1;
    let second = index.search(&page).unwrap();
    assert_eq!(first.total, second.total);
    assert_ne!(first.hits[0].id, second.hits[0].id);
    // retiring takes it out of searches unless asked for
    index.apply([(&dir[0], true)]).unwrap();
    assert!(!ids(&index, &q("Zahnarzt", Some("de"))).contains(&"HU-ENKK".to_owned()));
    let mut with_retired = q("Zahnarzt", Some("de"));
    with_retired.include_retired = true;
    assert!(ids(&index, &with_retired).contains(&"HU-ENKK".to_owned()));
    assert_eq!(index.len(), dir.len(), "replaced, not added");
    // an update is searchable at once
    let mut renamed = dir[2].clone();
    renamed
        .names
        .insert("de".into(), "Ärztekammer Oberbayern".into());
    index.apply([(&renamed, false)]).unwrap();
    assert_eq!(ids(&index, &q("Oberbayern", None)), ["DE-BY-BLAEK"]);
}

#[test]
fn bad_queries_are_refused_with_a_code() {
    let index = index();
    let code = |query: SearchQuery| index.search(&query).unwrap_err().code();
    assert_eq!(code(q("", None)), "empty_query");
    assert_eq!(code(q(" ,;- ", None)), "empty_query");
    assert_eq!(code(q(&"a".repeat(10 * 1024), None)), "query_too_long");
    assert_eq!(code(q("\u{0}\u{1}\u{7}", None)), "bad_query");
    assert_eq!(code(q(&"word ".repeat(13), None)), "query_too_long");
    let mut big = q("x", None);
    big.limit = 1_000_000_000;
    assert_eq!(code(big), "bad_page");
    let mut zero = q("x", None);
    zero.limit = 0;
    assert_eq!(code(zero), "bad_page");
    assert!(matches!(
        SearchIndex::check(&q("", None)),
        Err(SearchError::Empty)
    ));
    // a filter value nobody has finds nothing (the API refuses unknown codes before this)
    let none = SearchQuery {
        profession: Some("PROF-NOSUCH".into()),
        limit: 5,
        ..SearchQuery::default()
    };
    assert_eq!(index.search(&none).unwrap().total, 0);
}
