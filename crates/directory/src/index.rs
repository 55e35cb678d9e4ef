//! The search index over a directory replica (tantivy, in memory).
//!
//! One document per authority. Fields:
//!
//! * `id` (stored), and exact-match filters `country`, `level`, `area`, `procedure`,
//!   `profession`, `competence`, `retired`;
//! * `folded`: every name in every language, the id, city and region, and every name and
//!   synonym of the authority's professions and competences in all 26 languages, folded
//!   ([`crate::analysis`]); a word typed in any language, with or without accents, meets it;
//! * `stem_<lang>` for each of the 19 languages with a stemmer: the name in that language,
//!   city and region, and the professions' and competences' terms in that language, stemmed
//!   then folded ("Zahnärzte" meets "Zahnarzt").
//!
//! A query is analysed word by word (at most [`MAX_QUERY_WORDS`]); a word matches its folded
//! form (boost 2), its stem in the caller's language or, without one, in every stemmed
//! language (boost 1.5), and, from four letters on, any folded term one edit away (one typo:
//! insertion, deletion, substitution or transposition; boost 1); the last word also matches
//! as a prefix (boost 0.5, typing ahead). Up to two words must all match, from three on all
//! but a third of them. Filters must all hold; retired authorities are left out unless asked
//! for. Hits are ranked by BM25 score, ties by id.
//!
//! The index is rebuilt from the replica at start ([`SearchIndex::build`]) and changed with
//! every applied update ([`SearchIndex::apply`]).

use crate::analysis::{Analyzer, Tokenizer, fold, stemmed_languages, words};
use imi_domain::{Authority, Level, Vocabulary};
use imi_protocol::ids::{AuthorityId, NodeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
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
/// Memory budget of the index writer, bytes.
const WRITER_BYTES: usize = 32 * 1024 * 1024;

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
    /// Every vocabulary code's terms, analysed once: folded (all languages) and per
    /// stemmed language (in `stemmed` order). Documents take them pre-tokenized.
    code_terms: HashMap<String, CodeTerms>,
}

#[derive(Debug, Default)]
struct CodeTerms {
    folded: Vec<String>,
    stemmed: Vec<Vec<String>>,
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
            id: sb.add_text_field("id", STRING | STORED),
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
        let code_terms = Self::analyse_vocabulary(&vocabulary, &stemmed);
        let me = SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            stemmed,
            code_terms,
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
        for (a, retired) in authorities {
            writer.delete_term(Term::from_field_text(self.fields.id, a.id.as_str()));
            writer.add_document(self.document(a, retired))?;
        }
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

    fn document(&self, a: &Authority, retired: bool) -> TantivyDocument {
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
        let codes: Vec<&CodeTerms> = a
            .professions
            .iter()
            .chain(a.competences.iter())
            .filter_map(|c| self.code_terms.get(c))
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
        for c in &codes {
            terms.extend(c.folded.iter().cloned());
        }
        doc.add_pre_tokenized_text(f.folded, tokens(terms));
        // Stemmed: each language's own words.
        for (i, (lang, field)) in self.stemmed.iter().enumerate() {
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
            for c in &codes {
                terms.extend(c.stemmed.get(i).into_iter().flatten().cloned());
            }
            doc.add_pre_tokenized_text(*field, tokens(terms));
        }
        doc
    }

    fn analyse_vocabulary(
        vocabulary: &Vocabulary,
        stemmed: &[(&'static str, Field)],
    ) -> HashMap<String, CodeTerms> {
        let mut out = HashMap::new();
        let items = vocabulary
            .professions()
            .iter()
            .map(|p| (p.code(), p.name(), p.synonyms()))
            .chain(
                vocabulary
                    .competences()
                    .iter()
                    .map(|c| (c.code(), c.name(), c.synonyms())),
            );
        for (code, name, synonyms) in items {
            let mut folded = Vec::new();
            for text in name
                .languages()
                .filter_map(|l| name.get(l))
                .chain(synonyms.iter().map(|(_, s)| s))
            {
                folded.extend(Analyzer::Folded.terms(text));
            }
            let stemmed = stemmed
                .iter()
                .map(|(lang, _)| {
                    let analyzer = Analyzer::Stemmed(lang);
                    name.get(lang)
                        .into_iter()
                        .chain(synonyms.get(lang).iter().map(String::as_str))
                        .flat_map(|t| analyzer.terms(t))
                        .collect()
                })
                .collect();
            out.insert(code.to_owned(), CodeTerms { folded, stemmed });
        }
        out
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
            let langs: Vec<(&'static str, Field)> = match q.lang.as_deref() {
                Some(l) => self
                    .stemmed
                    .iter()
                    .filter(|(s, _)| *s == l)
                    .copied()
                    .collect(),
                None => self.stemmed.clone(),
            };
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
                    for (l, field) in &langs {
                        let stem = Analyzer::Stemmed(l).term(&w.lower);
                        alts.push(boosted(
                            Box::new(TermQuery::new(
                                Term::from_field_text(*field, &stem),
                                IndexRecordOption::WithFreqs,
                            )),
                            1.5,
                        ));
                    }
                    if folded.chars().count() >= 4 {
                        alts.push(boosted(
                            Box::new(FuzzyTermQuery::new(fterm.clone(), 1, true)),
                            1.0,
                        ));
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
        for (score, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let id = doc
                .get_first(f.id)
                .and_then(|v| v.as_str())
                .and_then(|s| AuthorityId::new(s).ok());
            if let Some(id) = id {
                hits.push(Hit { id, score });
            }
        }
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

    #[doc(hidden)]
    pub fn tantivy(&self) -> &Index {
        &self.index
    }
}

fn boosted(q: Box<dyn Query>, boost: f32) -> (Occur, Box<dyn Query>) {
    (Occur::Should, Box::new(BoostQuery::new(q, boost)))
}
