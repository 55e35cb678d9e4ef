//! Reading a submitted form (`multipart/form-data`, so that files can come with it) and
//! the checks every state-changing form passes before anything else: it comes from this
//! site (`Origin`, `Sec-Fetch-Site`) and carries the session's CSRF token.
use axum::extract::Multipart;
use axum::http::{HeaderMap, HeaderValue, Uri, header};

/// Most fields a form may have.
pub const MAX_FIELDS: usize = 256;
/// Longest text field, bytes.
pub const MAX_TEXT: usize = 64 * 1024;
/// Most files a form may carry.
pub const MAX_FILES: usize = 8;

/// A submitted file.
#[derive(Debug, Clone)]
pub struct File {
    /// The form field.
    pub field: String,
    /// The file's name as the browser gave it.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A submitted form.
#[derive(Debug, Default, Clone)]
pub struct Form {
    /// Text fields in order (a name may repeat: checkboxes).
    pub fields: Vec<(String, String)>,
    /// Non-empty files.
    pub files: Vec<File>,
}

impl Form {
    /// The first value of `name`, trimmed; `""` if absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// The form's idempotency key (its hidden `idem` field: 1 to 64 of `[A-Za-z0-9_-]`), sent
    /// on as the API's `Idempotency-Key` so that a double submission is the first one.
    pub fn idempotency_key(&self) -> Option<&str> {
        let k = self.get("idem");
        (!k.is_empty()
            && k.len() <= 64
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then_some(k)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Why a form was refused before it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Cross-site, or without (or with a wrong) CSRF token.
    Forged,
    /// Not a readable multipart form, too many fields, a field too long.
    Malformed,
    /// Larger than [`crate::MAX_FORM_BYTES`].
    TooLarge,
}

/// Whether the request comes from a page of this site. A browser says where a form POST
/// comes from: `Sec-Fetch-Site` (authoritative when present: `same-origin`, or `none` for
/// the user's own action), else `Origin`, which must be this site: the `Host` header
/// (HTTP/1.1) or the request's authority (HTTP/2 has no `Host`). A request with neither is
/// not a browser's cross-site form (those carry both) and is judged by its CSRF token alone.
pub fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    let get = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = get("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = get(header::ORIGIN.as_str()) else {
        return true;
    };
    let host = get(header::HOST.as_str()).or_else(|| uri.authority().map(|a| a.as_str()));
    host.is_some_and(|h| origin == format!("https://{h}"))
}

/// Reads and drops the body of a form refused on its headers alone (bounded like any form).
/// Answering before the body is read makes the server close the connection while the client
/// may still be sending it, and the client, a browser too, then sees a broken connection
/// instead of the refusal page.
pub async fn discard(mp: Multipart) {
    let _ = read(mp).await;
}

/// Reads a form posted from a page of this site ([`same_origin`]); a cross-site one is
/// [`Refusal::Forged`], its body read and dropped first ([`discard`]).
pub async fn read_same_origin(
    headers: &HeaderMap,
    uri: &Uri,
    mp: Multipart,
) -> Result<Form, Refusal> {
    if !same_origin(headers, uri) {
        discard(mp).await;
        return Err(Refusal::Forged);
    }
    read(mp).await
}

/// Reads a multipart form.
pub async fn read(mut mp: Multipart) -> Result<Form, Refusal> {
    let mut form = Form::default();
    let mut n = 0;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(Refusal::TooLarge);
            }
            Err(_) => return Err(Refusal::Malformed),
        };
        n += 1;
        if n > MAX_FIELDS {
            return Err(Refusal::Malformed);
        }
        let name = field.name().unwrap_or("").to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            let bytes = field.bytes().await.map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Refusal::TooLarge
                } else {
                    Refusal::Malformed
                }
            })?;
            if bytes.is_empty() && file_name.is_empty() {
                continue;
            }
            if form.files.len() == MAX_FILES {
                return Err(Refusal::Malformed);
            }
            form.files.push(File {
                field: name,
                name: file_name,
                bytes: bytes.to_vec(),
            });
        } else {
            let text = field.text().await.map_err(|_| Refusal::Malformed)?;
            if text.len() > MAX_TEXT {
                return Err(Refusal::Malformed);
            }
            form.fields.push((name, text));
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn origins() {
        let plain: Uri = "/web/sign-in".parse().unwrap_or_default();
        let h2: Uri = "https://node.example:8443/web/sign-in"
            .parse()
            .unwrap_or_default();
        assert!(same_origin(&h(&[]), &plain));
        assert!(same_origin(
            &h(&[("sec-fetch-site", "same-origin"), ("origin", "null")]),
            &plain
        ));
        assert!(!same_origin(
            &h(&[("sec-fetch-site", "cross-site")]),
            &plain
        ));
        assert!(!same_origin(&h(&[("sec-fetch-site", "same-site")]), &plain));
        assert!(same_origin(
            &h(&[
                ("origin", "https://node.example:8443"),
                ("host", "node.example:8443")
            ]),
            &plain
        ));
        assert!(same_origin(
            &h(&[("origin", "https://node.example:8443")]),
            &h2
        ));
        assert!(!same_origin(&h(&[("origin", "https://evil.example")]), &h2));
        assert!(!same_origin(&h(&[("origin", "null")]), &h2));
        assert!(!same_origin(
            &h(&[("origin", "https://node.example:8443")]),
            &plain
        ));
    }
}
