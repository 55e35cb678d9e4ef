//! Log leaves: what a node's log records, as small UTF-8 texts (so a third party can
//! rebuild and check them by hand). A leaf commits to the exact bytes of an envelope or a
//! receipt by their SHA-256, never to content; it never holds personal data (a user is
//! recorded as the SHA-256 of their id).
//!
//! ```text
//! imi-leaf/1
//! type=envelope_out            (or envelope_in)
//! sha256=<hex of the envelope's exact bytes>
//! id=<message id, 32 hex>
//! kind=<envelope kind>
//! from=<sender node>
//! to=<recipient nodes, comma-separated>
//! case=<case id, 32 hex, or ->
//! created=<creation time, ms since the epoch>
//! step=<request step (create, accept, ...) or ->
//! ```
//!
//! ```text
//! imi-leaf/1
//! type=receipt_in              (a receipt received for an envelope sent; receipt_out: signed)
//! sha256=<hex of the receipt's exact bytes>
//! id=<message id>
//! receiver=<node that signed it>
//! outcome=<accepted|duplicate|rejected>   (the code is in the signed receipt)
//! received=<ms>
//! ```
//!
//! ```text
//! imi-leaf/1
//! type=access
//! user=<SHA-256 hex of the user id>
//! authority=<authority id>
//! case=<case id>
//! action=<read_request|read_attachment|read_blocked>
//! at=<ms>
//! ```
//!
//! ```text
//! imi-leaf/1
//! type=retention
//! case=<case id>
//! action=<block|delete>
//! at=<ms>
//! ```
//!
//! Every line ends with `\n`; fields appear exactly in this order.
use std::collections::BTreeMap;

/// The first line of every leaf.
pub const MAGIC: &str = "imi-leaf/1";

/// A leaf's fields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// `type` value.
    pub kind: String,
    /// The other fields, in order.
    pub fields: Vec<(String, String)>,
}

/// The fields each type has, in order.
pub fn layout(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "envelope_out" | "envelope_in" => &[
            "sha256", "id", "kind", "from", "to", "case", "created", "step",
        ],
        "receipt_in" | "receipt_out" => &["sha256", "id", "receiver", "outcome", "received"],
        "access" => &["user", "authority", "case", "action", "at"],
        "retention" => &["case", "action", "at"],
        _ => return None,
    })
}

impl Leaf {
    /// A leaf of `kind` from its fields (in [`layout`] order).
    pub fn new(kind: &str, values: &[&str]) -> Leaf {
        let names = layout(kind).unwrap_or(&[]);
        Leaf {
            kind: kind.to_owned(),
            fields: names
                .iter()
                .zip(values)
                .map(|(n, v)| ((*n).to_owned(), sanitize(v)))
                .collect(),
        }
    }

    /// The leaf's text (what is hashed).
    pub fn text(&self) -> String {
        let mut s = format!("{MAGIC}\ntype={}\n", self.kind);
        for (k, v) in &self.fields {
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push('\n');
        }
        s
    }

    /// Parses a leaf's text; checks the type and the field order.
    pub fn parse(text: &str) -> Option<Leaf> {
        let body = text.strip_suffix('\n')?;
        let mut lines = body.split('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let kind = lines.next()?.strip_prefix("type=")?.to_owned();
        let names = layout(&kind)?;
        let mut fields = Vec::new();
        for name in names {
            let (k, v) = lines.next()?.split_once('=')?;
            if k != *name {
                return None;
            }
            fields.push((k.to_owned(), v.to_owned()));
        }
        if lines.next().is_some() {
            return None;
        }
        Some(Leaf { kind, fields })
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The fields as a map.
    pub fn map(&self) -> BTreeMap<&str, &str> {
        self.fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// Values never contain newlines.
fn sanitize(v: &str) -> String {
    v.replace(['\n', '\r'], " ")
}
