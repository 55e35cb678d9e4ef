//! The shipped catalogue (`configs/catalogue/`) and the loader's validation: every text in all 26
//! languages, a new legal area as a new file with no code, and errors that name file and item.

use std::fs;
use std::path::{Path, PathBuf};

use imi_domain::catalogue::{
    AnswerError, AnswerType, AnswerValue, Catalogue, CatalogueError, ProcedureKind,
    REQUIRED_LANGUAGES, Source,
};

/// The catalogue's files from disk (the crate itself does no I/O).
struct Disk;

impl imi_domain::catalogue::CatalogueFiles for Disk {
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

fn load_dir(dir: impl AsRef<Path>) -> Result<Catalogue, imi_domain::catalogue::CatalogueError> {
    Catalogue::load(dir.as_ref(), &Disk)
}

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/catalogue")
}

fn shipped() -> Catalogue {
    load_dir(shipped_dir()).unwrap()
}

/// A writable copy of the shipped catalogue.
fn copy_shipped() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = shipped_dir();
    fs::copy(
        src.join("languages.toml"),
        tmp.path().join("languages.toml"),
    )
    .unwrap();
    fs::create_dir(tmp.path().join("areas")).unwrap();
    for entry in fs::read_dir(src.join("areas")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            tmp.path().join("areas").join(entry.file_name()),
        )
        .unwrap();
    }
    tmp
}

fn area_path(dir: &tempfile::TempDir, code: &str) -> PathBuf {
    dir.path().join("areas").join(format!("{code}.toml"))
}

fn edit(path: &Path, f: impl FnOnce(String) -> String) {
    let text = fs::read_to_string(path).unwrap();
    let edited = f(text.clone());
    assert_ne!(text, edited, "the edit changed nothing");
    fs::write(path, edited).unwrap();
}

/// Loads `dir`, expects an error, and checks its message names every needle.
fn load_err(dir: &tempfile::TempDir, needles: &[&str]) -> CatalogueError {
    let err = load_dir(dir.path()).expect_err("the catalogue should be refused");
    let msg = err.to_string();
    for needle in needles {
        assert!(
            msg.contains(needle),
            "error {msg:?} does not name {needle:?}"
        );
    }
    err
}

/// 26 `lang = "text"` lines, each text tagged with its language.
fn texts(label: &str) -> String {
    REQUIRED_LANGUAGES
        .iter()
        .map(|l| format!("{l} = \"{label} ({l})\"\n"))
        .collect()
}

#[test]
fn shipped_catalogue_loads_with_the_26_languages() {
    let catalogue = shipped();
    let codes: Vec<&str> = catalogue.languages().iter().map(|l| l.code()).collect();
    assert_eq!(codes, REQUIRED_LANGUAGES);
    for lang in catalogue.languages() {
        assert!(!lang.name().is_empty() && !lang.english_name().is_empty());
    }
    let de = catalogue
        .languages()
        .iter()
        .find(|l| l.code() == "de")
        .unwrap();
    assert_eq!((de.name(), de.english_name()), ("Deutsch", "German"));
}

#[test]
fn every_text_has_exactly_the_26_translations() {
    let catalogue = shipped();
    let mut checked = 0;
    let mut check = |what: String, texts: &imi_domain::catalogue::Texts| {
        let langs: Vec<&str> = texts.languages().collect();
        assert_eq!(texts.len(), 26, "{what}: {langs:?}");
        for lang in REQUIRED_LANGUAGES {
            let text = texts
                .get(lang)
                .unwrap_or_else(|| panic!("{what}: no '{lang}'"));
            assert!(!text.trim().is_empty(), "{what}: empty '{lang}'");
            assert_eq!(text, text.trim(), "{what}: '{lang}' has surrounding blanks");
        }
        checked += 1;
    };
    for area in catalogue.areas() {
        check(format!("area {}", area.code()), area.name());
        for p in area.procedures() {
            check(format!("procedure {}", p.code()), p.name());
        }
        for s in area.question_sets() {
            check(format!("question set {}", s.code()), s.name());
        }
        for q in area.questions() {
            check(format!("question {}", q.code()), q.text());
            for o in q.options() {
                check(format!("option {}", o.code()), o.text());
            }
        }
    }
    assert!(checked > 100, "only {checked} texts");
}

#[test]
fn main_areas_have_at_least_ten_questions_and_seven_areas_exist() {
    let catalogue = shipped();
    assert!(
        catalogue.areas().len() >= 7,
        "{} areas",
        catalogue.areas().len()
    );
    for code in ["PQ", "SD", "PW", "PR"] {
        let area = catalogue
            .area(code)
            .unwrap_or_else(|| panic!("no area {code}"));
        assert!(
            area.questions().len() >= 10,
            "{code}: {}",
            area.questions().len()
        );
        assert!(area.source().ends_with(format!("{code}.toml")));
    }
    for area in catalogue.areas() {
        assert!(area.questions().len() >= 3, "{}", area.code());
        assert!(!area.procedures().is_empty(), "{}", area.code());
    }
    // Every answer type and every procedure kind is used somewhere.
    let all_questions = || catalogue.areas().iter().flat_map(|a| a.questions());
    for t in [
        AnswerType::YesNo,
        AnswerType::Choice,
        AnswerType::Date,
        AnswerType::Number,
        AnswerType::FreeText,
        AnswerType::Attachment,
    ] {
        assert!(
            all_questions().any(|q| q.answer_type() == t),
            "no {t} question"
        );
    }
    for k in [
        ProcedureKind::Request,
        ProcedureKind::Notification,
        ProcedureKind::Alert,
        ProcedureKind::Repository,
    ] {
        let used = catalogue
            .areas()
            .iter()
            .flat_map(|a| a.procedures())
            .any(|p| p.kind() == k);
        assert!(used, "no {k} procedure");
    }
}

#[test]
fn codes_render_in_the_readers_language() {
    let catalogue = shipped();
    assert_eq!(
        catalogue.text("PQ-Q01", "en"),
        Some("Is the attached diploma authentic?")
    );
    assert_eq!(
        catalogue.text("PQ-Q01", "de"),
        Some("Ist das beigefügte Diplom echt?")
    );
    assert_eq!(
        catalogue.text("PQ-Q01", "fr"),
        Some("Le diplôme joint est-il authentique ?")
    );
    assert_eq!(catalogue.text("PQ", "ga"), Some("Cáilíochtaí gairmiúla"));
    assert_eq!(
        catalogue.text("PQ-P02", "en"),
        catalogue.procedure("PQ-P02").unwrap().name().get("en")
    );
    assert_eq!(
        catalogue.text("PQ-S01", "sv"),
        Some("Examensbevis och utbildning")
    );
    assert_eq!(catalogue.text("PR-Q07-MIDWIFE", "is"), Some("Ljósmóðir"));
    assert_eq!(catalogue.text("PQ-Q01", "xx"), None);
    assert_eq!(catalogue.text("PQ-Q99", "en"), None);
    assert!(
        catalogue.question("PQ").is_none(),
        "an area code is not a question"
    );

    // A procedure's questions are those of its sets, then its own.
    let request = catalogue.procedure("PQ-P01").unwrap();
    assert_eq!(request.kind(), ProcedureKind::Request);
    let mut expected = Vec::new();
    for set in request.question_sets() {
        expected.extend(
            catalogue
                .question_set(set)
                .unwrap()
                .questions()
                .iter()
                .cloned(),
        );
    }
    assert_eq!(request.question_codes(), expected.as_slice());
    assert!(request.question_codes().iter().any(|q| q == "PQ-Q01"));
    for area in catalogue.areas() {
        for p in area.procedures() {
            assert!(!p.question_codes().is_empty());
            for q in p.question_codes() {
                assert!(catalogue.question(q).is_some(), "{}: {q}", p.code());
            }
        }
    }
}

#[test]
fn a_new_legal_area_is_a_new_file_and_no_code() {
    let dir = copy_shipped();
    let before = load_dir(dir.path()).unwrap().areas().len();
    let file = format!(
        "code = \"SOLVIT\"\n[name]\n{}\n\
         [[procedures]]\ncode = \"SOLVIT-P01\"\nkind = \"request\"\nquestions = [\"SOLVIT-Q01\", \"SOLVIT-Q02\"]\n\
         [procedures.name]\n{}\n\
         [[questions]]\ncode = \"SOLVIT-Q01\"\nanswer = \"yes_no\"\n[questions.text]\n{}\n\
         [[questions]]\ncode = \"SOLVIT-Q02\"\nanswer = \"choice\"\n[questions.text]\n{}\n\
         [[questions.options]]\ncode = \"SOLVIT-Q02-ACCEPTED\"\n[questions.options.text]\n{}\n\
         [[questions.options]]\ncode = \"SOLVIT-Q02-REJECTED\"\n[questions.options.text]\n{}\n",
        texts("SOLVIT"),
        texts("Case handover"),
        texts("Is the case within SOLVIT's remit?"),
        texts("Outcome"),
        texts("Accepted"),
        texts("Rejected"),
    );
    fs::write(area_path(&dir, "SOLVIT"), file).unwrap();

    let catalogue = load_dir(dir.path()).unwrap();
    assert_eq!(catalogue.areas().len(), before + 1);
    let area = catalogue.area("SOLVIT").unwrap();
    assert_eq!(area.questions().len(), 2);
    assert_eq!(
        catalogue.text("SOLVIT-Q02-REJECTED", "mt"),
        Some("Rejected (mt)")
    );
    assert_eq!(
        catalogue.procedure("SOLVIT-P01").unwrap().question_codes(),
        ["SOLVIT-Q01", "SOLVIT-Q02"]
    );
    catalogue
        .validate_answer(
            "SOLVIT-Q02",
            &AnswerValue::Choice("SOLVIT-Q02-ACCEPTED".into()),
        )
        .unwrap();
    // The shipped areas are still there.
    assert!(catalogue.question("PW-Q01").is_some());
}

#[test]
fn a_missing_translation_names_file_item_and_language() {
    let dir = copy_shipped();
    let path = area_path(&dir, "PQ");
    edit(&path, |text| {
        let q07 = text.find("code = \"PQ-Q07\"").unwrap();
        let ga = q07 + text[q07..].find("\nga = ").unwrap();
        let end = ga + 1 + text[ga + 1..].find('\n').unwrap();
        format!("{}{}", &text[..ga], &text[end..])
    });
    let err = load_err(
        &dir,
        &["PQ.toml", "question PQ-Q07", "missing translation for 'ga'"],
    );
    assert!(
        matches!(err, CatalogueError::MissingTranslation { ref item, ref lang, .. }
        if item == "question PQ-Q07" && lang == "ga")
    );
    let shown = err.to_string();
    assert!(
        shown.ends_with("areas/PQ.toml: question PQ-Q07: missing translation for 'ga'"),
        "{shown}"
    );
}

#[test]
fn a_missing_option_or_procedure_translation_is_refused_too() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen("is = \"Afturkallað\"\n", "", 1)
    });
    load_err(&dir, &["CIT.toml", "option CIT-Q03-WITHDRAWN", "'is'"]);

    let dir = copy_shipped();
    edit(&area_path(&dir, "SD"), |t| {
        t.replacen(
            "no = \"Anmodning om opplysninger om en tjenesteyter\"\n",
            "",
            1,
        )
    });
    load_err(&dir, &["SD.toml", "procedure SD-P01", "'no'"]);
}

#[test]
fn an_empty_or_unknown_language_translation_is_refused() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "PW"), |t| {
        t.replacen("mt = \"Distakkament ta' ħaddiema\"", "mt = \"  \"", 1)
    });
    load_err(&dir, &["PW.toml", "area PW", "empty translation for 'mt'"]);

    let dir = copy_shipped();
    edit(&area_path(&dir, "PR"), |t| {
        t.replacen(
            "en = \"Midwife\"\n",
            "en = \"Midwife\"\nxx = \"Midwife\"\n",
            1,
        )
    });
    load_err(
        &dir,
        &["PR.toml", "option PR-Q07-MIDWIFE", "unknown language 'xx'"],
    );
}

#[test]
fn a_procedure_naming_a_missing_question_is_refused() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "PQ"), |t| {
        t.replacen(
            "questions = [\"PQ-Q12\", \"PQ-Q13\"]",
            "questions = [\"PQ-Q12\", \"PQ-Q99\"]",
            1,
        )
    });
    let err = load_err(&dir, &["PQ.toml", "procedure PQ-P02", "PQ-Q99"]);
    assert!(matches!(err, CatalogueError::DanglingCode { ref target, .. } if target == "PQ-Q99"));

    let dir = copy_shipped();
    edit(&area_path(&dir, "PQ"), |t| {
        t.replacen("\"PQ-S01\", \"PQ-S02\"", "\"PQ-S01\", \"PQ-S09\"", 1)
    });
    load_err(
        &dir,
        &["PQ.toml", "procedure PQ-P01", "question set PQ-S09"],
    );

    // Another area's question is not in reach either.
    let dir = copy_shipped();
    edit(&area_path(&dir, "EC"), |t| {
        t.replacen(
            "[\"EC-Q01\", \"EC-Q02\", \"EC-Q03\"]",
            "[\"EC-Q01\", \"PQ-Q01\"]",
            1,
        )
    });
    load_err(&dir, &["EC.toml", "procedure EC-P01", "PQ-Q01"]);
}

#[test]
fn a_duplicate_code_is_refused() {
    let dir = copy_shipped();
    let path = area_path(&dir, "SD");
    edit(&path, |t| {
        let q11 = t.find("[[questions]]\ncode = \"SD-Q11\"").unwrap();
        format!("{t}\n{}", &t[q11..])
    });
    let err = load_err(&dir, &["SD.toml", "question SD-Q11", "already defined"]);
    assert!(matches!(err, CatalogueError::DuplicateCode { .. }));

    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen(
            "code = \"CIT-Q03-SUSPENDED\"",
            "code = \"CIT-Q03-VALID\"",
            1,
        )
    });
    load_err(
        &dir,
        &["CIT.toml", "option CIT-Q03-VALID", "already defined"],
    );

    // The same area twice, from two sources.
    let languages = Source {
        path: "languages.toml".into(),
        text: fs::read_to_string(shipped_dir().join("languages.toml")).unwrap(),
    };
    let co = fs::read_to_string(shipped_dir().join("areas/CO.toml")).unwrap();
    let sources = [
        Source {
            path: "a/CO.toml".into(),
            text: co.clone(),
        },
        Source {
            path: "b/CO.toml".into(),
            text: co,
        },
    ];
    let err = Catalogue::from_sources(&languages, &sources).unwrap_err();
    assert_eq!(
        err.to_string(),
        "b/CO.toml: area CO: code already defined in a/CO.toml"
    );
}

#[test]
fn unknown_fields_and_values_are_refused() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "PQ"), |t| {
        t.replacen(
            "code = \"PQ-Q01\"\nanswer = \"yes_no\"",
            "code = \"PQ-Q01\"\nanswer = \"yes_no\"\nmandatory = true",
            1,
        )
    });
    let err = load_err(&dir, &["PQ.toml", "unknown field", "mandatory"]);
    assert!(matches!(err, CatalogueError::Parse { .. }));

    let dir = copy_shipped();
    edit(&area_path(&dir, "PQ"), |t| {
        t.replacen("answer = \"number\"", "answer = \"integer\"", 1)
    });
    load_err(&dir, &["PQ.toml", "integer"]);

    let dir = copy_shipped();
    edit(&area_path(&dir, "EC"), |t| {
        t.replacen("kind = \"notification\"", "kind = \"broadcast\"", 1)
    });
    load_err(&dir, &["EC.toml", "broadcast"]);

    let dir = copy_shipped();
    edit(&dir.path().join("languages.toml"), |t| {
        t.replacen(
            "english_name = \"Irish\"",
            "english_name = \"Irish\"\nscript = \"Latn\"",
            1,
        )
    });
    load_err(&dir, &["languages.toml", "unknown field", "script"]);
}

#[test]
fn the_area_code_must_match_the_file_name() {
    let dir = copy_shipped();
    fs::rename(area_path(&dir, "CO"), area_path(&dir, "CULT")).unwrap();
    let err = load_err(&dir, &["CULT.toml", "area CO", "expected 'CULT'"]);
    assert!(matches!(err, CatalogueError::AreaCodeMismatch { .. }));
}

#[test]
fn codes_must_carry_their_area_prefix() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "CO"), |t| {
        t.replacen("code = \"CO-Q03\"", "code = \"Q03\"", 1)
    });
    load_err(&dir, &["CO.toml", "question Q03", "invalid code", "CO-"]);
}

#[test]
fn a_choice_question_needs_two_options_and_only_choices_have_options() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "PQ"), |t| {
        let start = t
            .find("[[questions.options]]\ncode = \"PQ-Q12-RESTRICTION\"")
            .unwrap();
        let end = start + t[start..].find("[[questions]]").unwrap();
        format!("{}{}", &t[..start], &t[end..])
    });
    let err = load_err(
        &dir,
        &["PQ.toml", "question PQ-Q12", "at least 2 options, has 1"],
    );
    assert!(matches!(err, CatalogueError::InvalidOptions { .. }));

    let dir = copy_shipped();
    edit(&area_path(&dir, "SD"), |t| {
        t.replacen(
            "code = \"SD-Q07\"\nanswer = \"choice\"",
            "code = \"SD-Q07\"\nanswer = \"free_text\"",
            1,
        )
    });
    load_err(
        &dir,
        &[
            "SD.toml",
            "question SD-Q07",
            "only choice questions have options",
        ],
    );
}

#[test]
fn the_languages_file_must_list_the_26_languages() {
    let dir = copy_shipped();
    edit(&dir.path().join("languages.toml"), |t| {
        t.replacen(
            "[[languages]]\ncode = \"is\"\nname = \"íslenska\"\nenglish_name = \"Icelandic\"\n",
            "",
            1,
        )
    });
    let err = load_err(&dir, &["languages.toml", "required language 'is'"]);
    assert!(matches!(err, CatalogueError::MissingLanguage { .. }));

    // A 27th language makes every area incomplete.
    let dir = copy_shipped();
    edit(&dir.path().join("languages.toml"), |t| {
        format!(
            "{t}\n[[languages]]\ncode = \"lb\"\nname = \"Lëtzebuergesch\"\nenglish_name = \"Luxembourgish\"\n"
        )
    });
    load_err(
        &dir,
        &["CIT.toml", "area CIT", "missing translation for 'lb'"],
    );
}

#[test]
fn io_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    load_err(&dir, &["languages.toml", "cannot read"]);
    fs::copy(
        shipped_dir().join("languages.toml"),
        dir.path().join("languages.toml"),
    )
    .unwrap();
    load_err(&dir, &["areas", "cannot read"]);
    fs::create_dir(dir.path().join("areas")).unwrap();
    fs::write(dir.path().join("areas/README.md"), "not an area").unwrap();
    load_err(&dir, &["areas", "no area file"]);
}

#[test]
fn answers_are_checked_against_their_question() {
    let catalogue = shipped();
    let ok = |q: &str, v: AnswerValue| catalogue.validate_answer(q, &v).unwrap();
    let bad = |q: &str, v: AnswerValue| catalogue.validate_answer(q, &v).unwrap_err();

    ok("PQ-Q01", AnswerValue::YesNo(true));
    ok("PQ-Q05", AnswerValue::Choice("PQ-Q05-D".into()));
    ok("PQ-Q08", AnswerValue::Date("2024-02-29".into()));
    ok("PQ-Q06", AnswerValue::Number(4.5));
    ok(
        "PQ-Q07",
        AnswerValue::FreeText("Anatomy, physiology; 4 600 hours.".into()),
    );
    ok("PQ-Q07", AnswerValue::FreeText("é".repeat(8000)));
    let sha = "ab".repeat(32);
    ok(
        "PQ-Q11",
        AnswerValue::Attachment {
            name: "certificate.pdf".into(),
            sha256: sha.clone(),
            size: 1024,
        },
    );

    assert_eq!(
        bad("PQ-Q99", AnswerValue::YesNo(true)),
        AnswerError::UnknownQuestion("PQ-Q99".into())
    );
    assert!(matches!(
        bad("PQ-Q01", AnswerValue::FreeText("yes".into())),
        AnswerError::WrongType {
            expected: AnswerType::YesNo,
            found: AnswerType::FreeText,
            ..
        }
    ));
    // An unknown option, and an option of another question.
    assert!(matches!(
        bad("PQ-Q05", AnswerValue::Choice("PQ-Q05-Z".into())),
        AnswerError::UnknownOption { .. }
    ));
    assert!(matches!(
        bad("PQ-Q05", AnswerValue::Choice("PQ-Q12-PROHIBITION".into())),
        AnswerError::UnknownOption { .. }
    ));
    // Impossible or malformed dates.
    for date in [
        "2025-02-30",
        "2025-02-29",
        "2025-04-31",
        "2025-13-01",
        "2025-00-01",
        "2025-1-1",
        "01/02/2025",
        "",
    ] {
        let err = bad("PQ-Q08", AnswerValue::Date(date.into()));
        assert!(
            matches!(err, AnswerError::InvalidDate { .. }),
            "{date}: {err}"
        );
    }
    assert!(
        bad("PQ-Q08", AnswerValue::Date("2025-02-30".into()))
            .to_string()
            .contains("2025-02-30")
    );
    for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            bad("PQ-Q06", AnswerValue::Number(n)),
            AnswerError::NonFiniteNumber { .. }
        ));
    }
    assert!(matches!(
        bad("PQ-Q07", AnswerValue::FreeText("x".repeat(8001))),
        AnswerError::FreeTextLength { chars: 8001, .. }
    ));
    assert!(matches!(
        bad("PQ-Q07", AnswerValue::FreeText(" \n".into())),
        AnswerError::FreeTextLength { .. }
    ));
    let attachment = |name: &str, sha256: &str, size: u64| AnswerValue::Attachment {
        name: name.into(),
        sha256: sha256.into(),
        size,
    };
    for value in [
        attachment("", &sha, 1),
        attachment("../etc/passwd", &sha, 1),
        attachment("a\\b.pdf", &sha, 1),
        attachment("c.pdf", &"AB".repeat(32), 1),
        attachment("c.pdf", &"ab".repeat(31), 1),
        attachment("c.pdf", &"zz".repeat(32), 1),
        attachment("c.pdf", &sha, 0),
        attachment("c.pdf", &sha, 20 * 1024 * 1024 + 1),
    ] {
        assert!(matches!(
            bad("PQ-Q11", value),
            AnswerError::InvalidAttachment { .. }
        ));
    }
}

#[test]
fn retention_periods_come_from_the_area_file_with_defaults() {
    let cat = shipped();
    let pq = cat.area("PQ").unwrap().retention();
    assert_eq!((pq.block_after_days, pq.delete_after_days), (183, 1096));
    let dir = copy_shipped();
    edit(&area_path(&dir, "PW"), |t| {
        format!("{t}\n[retention]\nblock_after_days = 548\ndelete_after_days = 1096\n")
    });
    let cat = load_dir(dir.path()).unwrap();
    assert_eq!(cat.area("PW").unwrap().retention().block_after_days, 548);
    // Blocking after deletion is refused, naming the file and the area.
    edit(&area_path(&dir, "PW"), |t| {
        t.replace("block_after_days = 548", "block_after_days = 2000")
    });
    load_err(&dir, &["PW.toml", "area PW retention"]);
}

#[test]
fn notification_keys_are_for_notifications_and_checked() {
    // commission on a request procedure.
    let dir = copy_shipped();
    edit(&area_path(&dir, "CO"), |t| {
        t.replacen(
            "kind = \"request\"",
            "kind = \"request\"\ncommission = \"optional\"",
            1,
        )
    });
    load_err(
        &dir,
        &[
            "CO.toml",
            "procedure CO-P01",
            "notification and alert procedures only",
        ],
    );
    // addressees and profession on a request or notification procedure; an unknown value.
    for (area, kind, key) in [
        ("CO", "request", "addressees = \"concerned\""),
        ("SD", "notification", "profession = \"optional\""),
    ] {
        let dir = copy_shipped();
        edit(&area_path(&dir, area), |t| {
            t.replacen(
                &format!("kind = \"{kind}\""),
                &format!("kind = \"{kind}\"\n{key}"),
                1,
            )
        });
        load_err(&dir, &[&format!("{area}.toml"), "alert procedures only"]);
    }
    let dir = copy_shipped();
    edit(&area_path(&dir, "SD"), |t| {
        t.replacen("addressees = \"concerned\"", "addressees = \"some\"", 1)
    });
    load_err(&dir, &["SD.toml"]);
    // An optional field that is not a question of the procedure.
    let dir = copy_shipped();
    edit(&area_path(&dir, "SD"), |t| {
        t.replacen("optional = [\"SD-Q17\"]", "optional = [\"SD-Q01\"]", 1)
    });
    load_err(&dir, &["SD.toml", "procedure SD-P03", "SD-Q01"]);
    // A repository that does not exist, and one whose question the notification lacks.
    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen("repository = \"CIT-P01\"", "repository = \"CIT-P09\"", 1)
    });
    load_err(&dir, &["CIT.toml", "procedure CIT-P02", "CIT-P09"]);
    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen(
            "questions = [\"CIT-Q01\", \"CIT-Q02\", \"CIT-Q03\", \"CIT-Q04\"]",
            "questions = [\"CIT-Q01\", \"CIT-Q02\", \"CIT-Q04\"]",
            1,
        )
    });
    load_err(&dir, &["CIT.toml", "procedure CIT-P02", "CIT-Q03"]);
    // An unknown commission rule.
    let dir = copy_shipped();
    edit(&area_path(&dir, "EC"), |t| {
        t.replacen("commission = \"required\"", "commission = \"always\"", 1)
    });
    load_err(&dir, &["EC.toml"]);
}

#[test]
fn repository_keys_are_for_repositories_and_checked() {
    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen(
            "public = [\"CIT-Q01\", \"CIT-Q03\"]",
            "public = [\"CIT-Q04\"]",
            1,
        )
    });
    load_err(&dir, &["CIT.toml", "procedure CIT-P01", "CIT-Q04"]);
    let dir = copy_shipped();
    edit(&area_path(&dir, "CIT"), |t| {
        t.replacen("access = [\"AT\",", "access = [\"EU\", \"AT\",", 1)
    });
    load_err(&dir, &["CIT.toml", "procedure CIT-P01", "EU"]);
    let dir = copy_shipped();
    edit(&area_path(&dir, "CO"), |t| {
        t.replacen(
            "kind = \"request\"",
            "kind = \"request\"\npublic = [\"CO-Q01\"]",
            1,
        )
    });
    load_err(&dir, &["CO.toml", "repository procedures only"]);
}
