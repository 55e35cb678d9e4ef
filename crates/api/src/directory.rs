//! The federated authority directory: search, one authority, and the coordinators'
//! create, update and retire of their own country's authorities.
//!
//! Searches run over this node's replica of every country's directory
//! ([`imi_apps::directory`]); results are rendered in the caller's language (`lang`, else
//! `Accept-Language`) where a translation exists: the authority's name, its professions and
//! competences. A change made here is signed by this node and published to every member.

use crate::problem::ApiError;
use crate::requests::{NoQuery, QueryOf, json_body, json_content_type, query};
use crate::{ApiState, users, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imi_apps::directory::{Change, DirectoryApp};
use imi_directory::{Entry, SearchQuery};
use imi_domain::user::Role;
use imi_domain::{Authority, Directory, Level, User};
use imi_protocol::{AuthorityId, NodeId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Default page size of a search.
pub const DEFAULT_SEARCH_LIMIT: usize = 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchParams {
    q: Option<String>,
    lang: Option<String>,
    country: Option<String>,
    level: Option<String>,
    area: Option<String>,
    procedure: Option<String>,
    profession: Option<String>,
    competence: Option<String>,
    include_retired: Option<bool>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LangParam {
    lang: Option<String>,
}

fn unknown(what: &str, value: &str) -> ApiError {
    let shown: String = value.chars().take(64).collect();
    ApiError::bad_request("unknown_filter", format!("unknown {what} {shown:?}"))
}

/// A profession or competence: its code and its name in the caller's language.
#[derive(Serialize)]
struct Coded<'a> {
    code: &'a str,
    name: Option<&'a str>,
}

/// Professions or competences, serialized as [`Coded`] without collecting them first.
struct CodedList<'a> {
    codes: &'a [String],
    vocabulary: &'a imi_domain::Vocabulary,
    lang: &'a str,
}

impl Serialize for CodedList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.codes.iter().map(|c| Coded {
            code: c,
            name: self.vocabulary.name(c, self.lang),
        }))
    }
}

/// The view of one authority, borrowed from the directory and serialized as it is (no
/// JSON tree is built): the language-dependent members and the fixed ones. Search results
/// write the same members, the fixed ones pasted from [`ViewCache`].
#[derive(Serialize)]
struct AuthorityView<'a> {
    competences: CodedList<'a>,
    #[serde(flatten)]
    fixed: FixedView<'a>,
    name: &'a str,
    professions: CodedList<'a>,
}

impl<'a> AuthorityView<'a> {
    fn new(dir: &'a DirectoryApp, a: &'a Authority, retired: bool, lang: &'a str) -> Self {
        let vocabulary = dir.vocabulary();
        let coded = |codes: &'a [String]| CodedList {
            codes,
            vocabulary,
            lang,
        };
        AuthorityView {
            competences: coded(&a.competences),
            fixed: FixedView::new(a, retired),
            name: a.name(lang),
            professions: coded(&a.professions),
        }
    }
}

/// The view of one authority in `lang`.
pub(crate) fn view(dir: &DirectoryApp, a: &Authority, retired: bool, lang: &str) -> Value {
    serde_json::to_value(AuthorityView::new(dir, a, retired, lang)).unwrap_or(Value::Null)
}

/// The members of an authority's view that do not depend on the reader's language.
#[derive(Serialize)]
struct FixedView<'a> {
    areas: &'a [String],
    city: &'a Option<String>,
    country: &'a str,
    id: &'a str,
    level: &'a str,
    names: &'a std::collections::BTreeMap<String, String>,
    procedures: &'a [String],
    region: &'a Option<String>,
    retired: bool,
}

impl<'a> FixedView<'a> {
    fn new(a: &'a Authority, retired: bool) -> Self {
        FixedView {
            areas: &a.areas,
            city: &a.city,
            country: a.country.as_str(),
            id: a.id.as_str(),
            level: a.level.as_str(),
            names: &a.names,
            procedures: &a.procedures,
            region: &a.region,
            retired,
        }
    }
}

/// Authorities' views, rendered as JSON once per directory snapshot, so that a search result
/// is pasted together rather than serialized (escaping names, places and codes, and looking
/// up the vocabulary's names, was a fifth of a search's cost). The cache knows the snapshot
/// it was made from (a weak reference, so that it keeps no replaced directory alive) and
/// starts again when the directory changes; it never holds more entries than the directory
/// has authorities, plus one row of the vocabulary per language asked for.
#[derive(Default)]
pub(crate) struct ViewCache {
    inner: std::sync::Mutex<Option<SnapshotViews>>,
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewCache").finish_non_exhaustive()
    }
}

/// What is rendered for one directory snapshot.
struct SnapshotViews {
    snapshot: std::sync::Weak<Directory>,
    /// The vocabulary's items by code: professions, then competences.
    codes: HashMap<String, usize>,
    /// Per language: each vocabulary item as `{"code":…,"name":…}`, by item.
    coded: HashMap<String, Arc<[Box<str>]>>,
    authorities: HashMap<AuthorityId, Arc<Rendered>>,
}

/// One authority's view, rendered.
struct Rendered {
    /// The members that do not depend on the reader's language, without braces.
    fixed: Box<str>,
    /// Its name as a JSON string per language it has one in.
    names: Box<[(Box<str>, Box<str>)]>,
    /// Its name where it has none in the reader's language (English, else any, else "").
    fallback_name: Box<str>,
    professions: Box<[Code]>,
    competences: Box<[Code]>,
}

/// A profession or competence of an authority.
enum Code {
    /// An item of the vocabulary (its index).
    Known(usize),
    /// A code this node's vocabulary does not have, rendered with a null name.
    Unknown(Box<str>),
}

/// The rows [`ViewCache::rendered`] hands out for one search.
pub(crate) struct RenderedPage {
    coded: Arc<[Box<str>]>,
    authorities: Vec<Option<Arc<Rendered>>>,
}

fn json_string(s: &str) -> Box<str> {
    serde_json::to_string(s)
        .unwrap_or_else(|_| "\"\"".to_owned())
        .into_boxed_str()
}

/// A profession or competence as JSON, `{"code":…,"name":…}`.
fn coded_json(code: &str, name: Option<&str>) -> Box<str> {
    serde_json::to_string(&Coded { code, name })
        .unwrap_or_default()
        .into_boxed_str()
}

/// The vocabulary's codes in item order: the professions, then the competences.
fn vocabulary_codes(vocabulary: &imi_domain::Vocabulary) -> impl Iterator<Item = &str> {
    vocabulary
        .professions()
        .iter()
        .map(|p| p.code())
        .chain(vocabulary.competences().iter().map(|c| c.code()))
}

impl SnapshotViews {
    fn new(snapshot: &Arc<Directory>, vocabulary: &imi_domain::Vocabulary) -> Self {
        let codes = vocabulary_codes(vocabulary)
            .enumerate()
            .map(|(i, c)| (c.to_owned(), i))
            .collect();
        SnapshotViews {
            snapshot: Arc::downgrade(snapshot),
            codes,
            coded: HashMap::new(),
            authorities: HashMap::new(),
        }
    }

    fn coded_row(&mut self, vocabulary: &imi_domain::Vocabulary, lang: &str) -> Arc<[Box<str>]> {
        if let Some(row) = self.coded.get(lang) {
            return row.clone();
        }
        let row: Arc<[Box<str>]> = vocabulary_codes(vocabulary)
            .map(|code| coded_json(code, vocabulary.name(code, lang)))
            .collect();
        self.coded.insert(lang.to_owned(), row.clone());
        row
    }

    fn render(&self, a: &Authority, retired: bool) -> Option<Rendered> {
        let json = serde_json::to_string(&FixedView::new(a, retired)).ok()?;
        let fixed = json.get(1..json.len().saturating_sub(1))?.into();
        let code = |c: &String| match self.codes.get(c) {
            Some(i) => Code::Known(*i),
            None => Code::Unknown(coded_json(c, None)),
        };
        Some(Rendered {
            fixed,
            names: a
                .names
                .iter()
                .map(|(l, n)| (l.as_str().into(), json_string(n)))
                .collect(),
            // What `Authority::name` gives for a language it has no name in.
            fallback_name: json_string(a.name("")),
            professions: a.professions.iter().map(code).collect(),
            competences: a.competences.iter().map(code).collect(),
        })
    }
}

impl ViewCache {
    /// The rendered views of the authorities of `ids` in `snapshot` (`None`: not in it), and
    /// the vocabulary's items in `lang`.
    fn rendered<'a>(
        &self,
        snapshot: &Arc<Directory>,
        vocabulary: &imi_domain::Vocabulary,
        lang: &str,
        ids: impl Iterator<Item = &'a AuthorityId>,
    ) -> RenderedPage {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let views = match &mut *g {
            // A weak reference: a replaced snapshot is freed at once, and its address is not
            // reused while this is held, so equal addresses mean the same snapshot.
            Some(v) if std::ptr::eq(v.snapshot.as_ptr(), Arc::as_ptr(snapshot)) => v,
            other => other.insert(SnapshotViews::new(snapshot, vocabulary)),
        };
        let coded = views.coded_row(vocabulary, lang);
        let authorities = ids
            .map(|id| {
                if let Some(r) = views.authorities.get(id) {
                    return Some(r.clone());
                }
                let a = snapshot.get(id)?;
                let r = Arc::new(views.render(a, snapshot.is_retired(id))?);
                views.authorities.insert(id.clone(), r.clone());
                Some(r)
            })
            .collect();
        RenderedPage { coded, authorities }
    }
}

impl RenderedPage {
    /// Writes authority `i`'s view in `lang` (the language the page was made for), with its
    /// score, as the same object [`view`] gives plus `score`; nothing if it is not there.
    fn write(&self, i: usize, lang: &str, score: f32, out: &mut Vec<u8>) -> Result<bool, ApiError> {
        let Some(Some(r)) = self.authorities.get(i) else {
            return Ok(false);
        };
        let codes = |out: &mut Vec<u8>, list: &[Code]| {
            out.push(b'[');
            for (k, c) in list.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                let text = match c {
                    Code::Known(ix) => self.coded.get(*ix).map_or("null", |t| t),
                    Code::Unknown(t) => t,
                };
                out.extend_from_slice(text.as_bytes());
            }
            out.push(b']');
        };
        out.extend_from_slice(b"{\"competences\":");
        codes(out, &r.competences);
        out.push(b',');
        out.extend_from_slice(r.fixed.as_bytes());
        out.extend_from_slice(b",\"name\":");
        let name = r
            .names
            .iter()
            .find(|(l, _)| &**l == lang)
            .map_or(&r.fallback_name, |(_, n)| n);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b",\"professions\":");
        codes(out, &r.professions);
        out.extend_from_slice(b",\"score\":");
        put(out, &score)?;
        out.push(b'}');
        Ok(true)
    }
}

/// Writes `value` as JSON into `out`.
fn put(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), ApiError> {
    serde_json::to_writer(out, value).map_err(ApiError::internal)
}

fn entry_view(dir: &DirectoryApp, e: &Entry, lang: &str) -> Value {
    let mut v = view(dir, &e.update.authority, e.update.retired, lang);
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), json!(e.update.seq));
        // Records from the seed carry no time (0): null.
        let at = u64::try_from(e.update.time_ms).ok().filter(|t| *t > 0);
        o.insert(
            "updated_at".into(),
            json!(at.map(imi_domain::dates::rfc3339)),
        );
    }
    v
}

/// `GET /api/v1/directory/search`.
pub(crate) async fn search(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<SearchParams>,
) -> Result<Response, ApiError> {
    users::authenticate(&state, &headers).await?;
    let p = query(q)?;
    let lang = views::language(state.cases().catalogue(), p.lang.as_deref(), &headers);
    let dir = state.services.directory().clone();
    let catalogue = state.cases().catalogue();
    let country = match p.country.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<NodeId>().map_err(|_| unknown("country", c))?),
    };
    let level = match p.level.as_deref() {
        None => None,
        Some(l) => {
            Some(serde_json::from_value::<Level>(json!(l)).map_err(|_| unknown("level", l))?)
        }
    };
    if let Some(a) = p.area.as_deref()
        && catalogue.area(a).is_none()
    {
        return Err(unknown("area", a));
    }
    if let Some(x) = p.procedure.as_deref()
        && !catalogue
            .areas()
            .iter()
            .any(|a| a.procedures().iter().any(|p| p.code() == x))
    {
        return Err(unknown("procedure", x));
    }
    if let Some(x) = p.profession.as_deref()
        && dir.vocabulary().profession(x).is_none()
    {
        return Err(unknown("profession", x));
    }
    if let Some(x) = p.competence.as_deref()
        && dir.vocabulary().competence(x).is_none()
    {
        return Err(unknown("competence", x));
    }
    let sq = SearchQuery {
        text: p.q.unwrap_or_default(),
        lang: Some(lang.clone()),
        country,
        level,
        area: p.area,
        procedure: p.procedure,
        profession: p.profession,
        competence: p.competence,
        include_retired: p.include_retired.unwrap_or(false),
        limit: p.limit.unwrap_or(DEFAULT_SEARCH_LIMIT),
        offset: p.offset.unwrap_or(0),
    };
    // A search costs a fraction of a millisecond (BENCHMARKS.md): run it here rather than
    // pay two thread hand-offs on the blocking pool.
    let hits = dir.search(&sq).map_err(|e| match e {
        imi_directory::SearchError::Index(_) => ApiError::internal(e),
        other => ApiError::bad_request(other.code(), other.to_string()),
    })?;
    let snapshot = dir.shared().snapshot();
    let page = state.views.rendered(
        &snapshot,
        dir.vocabulary(),
        &lang,
        hits.hits.iter().map(|h| &h.id),
    );
    // The page, written member by member: each item the same object as [`view`] (plus the
    // score), pasted from the cache.
    let mut body = Vec::with_capacity(16 * 1024);
    body.extend_from_slice(b"{\"items\":[");
    let mut first = true;
    for (i, h) in hits.hits.iter().enumerate() {
        let mark = body.len();
        if !first {
            body.push(b',');
        }
        if page.write(i, &lang, h.score, &mut body)? {
            first = false;
        } else {
            body.truncate(mark);
        }
    }
    body.extend_from_slice(b"],\"lang\":");
    put(&mut body, &lang)?;
    body.extend_from_slice(b",\"limit\":");
    put(&mut body, &sq.limit)?;
    body.extend_from_slice(b",\"offset\":");
    put(&mut body, &sq.offset)?;
    body.extend_from_slice(b",\"total\":");
    put(&mut body, &hits.total)?;
    body.push(b'}');
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/v1/directory/authorities/{authority}`.
pub(crate) async fn get_one(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<LangParam>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = views::language(state.cases().catalogue(), q.lang.as_deref(), &headers);
    let id = AuthorityId::new(&id).map_err(|_| ApiError::not_found())?;
    let entry = state
        .services
        .directory_entry(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(entry_view(state.services.directory(), &entry, &lang)))
}

/// `GET /api/v1/vocabularies/professions`: the regulated professions (the codes authorities,
/// alerts and searches use), named in the caller's language.
pub(crate) async fn professions(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangParam>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = views::language(state.cases().catalogue(), q.lang.as_deref(), &headers);
    let v = state.services.directory().vocabulary();
    let items: Vec<Value> = v
        .professions()
        .iter()
        .map(|p| {
            json!({
                "code": p.code(),
                "name": v.name(p.code(), &lang).unwrap_or(p.code()),
                "sector": p.sector().as_str(),
                "health": p.is_health(),
            })
        })
        .collect();
    Ok(Json(json!({"lang": lang, "items": items})))
}

/// The caller, who must be a coordinator of this node's country.
async fn home_coordinator(state: &ApiState, headers: &HeaderMap) -> Result<User, ApiError> {
    let user = users::authenticate(state, headers).await?;
    let me = state.cases().node();
    match user.role {
        Role::Coordinator { .. } if user.country() == Some(me) => Ok(user),
        _ => Err(ApiError::forbidden(format!(
            "only coordinators of {me} change its directory"
        ))),
    }
}

/// Checks a record's codes against the catalogue and the vocabularies.
pub(crate) fn check_codes(state: &ApiState, a: &Authority) -> Result<(), ApiError> {
    a.validate()
        .map_err(|e| ApiError::unprocessable(e.code(), e.to_string()))?;
    let catalogue = state.cases().catalogue();
    let vocabulary = state.services.directory().vocabulary();
    let bad = |what: &str, c: &str| {
        ApiError::unprocessable("unknown_code", format!("unknown {what} code {c:?}"))
    };
    for c in &a.areas {
        if catalogue.area(c).is_none() {
            return Err(bad("area", c));
        }
    }
    for c in &a.procedures {
        let known = a.areas.iter().any(|area| {
            catalogue
                .area(area)
                .is_some_and(|x| x.procedures().iter().any(|p| p.code() == c))
        });
        if !known {
            return Err(bad("procedure (of its areas)", c));
        }
    }
    for c in &a.professions {
        if vocabulary.profession(c).is_none() {
            return Err(bad("profession", c));
        }
    }
    for c in &a.competences {
        if vocabulary.competence(c).is_none() {
            return Err(bad("competence", c));
        }
    }
    Ok(())
}

async fn write(
    state: &ApiState,
    headers: &HeaderMap,
    record: Authority,
    retired: bool,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let lang = views::language(state.cases().catalogue(), None, headers);
    let changes = state
        .services
        .directory_change(vec![(record.clone(), retired)])
        .await?;
    let (seq, changed) = match changes.first() {
        Some(Change::Applied(u)) => (Some(u.seq), true),
        _ => (None, false),
    };
    let mut v = view(state.services.directory(), &record, retired, &lang);
    if let Some(o) = v.as_object_mut() {
        o.insert("seq".into(), json!(seq));
        o.insert("changed".into(), json!(changed));
    }
    Ok((status, Json(v)).into_response())
}

/// `POST /api/v1/directory/authorities`: a new authority of this node's country.
pub(crate) async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    home_coordinator(&state, &headers).await?;
    query(q)?;
    json_content_type(&headers, &body)?;
    let record: Authority = json_body(&body)?;
    own_country(&state, &record)?;
    check_codes(&state, &record)?;
    if state
        .services
        .directory_entry(record.id.clone())
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "authority_exists",
            format!("authority {} exists; update it with PUT", record.id),
        ));
    }
    write(&state, &headers, record, false, StatusCode::CREATED).await
}

fn own_country(state: &ApiState, a: &Authority) -> Result<(), ApiError> {
    let me = state.cases().node();
    if a.country != me {
        return Err(ApiError::forbidden(format!(
            "{me} may only change authorities of {me}"
        )));
    }
    Ok(())
}

/// `PUT /api/v1/directory/authorities/{authority}`: replaces the record.
pub(crate) async fn update(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<NoQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    home_coordinator(&state, &headers).await?;
    query(q)?;
    let id = AuthorityId::new(&id).map_err(|_| ApiError::not_found())?;
    json_content_type(&headers, &body)?;
    let record: Authority = json_body(&body)?;
    if record.id != id {
        return Err(ApiError::unprocessable(
            "id_mismatch",
            "the record's id is not the path's",
        ));
    }
    own_country(&state, &record)?;
    check_codes(&state, &record)?;
    let current = state
        .services
        .directory_entry(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if current.update.retired {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "retired_authority",
            "a retired authority is not updated",
        ));
    }
    write(&state, &headers, record, false, StatusCode::OK).await
}

/// `POST /api/v1/directory/authorities/{authority}/retire`.
pub(crate) async fn retire(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<NoQuery>,
) -> Result<Response, ApiError> {
    home_coordinator(&state, &headers).await?;
    query(q)?;
    let id = AuthorityId::new(&id).map_err(|_| ApiError::not_found())?;
    let current = state
        .services
        .directory_entry(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let record = current.update.authority;
    own_country(&state, &record)?;
    write(&state, &headers, record, true, StatusCode::OK).await
}
