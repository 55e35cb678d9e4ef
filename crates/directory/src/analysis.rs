//! Text analysis shared by the index and the queries: one segmentation, then lowercase,
//! stem (in the languages that have a Snowball stemmer) and fold accents.
//!
//! Every analyzer splits text the same way (maximal runs of alphanumeric characters), so the
//! i-th token of a query under one analyzer is the same word as the i-th under another: a
//! query is built word by word from the folded form and each language's stemmed form.
//!
//! **Folding** (every language): Unicode lowercase, canonical decomposition with the
//! combining marks removed (`é`→`e`, `ő`→`o`, Greek tonos and dialytika, Cyrillic `й`→`и`),
//! Greek final sigma `ς`→`σ`, and the letters that do not decompose (`ß`→`ss`, `æ`→`ae`,
//! `ø`→`o`, `đ`→`d`, `ł`→`l`, `þ`→`th`, `ð`→`d`, `œ`→`oe`, `ħ`→`h`, `ı`→`i`). A query typed
//! without accents ("medecin") meets the accented name ("Médecin").
//!
//! **Stemming** runs on the lowercase word before folding (the Snowball algorithms expect
//! their language's letters), then the stem is folded. [`stemmer_for`] says which of the
//! 26 languages have one: 19 do; Bulgarian, Croatian, Icelandic, Latvian, Maltese, Slovak
//! and Slovenian are folded only.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The languages with a stemmer, by ISO 639-1 code, and the Snowball algorithm for each.
const STEMMERS: &[(&str, frostem::Algorithm)] = &[
    ("cs", frostem::Algorithm::Czech),
    ("da", frostem::Algorithm::Danish),
    ("de", frostem::Algorithm::German),
    ("el", frostem::Algorithm::Greek),
    ("en", frostem::Algorithm::English),
    ("es", frostem::Algorithm::Spanish),
    ("et", frostem::Algorithm::Estonian),
    ("fi", frostem::Algorithm::Finnish),
    ("fr", frostem::Algorithm::French),
    ("ga", frostem::Algorithm::Irish),
    ("hu", frostem::Algorithm::Hungarian),
    ("it", frostem::Algorithm::Italian),
    ("lt", frostem::Algorithm::Lithuanian),
    ("nl", frostem::Algorithm::Dutch),
    ("no", frostem::Algorithm::Norwegian),
    ("pl", frostem::Algorithm::Polish),
    ("pt", frostem::Algorithm::Portuguese),
    ("ro", frostem::Algorithm::Romanian),
    ("sv", frostem::Algorithm::Swedish),
];

/// The languages that have a stemmer, by code.
pub fn stemmed_languages() -> impl Iterator<Item = &'static str> {
    STEMMERS.iter().map(|(l, _)| *l)
}

/// The stemmer for a language code, if it has one.
pub fn stemmer_for(lang: &str) -> Option<frostem::Stemmer> {
    STEMMERS
        .iter()
        .find(|(l, _)| *l == lang)
        .map(|(_, a)| frostem::Stemmer::new(*a))
}

/// A word of the input: its byte range and its lowercase form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Byte offset of its first character.
    pub from: usize,
    /// Byte offset after its last character.
    pub to: usize,
    /// The word in lowercase.
    pub lower: String,
}

/// Splits text into words: maximal runs of alphanumeric characters (combining marks stay
/// with their letter), each lowercased.
pub fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        let part = c.is_alphanumeric() || (start.is_some() && is_combining_mark(c));
        match (part, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(word(text, s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(word(text, s, text.len()));
    }
    out
}

fn word(text: &str, from: usize, to: usize) -> Word {
    Word {
        from,
        to,
        lower: text.get(from..to).unwrap_or_default().to_lowercase(),
    }
}

/// Folds a lowercase word: marks removed, the letters that do not decompose spelled out.
pub fn fold(lower: &str) -> String {
    let mut out = String::with_capacity(lower.len());
    for c in lower.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        match c {
            'ς' => out.push('σ'),
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'ø' => out.push('o'),
            'đ' | 'ð' => out.push('d'),
            'ł' => out.push('l'),
            'þ' => out.push_str("th"),
            'ħ' => out.push('h'),
            'ı' => out.push('i'),
            _ => out.push(c),
        }
    }
    out
}

/// How a word is turned into an index term.
#[derive(Clone)]
pub enum Analyzer {
    /// Folded only: the form every language shares.
    Folded,
    /// Stemmed in a language, then folded.
    Stemmed(&'static str),
}

impl Analyzer {
    /// The term for one lowercase word.
    pub fn term(&self, lower: &str) -> String {
        match self {
            Analyzer::Folded => fold(lower),
            Analyzer::Stemmed(lang) => match stemmer_for(lang) {
                Some(s) => fold(&s.stem(lower)),
                None => fold(lower),
            },
        }
    }

    /// The terms of a text, one per word, in order.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let stemmer = match self {
            Analyzer::Folded => None,
            Analyzer::Stemmed(lang) => stemmer_for(lang),
        };
        words(text)
            .into_iter()
            .map(|w| match &stemmer {
                Some(s) => fold(&s.stem(&w.lower)),
                None => fold(&w.lower),
            })
            .collect()
    }

    /// The tokenizer name this analyzer is registered under in the index.
    pub fn name(&self) -> String {
        match self {
            Analyzer::Folded => "imi_folded".to_owned(),
            Analyzer::Stemmed(lang) => format!("imi_stem_{lang}"),
        }
    }
}

/// The analyzer as a tantivy tokenizer.
#[derive(Clone)]
pub struct Tokenizer {
    analyzer: Analyzer,
    stemmer: Option<std::sync::Arc<frostem::Stemmer>>,
}

impl Tokenizer {
    /// A tokenizer for an analyzer.
    pub fn new(analyzer: Analyzer) -> Self {
        let stemmer = match &analyzer {
            Analyzer::Folded => None,
            Analyzer::Stemmed(lang) => stemmer_for(lang).map(std::sync::Arc::new),
        };
        Tokenizer { analyzer, stemmer }
    }

    /// Which analyzer this is.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }
}

/// The tokens of one text.
pub struct Tokens {
    tokens: Vec<tantivy::tokenizer::Token>,
    next: usize,
}

impl tantivy::tokenizer::Tokenizer for Tokenizer {
    type TokenStream<'a> = Tokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Tokens {
        let tokens = words(text)
            .into_iter()
            .enumerate()
            .map(|(position, w)| tantivy::tokenizer::Token {
                offset_from: w.from,
                offset_to: w.to,
                position,
                text: match &self.stemmer {
                    Some(s) => fold(&s.stem(&w.lower)),
                    None => fold(&w.lower),
                },
                position_length: 1,
            })
            .collect();
        Tokens { tokens, next: 0 }
    }
}

impl tantivy::tokenizer::TokenStream for Tokens {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    #[allow(clippy::indexing_slicing)] // advance() returned true: next-1 is in range
    fn token(&self) -> &tantivy::tokenizer::Token {
        &self.tokens[self.next.saturating_sub(1)]
    }

    #[allow(clippy::indexing_slicing)] // as above
    fn token_mut(&mut self) -> &mut tantivy::tokenizer::Token {
        &mut self.tokens[self.next.saturating_sub(1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_covers_latin_greek_and_cyrillic() {
        assert_eq!(fold("médecin"), "medecin");
        assert_eq!(fold("οδοντίατρος"), "οδοντιατροσ");
        assert_eq!(fold("zahnärztekammer"), "zahnarztekammer");
        assert_eq!(fold("straße"), "strasse");
        assert_eq!(fold("орган"), "орган");
        assert_eq!(fold("й"), "и");
        assert_eq!(fold("łódź"), "lodz");
        assert_eq!(fold("fogorvos"), "fogorvos");
    }

    #[test]
    fn words_split_on_anything_not_a_letter_or_digit() {
        let w: Vec<String> = words("Ordre des Médecins (Paris)—75")
            .into_iter()
            .map(|w| w.lower)
            .collect();
        assert_eq!(w, ["ordre", "des", "médecins", "paris", "75"]);
        assert!(words("\u{1}\u{2}  \t").is_empty());
        // a lone combining mark is not a word
        assert!(words("\u{301}").is_empty());
    }

    #[test]
    fn stemmed_forms_meet_across_inflections() {
        let de = Analyzer::Stemmed("de");
        assert_eq!(de.terms("Zahnärzte"), de.terms("Zahnarzt"));
        let fr = Analyzer::Stemmed("fr");
        assert_eq!(fr.terms("médecins"), fr.terms("médecin"));
        let el = Analyzer::Stemmed("el");
        assert_eq!(el.terms("οδοντίατροι"), el.terms("Οδοντίατρος"));
        // no stemmer: folded only
        assert_eq!(Analyzer::Stemmed("bg").terms("Зъболекар"), ["зъболекар"]);
        assert_eq!(stemmed_languages().count(), 19);
    }
}
