//! The message catalogues: every language has every key (with the same placeholders), and
//! every key the pages ask for exists.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use imi_web::i18n::{self, FILES, LANGUAGES, Messages};

#[test]
fn every_language_has_every_key() {
    let m = Messages::load().expect("the embedded catalogues load");
    let en: Vec<&str> = m.keys().collect();
    assert!(en.len() > 150, "{}", en.len());
    assert_eq!(FILES.len(), 26);
    for (lang, text) in FILES {
        assert!(LANGUAGES.contains(&lang));
        let t: std::collections::BTreeMap<String, String> = toml::from_str(text).unwrap();
        for k in &en {
            let v = t.get(*k).unwrap_or_else(|| panic!("{lang}.toml lacks {k}"));
            assert!(!v.trim().is_empty(), "{lang}.toml: {k} is empty");
            assert_eq!(
                i18n::placeholders(v),
                i18n::placeholders(m.get("en", k)),
                "{lang}.toml: {k}"
            );
        }
        assert_eq!(t.len(), en.len(), "{lang}.toml has keys en.toml has not");
        // Translated: most messages differ from English (names such as "IMI" may not).
        if lang != "en" {
            let same = en.iter().filter(|k| t[**k] == m.get("en", k)).count();
            assert!(
                same * 10 < en.len(),
                "{lang}.toml: {same} messages are the English ones"
            );
        }
    }
}

#[test]
fn a_missing_key_or_placeholder_is_refused() {
    let en = FILES.iter().find(|(l, _)| *l == "en").unwrap().1;
    let broken = en.replace(
        "signed_in_as = \"Signed in as {user}, {authority}\"",
        "signed_in_as = \"Signed in as {user}\"",
    );
    assert_ne!(broken, en);
    let e = Messages::from_files(&[("en", en), ("de", &broken)]).unwrap_err();
    assert!(e.to_string().contains("signed_in_as"), "{e}");
    let short: String = en
        .lines()
        .filter(|l| !l.starts_with("sign_out "))
        .collect::<Vec<_>>()
        .join("\n");
    let e = Messages::from_files(&[("en", en), ("fr", &short)]).unwrap_err();
    assert!(e.to_string().contains("lacks sign_out"), "{e}");
}

/// Every literal key in the pages' source, and every key built from a state, an action, a
/// role, a rating or a domain refusal code, is in the catalogue.
#[test]
fn every_key_the_pages_use_exists() {
    let m = Messages::load().unwrap();
    let src = [
        include_str!("../src/pages.rs"),
        include_str!("../src/html.rs"),
    ];
    let mut used = Vec::new();
    for s in src {
        for pat in [".t(\"", ".tf(\"", "(Notice::Error, \"", "(Notice::Ok, \""] {
            for part in s.split(pat).skip(1) {
                let key: String = part
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if part[key.len()..].starts_with('"') && !key.is_empty() {
                    used.push(key);
                }
            }
        }
    }
    assert!(used.len() > 80, "{}", used.len());
    for k in &used {
        assert!(m.has(k), "the pages use {k}, which en.toml lacks");
    }
    let states = [
        "sent",
        "accepted",
        "deadline_proposed",
        "info_requested",
        "answered",
        "referred",
        "closed",
        "withdrawn",
    ];
    for s in states {
        assert!(m.has(&format!("state_{s}")), "state_{s}");
    }
    for a in imi_api::ACTIONS {
        assert!(
            m.has(&format!("action_{}", a.replace('-', "_"))),
            "action {a}"
        );
    }
    for r in ["requester", "responder", "coordinator"] {
        assert!(m.has(&format!("role_{r}")));
    }
    for r in [
        "very_dissatisfied",
        "dissatisfied",
        "neutral",
        "satisfied",
        "very_satisfied",
    ] {
        assert!(m.has(&format!("rating_{r}")));
    }
    // The refusals of the request state machine, each a sentence of its own.
    for code in [
        "invalid_transition",
        "not_party",
        "wrong_party",
        "not_coordinator",
        "deadline_in_past",
        "deadline_unchanged",
        "missing",
        "same_authority",
        "forward_abroad",
        "reassign_abroad",
        "too_large",
        "unknown_question",
        "duplicate_question",
    ] {
        assert!(m.has(&format!("code_{code}")), "code_{code}");
    }
    for status in [400, 401, 403, 404, 409, 413, 415, 422, 429, 500] {
        assert!(m.has(&format!("error_{status}")), "error_{status}");
    }
}

#[test]
fn a_language_is_parsed_at_its_first_use() {
    let m = Messages::load().unwrap();
    assert_eq!(
        m.parsed_languages(),
        1,
        "English only, until another is used"
    );
    let de: std::collections::BTreeMap<String, String> =
        toml::from_str(FILES.iter().find(|(l, _)| *l == "de").unwrap().1).unwrap();
    for k in m.keys().collect::<Vec<_>>() {
        assert_eq!(m.get("de", k), de[k], "{k}");
    }
    assert_eq!(m.parsed_languages(), 2);
    assert_eq!(
        m.get("zz", "signed_in_as"),
        m.get("en", "signed_in_as"),
        "an unknown language reads English"
    );
    assert_eq!(m.parsed_languages(), 2);
}
