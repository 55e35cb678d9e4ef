//! The shipped vocabularies (`configs/vocabularies/`) and the loader's validation: every
//! profession and competence named in all 26 languages, spot translations, and typed errors
//! for a missing language, a duplicate code, a malformed code or an unknown synonym language.

use std::fs;
use std::path::{Path, PathBuf};

use imi_domain::catalogue::{Catalogue, CatalogueFiles, Language, REQUIRED_LANGUAGES};
use imi_domain::vocabulary::{
    COMPETENCES_FILE, MIN_PROFESSIONS, PROFESSIONS_FILE, Sector, Vocabulary, VocabularyError,
};

/// The files from disk (the crate itself does no I/O).
struct Disk;

impl CatalogueFiles for Disk {
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect()
    }
    fn read(&self, path: &Path, limit: u64) -> std::io::Result<String> {
        use std::io::Read;
        let mut text = String::new();
        fs::File::open(path)?
            .take(limit)
            .read_to_string(&mut text)?;
        Ok(text)
    }
}

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

/// The catalogue's languages, the list every vocabulary name must match.
fn languages() -> Vec<Language> {
    Catalogue::load(&configs().join("catalogue"), &Disk)
        .unwrap()
        .languages()
        .to_vec()
}

fn load(dir: &Path) -> Result<Vocabulary, VocabularyError> {
    Vocabulary::load(dir, &languages(), &Disk)
}

fn shipped() -> Vocabulary {
    load(&configs().join("vocabularies")).unwrap()
}

/// A writable copy of the shipped vocabularies.
fn copy_shipped() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for file in [PROFESSIONS_FILE, COMPETENCES_FILE] {
        fs::copy(
            configs().join("vocabularies").join(file),
            tmp.path().join(file),
        )
        .unwrap();
    }
    tmp
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = fs::read_to_string(path).unwrap();
    let edited = f(text.clone());
    assert_ne!(text, edited, "the edit changed nothing");
    fs::write(path, edited).unwrap();
}

fn lower(s: Option<&str>) -> String {
    s.unwrap_or_default().to_lowercase()
}

#[test]
fn shipped_vocabularies_load_with_their_counts() {
    let v = shipped();
    assert!(v.professions().len() >= 90, "{}", v.professions().len());
    assert!(v.professions().len() >= MIN_PROFESSIONS);
    assert!(v.competences().len() >= 30, "{}", v.competences().len());
    for p in v.professions() {
        assert!(p.code().starts_with("PROF-"), "{}", p.code());
        assert_eq!(v.profession(p.code()), Some(p));
    }
    for c in v.competences() {
        assert!(c.code().starts_with("COMP-"), "{}", c.code());
        assert_eq!(v.competence(c.code()), Some(c));
        assert!(v.profession(c.code()).is_none());
    }
    // Every sector has at least one profession.
    for sector in Sector::ALL {
        assert!(
            v.professions().iter().any(|p| p.sector() == sector),
            "no profession in {sector}"
        );
    }
}

#[test]
fn every_name_is_in_exactly_the_26_languages() {
    let v = shipped();
    let names = v
        .professions()
        .iter()
        .map(|p| (p.code(), p.name()))
        .chain(v.competences().iter().map(|c| (c.code(), c.name())));
    for (code, name) in names {
        assert_eq!(name.len(), 26, "{code}");
        for lang in REQUIRED_LANGUAGES {
            let text = name
                .get(lang)
                .unwrap_or_else(|| panic!("{code}: no {lang}"));
            assert!(!text.trim().is_empty(), "{code}: empty {lang}");
            assert_eq!(v.name(code, lang), Some(text));
        }
    }
}

#[test]
fn spot_translations() {
    let v = shipped();
    let dentist = |lang| lower(v.name("PROF-DENTIST", lang));
    assert!(dentist("de").contains("zahnarzt"), "{}", dentist("de"));
    assert!(dentist("el").contains("οδοντίατρος"), "{}", dentist("el"));
    assert!(dentist("fr").contains("dentiste"), "{}", dentist("fr"));
    assert_eq!(dentist("hu"), "fogorvos");
    assert!(lower(v.name("PROF-DOCTOR", "fr")).contains("médecin"));
    assert_eq!(v.name("PROF-DOCTOR", "en"), Some("Doctor of medicine"));
    assert_eq!(v.name("PROF-MOUNTAIN-GUIDE", "it"), Some("Guida alpina"));
    assert_eq!(
        v.name("COMP-POSTING-WORKERS", "de"),
        Some("Entsendung von Arbeitnehmern")
    );
    assert_eq!(v.name("PROF-DENTIST", "xx"), None);
    assert_eq!(v.name("PROF-NOPE", "en"), None);

    // Synonyms carry the feminine and national forms a search must find.
    let doctor = v.profession("PROF-DOCTOR").unwrap();
    let de: Vec<&str> = doctor.terms("de").collect();
    assert_eq!(de.first(), Some(&"Arzt"));
    assert!(de.contains(&"Ärztin"), "{de:?}");
    assert!(
        v.profession("PROF-DENTIST")
            .unwrap()
            .synonyms()
            .get("de")
            .contains(&"Zahnärztin".to_owned())
    );
}

#[test]
fn health_and_minors_flags() {
    let v = shipped();
    for code in [
        "PROF-DOCTOR",
        "PROF-GENERAL-PRACTITIONER",
        "PROF-MEDICAL-SPECIALIST",
        "PROF-NURSE",
        "PROF-DENTIST",
        "PROF-VETERINARY-SURGEON",
        "PROF-MIDWIFE",
        "PROF-PHARMACIST",
        "PROF-PHYSIOTHERAPIST",
    ] {
        let p = v.profession(code).unwrap();
        assert!(p.is_health() && !p.involves_minors(), "{code}");
        assert_eq!(p.sector(), Sector::Health, "{code}");
    }
    for code in [
        "PROF-PRIMARY-SCHOOL-TEACHER",
        "PROF-KINDERGARTEN-TEACHER",
        "PROF-CHILDCARE-WORKER",
    ] {
        let p = v.profession(code).unwrap();
        assert!(p.involves_minors() && !p.is_health(), "{code}");
    }
    for code in ["PROF-ARCHITECT", "PROF-LAWYER", "PROF-MOUNTAIN-GUIDE"] {
        let p = v.profession(code).unwrap();
        assert!(!p.is_health() && !p.involves_minors(), "{code}");
    }
}

#[test]
fn a_missing_language_is_refused() {
    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("ga = \"Fiaclóir\"\n", "", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::MissingTranslation { item, lang, .. }
            if item == "profession PROF-DENTIST" && lang == "ga"),
        "{err}"
    );
    assert!(err.to_string().contains(PROFESSIONS_FILE), "{err}");
}

#[test]
fn an_empty_name_is_refused() {
    let dir = copy_shipped();
    edit(&dir.path().join(COMPETENCES_FILE), |t| {
        t.replacen("en = \"Posting of workers\"", "en = \"  \"", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::InvalidTranslation { item, lang, .. }
            if item == "competence COMP-POSTING-WORKERS" && lang == "en"),
        "{err}"
    );
}

#[test]
fn a_duplicate_code_is_refused() {
    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("code = \"PROF-NOTARY\"", "code = \"PROF-LAWYER\"", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::DuplicateCode { item, .. } if item == "profession PROF-LAWYER"),
        "{err}"
    );
}

#[test]
fn a_competence_code_among_the_professions_is_refused() {
    let dir = copy_shipped();
    // A competence code in the professions file fails the prefix check first.
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("code = \"PROF-NOTARY\"", "code = \"COMP-TAX\"", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, VocabularyError::InvalidCode { .. }), "{err}");
}

#[test]
fn bad_codes_are_refused() {
    for bad in [
        "prof-notary",
        "PROF-NOTARY ",
        "NOTARY",
        "PROF-",
        "PROF--NOTARY",
        "PROF_NOTARY",
    ] {
        let dir = copy_shipped();
        edit(&dir.path().join(PROFESSIONS_FILE), |t| {
            t.replacen("code = \"PROF-NOTARY\"", &format!("code = \"{bad}\""), 1)
        });
        let err = load(dir.path()).unwrap_err();
        assert!(
            matches!(&err, VocabularyError::InvalidCode { item, .. } if item.ends_with(bad)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn unknown_languages_and_fields_are_refused() {
    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("lv = [\"ārste\"]", "lv = [\"ārste\"]\nxx = [\"doc\"]", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::UnknownLanguage { item, what: "synonyms", lang, .. }
            if item == "profession PROF-DOCTOR" && lang == "xx"),
        "{err}"
    );

    let dir = copy_shipped();
    edit(&dir.path().join(COMPETENCES_FILE), |t| {
        t.replacen(
            "no = \"Forbrukervern\"",
            "no = \"Forbrukervern\"\nnb = \"Forbrukervern\"",
            1,
        )
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::UnknownLanguage { what: "name", lang, .. } if lang == "nb"),
        "{err}"
    );

    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("sector = \"legal\"", "sector = \"law\"", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, VocabularyError::Parse { .. }), "{err}");

    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("minors = false\n", "minors = false\nregulated = true\n", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, VocabularyError::Parse { .. }), "{err}");
}

#[test]
fn repeated_or_blank_synonyms_are_refused() {
    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("lv = [\"ārste\"]", "lv = [\"ārste\", \"Ārsts\"]", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, VocabularyError::InvalidSynonym { lang, .. } if lang == "lv"),
        "{err}"
    );

    let dir = copy_shipped();
    edit(&dir.path().join(PROFESSIONS_FILE), |t| {
        t.replacen("lv = [\"ārste\"]", "lv = [\" \"]", 1)
    });
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(err, VocabularyError::InvalidSynonym { .. }),
        "{err}"
    );
}

#[test]
fn too_few_professions_and_missing_files_are_refused() {
    let dir = copy_shipped();
    let path = dir.path().join(PROFESSIONS_FILE);
    let text = fs::read_to_string(&path).unwrap();
    // Keep the header and the first ten professions.
    let cut = text.match_indices("[[professions]]").nth(10).unwrap().0;
    fs::write(&path, &text[..cut]).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            VocabularyError::TooFewItems {
                kind: "professions",
                found: 10,
                ..
            }
        ),
        "{err}"
    );

    let dir = copy_shipped();
    fs::remove_file(dir.path().join(COMPETENCES_FILE)).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(matches!(err, VocabularyError::Io { .. }), "{err}");
}
