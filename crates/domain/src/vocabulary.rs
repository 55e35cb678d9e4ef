//! Controlled vocabularies of the directory: regulated professions and competence keywords,
//! loaded from data.
//!
//! `configs/vocabularies/professions.toml` lists the regulated professions by their generic
//! names (those of the EU regulated professions database: doctor, dentist, mountain guide, ...),
//! and `configs/vocabularies/competences.toml` lists competence keywords (recognition of
//! professional qualifications, disciplinary proceedings, posting of workers, ...). Every item
//! has a stable **code** (`PROF-DENTIST`, `COMP-LICENSING`), a name in each of the catalogue's
//! languages (the 24 official EU languages, Icelandic and Norwegian) and, optionally, extra
//! search terms per language (synonyms, feminine forms, common variants). Competent
//! authorities are tagged with these codes; a search in any language finds the code, and the
//! reader sees its name in their own language through [`Vocabulary::name`].
//!
//! A profession also says whether it is a health profession in the sense of Directive
//! 2005/36/EC, Art. 56a(1)(a)-(k) and (2), and whether it involves the education of minors,
//! including childcare and early childhood education (Art. 56a(1)(l)): the two groups for which
//! competent authorities must send alerts.
//!
//! [`Vocabulary::load`] validates both files when the node starts: a malformed or duplicate
//! code, a missing, empty or unknown-language name, a synonym in an unknown language, an unknown
//! field or fewer than [`MIN_PROFESSIONS`] professions is a [`VocabularyError`] naming the file
//! and the item. Like the catalogue, this module does no I/O: the files come through
//! [`CatalogueFiles`], and [`Vocabulary::from_sources`] validates in-memory text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalogue::{CatalogueFiles, Language, Source, Texts};

/// The professions file inside a vocabularies directory.
pub const PROFESSIONS_FILE: &str = "professions.toml";
/// The competences file inside a vocabularies directory.
pub const COMPETENCES_FILE: &str = "competences.toml";
/// Prefix of every profession code.
pub const PROFESSION_PREFIX: &str = "PROF-";
/// Prefix of every competence code.
pub const COMPETENCE_PREFIX: &str = "COMP-";
/// Fewest professions a vocabulary may list.
pub const MIN_PROFESSIONS: usize = 80;
/// Fewest competences a vocabulary may list.
pub const MIN_COMPETENCES: usize = 1;
/// Largest vocabulary file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Longest code, in characters.
pub const MAX_CODE_CHARS: usize = 48;
/// Longest name or synonym, in characters.
pub const MAX_TERM_CHARS: usize = 200;
/// Most synonyms of one item in one language.
pub const MAX_SYNONYMS_PER_LANGUAGE: usize = 16;

/// Why the vocabularies could not be loaded. Every message starts with the file it concerns
/// and, where there is one, names the item (`profession PROF-DENTIST`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VocabularyError {
    /// A file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: file is larger than {MAX_FILE_BYTES} bytes", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A file is not valid TOML or does not have the vocabulary's shape (this includes
    /// unknown fields, missing fields and unknown sectors).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A code is malformed or lacks its prefix ([`PROFESSION_PREFIX`], [`COMPETENCE_PREFIX`]).
    #[error("{}: {item}: invalid code: {reason}", path.display())]
    InvalidCode {
        /// The file.
        path: PathBuf,
        /// The item, e.g. `profession prof-dentist`.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// A code is defined twice (within a file or across the two files).
    #[error("{}: {item}: code already defined", path.display())]
    DuplicateCode {
        /// The file of the second definition.
        path: PathBuf,
        /// The item.
        item: String,
    },
    /// A name lacks one of the catalogue's languages.
    #[error("{}: {item}: missing name in '{lang}'", path.display())]
    MissingTranslation {
        /// The file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The missing language.
        lang: String,
    },
    /// A name is empty, only whitespace, has surrounding whitespace or is longer than
    /// [`MAX_TERM_CHARS`] in one language.
    #[error("{}: {item}: invalid name in '{lang}': {reason}", path.display())]
    InvalidTranslation {
        /// The file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The language.
        lang: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A name or a synonym list is in a language the catalogue does not list.
    #[error("{}: {item}: {what} in unknown language '{lang}'", path.display())]
    UnknownLanguage {
        /// The file.
        path: PathBuf,
        /// The item.
        item: String,
        /// `name` or `synonyms`.
        what: &'static str,
        /// The unknown language.
        lang: String,
    },
    /// A synonym is empty, has surrounding whitespace, is too long, is listed twice, or a
    /// language has no or too many synonyms.
    #[error("{}: {item}: invalid synonym in '{lang}': {reason}", path.display())]
    InvalidSynonym {
        /// The file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The language.
        lang: String,
        /// What is wrong.
        reason: String,
    },
    /// A file lists fewer items than required ([`MIN_PROFESSIONS`], [`MIN_COMPETENCES`]).
    #[error("{}: {found} {kind}, at least {min} required", path.display())]
    TooFewItems {
        /// The file.
        path: PathBuf,
        /// `professions` or `competences`.
        kind: &'static str,
        /// How many it lists.
        found: usize,
        /// How many are required.
        min: usize,
    },
}

/// The sector a regulated profession belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sector {
    /// Health care and pharmacy, including veterinary surgeons.
    Health,
    /// Teaching, childcare and early childhood education.
    Education,
    /// Legal professions: lawyers, notaries, bailiffs, patent attorneys.
    Legal,
    /// Engineering and surveying.
    Engineering,
    /// Architecture, building trades and installation work.
    Construction,
    /// Road, air, rail and maritime transport.
    Transport,
    /// Tourism, leisure and sport: guides and instructors.
    TourismSport,
    /// Auditing, accounting, tax advice, insurance and other financial services.
    Finance,
    /// Crafts and personal services: hairdressers, chimney sweeps, beauticians.
    Crafts,
    /// Security and investigation.
    Security,
    /// Social work and care.
    Social,
    /// Anything else: real estate, funeral services, translation, ...
    Other,
}

impl Sector {
    /// Every sector, in declaration order.
    pub const ALL: [Sector; 12] = [
        Sector::Health,
        Sector::Education,
        Sector::Legal,
        Sector::Engineering,
        Sector::Construction,
        Sector::Transport,
        Sector::TourismSport,
        Sector::Finance,
        Sector::Crafts,
        Sector::Security,
        Sector::Social,
        Sector::Other,
    ];

    /// The name used in vocabulary files (`tourism-sport`).
    pub fn as_str(self) -> &'static str {
        match self {
            Sector::Health => "health",
            Sector::Education => "education",
            Sector::Legal => "legal",
            Sector::Engineering => "engineering",
            Sector::Construction => "construction",
            Sector::Transport => "transport",
            Sector::TourismSport => "tourism-sport",
            Sector::Finance => "finance",
            Sector::Crafts => "crafts",
            Sector::Security => "security",
            Sector::Social => "social",
            Sector::Other => "other",
        }
    }
}

impl fmt::Display for Sector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Extra search terms of an item, keyed by language code; a language may have none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Synonyms(BTreeMap<String, Vec<String>>);

impl Synonyms {
    /// The synonyms in `lang` (empty if there are none).
    pub fn get(&self, lang: &str) -> &[String] {
        self.0.get(lang).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Every `(language, synonym)` pair, languages in code order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(lang, terms)| terms.iter().map(move |t| (lang.as_str(), t.as_str())))
    }
    /// How many synonyms there are in all languages.
    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
    /// Whether there is no synonym at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A regulated profession.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profession {
    code: String,
    sector: Sector,
    health: bool,
    minors: bool,
    name: Texts,
    #[serde(default)]
    synonyms: Synonyms,
}

impl Profession {
    /// The profession's code (`PROF-DENTIST`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// Its sector.
    pub fn sector(&self) -> Sector {
        self.sector
    }
    /// Whether it is a health profession (Directive 2005/36/EC, Art. 56a(1)(a)-(k) and (2)).
    pub fn is_health(&self) -> bool {
        self.health
    }
    /// Whether it involves the education of minors, including childcare and early childhood
    /// education (Directive 2005/36/EC, Art. 56a(1)(l)).
    pub fn involves_minors(&self) -> bool {
        self.minors
    }
    /// Its generic name in every language.
    pub fn name(&self) -> &Texts {
        &self.name
    }
    /// Its extra search terms.
    pub fn synonyms(&self) -> &Synonyms {
        &self.synonyms
    }
    /// Every search term in `lang`: the name, then the synonyms.
    pub fn terms<'a>(&'a self, lang: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        terms(&self.name, &self.synonyms, lang)
    }
}

/// A competence keyword.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Competence {
    code: String,
    name: Texts,
    #[serde(default)]
    synonyms: Synonyms,
}

impl Competence {
    /// The competence's code (`COMP-LICENSING`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// Its name in every language.
    pub fn name(&self) -> &Texts {
        &self.name
    }
    /// Its extra search terms.
    pub fn synonyms(&self) -> &Synonyms {
        &self.synonyms
    }
    /// Every search term in `lang`: the name, then the synonyms.
    pub fn terms<'a>(&'a self, lang: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        terms(&self.name, &self.synonyms, lang)
    }
}

fn terms<'a>(name: &'a Texts, synonyms: &'a Synonyms, lang: &str) -> impl Iterator<Item = &'a str> {
    name.get(lang)
        .into_iter()
        .chain(synonyms.get(lang).iter().map(String::as_str))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfessionsFile {
    professions: Vec<Profession>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompetencesFile {
    competences: Vec<Competence>,
}

/// Where a code lives in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Profession(usize),
    Competence(usize),
}

/// The validated vocabularies: professions and competences, indexed by code.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    professions: Vec<Profession>,
    competences: Vec<Competence>,
    index: HashMap<String, Entry>,
}

impl Vocabulary {
    /// Loads and validates `dir/professions.toml` and `dir/competences.toml`, read through
    /// `files`, against `languages` (the catalogue's, [`crate::catalogue::Catalogue::languages`]):
    /// every name must be in exactly these languages. Errors name the file and the item.
    pub fn load(
        dir: &Path,
        languages: &[Language],
        files: &dyn CatalogueFiles,
    ) -> Result<Vocabulary, VocabularyError> {
        let professions = read_source(files, &dir.join(PROFESSIONS_FILE))?;
        let competences = read_source(files, &dir.join(COMPETENCES_FILE))?;
        Vocabulary::from_sources(&professions, &competences, languages)
    }

    /// Parses and validates the vocabularies from in-memory files. Does no I/O.
    pub fn from_sources(
        professions: &Source,
        competences: &Source,
        languages: &[Language],
    ) -> Result<Vocabulary, VocabularyError> {
        let langs: Vec<&str> = languages.iter().map(Language::code).collect();
        let pfile: ProfessionsFile = parse(professions)?;
        let cfile: CompetencesFile = parse(competences)?;
        let mut index = HashMap::new();
        for (i, p) in pfile.professions.iter().enumerate() {
            let item = format!("profession {}", p.code);
            check_item(
                &professions.path,
                &item,
                &p.code,
                PROFESSION_PREFIX,
                &p.name,
                &p.synonyms,
                &langs,
            )?;
            if index.insert(p.code.clone(), Entry::Profession(i)).is_some() {
                return Err(VocabularyError::DuplicateCode {
                    path: professions.path.clone(),
                    item,
                });
            }
        }
        for (i, c) in cfile.competences.iter().enumerate() {
            let item = format!("competence {}", c.code);
            check_item(
                &competences.path,
                &item,
                &c.code,
                COMPETENCE_PREFIX,
                &c.name,
                &c.synonyms,
                &langs,
            )?;
            if index.insert(c.code.clone(), Entry::Competence(i)).is_some() {
                return Err(VocabularyError::DuplicateCode {
                    path: competences.path.clone(),
                    item,
                });
            }
        }
        let counts = [
            (
                professions,
                "professions",
                pfile.professions.len(),
                MIN_PROFESSIONS,
            ),
            (
                competences,
                "competences",
                cfile.competences.len(),
                MIN_COMPETENCES,
            ),
        ];
        for (source, kind, found, min) in counts {
            if found < min {
                return Err(VocabularyError::TooFewItems {
                    path: source.path.clone(),
                    kind,
                    found,
                    min,
                });
            }
        }
        Ok(Vocabulary {
            professions: pfile.professions,
            competences: cfile.competences,
            index,
        })
    }

    /// The professions, in file order.
    pub fn professions(&self) -> &[Profession] {
        &self.professions
    }

    /// The competences, in file order.
    pub fn competences(&self) -> &[Competence] {
        &self.competences
    }

    /// The profession with this code.
    pub fn profession(&self, code: &str) -> Option<&Profession> {
        match self.index.get(code) {
            Some(Entry::Profession(i)) => self.professions.get(*i),
            _ => None,
        }
    }

    /// The competence with this code.
    pub fn competence(&self, code: &str) -> Option<&Competence> {
        match self.index.get(code) {
            Some(Entry::Competence(i)) => self.competences.get(*i),
            _ => None,
        }
    }

    /// Whether `code` is a profession or competence code of this vocabulary.
    pub fn contains(&self, code: &str) -> bool {
        self.index.contains_key(code)
    }

    /// The name of a profession or competence in `lang`.
    pub fn name(&self, code: &str, lang: &str) -> Option<&str> {
        match self.index.get(code)? {
            Entry::Profession(i) => self.professions.get(*i)?.name.get(lang),
            Entry::Competence(i) => self.competences.get(*i)?.name.get(lang),
        }
    }
}

fn read_source(files: &dyn CatalogueFiles, path: &Path) -> Result<Source, VocabularyError> {
    let text = files
        .read(path, MAX_FILE_BYTES + 1)
        .map_err(|source| VocabularyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(VocabularyError::FileTooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(Source {
        path: path.to_path_buf(),
        text,
    })
}

fn parse<T: serde::de::DeserializeOwned>(source: &Source) -> Result<T, VocabularyError> {
    toml::from_str(&source.text).map_err(|e| VocabularyError::Parse {
        path: source.path.clone(),
        message: e.to_string(),
    })
}

/// The code is well-formed with its prefix; the name is in exactly `langs`; every synonym is
/// in one of `langs`, non-empty, bounded and not repeated.
fn check_item(
    path: &Path,
    item: &str,
    code: &str,
    prefix: &str,
    name: &Texts,
    synonyms: &Synonyms,
    langs: &[&str],
) -> Result<(), VocabularyError> {
    if !is_code(code) || !code.starts_with(prefix) || code.len() == prefix.len() {
        return Err(VocabularyError::InvalidCode {
            path: path.to_path_buf(),
            item: item.to_owned(),
            reason: format!(
                "codes are uppercase letters, digits and single '-', at most {MAX_CODE_CHARS} \
                 characters, starting with '{prefix}'"
            ),
        });
    }
    let invalid_name = |lang: &str, reason| VocabularyError::InvalidTranslation {
        path: path.to_path_buf(),
        item: item.to_owned(),
        lang: lang.to_owned(),
        reason,
    };
    for lang in langs {
        let Some(text) = name.get(lang) else {
            return Err(VocabularyError::MissingTranslation {
                path: path.to_path_buf(),
                item: item.to_owned(),
                lang: (*lang).to_owned(),
            });
        };
        if text.trim().is_empty() {
            return Err(invalid_name(lang, "empty"));
        }
        if text.trim() != text {
            return Err(invalid_name(lang, "surrounding whitespace"));
        }
        if text.chars().count() > MAX_TERM_CHARS {
            return Err(invalid_name(lang, "too long"));
        }
    }
    let unknown = |what, lang: &str| VocabularyError::UnknownLanguage {
        path: path.to_path_buf(),
        item: item.to_owned(),
        what,
        lang: lang.to_owned(),
    };
    if let Some(lang) = name.languages().find(|l| !langs.contains(l)) {
        return Err(unknown("name", lang));
    }
    for (lang, terms) in &synonyms.0 {
        if !langs.contains(&lang.as_str()) {
            return Err(unknown("synonyms", lang));
        }
        let invalid = |reason: String| VocabularyError::InvalidSynonym {
            path: path.to_path_buf(),
            item: item.to_owned(),
            lang: lang.clone(),
            reason,
        };
        if terms.is_empty() {
            return Err(invalid("empty list".into()));
        }
        if terms.len() > MAX_SYNONYMS_PER_LANGUAGE {
            return Err(invalid(format!(
                "more than {MAX_SYNONYMS_PER_LANGUAGE} synonyms"
            )));
        }
        let mut seen = BTreeSet::new();
        seen.extend(name.get(lang));
        for term in terms {
            if term.trim().is_empty() || term.trim() != term {
                return Err(invalid(format!(
                    "{term:?} is empty or has surrounding blanks"
                )));
            }
            if term.chars().count() > MAX_TERM_CHARS {
                return Err(invalid(format!(
                    "{term:?} is longer than {MAX_TERM_CHARS} characters"
                )));
            }
            if !seen.insert(term.as_str()) {
                return Err(invalid(format!("{term:?} repeats the name or a synonym")));
            }
        }
    }
    Ok(())
}

/// Uppercase ASCII letters, digits and single `-`, starting with a letter, at most
/// [`MAX_CODE_CHARS`].
fn is_code(code: &str) -> bool {
    code.len() <= MAX_CODE_CHARS
        && code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !code.ends_with('-')
        && !code.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert!(is_code("PROF-DENTIST"));
        assert!(is_code("COMP-E-COMMERCE"));
        assert!(!is_code("PROF-dentist"));
        assert!(!is_code("PROF-"));
        assert!(!is_code("PROF--X"));
        assert!(!is_code("PROF_X"));
        assert!(!is_code(&format!("PROF-{}", "X".repeat(MAX_CODE_CHARS))));
    }

    #[test]
    fn sectors_round_trip() {
        for sector in Sector::ALL {
            let parsed: Sector = toml::Value::String(sector.as_str().into())
                .try_into()
                .unwrap_or_else(|e| panic!("{sector}: {e}"));
            assert_eq!(parsed, sector);
        }
    }
}
