//! The OpenAPI document as the tests' oracle.
//!
//! Every response a [`crate::NodeClient`] receives from a documented route (method and
//! templated path of an operation in `crates/api/openapi.json`) is checked against the
//! document: the status must be one the operation documents, the content type one that
//! status documents, and a JSON body must validate against that content's schema. A
//! response the document does not describe fails the test with the route, the status and
//! the JSON pointer of the mismatch, so the server and the document cannot drift apart.
//!
//! The validator covers the JSON Schema (2020-12) subset the document uses: `type` (also as
//! an array, `integer` being any number with a zero fraction), `properties`, `required`,
//! `additionalProperties` (boolean or schema), `propertyNames`, `minProperties`/
//! `maxProperties`, `items`, `minItems`/`maxItems`, `uniqueItems`, `enum`,
//! `const`, `pattern` (unanchored, as in JSON Schema), `minLength`/`maxLength` (in
//! characters), `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum`, `oneOf`, `anyOf`,
//! `allOf`, `not` and local `$ref`s. Annotations (`format`, `contentEncoding`, `examples`,
//! `description`, `default`) are not assertions and are ignored.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

/// The document the node serves at `/api/v1/openapi.json` (the same file, compiled in).
pub const DOCUMENT: &str = include_str!("../../crates/api/openapi.json");

/// Most mismatches reported for one response.
const MAX_MISMATCHES: usize = 12;

/// Deepest `$ref`/combinator nesting followed (the document is not recursive; this guards a
/// mistaken self-reference).
const MAX_DEPTH: usize = 64;

/// One place where an instance does not match its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// JSON pointer (RFC 6901) into the instance; empty for the whole document.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "at {at}: {}", self.message)
    }
}

/// A parsed OpenAPI document with a cache of compiled patterns.
pub struct Document {
    doc: Value,
    patterns: Mutex<HashMap<String, Result<Regex, String>>>,
}

/// The node's OpenAPI document ([`DOCUMENT`]), parsed once.
pub fn document() -> &'static Document {
    static DOC: OnceLock<Document> = OnceLock::new();
    DOC.get_or_init(|| Document::new(serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")))
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "integer" => is_integer(v),
        "number" => v.is_number(),
        other => type_name(v) == other,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

impl Document {
    /// Wraps a parsed document.
    pub fn new(doc: Value) -> Self {
        Document {
            doc,
            patterns: Mutex::new(HashMap::new()),
        }
    }

    /// The document as JSON.
    pub fn json(&self) -> &Value {
        &self.doc
    }

    /// The target of a local `$ref` (`#/components/...`).
    pub fn resolve_ref(&self, reference: &str) -> Result<&Value, String> {
        let ptr = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("$ref {reference:?} is not local to the document"))?;
        self.doc
            .pointer(ptr)
            .ok_or_else(|| format!("$ref {reference:?} does not resolve"))
    }

    /// `v`, or what its `$ref` (followed repeatedly) points to.
    pub fn deref<'a>(&'a self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_DEPTH {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = self.resolve_ref(r)?,
                None => return Ok(v),
            }
        }
        Err("$ref chain too deep".into())
    }

    fn regex(&self, pattern: &str) -> Result<Regex, String> {
        let mut cache = crate::lock(&self.patterns);
        cache
            .entry(pattern.to_owned())
            .or_insert_with(|| Regex::new(pattern).map_err(|e| e.to_string()))
            .clone()
    }

    /// Validates `instance` against `schema`; every mismatch found (up to a limit).
    pub fn validate(&self, schema: &Value, instance: &Value) -> Result<(), Vec<Mismatch>> {
        let mut out = Vec::new();
        self.check(schema, instance, "", 0, &mut out);
        if out.is_empty() {
            Ok(())
        } else {
            out.truncate(MAX_MISMATCHES);
            Err(out)
        }
    }

    /// Whether `instance` matches `schema` (no details).
    fn matches(&self, schema: &Value, instance: &Value, depth: usize) -> bool {
        let mut out = Vec::new();
        self.check(schema, instance, "", depth, &mut out);
        out.is_empty()
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, depth: usize, out: &mut Vec<Mismatch>) {
        let mut fail = |message: String| {
            out.push(Mismatch {
                pointer: at.to_owned(),
                message,
            })
        };
        if depth > MAX_DEPTH {
            fail("schema nesting too deep (a $ref cycle?)".into());
            return;
        }
        let s = match schema {
            Value::Bool(true) => return,
            Value::Bool(false) => {
                fail("no value is allowed here (schema false)".into());
                return;
            }
            Value::Object(s) => s,
            other => {
                fail(format!("invalid schema {}", short(other)));
                return;
            }
        };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.resolve_ref(r) {
                Ok(target) => self.check(target, v, at, depth + 1, out),
                Err(e) => {
                    out.push(Mismatch {
                        pointer: at.to_owned(),
                        message: e,
                    });
                }
            }
        }
        let mut fail = |message: String| {
            out.push(Mismatch {
                pointer: at.to_owned(),
                message,
            })
        };
        // type
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|ty| has_type(v, ty)) {
                fail(format!(
                    "expected type {}, got {} {}",
                    types.join(" or "),
                    type_name(v),
                    short(v)
                ));
                // The remaining keywords would only repeat the type error.
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            fail(format!(
                "{} is not one of {}",
                short(v),
                short(&Value::Array(e.clone()))
            ));
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            fail(format!("{} is not the constant {}", short(v), short(c)));
        }
        match v {
            Value::String(text) => {
                let len = text.chars().count() as u64;
                if let Some(min) = s.get("minLength").and_then(Value::as_u64)
                    && len < min
                {
                    fail(format!(
                        "string of {len} characters is shorter than minLength {min}"
                    ));
                }
                if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
                    && len > max
                {
                    fail(format!(
                        "string of {len} characters is longer than maxLength {max}"
                    ));
                }
                if let Some(p) = s.get("pattern").and_then(Value::as_str) {
                    match self.regex(p) {
                        Ok(re) if re.is_match(text) => {}
                        Ok(_) => fail(format!("{} does not match pattern {p:?}", short(v))),
                        Err(e) => fail(format!("pattern {p:?} does not compile: {e}")),
                    }
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                let bound = |k: &str| s.get(k).and_then(Value::as_f64);
                if let Some(min) = bound("minimum")
                    && x < min
                {
                    fail(format!("{n} is less than minimum {min}"));
                }
                if let Some(max) = bound("maximum")
                    && x > max
                {
                    fail(format!("{n} is greater than maximum {max}"));
                }
                if let Some(min) = bound("exclusiveMinimum")
                    && x <= min
                {
                    fail(format!("{n} is not greater than exclusiveMinimum {min}"));
                }
                if let Some(max) = bound("exclusiveMaximum")
                    && x >= max
                {
                    fail(format!("{n} is not less than exclusiveMaximum {max}"));
                }
            }
            Value::Array(items) => {
                let len = items.len() as u64;
                if let Some(min) = s.get("minItems").and_then(Value::as_u64)
                    && len < min
                {
                    fail(format!(
                        "array of {len} items has fewer than minItems {min}"
                    ));
                }
                if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
                    && len > max
                {
                    fail(format!("array of {len} items has more than maxItems {max}"));
                }
                if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                    for (i, x) in items.iter().enumerate() {
                        if items[..i].contains(x) {
                            out.push(Mismatch {
                                pointer: format!("{at}/{i}"),
                                message: format!(
                                    "{} repeats an earlier item (uniqueItems)",
                                    short(x)
                                ),
                            });
                        }
                    }
                }
                if let Some(item) = s.get("items") {
                    for (i, x) in items.iter().enumerate() {
                        self.check(item, x, &format!("{at}/{i}"), depth + 1, out);
                    }
                }
            }
            Value::Object(obj) => {
                if let Some(req) = s.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !obj.contains_key(r) {
                            out.push(Mismatch {
                                pointer: at.to_owned(),
                                message: format!("required property {r:?} is missing"),
                            });
                        }
                    }
                }
                let len = obj.len() as u64;
                if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
                    && len < min
                {
                    out.push(Mismatch {
                        pointer: at.to_owned(),
                        message: format!(
                            "object of {len} properties has fewer than minProperties {min}"
                        ),
                    });
                }
                if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
                    && len > max
                {
                    out.push(Mismatch {
                        pointer: at.to_owned(),
                        message: format!(
                            "object of {len} properties has more than maxProperties {max}"
                        ),
                    });
                }
                if let Some(names) = s.get("propertyNames") {
                    for k in obj.keys() {
                        let mut sub = Vec::new();
                        self.check(names, &Value::String(k.clone()), "", depth + 1, &mut sub);
                        for m in sub {
                            out.push(Mismatch {
                                pointer: format!("{at}/{}", pointer_escape(k)),
                                message: format!("property name {k:?}: {}", m.message),
                            });
                        }
                    }
                }
                let props = s.get("properties").and_then(Value::as_object);
                for (k, x) in obj {
                    let here = format!("{at}/{}", pointer_escape(k));
                    match props.and_then(|p| p.get(k)) {
                        Some(ps) => self.check(ps, x, &here, depth + 1, out),
                        None => match s.get("additionalProperties") {
                            Some(Value::Bool(false)) => out.push(Mismatch {
                                pointer: here,
                                message: format!(
                                    "property {k:?} is not allowed (additionalProperties is \
                                     false)"
                                ),
                            }),
                            Some(extra @ Value::Object(_)) => {
                                self.check(extra, x, &here, depth + 1, out)
                            }
                            _ => {}
                        },
                    }
                }
            }
            _ => {}
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, v, at, depth + 1, out);
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|sub| self.matches(sub, v, depth + 1))
        {
            out.push(Mismatch {
                pointer: at.to_owned(),
                message: format!(
                    "{} matches none of the {} anyOf schemas{}",
                    short(v),
                    any.len(),
                    self.closest(any, v, depth)
                ),
            });
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let n = one
                .iter()
                .filter(|sub| self.matches(sub, v, depth + 1))
                .count();
            if n != 1 {
                out.push(Mismatch {
                    pointer: at.to_owned(),
                    message: format!(
                        "{} matches {n} of the {} oneOf schemas, not exactly one{}",
                        short(v),
                        one.len(),
                        if n == 0 {
                            self.closest(one, v, depth)
                        } else {
                            String::new()
                        }
                    ),
                });
            }
        }
        if let Some(not) = s.get("not")
            && self.matches(not, v, depth + 1)
        {
            out.push(Mismatch {
                pointer: at.to_owned(),
                message: format!("{} matches the schema under not", short(v)),
            });
        }
    }

    /// The mismatches of the alternative that failed least, to explain an anyOf/oneOf miss.
    fn closest(&self, alternatives: &[Value], v: &Value, depth: usize) -> String {
        let best = alternatives
            .iter()
            .map(|sub| {
                let mut out = Vec::new();
                self.check(sub, v, "", depth + 1, &mut out);
                out
            })
            .min_by_key(Vec::len);
        match best {
            Some(m) if !m.is_empty() => format!(
                " (closest: {})",
                m.iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            _ => String::new(),
        }
    }

    /// The operation serving `method path` (the path without its query), as the document's
    /// templated path and the operation object. A literal segment beats a template.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let segs: Vec<&str> = path.split('/').collect();
        let method = method.to_ascii_lowercase();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.doc.get("paths")?.as_object()? {
            let tsegs: Vec<&str> = template.split('/').collect();
            if tsegs.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let fits = tsegs.iter().zip(&segs).all(|(t, s)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !s.is_empty()
                } else {
                    literal += 1;
                    t == s
                }
            });
            if !fits {
                continue;
            }
            let Some(op) = item.get(&method) else {
                continue;
            };
            if best.is_none_or(|(l, _, _)| literal > l) {
                best = Some((literal, template.as_str(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    /// Checks one response of `method path` against the document. `Ok` for a route the
    /// document does not describe (the route test covers that direction).
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        content_type: &str,
        body: &str,
    ) -> Result<(), String> {
        let Some((template, op)) = self.operation(method, path) else {
            return Ok(());
        };
        let route = format!("{} {template}", method.to_ascii_uppercase());
        let responses = op
            .get("responses")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{route} has no responses in openapi.json"))?;
        let code = status.to_string();
        let range = format!("{}XX", status / 100);
        let response = responses
            .get(&code)
            .or_else(|| responses.get(&range))
            .or_else(|| responses.get("default"))
            .ok_or_else(|| {
                format!(
                    "{route}: status {status} is not documented (documented: {}); body: {}",
                    responses.keys().cloned().collect::<Vec<_>>().join(", "),
                    excerpt(body)
                )
            })?;
        let response = self
            .deref(response)
            .map_err(|e| format!("{route} {status}: {e}"))?;
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{route} {status}: the document describes no body, the server sent \
                     {media:?}: {}",
                    excerpt(body)
                ))
            };
        };
        let Some(entry) = content.get(&media) else {
            return Err(format!(
                "{route} {status}: content type {content_type:?} is not documented \
                 (documented: {}); body: {}",
                content.keys().cloned().collect::<Vec<_>>().join(", "),
                excerpt(body)
            ));
        };
        let Some(schema) = entry.get("schema") else {
            return Ok(());
        };
        let instance = if media == "application/json" || media.ends_with("+json") {
            serde_json::from_str(body).map_err(|e| {
                format!(
                    "{route} {status}: {media} body is not JSON ({e}): {}",
                    excerpt(body)
                )
            })?
        } else if media.starts_with("text/") {
            Value::String(body.to_owned())
        } else {
            return Ok(());
        };
        self.validate(schema, &instance).map_err(|ms| {
            format!(
                "{route} {status}: the body does not match openapi.json:\n  {}\nbody: {}",
                ms.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  "),
                excerpt(body)
            )
        })
    }
}

fn excerpt(body: &str) -> String {
    const MAX: usize = 1500;
    if body.chars().count() > MAX {
        format!(
            "{}… ({} bytes)",
            body.chars().take(MAX).collect::<String>(),
            body.len()
        )
    } else {
        body.to_owned()
    }
}

/// Every subschema of the document (under `paths` and `components`) and its location, to
/// check the document itself.
pub fn schemas(doc: &Value) -> Vec<(String, &Value)> {
    fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    let here = format!("{at}/{}", pointer_escape(k));
                    if k == "schema" {
                        out.push((here.clone(), x));
                    }
                    walk(x, here, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    if let Some(s) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (k, x) in s {
            out.push((format!("/components/schemas/{}", pointer_escape(k)), x));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Document {
        Document::new(json!({
            "paths": {
                "/things/{id}": {"get": {"responses": {
                    "200": {"description": "ok", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Thing"}}}},
                    "404": {"$ref": "#/components/responses/NotFound"}
                }}},
                "/things/new": {"get": {"responses": {"204": {"description": "none"}}}}
            },
            "components": {
                "schemas": {
                    "Thing": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["id", "kind"],
                        "properties": {
                            "id": {"type": "string", "pattern": "^[0-9a-f]{4}$"},
                            "kind": {"type": "string", "enum": ["a", "b"]},
                            "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
                            "tags": {"type": "array", "items": {"type": "string", "minLength": 1}},
                            "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
                        }
                    },
                    "Problem": {"type": "object", "required": ["code"],
                                "properties": {"code": {"type": "string"}}}
                },
                "responses": {"NotFound": {"description": "nf", "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}}
            }
        }))
    }

    fn mismatches(v: Value) -> Vec<Mismatch> {
        let d = doc();
        let schema = json!({"$ref": "#/components/schemas/Thing"});
        d.validate(&schema, &v).err().unwrap_or_default()
    }

    fn pointers(v: Value) -> Vec<String> {
        mismatches(v).into_iter().map(|m| m.pointer).collect()
    }

    #[test]
    fn accepts_a_valid_instance() {
        assert_eq!(
            mismatches(json!({"id": "0a1b", "kind": "a", "n": 2.0, "tags": ["x"], "either": 3})),
            vec![]
        );
        assert_eq!(
            mismatches(json!({"id": "0a1b", "kind": "b", "n": null})),
            vec![]
        );
    }

    #[test]
    fn rejects_a_wrong_type() {
        let m = mismatches(json!({"id": 12, "kind": "a"}));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].pointer, "/id");
        assert!(m[0].message.contains("expected type string"), "{m:?}");
        assert_eq!(
            pointers(json!({"id": "0a1b", "kind": "a", "n": 2.5})),
            ["/n"]
        );
        assert_eq!(pointers(json!(["not", "an", "object"])), [""]);
    }

    #[test]
    fn rejects_a_missing_required_field() {
        let m = mismatches(json!({"id": "0a1b"}));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].pointer, "");
        assert!(m[0].message.contains("\"kind\" is missing"), "{m:?}");
    }

    #[test]
    fn rejects_an_extra_field_when_additional_properties_is_false() {
        let m = mismatches(json!({"id": "0a1b", "kind": "a", "exported_at": "x"}));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].pointer, "/exported_at");
        assert!(m[0].message.contains("not allowed"), "{m:?}");
    }

    #[test]
    fn rejects_an_enum_miss() {
        let m = mismatches(json!({"id": "0a1b", "kind": "c"}));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].pointer, "/kind");
        assert!(m[0].message.contains("is not one of"), "{m:?}");
    }

    #[test]
    fn rejects_a_pattern_miss() {
        let m = mismatches(json!({"id": "0A1B", "kind": "a"}));
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].pointer, "/id");
        assert!(m[0].message.contains("does not match pattern"), "{m:?}");
    }

    #[test]
    fn rejects_length_bounds_and_combinators_with_pointers() {
        assert_eq!(
            pointers(json!({"id": "0a1b", "kind": "a", "tags": ["ok", ""]})),
            ["/tags/1"]
        );
        assert_eq!(pointers(json!({"id": "0a1b", "kind": "a", "n": 9})), ["/n"]);
        assert_eq!(
            pointers(json!({"id": "0a1b", "kind": "a", "either": true})),
            ["/either"]
        );
        let d = doc();
        let any = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert!(d.validate(&any, &json!(null)).is_ok());
        assert!(d.validate(&any, &json!(1)).is_err());
        let all = json!({"allOf": [{"minimum": 1}, {"maximum": 2}]});
        assert!(d.validate(&all, &json!(2)).is_ok());
        assert!(d.validate(&all, &json!(3)).is_err());
        let c = json!({"const": "x"});
        assert!(d.validate(&c, &json!("y")).is_err());
    }

    #[test]
    fn checks_responses_by_route_status_and_content_type() {
        let d = doc();
        assert_eq!(
            d.operation("GET", "/things/new?x=1").map(|(t, _)| t),
            Some("/things/new"),
            "a literal segment beats a template"
        );
        assert_eq!(
            d.operation("GET", "/things/0a1b").map(|(t, _)| t),
            Some("/things/{id}")
        );
        assert!(d.operation("POST", "/things/0a1b").is_none());
        let ok = r#"{"id": "0a1b", "kind": "a"}"#;
        d.check_response("GET", "/things/0a1b", 200, "application/json", ok)
            .unwrap();
        d.check_response(
            "GET",
            "/things/0a1b",
            404,
            "application/problem+json",
            r#"{"code": "not_found"}"#,
        )
        .unwrap();
        d.check_response("GET", "/nowhere", 500, "text/plain", "?")
            .unwrap();
        let undocumented = d
            .check_response("GET", "/things/0a1b", 409, "application/problem+json", "{}")
            .unwrap_err();
        assert!(
            undocumented.contains("GET /things/{id}: status 409 is not documented"),
            "{undocumented}"
        );
        let wrong_ct = d
            .check_response("GET", "/things/0a1b", 200, "text/plain", ok)
            .unwrap_err();
        assert!(wrong_ct.contains("content type"), "{wrong_ct}");
        let wrong_body = d
            .check_response(
                "GET",
                "/things/0a1b",
                200,
                "application/json; charset=utf-8",
                r#"{"id": "0a1b", "kind": "a", "extra": 1}"#,
            )
            .unwrap_err();
        assert!(
            wrong_body.contains("GET /things/{id} 200") && wrong_body.contains("at /extra"),
            "{wrong_body}"
        );
    }

    /// The node's own document: every `$ref` resolves, every pattern compiles, and every
    /// example validates against the schema it illustrates.
    #[test]
    fn the_document_is_consistent() {
        let d = document();
        let mut checked = 0;
        for (at, schema) in schemas(d.json()) {
            let mut stack = vec![schema];
            while let Some(s) = stack.pop() {
                match s {
                    Value::Object(o) => {
                        if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                            d.resolve_ref(r).unwrap_or_else(|e| panic!("{at}: {e}"));
                        }
                        if let Some(p) = o.get("pattern").and_then(Value::as_str) {
                            d.regex(p)
                                .unwrap_or_else(|e| panic!("{at}: pattern {p:?}: {e}"));
                        }
                        if let Some(ex) = o.get("examples").and_then(Value::as_array) {
                            for e in ex {
                                if let Err(m) = d.validate(s, e) {
                                    panic!("{at}: example {e} does not validate: {m:?}");
                                }
                                checked += 1;
                            }
                        }
                        stack.extend(o.values());
                    }
                    Value::Array(a) => stack.extend(a),
                    _ => {}
                }
            }
        }
        // Examples of request bodies and parameters (`example`/`examples` next to `schema`).
        let mut stack = vec![d.json()];
        while let Some(v) = stack.pop() {
            match v {
                Value::Object(o) => {
                    if let Some(schema) = o.get("schema") {
                        let mut examples: Vec<&Value> = o.get("example").into_iter().collect();
                        if let Some(ex) = o.get("examples").and_then(Value::as_object) {
                            examples.extend(ex.values().filter_map(|e| e.get("value")));
                        }
                        for e in examples {
                            if let Err(m) = d.validate(schema, e) {
                                panic!("example {e} does not validate: {m:?}");
                            }
                            checked += 1;
                        }
                    }
                    stack.extend(o.values());
                }
                Value::Array(a) => stack.extend(a),
                _ => {}
            }
        }
        assert!(checked > 20, "only {checked} examples in openapi.json");
    }
}
