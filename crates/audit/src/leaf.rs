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
//! step=<the signed header's step (create, accept, ...) or ->
//! prev=<index of the case's previous leaf, or ->
//! ```
//!
//! ```text
//! imi-leaf/1
//! type=receipt_in              (a receipt received for an envelope sent; receipt_out: signed)
//! sha256=<hex of the receipt's exact bytes>
//! id=<message id>
//! case=<the envelope's case, or ->
//! receiver=<node that signed it>
//! outcome=<accepted|duplicate|rejected>   (the code is in the signed receipt)
//! received=<ms>
//! prev=<index of the case's previous leaf, or ->
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
//! prev=<index of the case's previous leaf, or ->
//! ```
//!
//! ```text
//! imi-leaf/1
//! type=retention
//! case=<case id>
//! action=<block|delete>
//! at=<ms>
//! prev=<index of the case's previous leaf, or ->
//! ```
//!
//! Every line ends with `\n`; fields appear exactly in this order. `prev` chains every
//! leaf of a case to the one before it (the log's committer fills it in when it appends the
//! leaf), so an auditor can tell a case's bundle is complete: see [`crate::bundle`].
use std::collections::BTreeMap;

/// A leaf's link to the case's previous leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prev {
    /// `prev=-`: the case's first leaf (or a leaf of no case).
    First,
    /// The index of the case's previous leaf.
    After(u64),
    /// Not `-` nor a decimal index in its one form.
    Invalid,
}

/// The first line of every leaf.
pub const MAGIC: &str = "imi-leaf/1";

/// A leaf's fields, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// `type` value.
    pub kind: String,
    /// The other fields, in order (names from [`layout`]).
    pub fields: Vec<(&'static str, String)>,
}

/// The fields each type has, in order.
pub fn layout(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "envelope_out" | "envelope_in" => &[
            "sha256", "id", "kind", "from", "to", "case", "created", "step", "prev",
        ],
        "receipt_in" | "receipt_out" => &[
            "sha256", "id", "case", "receiver", "outcome", "received", "prev",
        ],
        "access" => &["user", "authority", "case", "action", "at", "prev"],
        "retention" => &["case", "action", "at", "prev"],
        _ => return None,
    })
}

impl Leaf {
    /// A leaf of `kind` from its fields (in [`layout`] order); fields not given (`prev`,
    /// which the log fills in) are `-`.
    pub fn new(kind: &str, values: &[&str]) -> Leaf {
        let names = layout(kind).unwrap_or(&[]);
        Leaf {
            kind: kind.to_owned(),
            fields: names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let v = values.get(i).copied().unwrap_or("-");
                    (*n, sanitize(v))
                })
                .collect(),
        }
    }

    /// Sets a field's value (one the layout has).
    pub fn set(&mut self, name: &str, value: &str) {
        if let Some((_, v)) = self.fields.iter_mut().find(|(k, _)| *k == name) {
            *v = sanitize(value);
        }
    }

    /// The time the leaf records (an envelope's creation, a receipt's time, a read's or a
    /// retention action's), ms since the epoch.
    pub fn time(&self) -> Option<u64> {
        ["created", "received", "at"]
            .iter()
            .find_map(|f| self.get(f))
            .and_then(|t| t.parse().ok())
    }

    /// The case this leaf belongs to, if it names one.
    pub fn case(&self) -> Option<&str> {
        self.get("case").filter(|c| *c != "-")
    }

    /// The index of the case's previous leaf (`prev`): [`Prev::First`] for `-` (or no such
    /// field), [`Prev::Invalid`] for anything but a decimal index without leading zeros.
    pub fn prev(&self) -> Prev {
        match self.get("prev") {
            None | Some("-") => Prev::First,
            Some(p)
                if p == "0" || (!p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                p.parse().map_or(Prev::Invalid, Prev::After)
            }
            Some(_) => Prev::Invalid,
        }
    }

    /// The leaf's text (what is hashed).
    pub fn text(&self) -> String {
        // The magic, `\ntype=`, the kind and `\n`, then `name=value\n` per field.
        let len = MAGIC.len()
            + 7
            + self.kind.len()
            + self
                .fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>();
        let mut s = String::with_capacity(len);
        s.push_str(MAGIC);
        s.push_str("\ntype=");
        s.push_str(&self.kind);
        s.push('\n');
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
            fields.push((*name, v.to_owned()));
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
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The fields as a map.
    pub fn map(&self) -> BTreeMap<&str, &str> {
        self.fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// Values never contain newlines.
fn sanitize(v: &str) -> String {
    if v.contains(['\n', '\r']) {
        v.replace(['\n', '\r'], " ")
    } else {
        v.to_owned()
    }
}
