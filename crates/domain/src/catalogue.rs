//! The catalogue of legal areas, procedures and pre-translated questions, loaded from data.
//!
//! IMI's procedures are **data**, not code: `configs/catalogue/languages.toml` lists the
//! languages every text must be written in (the 24 official EU languages plus Icelandic and
//! Norwegian), and `configs/catalogue/areas/<CODE>.toml` holds one legal area each: its name,
//! its procedures (request, notification, alert, repository), optional question sets and its
//! questions with their answer types, choice options and translations. Adding a legal area is
//! adding a file; no code changes.
//!
//! Messages between nodes carry **codes** (`PQ-Q01`, `PQ-Q05-O2`), never translated text; each
//! node renders a code in its reader's language with [`Catalogue::text`], and checks a received
//! answer against the question's answer type with [`Catalogue::validate_answer`].
//!
//! [`Catalogue::load`] validates the whole catalogue when the node starts: a missing,
//! empty or unknown translation, a duplicate code, a procedure naming a question that does not
//! exist, a choice question with fewer than two options, an area file whose code does not match
//! its name or an unknown field stops the node with a [`CatalogueError`] naming the file and the
//! item. This module does no I/O: the files come through [`CatalogueFiles`] (the node reads
//! them from disk), and [`Catalogue::from_sources`] validates in-memory text.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where a catalogue's files come from. This crate does no I/O: the node reads them from
/// disk (`imi_apps::catalogue_files`); a test may serve them from memory.
pub trait CatalogueFiles {
    /// The paths of the entries of directory `dir`.
    fn entries(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>>;
    /// The text of the file at `path`, at most `limit` bytes of it (a longer file yields
    /// `limit` bytes, which the caller reports as too large).
    fn read(&self, path: &Path, limit: u64) -> std::io::Result<String>;
}

/// The languages file inside a catalogue directory.
pub const LANGUAGES_FILE: &str = "languages.toml";
/// The directory of area files inside a catalogue directory.
pub const AREAS_DIR: &str = "areas";
/// Languages every catalogue must provide: the 24 official EU languages, Icelandic, Norwegian.
pub const REQUIRED_LANGUAGES: [&str; 26] = [
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "it", "lt", "lv",
    "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv", "is", "no",
];
/// Largest catalogue file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Most area files in one catalogue.
pub const MAX_AREAS: usize = 256;
/// Longest code (area, procedure, question set, question, option), in characters.
pub const MAX_CODE_CHARS: usize = 32;
/// Longest translated text in the catalogue, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;
/// Longest free-text answer, in characters.
pub const MAX_FREE_TEXT_CHARS: usize = 8000;
/// Longest attachment file name, in characters.
pub const MAX_ATTACHMENT_NAME_CHARS: usize = 255;
/// Largest attachment, in bytes.
pub const MAX_ATTACHMENT_BYTES: u64 = 20 * 1024 * 1024;

/// Why a catalogue could not be loaded. Every message starts with the file it concerns and,
/// where there is one, names the item (`question PQ-Q07`, `procedure SD-P01`, ...).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogueError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
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
    /// The catalogue holds more than [`MAX_AREAS`] area files.
    #[error("{}: more than {MAX_AREAS} area files", path.display())]
    TooManyAreas {
        /// The areas directory.
        path: PathBuf,
    },
    /// The catalogue holds no area file.
    #[error("{}: no area file (*.toml)", path.display())]
    NoAreas {
        /// The areas directory.
        path: PathBuf,
    },
    /// A file is not valid TOML or does not have the catalogue's shape (this includes unknown
    /// fields, missing fields and unknown answer types or procedure kinds).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The languages file defines a language twice or uses a malformed code.
    #[error("{}: language '{code}': {reason}", path.display())]
    InvalidLanguage {
        /// The languages file.
        path: PathBuf,
        /// The language code.
        code: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The languages file lacks one of [`REQUIRED_LANGUAGES`].
    #[error("{}: required language '{code}' is not listed", path.display())]
    MissingLanguage {
        /// The languages file.
        path: PathBuf,
        /// The missing language code.
        code: String,
    },
    /// A text lacks a language listed in the languages file.
    #[error("{}: {item}: missing translation for '{lang}'", path.display())]
    MissingTranslation {
        /// The area file.
        path: PathBuf,
        /// The item, e.g. `question PQ-Q07`.
        item: String,
        /// The missing language.
        lang: String,
    },
    /// A text is empty or only whitespace in one language.
    #[error("{}: {item}: empty translation for '{lang}'", path.display())]
    EmptyTranslation {
        /// The area file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The language.
        lang: String,
    },
    /// A text is longer than [`MAX_TEXT_CHARS`] in one language.
    #[error("{}: {item}: translation for '{lang}' is longer than {MAX_TEXT_CHARS} characters", path.display())]
    TextTooLong {
        /// The area file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The language.
        lang: String,
    },
    /// A text has a translation in a language the languages file does not list.
    #[error("{}: {item}: translation for unknown language '{lang}'", path.display())]
    UnknownLanguage {
        /// The area file.
        path: PathBuf,
        /// The item.
        item: String,
        /// The unknown language.
        lang: String,
    },
    /// A code is malformed, or does not start with its area's code and a hyphen.
    #[error("{}: {item}: invalid code: {reason}", path.display())]
    InvalidCode {
        /// The area file.
        path: PathBuf,
        /// The item.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// A code is defined twice in the catalogue.
    #[error("{}: {item}: code already defined in {}", path.display(), first.display())]
    DuplicateCode {
        /// The file of the second definition.
        path: PathBuf,
        /// The item.
        item: String,
        /// The file of the first definition.
        first: PathBuf,
    },
    /// The area code inside a file is not the file's name.
    #[error("{}: area {code}: code does not match the file name (expected '{expected}')", path.display())]
    AreaCodeMismatch {
        /// The area file.
        path: PathBuf,
        /// The code in the file.
        code: String,
        /// The code the file name implies.
        expected: String,
    },
    /// A procedure or question set refers to a question or question set that the area does not
    /// define.
    #[error("{}: {item}: refers to unknown {target_kind} {target}", path.display())]
    DanglingCode {
        /// The area file.
        path: PathBuf,
        /// The referring item, e.g. `procedure PQ-P01`.
        item: String,
        /// `question` or `question set`.
        target_kind: &'static str,
        /// The missing code.
        target: String,
    },
    /// A procedure or question set lists the same question twice, or has no question at all.
    #[error("{}: {item}: {reason}", path.display())]
    InvalidQuestionList {
        /// The area file.
        path: PathBuf,
        /// The item.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// A choice question has fewer than two options, or another type has options.
    #[error("{}: {item}: {reason}", path.display())]
    InvalidOptions {
        /// The area file.
        path: PathBuf,
        /// The question.
        item: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why an answer does not fit its question.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// No question has this code.
    #[error("unknown question {0}")]
    UnknownQuestion(String),
    /// The answer's type is not the question's.
    #[error("question {question}: expected a {expected} answer, got {found}")]
    WrongType {
        /// The question.
        question: String,
        /// The question's answer type.
        expected: AnswerType,
        /// The answer's type.
        found: AnswerType,
    },
    /// The chosen option is not one of the question's options.
    #[error("question {question}: unknown option {option:?}")]
    UnknownOption {
        /// The question.
        question: String,
        /// The option given.
        option: String,
    },
    /// A date is not a real calendar date written `YYYY-MM-DD`.
    #[error("question {question}: {value:?} is not a calendar date (YYYY-MM-DD)")]
    InvalidDate {
        /// The question.
        question: String,
        /// The value given.
        value: String,
    },
    /// A number is NaN or infinite.
    #[error("question {question}: number is not finite")]
    NonFiniteNumber {
        /// The question.
        question: String,
    },
    /// A free text is empty or longer than [`MAX_FREE_TEXT_CHARS`].
    #[error(
        "question {question}: free text must have 1 to {MAX_FREE_TEXT_CHARS} characters, has {chars}"
    )]
    FreeTextLength {
        /// The question.
        question: String,
        /// The number of characters given.
        chars: usize,
    },
    /// An attachment's name, hash or size is invalid.
    #[error("question {question}: invalid attachment: {reason}")]
    InvalidAttachment {
        /// The question.
        question: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The kind of answer a question expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    /// Yes or no.
    YesNo,
    /// One of the question's coded options.
    Choice,
    /// A calendar date.
    Date,
    /// A finite number.
    Number,
    /// Free text (translated by the reader's node or a translation service, never by the catalogue).
    FreeText,
    /// A file, referred to by name, SHA-256 and size.
    Attachment,
}

impl AnswerType {
    /// The name used in catalogue files.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerType::YesNo => "yes_no",
            AnswerType::Choice => "choice",
            AnswerType::Date => "date",
            AnswerType::Number => "number",
            AnswerType::FreeText => "free_text",
            AnswerType::Attachment => "attachment",
        }
    }
}

impl fmt::Display for AnswerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcedureKind {
    /// One-to-one request for information or action.
    Request,
    /// One-to-many notification.
    Notification,
    /// One-to-many alert.
    Alert,
    /// Shared repository of information.
    Repository,
}

impl ProcedureKind {
    /// The name used in catalogue files.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcedureKind::Request => "request",
            ProcedureKind::Notification => "notification",
            ProcedureKind::Alert => "alert",
            ProcedureKind::Repository => "repository",
        }
    }
}

impl fmt::Display for ProcedureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An answer to a question, as carried in a message (codes, never translated text).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnswerValue {
    /// Yes (`true`) or no (`false`).
    YesNo(bool),
    /// The code of one of the question's options.
    Choice(String),
    /// A calendar date, `YYYY-MM-DD`.
    Date(String),
    /// A finite number.
    Number(f64),
    /// Free text, at most [`MAX_FREE_TEXT_CHARS`] characters.
    FreeText(String),
    /// A file sent alongside the answer.
    Attachment {
        /// File name, without any directory.
        name: String,
        /// SHA-256 of the content, 64 lowercase hexadecimal digits.
        sha256: String,
        /// Size in bytes, 1 to [`MAX_ATTACHMENT_BYTES`].
        size: u64,
    },
}

impl AnswerValue {
    /// The answer type this value is of.
    pub fn answer_type(&self) -> AnswerType {
        match self {
            AnswerValue::YesNo(_) => AnswerType::YesNo,
            AnswerValue::Choice(_) => AnswerType::Choice,
            AnswerValue::Date(_) => AnswerType::Date,
            AnswerValue::Number(_) => AnswerType::Number,
            AnswerValue::FreeText(_) => AnswerType::FreeText,
            AnswerValue::Attachment { .. } => AnswerType::Attachment,
        }
    }
}

/// A language every catalogue text is written in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Language {
    code: String,
    name: String,
    english_name: String,
}

impl Language {
    /// ISO 639-1 code (`de`, `ga`, `no`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The language's name in itself (`Deutsch`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The language's name in English (`German`).
    pub fn english_name(&self) -> &str {
        &self.english_name
    }
}

/// One text in every catalogue language, keyed by language code.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Texts(BTreeMap<String, String>);

impl Texts {
    /// The text in `lang`, if there is one.
    pub fn get(&self, lang: &str) -> Option<&str> {
        self.0.get(lang).map(String::as_str)
    }
    /// The languages present.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
    /// How many languages are present.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no language is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One option of a choice question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceOption {
    code: String,
    text: Texts,
}

impl ChoiceOption {
    /// The option's code (`PQ-Q05-O1`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The option's text in every language.
    pub fn text(&self) -> &Texts {
        &self.text
    }
}

/// A pre-translated question.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    code: String,
    answer: AnswerType,
    text: Texts,
    #[serde(default)]
    options: Vec<ChoiceOption>,
}

impl Question {
    /// The question's code (`PQ-Q01`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The kind of answer it expects.
    pub fn answer_type(&self) -> AnswerType {
        self.answer
    }
    /// The question's text in every language.
    pub fn text(&self) -> &Texts {
        &self.text
    }
    /// The options of a choice question (empty for other types).
    pub fn options(&self) -> &[ChoiceOption] {
        &self.options
    }
    /// The option with this code.
    pub fn option(&self, code: &str) -> Option<&ChoiceOption> {
        self.options.iter().find(|o| o.code == code)
    }
}

/// A named group of questions that procedures can use together.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSet {
    code: String,
    name: Texts,
    questions: Vec<String>,
}

impl QuestionSet {
    /// The set's code (`PQ-S01`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The set's name in every language.
    pub fn name(&self) -> &Texts {
        &self.name
    }
    /// The codes of its questions, in order.
    pub fn questions(&self) -> &[String] {
        &self.questions
    }
}

/// An administrative cooperation procedure of a legal area.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Procedure {
    code: String,
    kind: ProcedureKind,
    name: Texts,
    #[serde(default)]
    question_sets: Vec<String>,
    #[serde(default)]
    questions: Vec<String>,
    /// Notifications and alerts: whether the Commission is a recipient.
    #[serde(default)]
    commission: CommissionRule,
    /// Alerts only: to every other member state, or to the member states the sender names.
    #[serde(default)]
    addressees: Addressees,
    /// Alerts only: whether an alert names the professional's regulated profession.
    #[serde(default)]
    profession: ProfessionRule,
    /// Notifications only: the questions (fields) a notification may leave out.
    #[serde(default)]
    optional: Vec<String>,
    /// Notifications only: the repository procedure this notification type populates.
    #[serde(default)]
    repository: Option<String>,
    /// Repositories only: who may hold and read the entries (country codes and authority
    /// ids); absent: every member state's authorities.
    #[serde(default)]
    access: Option<Vec<String>>,
    /// Repositories only: the fields published without authentication.
    #[serde(default)]
    public: Vec<String>,
    /// Every question the procedure uses: those of its sets in order, then its own.
    #[serde(skip)]
    resolved: Vec<String>,
}

/// Whether a notification type goes to the European Commission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommissionRule {
    /// Never: member states' authorities only.
    #[default]
    None,
    /// The sender may add the Commission.
    Optional,
    /// Every notification of the type names the Commission.
    Required,
}

/// Whom an alert type goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressees {
    /// Every other member state (Directive 2005/36/EC Art. 56a).
    #[default]
    All,
    /// The member states concerned, named by the sender (Directive 2006/123/EC Art. 29/32).
    Concerned,
}

impl Addressees {
    /// The name used in catalogue files.
    pub fn as_str(self) -> &'static str {
        match self {
            Addressees::All => "all",
            Addressees::Concerned => "concerned",
        }
    }
}

/// Whether an alert type names a regulated profession.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfessionRule {
    /// Every alert names one (professional-qualification alerts).
    #[default]
    Required,
    /// The sender may name one (a service activity need not be a regulated profession).
    Optional,
}

impl CommissionRule {
    /// The name used in catalogue files.
    pub fn as_str(self) -> &'static str {
        match self {
            CommissionRule::None => "none",
            CommissionRule::Optional => "optional",
            CommissionRule::Required => "required",
        }
    }
}

impl Procedure {
    /// The procedure's code (`PQ-P01`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// Request, notification, alert or repository.
    pub fn kind(&self) -> ProcedureKind {
        self.kind
    }
    /// The procedure's name in every language.
    pub fn name(&self) -> &Texts {
        &self.name
    }
    /// The codes of the question sets it uses.
    pub fn question_sets(&self) -> &[String] {
        &self.question_sets
    }
    /// Every question code the procedure uses: those of its question sets, in order, followed by
    /// the questions it lists directly.
    pub fn question_codes(&self) -> &[String] {
        &self.resolved
    }
    /// Notifications and alerts: whether the Commission is a recipient.
    pub fn commission(&self) -> CommissionRule {
        self.commission
    }
    /// Alerts: every other member state, or those the sender names.
    pub fn addressees(&self) -> Addressees {
        self.addressees
    }
    /// Alerts: whether the profession must be named.
    pub fn profession(&self) -> ProfessionRule {
        self.profession
    }
    /// Notifications: the fields a notification may leave out (every other question of
    /// the procedure is required).
    pub fn optional(&self) -> &[String] {
        &self.optional
    }
    /// Whether field `code` is required in a notification of this type.
    pub fn required(&self, code: &str) -> bool {
        self.resolved.iter().any(|q| q == code) && !self.optional.iter().any(|q| q == code)
    }
    /// Notifications: the repository procedure this type populates.
    pub fn repository(&self) -> Option<&str> {
        self.repository.as_deref()
    }
    /// Repositories: the access list as written (country codes and authority ids); `None`:
    /// every member state.
    pub fn access(&self) -> Option<&[String]> {
        self.access.as_deref()
    }
    /// Repositories: the fields published without authentication.
    pub fn public(&self) -> &[String] {
        &self.public
    }
}

/// A legal area (`PQ`: professional qualifications) with its procedures and questions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    code: String,
    name: Texts,
    procedures: Vec<Procedure>,
    #[serde(default)]
    question_sets: Vec<QuestionSet>,
    questions: Vec<Question>,
    #[serde(default)]
    retention: Retention,
    #[serde(skip)]
    source: PathBuf,
}

/// How long a closed case's personal data is kept (IMI Regulation 1024/2012, Art. 14):
/// blocked (readable only through an explicit, logged action) `block_after_days` after
/// closure, deleted `delete_after_days` after closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days from closure to blocking (default 183, six months).
    #[serde(default = "Retention::default_block")]
    pub block_after_days: u32,
    /// Days from closure to deletion (default 1096, three years).
    #[serde(default = "Retention::default_delete")]
    pub delete_after_days: u32,
}

impl Retention {
    fn default_block() -> u32 {
        183
    }
    fn default_delete() -> u32 {
        1096
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            block_after_days: Self::default_block(),
            delete_after_days: Self::default_delete(),
        }
    }
}

impl Area {
    /// The area's retention periods.
    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The area's code (`PQ`).
    pub fn code(&self) -> &str {
        &self.code
    }
    /// The area's name in every language.
    pub fn name(&self) -> &Texts {
        &self.name
    }
    /// Its procedures.
    pub fn procedures(&self) -> &[Procedure] {
        &self.procedures
    }
    /// Its question sets.
    pub fn question_sets(&self) -> &[QuestionSet] {
        &self.question_sets
    }
    /// Its questions.
    pub fn questions(&self) -> &[Question] {
        &self.questions
    }
    /// The file it was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LanguagesFile {
    languages: Vec<Language>,
}

/// The text of one catalogue file and the path it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path named in errors; for area files its stem must be the area code.
    pub path: PathBuf,
    /// The file's TOML text.
    pub text: String,
}

/// Where a code lives in the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Area(usize),
    Procedure(usize, usize),
    QuestionSet(usize, usize),
    Question(usize, usize),
    Option(usize, usize, usize),
}

/// The validated catalogue: languages and legal areas, indexed by code.
#[derive(Debug, Clone)]
pub struct Catalogue {
    languages: Vec<Language>,
    areas: Vec<Area>,
    index: HashMap<String, Entry>,
}

impl Catalogue {
    /// Loads and validates `dir/languages.toml` and every `dir/areas/*.toml` (file names
    /// starting with `.` are skipped), read through `files`. Errors name the file and the
    /// item.
    pub fn load(dir: &Path, files: &dyn CatalogueFiles) -> Result<Catalogue, CatalogueError> {
        let languages = read_source(files, &dir.join(LANGUAGES_FILE))?;
        let areas_dir = dir.join(AREAS_DIR);
        let entries = files
            .entries(&areas_dir)
            .map_err(|source| CatalogueError::Io {
                path: areas_dir.clone(),
                source,
            })?;
        let mut paths = Vec::new();
        for path in entries {
            let hidden = path
                .file_name()
                .is_none_or(|n| n.to_string_lossy().starts_with('.'));
            if hidden || path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            if paths.len() >= MAX_AREAS {
                return Err(CatalogueError::TooManyAreas { path: areas_dir });
            }
            paths.push(path);
        }
        paths.sort();
        let areas = paths
            .iter()
            .map(|p| read_source(files, p))
            .collect::<Result<Vec<_>, _>>()?;
        if areas.is_empty() {
            return Err(CatalogueError::NoAreas { path: areas_dir });
        }
        Catalogue::from_sources(&languages, &areas)
    }

    /// Parses and validates a catalogue from in-memory files: the languages file and the area
    /// files. Does no I/O.
    pub fn from_sources(languages: &Source, areas: &[Source]) -> Result<Catalogue, CatalogueError> {
        let languages = parse_languages(languages)?;
        let lang_codes: Vec<&str> = languages.iter().map(|l| l.code.as_str()).collect();
        let mut catalogue = Catalogue {
            languages: Vec::new(),
            areas: Vec::with_capacity(areas.len()),
            index: HashMap::new(),
        };
        let mut defined_in: HashMap<String, PathBuf> = HashMap::new();
        for source in areas {
            let area = parse_area(source, &lang_codes)?;
            let a = catalogue.areas.len();
            let mut define = |code: &str, item: String, entry: Entry| {
                if let Some(first) = defined_in.get(code) {
                    return Err(CatalogueError::DuplicateCode {
                        path: source.path.clone(),
                        item,
                        first: first.clone(),
                    });
                }
                defined_in.insert(code.to_owned(), source.path.clone());
                catalogue.index.insert(code.to_owned(), entry);
                Ok(())
            };
            define(&area.code, format!("area {}", area.code), Entry::Area(a))?;
            for (p, proc_) in area.procedures.iter().enumerate() {
                define(
                    &proc_.code,
                    format!("procedure {}", proc_.code),
                    Entry::Procedure(a, p),
                )?;
            }
            for (s, set) in area.question_sets.iter().enumerate() {
                define(
                    &set.code,
                    format!("question set {}", set.code),
                    Entry::QuestionSet(a, s),
                )?;
            }
            for (q, question) in area.questions.iter().enumerate() {
                define(
                    &question.code,
                    format!("question {}", question.code),
                    Entry::Question(a, q),
                )?;
                for (o, option) in question.options.iter().enumerate() {
                    define(
                        &option.code,
                        format!("option {}", option.code),
                        Entry::Option(a, q, o),
                    )?;
                }
            }
            catalogue.areas.push(area);
        }
        catalogue.languages = languages;
        Ok(catalogue)
    }

    /// The catalogue's languages, in the order of the languages file.
    pub fn languages(&self) -> &[Language] {
        &self.languages
    }

    /// The legal areas, in file-name order.
    pub fn areas(&self) -> &[Area] {
        &self.areas
    }

    /// The legal area with this code.
    pub fn area(&self, code: &str) -> Option<&Area> {
        match self.index.get(code) {
            Some(Entry::Area(a)) => self.areas.get(*a),
            _ => None,
        }
    }

    /// The procedure with this code, in whichever area.
    pub fn procedure(&self, code: &str) -> Option<&Procedure> {
        match self.index.get(code) {
            Some(Entry::Procedure(a, p)) => self.areas.get(*a)?.procedures.get(*p),
            _ => None,
        }
    }

    /// The question set with this code, in whichever area.
    pub fn question_set(&self, code: &str) -> Option<&QuestionSet> {
        match self.index.get(code) {
            Some(Entry::QuestionSet(a, s)) => self.areas.get(*a)?.question_sets.get(*s),
            _ => None,
        }
    }

    /// The question with this code, in whichever area.
    pub fn question(&self, code: &str) -> Option<&Question> {
        match self.index.get(code) {
            Some(Entry::Question(a, q)) => self.areas.get(*a)?.questions.get(*q),
            _ => None,
        }
    }

    /// The choice option with this code, in whichever question.
    pub fn option(&self, code: &str) -> Option<&ChoiceOption> {
        match self.index.get(code) {
            Some(Entry::Option(a, q, o)) => self.areas.get(*a)?.questions.get(*q)?.options.get(*o),
            _ => None,
        }
    }

    /// The text of any coded item (area, procedure, question set, question, option) in `lang`.
    pub fn text(&self, code: &str, lang: &str) -> Option<&str> {
        let texts = match self.index.get(code)? {
            Entry::Area(_) => &self.area(code)?.name,
            Entry::Procedure(..) => &self.procedure(code)?.name,
            Entry::QuestionSet(..) => &self.question_set(code)?.name,
            Entry::Question(..) => &self.question(code)?.text,
            Entry::Option(..) => &self.option(code)?.text,
        };
        texts.get(lang)
    }

    /// Checks that `value` is a well-formed answer to the question `question_code`: the right
    /// type, a known option, a real calendar date, a finite number, a bounded free text, a
    /// plausible attachment reference.
    pub fn validate_answer(
        &self,
        question_code: &str,
        value: &AnswerValue,
    ) -> Result<(), AnswerError> {
        let question = self
            .question(question_code)
            .ok_or_else(|| AnswerError::UnknownQuestion(question_code.to_owned()))?;
        let qcode = || question.code.clone();
        if value.answer_type() != question.answer {
            return Err(AnswerError::WrongType {
                question: qcode(),
                expected: question.answer,
                found: value.answer_type(),
            });
        }
        match value {
            AnswerValue::YesNo(_) => Ok(()),
            AnswerValue::Choice(option) => {
                if question.option(option).is_some() {
                    Ok(())
                } else {
                    Err(AnswerError::UnknownOption {
                        question: qcode(),
                        option: option.clone(),
                    })
                }
            }
            AnswerValue::Date(date) => {
                if is_calendar_date(date) {
                    Ok(())
                } else {
                    Err(AnswerError::InvalidDate {
                        question: qcode(),
                        value: date.clone(),
                    })
                }
            }
            AnswerValue::Number(n) => {
                if n.is_finite() {
                    Ok(())
                } else {
                    Err(AnswerError::NonFiniteNumber { question: qcode() })
                }
            }
            AnswerValue::FreeText(text) => {
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > MAX_FREE_TEXT_CHARS {
                    Err(AnswerError::FreeTextLength {
                        question: qcode(),
                        chars,
                    })
                } else {
                    Ok(())
                }
            }
            AnswerValue::Attachment { name, sha256, size } => check_attachment(name, sha256, *size)
                .map_err(|reason| AnswerError::InvalidAttachment {
                    question: qcode(),
                    reason,
                }),
        }
    }
}

fn read_source(files: &dyn CatalogueFiles, path: &Path) -> Result<Source, CatalogueError> {
    let text = files
        .read(path, MAX_FILE_BYTES + 1)
        .map_err(|source| CatalogueError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(CatalogueError::FileTooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(Source {
        path: path.to_path_buf(),
        text,
    })
}

fn parse_languages(source: &Source) -> Result<Vec<Language>, CatalogueError> {
    let path = &source.path;
    let file: LanguagesFile = toml::from_str(&source.text).map_err(|e| CatalogueError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let invalid = |code: &str, reason| CatalogueError::InvalidLanguage {
        path: path.clone(),
        code: code.to_owned(),
        reason,
    };
    let mut seen = BTreeSet::new();
    for lang in &file.languages {
        let well_formed =
            (2..=3).contains(&lang.code.len()) && lang.code.bytes().all(|b| b.is_ascii_lowercase());
        if !well_formed {
            return Err(invalid(&lang.code, "code must be 2 or 3 lowercase letters"));
        }
        if lang.name.trim().is_empty() || lang.english_name.trim().is_empty() {
            return Err(invalid(
                &lang.code,
                "name and english_name must not be empty",
            ));
        }
        if !seen.insert(lang.code.as_str()) {
            return Err(invalid(&lang.code, "listed twice"));
        }
    }
    if let Some(missing) = REQUIRED_LANGUAGES.iter().find(|c| !seen.contains(*c)) {
        return Err(CatalogueError::MissingLanguage {
            path: path.clone(),
            code: (*missing).to_owned(),
        });
    }
    Ok(file.languages)
}

/// Validates one area file on its own; cross-file checks (duplicate codes) are the caller's.
fn parse_area(source: &Source, langs: &[&str]) -> Result<Area, CatalogueError> {
    let path = &source.path;
    let mut area: Area = toml::from_str(&source.text).map_err(|e| CatalogueError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    area.source = path.clone();
    let area_item = format!("area {}", area.code);
    if !is_code(&area.code) || area.code.contains('-') {
        return Err(CatalogueError::InvalidCode {
            path: path.clone(),
            item: area_item,
            reason: "an area code is uppercase letters and digits, starting with a letter".into(),
        });
    }
    let expected = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if area.code != expected {
        return Err(CatalogueError::AreaCodeMismatch {
            path: path.clone(),
            code: area.code.clone(),
            expected,
        });
    }
    check_texts(path, &area_item, &area.name, langs)?;
    let r = area.retention;
    if r.block_after_days == 0 || r.block_after_days > r.delete_after_days {
        return Err(CatalogueError::InvalidCode {
            path: path.clone(),
            item: format!("{area_item} retention"),
            reason: "block_after_days must be at least 1 and at most delete_after_days".into(),
        });
    }
    check_unique_codes(path, &area)?;
    let prefix = format!("{}-", area.code);
    let check_code = |item: &str, code: &str| {
        if is_code(code) && code.starts_with(&prefix) && code.len() > prefix.len() {
            Ok(())
        } else {
            Err(CatalogueError::InvalidCode {
                path: path.clone(),
                item: item.to_owned(),
                reason: format!(
                    "codes are uppercase letters, digits and '-', at most {MAX_CODE_CHARS} characters, starting with '{prefix}'"
                ),
            })
        }
    };

    let mut question_codes = BTreeSet::new();
    for question in &area.questions {
        let item = format!("question {}", question.code);
        check_code(&item, &question.code)?;
        question_codes.insert(question.code.as_str());
        check_texts(path, &item, &question.text, langs)?;
        match (question.answer, question.options.len()) {
            (AnswerType::Choice, n) if n < 2 => {
                return Err(CatalogueError::InvalidOptions {
                    path: path.clone(),
                    item,
                    reason: format!("a choice question needs at least 2 options, has {n}"),
                });
            }
            (AnswerType::Choice, _) | (_, 0) => {}
            (other, _) => {
                return Err(CatalogueError::InvalidOptions {
                    path: path.clone(),
                    item,
                    reason: format!("only choice questions have options, this one is {other}"),
                });
            }
        }
        for option in &question.options {
            let option_item = format!("option {}", option.code);
            check_code(&option_item, &option.code)?;
            check_texts(path, &option_item, &option.text, langs)?;
        }
    }

    let mut set_questions: HashMap<&str, &[String]> = HashMap::new();
    for set in &area.question_sets {
        let item = format!("question set {}", set.code);
        check_code(&item, &set.code)?;
        check_texts(path, &item, &set.name, langs)?;
        check_question_list(path, &item, set.questions.iter(), &question_codes)?;
        set_questions.insert(set.code.as_str(), &set.questions);
    }

    let mut resolved_all = Vec::with_capacity(area.procedures.len());
    for procedure in &area.procedures {
        let item = format!("procedure {}", procedure.code);
        check_code(&item, &procedure.code)?;
        check_texts(path, &item, &procedure.name, langs)?;
        let mut resolved: Vec<String> = Vec::new();
        let mut seen_sets = BTreeSet::new();
        for set in &procedure.question_sets {
            let Some(questions) = set_questions.get(set.as_str()) else {
                return Err(CatalogueError::DanglingCode {
                    path: path.clone(),
                    item,
                    target_kind: "question set",
                    target: set.clone(),
                });
            };
            if !seen_sets.insert(set.as_str()) {
                return Err(CatalogueError::InvalidQuestionList {
                    path: path.clone(),
                    item,
                    reason: format!("question set {set} is listed twice"),
                });
            }
            resolved.extend(questions.iter().cloned());
        }
        resolved.extend(procedure.questions.iter().cloned());
        check_question_list(path, &item, resolved.iter(), &question_codes)?;
        let notification = procedure.kind == ProcedureKind::Notification;
        let invalid = |reason: String| CatalogueError::InvalidQuestionList {
            path: path.clone(),
            item: item.clone(),
            reason,
        };
        if !notification && (!procedure.optional.is_empty() || procedure.repository.is_some()) {
            return Err(invalid(
                "optional and repository are for notification procedures only".into(),
            ));
        }
        let alert = procedure.kind == ProcedureKind::Alert;
        if !notification && !alert && procedure.commission != CommissionRule::None {
            return Err(invalid(
                "commission is for notification and alert procedures only".into(),
            ));
        }
        if !alert
            && (procedure.addressees != Addressees::All
                || procedure.profession != ProfessionRule::Required)
        {
            return Err(invalid(
                "addressees and profession are for alert procedures only".into(),
            ));
        }
        let repository = procedure.kind == ProcedureKind::Repository;
        if !repository && (procedure.access.is_some() || !procedure.public.is_empty()) {
            return Err(invalid(
                "access and public are for repository procedures only".into(),
            ));
        }
        for q in &procedure.public {
            if !resolved.contains(q) {
                return Err(invalid(format!(
                    "public field {q} is not a question of the procedure"
                )));
            }
        }
        for a in procedure.access.iter().flatten() {
            let country = a.parse::<imi_protocol::NodeId>().ok();
            let authority = imi_protocol::AuthorityId::new(a)
                .ok()
                .and_then(|id| crate::authority::country_of(&id));
            let member = |n: imi_protocol::NodeId| n != imi_protocol::NodeId::EU;
            if !country.or(authority).is_some_and(member) {
                return Err(invalid(format!(
                    "access entry {a:?} is neither a member state's code nor one of its authorities"
                )));
            }
        }
        let mut seen_optional = BTreeSet::new();
        for q in &procedure.optional {
            if !resolved.contains(q) || !seen_optional.insert(q.as_str()) {
                return Err(invalid(format!(
                    "optional field {q} is not a question of the procedure, or listed twice"
                )));
            }
        }
        resolved_all.push(resolved);
    }
    // A notification type that populates a repository must carry every field of it.
    for (procedure, resolved) in area.procedures.iter().zip(&resolved_all) {
        let Some(repo) = &procedure.repository else {
            continue;
        };
        let target = area
            .procedures
            .iter()
            .zip(&resolved_all)
            .find(|(p, _)| &p.code == repo && p.kind == ProcedureKind::Repository);
        let Some((_, repo_questions)) = target else {
            return Err(CatalogueError::DanglingCode {
                path: path.clone(),
                item: format!("procedure {}", procedure.code),
                target_kind: "repository procedure",
                target: repo.clone(),
            });
        };
        if let Some(q) = repo_questions.iter().find(|q| !resolved.contains(q)) {
            return Err(CatalogueError::InvalidQuestionList {
                path: path.clone(),
                item: format!("procedure {}", procedure.code),
                reason: format!("populates repository {repo} but lacks its question {q}"),
            });
        }
    }
    for (procedure, resolved) in area.procedures.iter_mut().zip(resolved_all) {
        procedure.resolved = resolved;
    }
    Ok(area)
}

/// No code is defined twice within one area file.
fn check_unique_codes(path: &Path, area: &Area) -> Result<(), CatalogueError> {
    let mut items: Vec<(&str, &str)> = vec![("area", area.code.as_str())];
    items.extend(
        area.procedures
            .iter()
            .map(|p| ("procedure", p.code.as_str())),
    );
    items.extend(
        area.question_sets
            .iter()
            .map(|s| ("question set", s.code.as_str())),
    );
    for question in &area.questions {
        items.push(("question", question.code.as_str()));
        items.extend(question.options.iter().map(|o| ("option", o.code.as_str())));
    }
    let mut seen = BTreeSet::new();
    for (kind, code) in items {
        if !seen.insert(code) {
            return Err(CatalogueError::DuplicateCode {
                path: path.to_path_buf(),
                item: format!("{kind} {code}"),
                first: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Every code exists in the area, none twice, and there is at least one.
fn check_question_list<'a>(
    path: &Path,
    item: &str,
    codes: impl Iterator<Item = &'a String>,
    defined: &BTreeSet<&str>,
) -> Result<(), CatalogueError> {
    let mut seen = BTreeSet::new();
    for code in codes {
        if !defined.contains(code.as_str()) {
            return Err(CatalogueError::DanglingCode {
                path: path.to_path_buf(),
                item: item.to_owned(),
                target_kind: "question",
                target: code.clone(),
            });
        }
        if !seen.insert(code.as_str()) {
            return Err(CatalogueError::InvalidQuestionList {
                path: path.to_path_buf(),
                item: item.to_owned(),
                reason: format!("question {code} is listed twice"),
            });
        }
    }
    if seen.is_empty() {
        return Err(CatalogueError::InvalidQuestionList {
            path: path.to_path_buf(),
            item: item.to_owned(),
            reason: "has no question".to_owned(),
        });
    }
    Ok(())
}

/// Every catalogue language present, non-empty and bounded; no other language.
fn check_texts(
    path: &Path,
    item: &str,
    texts: &Texts,
    langs: &[&str],
) -> Result<(), CatalogueError> {
    for lang in langs {
        let Some(text) = texts.get(lang) else {
            return Err(CatalogueError::MissingTranslation {
                path: path.to_path_buf(),
                item: item.to_owned(),
                lang: (*lang).to_owned(),
            });
        };
        if text.trim().is_empty() {
            return Err(CatalogueError::EmptyTranslation {
                path: path.to_path_buf(),
                item: item.to_owned(),
                lang: (*lang).to_owned(),
            });
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(CatalogueError::TextTooLong {
                path: path.to_path_buf(),
                item: item.to_owned(),
                lang: (*lang).to_owned(),
            });
        }
    }
    if let Some(unknown) = texts.languages().find(|l| !langs.contains(l)) {
        return Err(CatalogueError::UnknownLanguage {
            path: path.to_path_buf(),
            item: item.to_owned(),
            lang: unknown.to_owned(),
        });
    }
    Ok(())
}

/// Uppercase ASCII letters, digits and `-`, starting with a letter, at most [`MAX_CODE_CHARS`].
fn is_code(code: &str) -> bool {
    code.len() <= MAX_CODE_CHARS
        && code.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !code.ends_with('-')
        && !code.contains("--")
}

/// `YYYY-MM-DD` naming a real day of the proleptic Gregorian calendar, years 0001 to 9999.
fn is_calendar_date(s: &str) -> bool {
    crate::dates::Date::parse(s).is_some()
}

fn check_attachment(name: &str, sha256: &str, size: u64) -> Result<(), &'static str> {
    let name_chars = name.chars().count();
    if name.trim().is_empty() || name_chars > MAX_ATTACHMENT_NAME_CHARS {
        return Err("name must have 1 to 255 characters");
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err("name must be a plain file name");
    }
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err("sha256 must be 64 lowercase hexadecimal digits");
    }
    if size == 0 || size > MAX_ATTACHMENT_BYTES {
        return Err("size must be 1 byte to 20 MiB");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        for ok in ["2024-02-29", "2025-12-31", "0001-01-01", "2000-02-29"] {
            assert!(is_calendar_date(ok), "{ok}");
        }
        for bad in [
            "2025-02-29",
            "1900-02-29",
            "2025-02-30",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "0000-01-01",
            "2025-1-01",
            "25-01-01",
            "2025/01/01",
            "2025-01-01T00:00",
            "２０２５-01-01",
            "",
        ] {
            assert!(!is_calendar_date(bad), "{bad}");
        }
    }

    #[test]
    fn codes() {
        assert!(is_code("PQ-Q01"));
        assert!(is_code("PQ"));
        assert!(!is_code("pq-q01"));
        assert!(!is_code("PQ-"));
        assert!(!is_code("PQ--Q1"));
        assert!(!is_code("1PQ"));
        assert!(!is_code(""));
    }
}
