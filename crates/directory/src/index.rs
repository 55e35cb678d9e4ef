//! The search index over a directory replica (tantivy, in memory).
//!
//! One document per authority. Fields:
//!
//! * `id` (to replace a document), `number` (a fast field: the authority's number in the
//!   index's own table, so a hit's id is read without fetching a stored document), and
//!   exact-match filters `country`, `level`, `area`, `procedure`, `profession`,
//!   `competence`, `retired`;
//! * `folded`: every name in every language, the id, city and region, folded
//!   ([`crate::analysis`]); a word typed in any language, with or without accents, meets it;
//! * `stem_<lang>` for each of the 19 languages with a stemmer: the name in that language,
//!   city and region, stemmed then folded ("Kammern" meets "Kammer").
//!
//! Professions and competences are matched **at query time**: every name and synonym of the
//! vocabularies, in all 26 languages, is analysed once when the index is made (folded, and
//! stemmed per language); a query word that is one of them (folded, stemmed in a searched
//! language, one edit away, or as a prefix for the last word) adds the authorities tagged
//! with those codes ("Zahnärzte" → `PROF-DENTIST`). Documents carry only codes, so an index
//! of 12,500 authorities stays small and quick to build.
//!
//! A query is analysed word by word (at most [`MAX_QUERY_WORDS`]); a word matches its folded
//! form (boost 2), its stem in the caller's language or, without one, in every stemmed
//! language (boost 1.5), and, from four letters on, any folded term one edit away (one typo:
//! insertion, deletion, substitution or transposition; boost 1; the terms are looked up in
//! a deletion neighbourhood, `near.rs`, not found by a Levenshtein automaton); the last
//! word also matches as a prefix (boost 0.5, typing ahead); the codes it names count with
//! the same boosts. Up to two words must all match, from three on all but a third of them.
//! Filters must all hold; retired authorities are left out unless asked for. Hits are
//! ranked by BM25 score, ties by id.
//!
//! The index is built from the replica ([`SearchIndex::build`]; the node builds it at its first
//! search) and changed with every applied update ([`SearchIndex::apply`]).

use crate::analysis::{Analyzer, Tokenizer, fold, stemmed_languages, words};
use crate::near::OneEdit;
use imi_domain::{Authority, Level, Vocabulary};
use imi_protocol::ids::{AuthorityId, NodeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{PreTokenizedString, Token};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// Longest query text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Most words in a query.
pub const MAX_QUERY_WORDS: usize = 12;
/// Largest page.
pub const MAX_LIMIT: usize = 100;
/// Deepest page start.
pub const MAX_OFFSET: usize = 10_000;
/// Memory budget of the index writer, bytes (tantivy's least is 15 MB per thread).
const WRITER_BYTES: usize = 16 * 1024 * 1024;

/// A search: free text and/or filters, a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Free text in any language (may be empty when a filter is given).
    pub text: String,
    /// The caller's language: its stemmer is used (and results are rendered in it).
    pub lang: Option<String>,
    /// Only this country's authorities.
    pub country: Option<NodeId>,
    /// Only this level.
    pub level: Option<Level>,
    /// Only authorities handling this legal area.
    pub area: Option<String>,
    /// Only authorities handling this procedure.
    pub procedure: Option<String>,
    /// Only authorities competent for this profession (code).
    pub profession: Option<String>,
    /// Only authorities with this competence (code).
    pub competence: Option<String>,
    /// Include retired authorities.
    pub include_retired: bool,
    /// Page size (1..=[`MAX_LIMIT`]).
    pub limit: usize,
    /// Page start (at most [`MAX_OFFSET`]).
    pub offset: usize,
}

/// Why a query is refused (the API answers 400 with [`SearchError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// No word and no filter.
    #[error("the query has no words and no filter")]
    Empty,
    /// Over [`MAX_QUERY_CHARS`] characters or [`MAX_QUERY_WORDS`] words.
    #[error(
        "the query is too long (at most {MAX_QUERY_CHARS} characters, {MAX_QUERY_WORDS} words)"
    )]
    TooLong,
    /// Control characters in the query.
    #[error("the query contains control characters")]
    ControlCharacters,
    /// Page size or start out of range.
    #[error("limit must be 1 to {MAX_LIMIT} and offset at most {MAX_OFFSET}")]
    Page,
    /// The index failed (a bug, not the caller's fault).
    #[error("index error: {0}")]
    Index(String),
}

impl SearchError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SearchError::Empty => "empty_query",
            SearchError::TooLong => "query_too_long",
            SearchError::ControlCharacters => "bad_query",
            SearchError::Page => "bad_page",
            SearchError::Index(_) => "index_error",
        }
    }
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(e.to_string())
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The authority.
    pub id: AuthorityId,
    /// Its score (higher is better).
    pub score: f32,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Hits {
    /// How many authorities match in all.
    pub total: usize,
    /// This page, best first.
    pub hits: Vec<Hit>,
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    /// The authority's number in [`Numbers`] (a fast field: reading a hit's id costs no
    /// stored-document fetch).
    number: Field,
    country: Field,
    level: Field,
    area: Field,
    procedure: Field,
    profession: Field,
    competence: Field,
    retired: Field,
    folded: Field,
}

/// The search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    stemmed: Vec<(&'static str, Field)>,
    /// The vocabularies' terms, to turn a query word into profession and competence codes.
    vocabulary: VocabularyTerms,
    /// The documents' folded terms, for those one edit from a query word (a term of a
    /// replaced document stays: it then matches nothing).
    near: RwLock<OneEdit>,
    numbers: RwLock<Numbers>,
}

/// A number for every authority ever indexed, in order of first sight.
#[derive(Debug, Default)]
struct Numbers {
    by_id: HashMap<AuthorityId, u64>,
    ids: Vec<AuthorityId>,
}

impl Numbers {
    fn of(&mut self, id: &AuthorityId) -> u64 {
        if let Some(n) = self.by_id.get(id) {
            return *n;
        }
        let n = self.ids.len() as u64;
        self.ids.push(id.clone());
        self.by_id.insert(id.clone(), n);
        n
    }
}

/// Every name and synonym of the vocabularies, analysed once, pointing at its codes.
#[derive(Debug, Default)]
struct VocabularyTerms {
    /// (code, is a profession)
    codes: Vec<(String, bool)>,
    /// Folded term (all languages) -> code indexes, in term order (prefixes are ranges).
    folded: std::collections::BTreeMap<String, Vec<usize>>,
    /// The folded terms, for those one edit from a query word.
    near: OneEdit,
    /// Per stemmed language (in the index's order): stemmed term -> code indexes.
    stemmed: Vec<HashMap<String, Vec<usize>>>,
}

impl VocabularyTerms {
    fn new(vocabulary: &Vocabulary, stemmed: &[(&'static str, Field)]) -> Self {
        let mut me = VocabularyTerms {
            stemmed: vec![HashMap::new(); stemmed.len()],
            ..Default::default()
        };
        let items = vocabulary
            .professions()
            .iter()
            .map(|p| (p.code(), true, p.name(), p.synonyms()))
            .chain(
                vocabulary
                    .competences()
                    .iter()
                    .map(|c| (c.code(), false, c.name(), c.synonyms())),
            );
        for (code, profession, name, synonyms) in items {
            let i = me.codes.len();
            me.codes.push((code.to_owned(), profession));
            let add = |map: &mut HashMap<String, Vec<usize>>, term: String| {
                let v = map.entry(term).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            };
            for text in name
                .languages()
                .filter_map(|l| name.get(l))
                .chain(synonyms.iter().map(|(_, s)| s))
            {
                for t in Analyzer::Folded.terms(text) {
                    let v = me.folded.entry(t).or_default();
                    if !v.contains(&i) {
                        v.push(i);
                    }
                }
            }
            for (k, (lang, _)) in stemmed.iter().enumerate() {
                let analyzer = Analyzer::Stemmed(lang);
                for text in name
                    .get(lang)
                    .into_iter()
                    .chain(synonyms.get(lang).iter().map(String::as_str))
                {
                    for t in analyzer.terms(text) {
                        if let Some(map) = me.stemmed.get_mut(k) {
                            add(map, t);
                        }
                    }
                }
            }
        }
        me.near.insert(me.folded.keys().map(String::as_str));
        me
    }

    /// The codes a query word names, each with the best boost it reaches: its folded form
    /// (2), its stem in a searched language (1.5), one edit away (1), or, for the last word,
    /// as a prefix (0.5). Words under three letters name nothing.
    fn codes_of(
        &self,
        lower: &str,
        folded: &str,
        langs: &[usize],
        stems: &[String],
        fuzzy: bool,
        prefix: bool,
    ) -> Vec<(usize, f32)> {
        let mut best: HashMap<usize, f32> = HashMap::new();
        let mut hit = |codes: &[usize], boost: f32| {
            for c in codes {
                let b = best.entry(*c).or_insert(0.0);
                *b = b.max(boost);
            }
        };
        if folded.chars().count() < 3 || lower.is_empty() {
            return Vec::new();
        }
        if let Some(c) = self.folded.get(folded) {
            hit(c, 2.0);
        }
        for (k, stem) in langs.iter().zip(stems) {
            if let Some(c) = self.stemmed.get(*k).and_then(|m| m.get(stem)) {
                hit(c, 1.5);
            }
        }
        if prefix {
            for (term, codes) in self.folded.range::<str, _>((
                std::ops::Bound::Excluded(folded),
                std::ops::Bound::Unbounded,
            )) {
                if !term.starts_with(folded) {
                    break;
                }
                hit(codes, 0.5);
            }
        }
        if fuzzy {
            for t in self.near.near(folded) {
                if t != folded
                    && let Some(codes) = self.folded.get(t)
                {
                    hit(codes, 1.0);
                }
            }
        }
        let mut out: Vec<(usize, f32)> = best.into_iter().collect();
        out.sort_by_key(|(c, _)| *c);
        out
    }
}

fn tokens(terms: impl IntoIterator<Item = String>) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens: terms
            .into_iter()
            .enumerate()
            .map(|(position, text)| Token {
                offset_from: 0,
                offset_to: 0,
                position,
                text,
                position_length: 1,
            })
            .collect(),
    }
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("documents", &self.len())
            .finish()
    }
}

fn text_options(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqs),
    )
}

impl SearchIndex {
    /// An index over `authorities` (each with whether it is retired); the vocabulary gives
    /// the professions' and competences' terms.
    pub fn build<'a>(
        vocabulary: Arc<Vocabulary>,
        authorities: impl IntoIterator<Item = (&'a Authority, bool)>,
    ) -> Result<SearchIndex, SearchError> {
        let mut sb = Schema::builder();
        let fields = Fields {
            id: sb.add_text_field("id", STRING),
            number: sb.add_u64_field("number", FAST),
            country: sb.add_text_field("country", STRING),
            level: sb.add_text_field("level", STRING),
            area: sb.add_text_field("area", STRING),
            procedure: sb.add_text_field("procedure", STRING),
            profession: sb.add_text_field("profession", STRING),
            competence: sb.add_text_field("competence", STRING),
            retired: sb.add_text_field("retired", STRING),
            folded: sb.add_text_field("folded", text_options(&Analyzer::Folded.name())),
        };
        let stemmed: Vec<(&'static str, Field)> = stemmed_languages()
            .map(|l| {
                let name = Analyzer::Stemmed(l).name();
                (
                    l,
                    sb.add_text_field(&format!("stem_{l}"), text_options(&name)),
                )
            })
            .collect();
        let index = Index::create_in_ram(sb.build());
        let tokenizers = index.tokenizers();
        tokenizers.register(&Analyzer::Folded.name(), Tokenizer::new(Analyzer::Folded));
        for (l, _) in &stemmed {
            tokenizers.register(
                &Analyzer::Stemmed(l).name(),
                Tokenizer::new(Analyzer::Stemmed(l)),
            );
        }
        let writer = index.writer_with_num_threads(1, WRITER_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let vocabulary = VocabularyTerms::new(&vocabulary, &stemmed);
        let me = SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            stemmed,
            vocabulary,
            near: RwLock::default(),
            numbers: RwLock::default(),
        };
        me.apply(authorities)?;
        Ok(me)
    }

    /// Adds or replaces these authorities (each with whether it is retired), then makes the
    /// change visible to searches.
    pub fn apply<'a>(
        &self,
        authorities: impl IntoIterator<Item = (&'a Authority, bool)>,
    ) -> Result<(), SearchError> {
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| SearchError::Index("writer lock poisoned".into()))?;
        let mut folded = HashSet::new();
        let mut numbers = self.numbers.write().unwrap_or_else(|p| p.into_inner());
        for (a, retired) in authorities {
            writer.delete_term(Term::from_field_text(self.fields.id, a.id.as_str()));
            let mut doc = self.document(a, retired, &mut folded);
            doc.add_u64(self.fields.number, numbers.of(&a.id));
            writer.add_document(doc)?;
        }
        drop(numbers);
        self.near
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(folded.iter().map(String::as_str));
        writer.commit()?;
        drop(writer);
        self.reader.reload()?;
        Ok(())
    }

    /// Replaces every document with these authorities.
    pub fn replace_all<'a>(
        &self,
        authorities: impl IntoIterator<Item = (&'a Authority, bool)>,
    ) -> Result<(), SearchError> {
        {
            let writer = self
                .writer
                .lock()
                .map_err(|_| SearchError::Index("writer lock poisoned".into()))?;
            writer.delete_all_documents()?;
            *self.near.write().unwrap_or_else(|p| p.into_inner()) = OneEdit::default();
        }
        self.apply(authorities)
    }

    /// Number of documents (authorities, retired included).
    pub fn len(&self) -> usize {
        usize::try_from(self.reader.searcher().num_docs()).unwrap_or(usize::MAX)
    }

    /// Whether it holds no authority.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The document of `a`; its folded terms are added to `folded`.
    fn document(
        &self,
        a: &Authority,
        retired: bool,
        folded_terms: &mut HashSet<String>,
    ) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::default();
        doc.add_text(f.id, a.id.as_str());
        doc.add_text(f.country, a.country.as_str());
        doc.add_text(f.level, a.level.as_str());
        doc.add_text(f.retired, if retired { "true" } else { "false" });
        for (field, codes) in [
            (f.area, &a.areas),
            (f.procedure, &a.procedures),
            (f.profession, &a.professions),
            (f.competence, &a.competences),
        ] {
            for c in codes {
                doc.add_text(field, c);
            }
        }
        let places: Vec<&str> = a
            .city
            .iter()
            .chain(a.region.iter())
            .map(String::as_str)
            .collect();
        // Folded: everything in every language.
        let folded = Analyzer::Folded;
        let mut terms: Vec<String> = folded.terms(a.id.as_str());
        for text in a
            .names
            .values()
            .map(String::as_str)
            .chain(places.iter().copied())
        {
            terms.extend(folded.terms(text));
        }
        folded_terms.extend(terms.iter().cloned());
        doc.add_pre_tokenized_text(f.folded, tokens(terms));
        // Stemmed: each language's own words.
        for (lang, field) in &self.stemmed {
            let analyzer = Analyzer::Stemmed(lang);
            let mut terms = Vec::new();
            for text in a
                .names
                .get(*lang)
                .map(String::as_str)
                .into_iter()
                .chain(places.iter().copied())
            {
                terms.extend(analyzer.terms(text));
            }
            doc.add_pre_tokenized_text(*field, tokens(terms));
        }
        doc
    }

    /// Checks a query's size and page without running it.
    pub fn check(q: &SearchQuery) -> Result<(), SearchError> {
        if q.text.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::TooLong);
        }
        if q.text.chars().any(char::is_control) {
            return Err(SearchError::ControlCharacters);
        }
        if q.limit == 0 || q.limit > MAX_LIMIT || q.offset > MAX_OFFSET {
            return Err(SearchError::Page);
        }
        let n = words(&q.text).len();
        if n > MAX_QUERY_WORDS {
            return Err(SearchError::TooLong);
        }
        let filtered = q.country.is_some()
            || q.level.is_some()
            || q.area.is_some()
            || q.procedure.is_some()
            || q.profession.is_some()
            || q.competence.is_some();
        if n == 0 && !filtered {
            return Err(SearchError::Empty);
        }
        Ok(())
    }

    /// Runs a query.
    pub fn search(&self, q: &SearchQuery) -> Result<Hits, SearchError> {
        Self::check(q)?;
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let ws = words(&q.text);
        if !ws.is_empty() {
            let langs: Vec<(usize, &'static str, Field)> = self
                .stemmed
                .iter()
                .enumerate()
                .filter(|(_, (s, _))| q.lang.as_deref().is_none_or(|l| *s == l))
                .map(|(k, (s, f))| (k, *s, *f))
                .collect();
            let lang_ix: Vec<usize> = langs.iter().map(|(k, _, _)| *k).collect();
            let last = ws.len() - 1;
            let per_word: Vec<(Occur, Box<dyn Query>)> = ws
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let folded = fold(&w.lower);
                    let fterm = Term::from_field_text(f.folded, &folded);
                    let mut alts: Vec<(Occur, Box<dyn Query>)> = vec![boosted(
                        Box::new(TermQuery::new(fterm.clone(), IndexRecordOption::WithFreqs)),
                        2.0,
                    )];
                    let mut stems = Vec::with_capacity(langs.len());
                    for (_, l, field) in &langs {
                        let stem = Analyzer::Stemmed(l).term(&w.lower);
                        alts.push(boosted(
                            Box::new(TermQuery::new(
                                Term::from_field_text(*field, &stem),
                                IndexRecordOption::WithFreqs,
                            )),
                            1.5,
                        ));
                        stems.push(stem);
                    }
                    let chars = folded.chars().count();
                    // The professions and competences this word names, in any language.
                    for (code, boost) in self.vocabulary.codes_of(
                        &w.lower,
                        &folded,
                        &lang_ix,
                        &stems,
                        chars >= 4,
                        i == last,
                    ) {
                        if let Some((code, profession)) = self.vocabulary.codes.get(code) {
                            let field = if *profession {
                                f.profession
                            } else {
                                f.competence
                            };
                            alts.push(boosted(
                                Box::new(TermQuery::new(
                                    Term::from_field_text(field, code),
                                    IndexRecordOption::Basic,
                                )),
                                boost,
                            ));
                        }
                    }
                    if chars >= 4 {
                        // The terms one edit away, looked up (`near`) rather than found by
                        // running a Levenshtein automaton over the term dictionary: the same
                        // documents, the same constant score, a fraction of the cost.
                        // (A TermSetQuery would build an FST per query: slower than
                        // the automaton.)
                        let near: Vec<(Occur, Box<dyn Query>)> = self
                            .near
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .near(&folded)
                            .into_iter()
                            .map(|t| {
                                let q: Box<dyn Query> = Box::new(TermQuery::new(
                                    Term::from_field_text(f.folded, t),
                                    IndexRecordOption::Basic,
                                ));
                                (Occur::Should, q)
                            })
                            .collect();
                        if !near.is_empty() {
                            alts.push(boosted(
                                Box::new(ConstScoreQuery::new(
                                    Box::new(BooleanQuery::new(near)),
                                    1.0,
                                )),
                                1.0,
                            ));
                        }
                    }
                    if i == last && folded.chars().count() >= 3 {
                        alts.push(boosted(
                            Box::new(FuzzyTermQuery::new_prefix(fterm, 0, true)),
                            0.5,
                        ));
                    }
                    (
                        Occur::Should,
                        Box::new(BooleanQuery::new(alts)) as Box<dyn Query>,
                    )
                })
                .collect();
            let n = per_word.len();
            let required = if n <= 2 { n } else { n - n / 3 };
            clauses.push((
                Occur::Must,
                Box::new(BooleanQuery::with_minimum_required_clauses(
                    per_word, required,
                )),
            ));
        } else {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let level = q.level.map(|l| l.as_str().to_owned());
        let country = q.country.map(|c| c.as_str().to_owned());
        for (field, value) in [
            (f.country, &country),
            (f.level, &level),
            (f.area, &q.area),
            (f.procedure, &q.procedure),
            (f.profession, &q.profession),
            (f.competence, &q.competence),
        ] {
            if let Some(v) = value {
                clauses.push((
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, v),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
        }
        if !q.include_retired {
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.retired, "true"),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        // Fetch the page and a little past it, so that ties at its edge are ordered by id.
        let window = q.offset + q.limit;
        let (top, total) = searcher.search(
            &query,
            &(TopDocs::with_limit(window + 16).order_by_score(), Count),
        )?;
        let mut hits = Vec::with_capacity(top.len());
        // The `number` column of each segment (an index has a few).
        let columns = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("number"))
            .collect::<Result<Vec<_>, _>>()?;
        let numbers = self.numbers.read().unwrap_or_else(|p| p.into_inner());
        for (score, addr) in top {
            let id = columns
                .get(addr.segment_ord as usize)
                .and_then(|c| c.first(addr.doc_id))
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| numbers.ids.get(n));
            if let Some(id) = id {
                hits.push(Hit {
                    id: id.clone(),
                    score,
                });
            }
        }
        drop(numbers);
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.id.as_str().cmp(b.id.as_str()))
        });
        let hits = hits.into_iter().skip(q.offset).take(q.limit).collect();
        Ok(Hits { total, hits })
    }

    /// The tantivy index, for the memory figure of the benchmark.
    pub fn searcher_bytes(&self) -> u64 {
        self.reader
            .searcher()
            .space_usage()
            .map(|s| s.total().get_bytes())
            .unwrap_or(0)
    }

    /// The folded terms one edit from `word` (a folded word), for tests.
    #[doc(hidden)]
    pub fn near_terms(&self, word: &str) -> Vec<String> {
        self.near
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .near(word)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[doc(hidden)]
    pub fn tantivy(&self) -> &Index {
        &self.index
    }
}

fn boosted(q: Box<dyn Query>, boost: f32) -> (Occur, Box<dyn Query>) {
    (Occur::Should, Box::new(BoostQuery::new(q, boost)))
}
