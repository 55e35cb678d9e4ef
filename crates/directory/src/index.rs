//! The search index over a directory replica (tantivy, in memory).
//!
//! One document per authority. Fields:
//!
//! * `id` (stored), and exact-match filters `country`, `level`, `area`, `procedure`,
//!   `profession`, `competence`, `retired`;
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
//! insertion, deletion, substitution or transposition; boost 1); the last word also matches
//! as a prefix (boost 0.5, typing ahead); the codes it names count with the same boosts. Up
//! to two words must all match, from three on all but a third of them. Filters must all
//! hold; retired authorities are left out unless asked for. Hits are ranked by BM25 score,
//! ties by id.
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
}

/// A folded vocabulary term as characters, and the codes it names.
type SpelledTerm = (Vec<char>, Vec<usize>);

/// Every name and synonym of the vocabularies, analysed once, pointing at its codes.
#[derive(Debug, Default)]
struct VocabularyTerms {
    /// (code, is a profession)
    codes: Vec<(String, bool)>,
    /// Folded term (all languages) -> code indexes, in term order (prefixes are ranges).
    folded: std::collections::BTreeMap<String, Vec<usize>>,
    /// The folded terms by length in characters, for the one-edit scan.
    by_len: HashMap<usize, Vec<SpelledTerm>>,
    /// Per stemmed language (in the index's order): stemmed term -> code indexes.
    stemmed: Vec<HashMap<String, Vec<usize>>>,
}

fn rest(x: &[char], i: usize) -> &[char] {
    x.get(i..).unwrap_or_default()
}

/// Whether two words are at most one edit apart (insertion, deletion, substitution, or a
/// transposition of neighbours).
fn within_one_edit(a: &[char], b: &[char]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let start = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if start == long.len() {
        return true;
    }
    if short.len() == long.len() {
        // substitution, or transposition of start and start+1
        rest(short, start + 1) == rest(long, start + 1)
            || (short.get(start) == long.get(start + 1)
                && short.get(start + 1) == long.get(start)
                && rest(short, start + 2) == rest(long, start + 2))
    } else {
        rest(short, start) == rest(long, start + 1)
    }
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
        for (term, codes) in &me.folded {
            let chars: Vec<char> = term.chars().collect();
            me.by_len
                .entry(chars.len())
                .or_default()
                .push((chars, codes.clone()));
        }
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
            let w: Vec<char> = folded.chars().collect();
            for len in [w.len().saturating_sub(1), w.len(), w.len() + 1] {
                for (t, codes) in self.by_len.get(&len).into_iter().flatten() {
                    if *t != w && within_one_edit(&w, t) {
                        hit(codes, 1.0);
                    }
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
        let vocabulary = VocabularyTerms::new(&vocabulary, &stemmed);
        let me = SearchIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            stemmed,
            vocabulary,
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

#[cfg(test)]
mod tests {
    use super::within_one_edit;

    fn one(a: &str, b: &str) -> bool {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        within_one_edit(&a, &b)
    }

    #[test]
    fn one_edit_apart() {
        assert!(one("zahnarzt", "zahnarzt"));
        assert!(one("zahnartz", "zahnarzt"), "transposition");
        assert!(one("zahnrzt", "zahnarzt"), "deletion");
        assert!(one("zahnarzzt", "zahnarzt"), "insertion");
        assert!(one("zahnarxt", "zahnarzt"), "substitution");
        assert!(one("οδοντιατροσ", "οδοντιατρος"));
        assert!(!one("zxhnartz", "zahnarzt"));
        assert!(!one("zahn", "zahnarzt"));
        assert!(!one("abcd", "badc"));
    }
}
