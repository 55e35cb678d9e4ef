//! The interface's message catalogues (`locales/<lang>.toml`, one per language, the same
//! keys as `en.toml`) and each locale's date and number formats.
//!
//! Catalogue texts (areas, procedures, questions, options) come already translated from the
//! API; these files hold the interface's own labels, messages and errors.
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The 26 languages: the 24 official languages of the EU, Icelandic and Norwegian.
pub const LANGUAGES: [&str; 26] = [
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr", "hu", "is", "it", "lt",
    "lv", "mt", "nl", "no", "pl", "pt", "ro", "sk", "sl", "sv",
];

/// The catalogue files, embedded in the binary.
pub const FILES: [(&str, &str); 26] = [
    ("bg", include_str!("../locales/bg.toml")),
    ("cs", include_str!("../locales/cs.toml")),
    ("da", include_str!("../locales/da.toml")),
    ("de", include_str!("../locales/de.toml")),
    ("el", include_str!("../locales/el.toml")),
    ("en", include_str!("../locales/en.toml")),
    ("es", include_str!("../locales/es.toml")),
    ("et", include_str!("../locales/et.toml")),
    ("fi", include_str!("../locales/fi.toml")),
    ("fr", include_str!("../locales/fr.toml")),
    ("ga", include_str!("../locales/ga.toml")),
    ("hr", include_str!("../locales/hr.toml")),
    ("hu", include_str!("../locales/hu.toml")),
    ("is", include_str!("../locales/is.toml")),
    ("it", include_str!("../locales/it.toml")),
    ("lt", include_str!("../locales/lt.toml")),
    ("lv", include_str!("../locales/lv.toml")),
    ("mt", include_str!("../locales/mt.toml")),
    ("nl", include_str!("../locales/nl.toml")),
    ("no", include_str!("../locales/no.toml")),
    ("pl", include_str!("../locales/pl.toml")),
    ("pt", include_str!("../locales/pt.toml")),
    ("ro", include_str!("../locales/ro.toml")),
    ("sk", include_str!("../locales/sk.toml")),
    ("sl", include_str!("../locales/sl.toml")),
    ("sv", include_str!("../locales/sv.toml")),
];

/// How a locale writes dates and numbers (CLDR's short date pattern and separators).
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// The date with `{d}`, `{m}`, `{y}` (two-digit day and month, four-digit year).
    pub date: &'static str,
    /// Thousands separator.
    pub group: &'static str,
    /// The language's name in itself (the language menu).
    pub name: &'static str,
}

const NBSP: &str = "\u{a0}";

/// The format of `lang` (English's for an unknown code).
pub fn format(lang: &str) -> Format {
    let f = |date, group, name| Format { date, group, name };
    match lang {
        "bg" => f("{d}.{m}.{y} г.", NBSP, "български"),
        "cs" => f("{d}. {m}. {y}", NBSP, "čeština"),
        "da" => f("{d}.{m}.{y}", ".", "dansk"),
        "de" => f("{d}.{m}.{y}", ".", "Deutsch"),
        "el" => f("{d}/{m}/{y}", ".", "ελληνικά"),
        "es" => f("{d}/{m}/{y}", ".", "español"),
        "et" => f("{d}.{m}.{y}", NBSP, "eesti"),
        "fi" => f("{d}.{m}.{y}", NBSP, "suomi"),
        "fr" => f("{d}/{m}/{y}", "\u{202f}", "français"),
        "ga" => f("{d}/{m}/{y}", ",", "Gaeilge"),
        "hr" => f("{d}. {m}. {y}.", ".", "hrvatski"),
        "hu" => f("{y}. {m}. {d}.", NBSP, "magyar"),
        "is" => f("{d}.{m}.{y}", ".", "íslenska"),
        "it" => f("{d}/{m}/{y}", ".", "italiano"),
        "lt" => f("{y}-{m}-{d}", NBSP, "lietuvių"),
        "lv" => f("{d}.{m}.{y}.", NBSP, "latviešu"),
        "mt" => f("{d}/{m}/{y}", ",", "Malti"),
        "nl" => f("{d}-{m}-{y}", ".", "Nederlands"),
        "no" => f("{d}.{m}.{y}", NBSP, "norsk"),
        "pl" => f("{d}.{m}.{y}", NBSP, "polski"),
        "pt" => f("{d}/{m}/{y}", NBSP, "português"),
        "ro" => f("{d}.{m}.{y}", ".", "română"),
        "sk" => f("{d}. {m}. {y}", NBSP, "slovenčina"),
        "sl" => f("{d}. {m}. {y}", ".", "slovenščina"),
        "sv" => f("{y}-{m}-{d}", NBSP, "svenska"),
        _ => f("{d}/{m}/{y}", ",", "English"),
    }
}

/// Every language's messages. All are checked when loaded; English is kept parsed, and
/// another language is parsed again at its first use (a node's users read a few of the 26:
/// the others cost no memory).
#[derive(Debug)]
pub struct Messages {
    en: BTreeMap<String, String>,
    others: BTreeMap<&'static str, Lazy>,
}

/// A checked catalogue, parsed at its first use.
#[derive(Debug)]
struct Lazy {
    /// The text embedded in the binary (`None`: the table was given parsed, and is set).
    text: Option<&'static str>,
    table: OnceLock<BTreeMap<String, String>>,
}

/// A catalogue file that does not parse or lacks a key of `en.toml`.
#[derive(Debug)]
pub struct CatalogueError(pub String);

impl std::error::Error for CatalogueError {}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Messages {
    /// Checks the embedded catalogues: every file must have exactly `en.toml`'s keys, each
    /// with the same placeholders.
    pub fn load() -> Result<Self, CatalogueError> {
        let mut me = Self::from_files(&FILES)?;
        // Embedded text parses the same way every time: keep the text, not the tables.
        for (lang, text) in FILES {
            if let Some(l) = me.others.get_mut(lang) {
                *l = Lazy {
                    text: Some(text),
                    table: OnceLock::new(),
                };
            }
        }
        Ok(me)
    }

    /// Parses and checks catalogues given as `(lang, text)`; all are kept parsed.
    pub fn from_files(files: &[(&'static str, &str)]) -> Result<Self, CatalogueError> {
        let mut by_lang = BTreeMap::new();
        for (lang, text) in files {
            by_lang.insert(*lang, parse(lang, text)?);
        }
        let en = by_lang
            .remove("en")
            .ok_or_else(|| CatalogueError("locales/en.toml is missing".into()))?;
        for (lang, table) in &by_lang {
            check(lang, table, &en)?;
        }
        let others = by_lang
            .into_iter()
            .map(|(lang, table)| {
                (
                    lang,
                    Lazy {
                        text: None,
                        table: OnceLock::from(table),
                    },
                )
            })
            .collect();
        Ok(Self { en, others })
    }

    /// The table of `lang`, parsed now if it is not yet (`None`: unknown language).
    fn table(&self, lang: &str) -> Option<&BTreeMap<String, String>> {
        if lang == "en" {
            return Some(&self.en);
        }
        let l = self.others.get(lang)?;
        // Checked by `load`: parsing it again cannot fail.
        Some(l.table.get_or_init(|| {
            l.text
                .and_then(|text| parse(lang, text).ok())
                .unwrap_or_default()
        }))
    }

    /// The message `key` in `lang` (English if the language is unknown; the key itself if
    /// no catalogue has it, which the tests rule out for every key the pages use).
    pub fn get<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.table(lang)
            .and_then(|t| t.get(key))
            .or_else(|| self.en.get(key))
            .map_or(key, String::as_str)
    }

    /// Whether the catalogue has `key`.
    pub fn has(&self, key: &str) -> bool {
        self.en.contains_key(key)
    }

    /// The keys of `en.toml`.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.en.keys().map(String::as_str)
    }

    /// How many languages are parsed in memory now (English always).
    pub fn parsed_languages(&self) -> usize {
        1 + self
            .others
            .values()
            .filter(|l| l.table.get().is_some())
            .count()
    }
}

fn parse(lang: &str, text: &str) -> Result<BTreeMap<String, String>, CatalogueError> {
    toml::from_str(text).map_err(|e| CatalogueError(format!("locales/{lang}.toml: {e}")))
}

/// `table` has exactly `en`'s keys, none empty, each with `en`'s placeholders.
fn check(
    lang: &str,
    table: &BTreeMap<String, String>,
    en: &BTreeMap<String, String>,
) -> Result<(), CatalogueError> {
    for (k, v) in en {
        let t = table
            .get(k)
            .ok_or_else(|| CatalogueError(format!("locales/{lang}.toml lacks {k}")))?;
        if t.trim().is_empty() {
            return Err(CatalogueError(format!("locales/{lang}.toml: {k} is empty")));
        }
        if placeholders(t) != placeholders(v) {
            return Err(CatalogueError(format!(
                "locales/{lang}.toml: {k} has placeholders {:?}, en.toml {:?}",
                placeholders(t),
                placeholders(v)
            )));
        }
    }
    if let Some(k) = table.keys().find(|k| !en.contains_key(*k)) {
        return Err(CatalogueError(format!(
            "locales/{lang}.toml has {k}, which en.toml has not"
        )));
    }
    Ok(())
}

/// The `{name}` placeholders of a message, sorted.
pub fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let after = rest.get(i + 1..).unwrap_or("");
        let Some(j) = after.find('}') else { break };
        let name = after.get(..j).unwrap_or("");
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            out.push(name);
        }
        rest = after.get(j + 1..).unwrap_or("");
    }
    out.sort_unstable();
    out
}

/// `template` with each `{name}` replaced by its value.
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in args {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// A `YYYY-MM-DD` date (or the date part of an RFC 3339 time) in the locale's format;
/// anything else unchanged.
pub fn date(lang: &str, iso: &str) -> String {
    let d = iso.get(..10).unwrap_or(iso);
    let mut parts = d.split('-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(dd)) if y.len() == 4 && m.len() == 2 && dd.len() == 2 => {
            fill(format(lang).date, &[("y", y), ("m", m), ("d", dd)])
        }
        _ => iso.to_owned(),
    }
}

/// An RFC 3339 UTC time as the locale's date and `HH:MM` (UTC).
pub fn time(lang: &str, rfc3339: &str) -> String {
    match rfc3339.get(11..16) {
        Some(hm) if rfc3339.len() >= 16 => format!("{} {hm} UTC", date(lang, rfc3339)),
        _ => rfc3339.to_owned(),
    }
}

/// An integer with the locale's thousands separator.
pub fn number(lang: &str, n: u64) -> String {
    let digits = n.to_string();
    let group = format(lang).group;
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(group);
        }
        out.push(c);
    }
    out
}

/// The language to use: the user's choice if known, else the first known language of
/// `Accept-Language` by quality, else English.
pub fn negotiate(choice: Option<&str>, accept_language: Option<&str>) -> &'static str {
    let known = |l: &str| LANGUAGES.iter().copied().find(|x| *x == l);
    if let Some(l) = choice.and_then(known) {
        return l;
    }
    let mut prefs: Vec<(f32, &'static str)> = accept_language
        .unwrap_or("")
        .split(',')
        .take(32)
        .filter_map(|part| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next()?.to_ascii_lowercase();
            let primary = match primary.as_str() {
                "nb" | "nn" => "no",
                p => p,
            };
            Some((q, known(primary)?))
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    prefs.sort_by(|a, b| b.0.total_cmp(&a.0));
    prefs.first().map_or("en", |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(date("de", "2026-12-04"), "04.12.2026");
        assert_eq!(date("hu", "2026-12-04T10:00:00Z"), "2026. 12. 04.");
        assert_eq!(date("en", "2026-12-04"), "04/12/2026");
        assert_eq!(time("de", "2026-12-04T10:07:00Z"), "04.12.2026 10:07 UTC");
        assert_eq!(number("de", 1_234_567), "1.234.567");
        assert_eq!(number("en", 999), "999");
        assert_eq!(number("fr", 12_345), "12\u{202f}345");
        assert_eq!(negotiate(None, Some("hu-HU,hu;q=0.9,en;q=0.8")), "hu");
        assert_eq!(negotiate(None, Some("xx, de;q=0.5")), "de");
        assert_eq!(negotiate(Some("el"), Some("de")), "el");
        assert_eq!(negotiate(Some("zz"), Some("nb-NO")), "no");
        assert_eq!(negotiate(None, None), "en");
        assert_eq!(placeholders("a {x} b {y_z} {"), vec!["x", "y_z"]);
    }
}
