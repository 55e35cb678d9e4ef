//! The directory as CSV (RFC 4180), for operators who keep their register in a spreadsheet:
//! `imi-node directory import FILE.csv` and `directory export --format csv`.
//!
//! The first row names the columns: `id`, `country`, `level`, `city`, `region`, `areas`,
//! `procedures`, `professions`, `competences`, then one `name_<lang>` column per language
//! (`name_de`, `name_en`, ...). Lists hold codes separated by `|` (`PQ|SD`). Fields with a
//! comma, a quote or a line break are quoted, quotes doubled. Empty cells are absent values.
//! Columns may come in any order; an unknown column is an error naming it, so is a row with
//! another number of fields than the header, or a record that does not validate.

use imi_domain::{Authority, AuthorityError, Level};
use imi_protocol::ids::{AuthorityId, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// Largest CSV text read, bytes.
pub const MAX_CSV_BYTES: usize = 64 * 1024 * 1024;

const FIXED: [&str; 9] = [
    "id",
    "country",
    "level",
    "city",
    "region",
    "areas",
    "procedures",
    "professions",
    "competences",
];

/// Why a CSV file is refused; every message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// Larger than [`MAX_CSV_BYTES`].
    #[error("the file is larger than {MAX_CSV_BYTES} bytes")]
    TooLarge,
    /// An unclosed quote, or a quote inside an unquoted field.
    #[error("line {0}: malformed quoting")]
    Quoting(usize),
    /// No header, an unknown or repeated column, or a required one missing.
    #[error("header: {0}")]
    Header(String),
    /// A row with another number of fields than the header.
    #[error("line {line}: {got} fields, the header has {want}")]
    Width {
        /// The line.
        line: usize,
        /// Fields found.
        got: usize,
        /// Fields in the header.
        want: usize,
    },
    /// A value that does not parse (id, country, level).
    #[error("line {line}: bad {what}")]
    Value {
        /// The line.
        line: usize,
        /// Which column.
        what: &'static str,
    },
    /// The record does not validate.
    #[error("line {line}: {source}")]
    Authority {
        /// The line.
        line: usize,
        /// Why.
        source: AuthorityError,
    },
}

/// Splits CSV text into rows of fields, with the line each row starts on.
fn rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let mut out = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut line = 1;
    let mut row_line = 1;
    let mut quote_line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
                quote_line = line;
            }
            '"' => return Err(CsvError::Quoting(line)),
            ',' => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
                if !(row.len() == 1 && row.first().is_some_and(String::is_empty)) {
                    out.push((row_line, std::mem::take(&mut row)));
                } else {
                    row.clear();
                }
                line += 1;
                row_line = line;
            }
            _ if was_quoted => return Err(CsvError::Quoting(line)),
            _ => field.push(c),
        }
    }
    if quoted {
        return Err(CsvError::Quoting(quote_line));
    }
    if !field.is_empty() || !row.is_empty() || was_quoted {
        row.push(field);
        out.push((row_line, row));
    }
    Ok(out)
}

fn list(cell: &str) -> Vec<String> {
    cell.split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads authorities from CSV text; every record validated.
pub fn parse(text: &str) -> Result<Vec<Authority>, CsvError> {
    if text.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge);
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut all = rows(text)?.into_iter();
    let (_, header) = all
        .next()
        .ok_or_else(|| CsvError::Header("no header row".into()))?;
    let mut seen = BTreeSet::new();
    for h in &header {
        let known = FIXED.contains(&h.as_str())
            || h.strip_prefix("name_").is_some_and(|l| {
                (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase())
            });
        if !known {
            return Err(CsvError::Header(format!("unknown column {h:?}")));
        }
        if !seen.insert(h.as_str()) {
            return Err(CsvError::Header(format!("column {h:?} twice")));
        }
    }
    for required in ["id", "country", "level"] {
        if !seen.contains(required) {
            return Err(CsvError::Header(format!("no {required} column")));
        }
    }
    let mut out = Vec::new();
    for (line, row) in all {
        if row.len() != header.len() {
            return Err(CsvError::Width {
                line,
                got: row.len(),
                want: header.len(),
            });
        }
        let cell: BTreeMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(row.iter().map(|c| c.trim()))
            .collect();
        let get = |k: &str| cell.get(k).copied().unwrap_or("");
        let opt = |k: &str| Some(get(k).to_owned()).filter(|s| !s.is_empty());
        let id = AuthorityId::new(get("id")).map_err(|_| CsvError::Value { line, what: "id" })?;
        let country: NodeId = get("country").parse().map_err(|_| CsvError::Value {
            line,
            what: "country",
        })?;
        let level = match get("level") {
            "national" => Level::National,
            "regional" => Level::Regional,
            "local" => Level::Local,
            _ => {
                return Err(CsvError::Value {
                    line,
                    what: "level",
                });
            }
        };
        let names = cell
            .iter()
            .filter_map(|(k, v)| {
                let lang = k.strip_prefix("name_")?;
                (!v.is_empty()).then(|| (lang.to_owned(), (*v).to_owned()))
            })
            .collect();
        let a = Authority {
            id,
            country,
            names,
            level,
            areas: list(get("areas")),
            procedures: list(get("procedures")),
            professions: list(get("professions")),
            competences: list(get("competences")),
            city: opt("city"),
            region: opt("region"),
        };
        a.validate()
            .map_err(|source| CsvError::Authority { line, source })?;
        out.push(a);
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Writes authorities as CSV: the fixed columns, then a name column per language any of
/// them uses, in code order.
pub fn render(authorities: &[Authority]) -> String {
    let langs: BTreeSet<&str> = authorities
        .iter()
        .flat_map(|a| a.names.keys().map(String::as_str))
        .collect();
    let mut out = String::new();
    let header: Vec<String> = FIXED
        .iter()
        .map(|s| (*s).to_owned())
        .chain(langs.iter().map(|l| format!("name_{l}")))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for a in authorities {
        let mut cells = vec![
            quote(a.id.as_str()),
            a.country.as_str().to_owned(),
            a.level.as_str().to_owned(),
            quote(a.city.as_deref().unwrap_or("")),
            quote(a.region.as_deref().unwrap_or("")),
            a.areas.join("|"),
            a.procedures.join("|"),
            a.professions.join("|"),
            a.competences.join("|"),
        ];
        for l in &langs {
            cells.push(quote(a.names.get(*l).map_or("", String::as_str)));
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Authority> {
        vec![Authority {
            id: AuthorityId::new("FR-CNOM").unwrap(),
            country: NodeId::FR,
            names: BTreeMap::from([
                (
                    "fr".to_owned(),
                    "Conseil national de l'Ordre des médecins".to_owned(),
                ),
                (
                    "en".to_owned(),
                    "National Council, \"Order\" of Physicians".to_owned(),
                ),
            ]),
            level: Level::National,
            areas: vec!["PQ".into(), "SD".into()],
            procedures: vec!["PQ-P01".into()],
            professions: vec!["PROF-DOCTOR".into()],
            competences: vec![],
            city: Some("Paris".into()),
            region: None,
        }]
    }

    #[test]
    fn round_trip_with_quotes_commas_and_accents() {
        let text = render(&sample());
        assert!(text.starts_with("id,country,level,city,region,areas,procedures,professions,competences,name_en,name_fr\n"));
        assert!(text.contains("\"National Council, \"\"Order\"\" of Physicians\""));
        assert_eq!(parse(&text).unwrap(), sample());
        // CRLF line ends, a byte-order mark, columns in another order, a blank line
        let crlf = "\u{feff}name_en,id,level,country\r\n\r\nTest office,DE-T,local,DE\r\n";
        let a = parse(crlf).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].name("en"), "Test office");
        // a quoted field spanning lines
        let multi = "id,country,level,name_en\nDE-T,DE,local,\"two\nlines\"\n";
        assert!(
            matches!(parse(multi), Err(CsvError::Authority { line: 2, .. })),
            "a line break is a control character in a name"
        );
    }

    #[test]
    fn errors_name_the_line_or_column() {
        for (text, want) in [
            ("", "header: no header row"),
            (
                "id,country,level,colour\n",
                "header: unknown column \"colour\"",
            ),
            ("id,id,country,level\n", "header: column \"id\" twice"),
            ("id,country\n", "header: no level column"),
            (
                "id,country,level\nDE-T,DE\n",
                "line 2: 2 fields, the header has 3",
            ),
            ("id,country,level\nDE-T,XX,local\n", "line 2: bad country"),
            ("id,country,level\nDE-T,DE,federal\n", "line 2: bad level"),
            (
                "id,country,level\nDE-T,DE,local\n",
                "line 2: authority DE-T has no name",
            ),
            (
                "id,country,level,name_en\nAT-T,DE,local,x\n",
                "line 2: authority id AT-T does not start with DE-",
            ),
            (
                "id,country,level,name_en\n\"DE-T,DE,local,x\n",
                "line 2: malformed quoting",
            ),
            (
                "id,country,level,name_en\nDE-T,DE,local,a\"b\n",
                "line 2: malformed quoting",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }
}
