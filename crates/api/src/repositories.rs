//! The handlers of repositories: the definitions a user may read
//! (`GET /api/v1/repositories`), a repository's entries (`GET .../{code}/entries`, a page at
//! a time, for users of authorities on its access list, on a node that holds it; anyone else
//! gets the one 404), an owner's changes (create, update, withdraw), and the public
//! syndication of the repository's public fields, without authentication: JSON (`GET
//! /public/repositories/{code}`, a page at a time) and an Atom feed (RFC 4287, `GET
//! /public/repositories/{code}/feed`, the most recently updated entries). Withdrawn entries
//! and non-public fields are never published.
use crate::problem::ApiError;
use crate::requests::{
    AnswerInput, Empty, Idem, LangQuery, QueryOf, answer, case_cursor, case_worker, idempotency,
    json_body, json_content_type, lang, limit, query,
};
use crate::{ApiState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imi_apps::repositories::{Change, StoredEntry};
use imi_domain::User;
use imi_domain::catalogue::{Procedure, ProcedureKind};
use imi_domain::dates::rfc3339;
use imi_domain::repository::Access;
use imi_protocol::CaseId;
use serde::Deserialize;
use serde_json::{Value, json};

/// The repository `code` if this node holds it; otherwise the one 404.
fn held<'a>(state: &'a ApiState, code: &str) -> Result<&'a Procedure, ApiError> {
    state
        .cases()
        .catalogue()
        .procedure(code)
        .filter(|p| p.kind() == ProcedureKind::Repository)
        .filter(|p| Access::of(p).holds(state.services.node()))
        .ok_or_else(ApiError::not_found)
}

/// The repository `code` if `user` may read it here; otherwise the one 404.
fn readable<'a>(state: &'a ApiState, user: &User, code: &str) -> Result<&'a Procedure, ApiError> {
    let p = held(state, code)?;
    if Access::of(p).reads(&user.authority) {
        Ok(p)
    } else {
        Err(ApiError::not_found())
    }
}

fn definition(state: &ApiState, p: &Procedure, lang: &str) -> Value {
    let cat = state.cases().catalogue();
    json!({
        "code": p.code(),
        "name": p.name().get(lang),
        "fields": p.question_codes().iter().map(|q| json!({
            "code": q,
            "answer_type": cat.question(q).map(|x| x.answer_type().as_str()),
            "text": cat.text(q, lang),
            "public": p.public().contains(q),
        })).collect::<Vec<_>>(),
        "access": p.access().map_or_else(|| vec!["all".to_owned()], <[String]>::to_vec),
    })
}

/// `GET /api/v1/repositories`: the repositories the caller may read on this node.
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let items: Vec<Value> = state
        .cases()
        .catalogue()
        .areas()
        .iter()
        .flat_map(|a| a.procedures())
        .filter(|p| readable(&state, &user, p.code()).is_ok())
        .map(|p| definition(&state, p, &lang))
        .collect();
    Ok(Json(json!({"lang": lang, "items": items})))
}

fn entry_view(
    state: &ApiState,
    p: &Procedure,
    id: &CaseId,
    e: &StoredEntry,
    lang: &str,
    public_only: bool,
) -> Value {
    let cat = state.cases().catalogue();
    let fields: Vec<Value> = e
        .fields
        .iter()
        .filter(|f| !public_only || p.public().contains(&f.question))
        .map(|f| views::rendered_answer(cat, &f.question, &f.answer, lang))
        .collect();
    if public_only {
        json!({"id": id.to_string(), "updated": rfc3339(e.updated), "fields": fields})
    } else {
        json!({
            "id": id.to_string(),
            "owner": e.owner.as_str(),
            "owner_country": e.owner_node.to_string(),
            "version": e.version,
            "withdrawn": e.withdrawn,
            "updated": rfc3339(e.updated),
            "fields": fields,
        })
    }
}

/// `?lang=&limit=&cursor=` of the entry lists.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EntriesQuery {
    lang: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The page `q` asks for: its limit and the id after which it starts.
fn page_of(q: &EntriesQuery) -> Result<(usize, Option<CaseId>), ApiError> {
    let after = case_cursor(q.cursor.as_deref())?;
    Ok((limit(q.limit)?, after))
}

/// The cursor of the page after `page`: its last id, if more follow.
fn next_cursor(page: &[(CaseId, StoredEntry)], more: bool) -> Value {
    match page.last() {
        Some((id, _)) if more => Value::String(id.to_string()),
        _ => Value::Null,
    }
}

/// `GET /api/v1/repositories/{code}/entries`: a page of the entries, by id.
pub(crate) async fn entries(
    State(state): State<ApiState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    q: QueryOf<EntriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let p = readable(&state, &user, &code)?;
    let (limit, after) = page_of(&q)?;
    let (page, more) = state
        .services
        .repository_entries(code.clone(), after, limit, true)
        .await?;
    let items: Vec<Value> = page
        .iter()
        .map(|(id, e)| entry_view(&state, p, id, e, &lang, false))
        .collect();
    Ok(Json(json!({
        "repository": definition(&state, p, &lang),
        "lang": lang,
        "items": items,
        "next_cursor": next_cursor(&page, more),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsInput {
    fields: Vec<AnswerInput>,
}

async fn run_change(
    state: &ApiState,
    user: &User,
    code: String,
    change: Change,
    idem: Option<Idem>,
    lang: &str,
) -> Result<Value, ApiError> {
    let p = readable(state, user, &code)?;
    let (id, stored, _) = state
        .services
        .repository_change(user.authority.clone(), code.clone(), change, idem)
        .await?;
    Ok(entry_view(state, p, &id, &stored, lang, false))
}

fn fields(body: &[u8]) -> Result<Vec<imi_domain::request::CodedAnswer>, ApiError> {
    let input: FieldsInput = json_body(body)?;
    input.fields.into_iter().map(answer).collect()
}

/// `POST /api/v1/repositories/{code}/entries`: a new entry owned by the caller's authority.
pub(crate) async fn create(
    State(state): State<ApiState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    readable(&state, &user, &code)?;
    let route = format!("/api/v1/repositories/{code}/entries");
    let idem = idempotency(&user, &headers, &route, &body)?;
    json_content_type(&headers, &body)?;
    let f = fields(&body)?;
    let v = run_change(&state, &user, code, Change::Create(f), idem, &lang).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

fn entry_id(id: &str) -> Result<CaseId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found())
}

/// `PUT /api/v1/repositories/{code}/entries/{id}`: new fields, by the owner.
pub(crate) async fn update(
    State(state): State<ApiState>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    readable(&state, &user, &code)?;
    let id = entry_id(&id)?;
    json_content_type(&headers, &body)?;
    let f = fields(&body)?;
    Ok(Json(
        run_change(&state, &user, code, Change::Update(id, f), None, &lang).await?,
    ))
}

/// `POST /api/v1/repositories/{code}/entries/{id}/withdraw`, by the owner.
pub(crate) async fn withdraw(
    State(state): State<ApiState>,
    Path((code, id)): Path<(String, String)>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    readable(&state, &user, &code)?;
    let id = entry_id(&id)?;
    json_content_type(&headers, &body)?;
    let _: Empty = json_body(&body)?;
    Ok(Json(
        run_change(&state, &user, code, Change::Withdraw(id), None, &lang).await?,
    ))
}

/// How many entries the Atom feed of a repository carries: the most recently updated.
pub const FEED_ENTRIES: usize = 100;

/// `GET /public/repositories/{code}`: the public fields as JSON, without authentication.
pub(crate) async fn public_json(
    State(state): State<ApiState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    q: QueryOf<EntriesQuery>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let p = held(&state, &code)?;
    let (limit, after) = page_of(&q)?;
    let (page, more) = state
        .services
        .repository_entries(code.clone(), after, limit, false)
        .await?;
    let items: Vec<Value> = page
        .iter()
        .map(|(id, e)| entry_view(&state, p, id, e, &lang, true))
        .collect();
    Ok(Json(json!({
        "repository": p.code(),
        "name": p.name().get(&lang),
        "lang": lang,
        "publisher": state.services.node().to_string(),
        "items": items,
        "next_cursor": next_cursor(&page, more),
    })))
}

/// A field's value as text in `lang` (an option's text, a date as `YYYY-MM-DD`).
fn value_text(
    cat: &imi_domain::catalogue::Catalogue,
    a: &imi_domain::request::AnswerPayload,
    lang: &str,
) -> String {
    use imi_domain::request::AnswerPayload as P;
    match a {
        P::Bool(b) => b.to_string(),
        P::Text(t) => t.clone(),
        P::Number(n) => n.to_string(),
        P::Date(ms) => imi_domain::dates::Date::of_ms(*ms).to_string(),
        P::Choice(c) => cat.text(c, lang).unwrap_or(c).to_owned(),
        P::Choices(cs) => cs
            .iter()
            .map(|c| cat.text(c, lang).unwrap_or(c))
            .collect::<Vec<_>>()
            .join("; "),
        P::NotAvailable => String::new(),
    }
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// One entry of the Atom feed.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    /// The entry's id.
    pub id: String,
    /// When its version was made, RFC 3339.
    pub updated: String,
    /// Its public fields: label and value, as text.
    pub fields: Vec<(String, String)>,
}

/// The Atom feed (RFC 4287) of a repository's public fields.
pub fn atom(publisher: &str, code: &str, title: &str, lang: &str, items: &[FeedEntry]) -> String {
    let updated = items
        .iter()
        .map(|e| e.updated.as_str())
        .max()
        .unwrap_or("1970-01-01T00:00:00.000Z");
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str(&format!(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"{}\">\n",
        xml(lang)
    ));
    out.push_str(&format!(
        "  <id>urn:imi:repository:{}:{}</id>\n",
        xml(publisher),
        xml(code)
    ));
    out.push_str(&format!("  <title>{}</title>\n", xml(title)));
    out.push_str(&format!("  <updated>{updated}</updated>\n"));
    out.push_str(&format!(
        "  <author><name>IMI {}</name></author>\n",
        xml(publisher)
    ));
    for FeedEntry {
        id,
        updated: upd,
        fields,
    } in items
    {
        let name = fields.first().map_or(id.as_str(), |(_, v)| v.as_str());
        out.push_str("  <entry>\n");
        out.push_str(&format!("    <id>urn:imi:entry:{}</id>\n", xml(id)));
        out.push_str(&format!("    <title>{}</title>\n", xml(name)));
        out.push_str(&format!("    <updated>{upd}</updated>\n"));
        let text: Vec<String> = fields.iter().map(|(q, v)| format!("{q}: {v}")).collect();
        out.push_str(&format!(
            "    <content type=\"text\">{}</content>\n",
            xml(&text.join("\n"))
        ));
        out.push_str("  </entry>\n");
    }
    out.push_str("</feed>\n");
    out
}

/// `GET /public/repositories/{code}/feed`: the public fields as an Atom feed.
pub(crate) async fn public_feed(
    State(state): State<ApiState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let p = held(&state, &code)?;
    let list = state
        .services
        .repository_newest(code.clone(), FEED_ENTRIES)
        .await?;
    let cat = state.cases().catalogue();
    let items: Vec<FeedEntry> = list
        .iter()
        .map(|(id, e)| FeedEntry {
            id: id.to_string(),
            updated: rfc3339(e.updated),
            fields: e
                .fields
                .iter()
                .filter(|f| p.public().contains(&f.question))
                .map(|f| {
                    let label = cat.text(&f.question, &lang).unwrap_or(&f.question);
                    (label.to_owned(), value_text(cat, &f.answer, &lang))
                })
                .collect(),
        })
        .collect();
    let title = p.name().get(&lang).unwrap_or(p.code()).to_owned();
    let body = atom(
        &state.services.node().to_string(),
        p.code(),
        &title,
        &lang,
        &items,
    );
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        body,
    )
        .into_response())
}
