//! The handlers of `/api/v1`.
use crate::problem::ApiError;
use crate::{ApiState, users, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use imi_apps::requests::{CaseIndex, CaseMessage, FileBytes, MESSAGE_VERSION, SubjectData};
use imi_apps::services::IdempotencyKey;
use imi_domain::User;
use imi_domain::dates::{Date, rfc3339};
use imi_domain::request::{
    Actor, AnswerPayload, AttachmentRef, CodedAnswer, Digest, Rating, Transition, TransitionBody,
};
use imi_domain::user::Role;
use imi_protocol::{AuthorityId, CaseId, NodeId, Timestamp};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Default page size of lists.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size of lists.
pub const MAX_LIMIT: usize = 200;
/// Longest `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A route's query string, extracted without failing so that the handler parses it only
/// after authenticating the caller: a stranger gets the 401, never a 400 that describes the
/// parameters.
pub type QueryOf<T> = Result<Query<T>, QueryRejection>;

/// The parsed query: parameters the route does not document, duplicates and malformed
/// values are a 400 `bad_request`.
pub fn query<T>(q: QueryOf<T>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("bad_request", e.body_text()))
}

/// The query of a route that takes no parameters: any parameter is a 400.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A non-empty body must be declared `application/json` (else 415).
pub(crate) fn json_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    if body.is_empty() {
        return Ok(());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || v.starts_with("application/json;")
        });
    if json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be application/json",
        ))
    }
}

/// Parses a JSON body whose content type was checked: 400 for malformed JSON, 422 for a
/// body of the wrong shape (unknown fields, missing fields, wrong types). An empty body
/// reads as `{}`.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(text).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            ApiError::bad_request("malformed_json", format!("malformed JSON: {e}"))
        } else {
            ApiError::unprocessable("validation_failed", e.to_string())
        }
    })
}

/// The caller, who must be allowed to work on cases.
pub(crate) async fn case_worker(state: &ApiState, headers: &HeaderMap) -> Result<User, ApiError> {
    let user = users::authenticate(state, headers).await?;
    match user.role {
        Role::AuthorityUser | Role::Coordinator { .. } => Ok(user),
        _ => Err(ApiError::forbidden(format!(
            "the {} role does not work on cases",
            user.role.as_str()
        ))),
    }
}

/// Whether `user` may see the case.
pub fn visible(user: &User, index: &CaseIndex) -> bool {
    if index.requester == user.authority || index.responder == user.authority {
        return true;
    }
    match &user.role {
        Role::Coordinator { scope } => {
            user.country()
                .is_some_and(|c| index.countries().contains(&c))
                && scope.covers(&index.area)
        }
        _ => false,
    }
}

/// Whether `user` is shown the case: one it may see ([`visible`]) that retention has not
/// blocked (blocked cases are invisible to ordinary users; auditors read them through
/// [`blocked_view`]).
fn shown(user: &User, index: &CaseIndex, blocked: bool) -> bool {
    visible(user, index) && !blocked
}

/// The case `id` if it exists and the user may see it; otherwise the one 404.
async fn visible_case(
    state: &ApiState,
    user: &User,
    id: &str,
) -> Result<(CaseId, CaseIndex), ApiError> {
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    let (index, blocked) = state
        .services
        .case(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if shown(user, &index, blocked) {
        Ok((id, index))
    } else {
        Err(ApiError::not_found())
    }
}

pub(crate) type Idem = IdempotencyKey;

pub(crate) fn idempotency(
    user: &User,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
) -> Result<Option<Idem>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY
                && k.bytes().all(|b| (0x20..0x7f).contains(&b))
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_idempotency_key",
                "Idempotency-Key must be 1 to 128 printable ASCII characters",
            )
        })?;
    let mut k = user.id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    let mut h = route.as_bytes().to_vec();
    h.push(0);
    h.extend_from_slice(body);
    Ok(Some(IdempotencyKey {
        key: k,
        request_sha256: imi_protocol::sha256(&h),
    }))
}

pub(crate) fn authority_id(s: &str, field: &str) -> Result<AuthorityId, ApiError> {
    AuthorityId::new(s).map_err(|_| {
        ApiError::unprocessable("bad_authority", format!("{field} is not an authority id"))
    })
}

pub(crate) fn date_field(s: &str, field: &str) -> Result<Date, ApiError> {
    Date::parse(s).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_date",
            format!("{field} is not a YYYY-MM-DD calendar date"),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAttachment {
    name: String,
    content_base64: String,
}

pub(crate) fn attachments(
    list: Vec<NewAttachment>,
) -> Result<(Vec<AttachmentRef>, Vec<FileBytes>), ApiError> {
    let mut refs = Vec::with_capacity(list.len());
    let mut files = Vec::with_capacity(list.len());
    for a in list {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(a.content_base64.as_bytes())
            .map_err(|_| {
                ApiError::unprocessable("invalid_attachment", "content_base64 is not base64")
            })?;
        if bytes.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_attachment",
                "an attachment is empty",
            ));
        }
        refs.push(AttachmentRef {
            name: a.name,
            sha256: Digest(imi_protocol::sha256(&bytes)),
            size: bytes.len() as u64,
        });
        files.push(FileBytes::from(bytes));
    }
    Ok((refs, files))
}

/// The query of the POST routes: `wait=delivered` answers only once the other party's node
/// has stored the step durably (its signed receipt is back), with the outcome per node.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    wait: Option<String>,
}

impl WaitQuery {
    fn delivered(&self) -> Result<bool, ApiError> {
        match self.wait.as_deref() {
            None => Ok(false),
            Some("delivered") => Ok(true),
            Some(_) => Err(ApiError::bad_request(
                "bad_wait",
                "wait must be \"delivered\"",
            )),
        }
    }
}

/// How long `wait=delivered` waits for the other node's receipt.
pub const DELIVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits (at most [`DELIVERY_WAIT`] each) for the signed receipt of every recipient node:
/// per node its outcome, rejection code and round trip, or `pending`.
pub(crate) async fn delivery_outcomes(
    deliveries: Vec<tokio::sync::oneshot::Receiver<imi_engine::DeliveryReport>>,
) -> Vec<Value> {
    let mut out = Vec::new();
    for rx in deliveries {
        match tokio::time::timeout(DELIVERY_WAIT, rx).await {
            Ok(Ok(report)) => out.push(json!({
                "node": report.to.to_string(),
                "outcome": report.receipt.outcome.label(),
                "code": match &report.receipt.outcome {
                    imi_protocol::Outcome::Rejected(c) => Some(c.label().to_owned()),
                    _ => None,
                },
                "round_trip_ms": report.round_trip.as_secs_f64() * 1000.0,
            })),
            _ => out.push(json!({"outcome": "pending"})),
        }
    }
    out
}

/// Runs a step through the request application (one atomic commit with its envelope to
/// the other party's node and its idempotency record) and returns the step's result.
async fn submit(
    state: &ApiState,
    id: CaseId,
    actor: Actor,
    msg: CaseMessage,
    idem: Option<Idem>,
    wait: bool,
    read: Option<imi_apps::requests::CaseIndex>,
) -> Result<Value, ApiError> {
    let respond: imi_apps::services::Respond = Box::new(move |case, ctx| {
        json!({
            "id": id.to_string(),
            "state": case.state.name(),
            "message_id": ctx.message_id.map(|m| m.to_string()),
            "at": rfc3339(ctx.at),
        })
        .to_string()
        .into_bytes()
    });
    match state
        .services
        .submit(actor, id, msg, idem, respond, wait, read)
        .await
    {
        Ok(o) => {
            let mut v: Value = serde_json::from_slice(&o.response).map_err(ApiError::internal)?;
            if wait && o.committed {
                let delivery = delivery_outcomes(o.deliveries).await;
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("delivery".into(), Value::Array(delivery));
                }
            }
            Ok(v)
        }
        Err(imi_apps::AppError::Refused(r)) => {
            tracing::info!(case = %id, code = r.code.label(), "case step refused");
            Err(r.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Records a read of personal data, durably, before the data is returned.
pub(crate) async fn record_access(
    state: &ApiState,
    user: &User,
    case: CaseId,
    action: &str,
) -> Result<(), ApiError> {
    Ok(state.services.record_access(user, case, action).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LangQuery {
    pub(crate) lang: Option<String>,
}

pub(crate) fn lang(state: &ApiState, q: Option<&str>, headers: &HeaderMap) -> String {
    views::language(state.cases().catalogue(), q, headers)
}

// ---------------------------------------------------------------------------------------
// Me, catalogue, directory
// ---------------------------------------------------------------------------------------

/// `GET /api/v1/me`.
pub(crate) async fn me(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let areas: Vec<String> = match &user.role {
        Role::Coordinator {
            scope: imi_domain::CoordinatorScope::Delegated(a),
        } => a.clone(),
        _ => Vec::new(),
    };
    Ok(Json(json!({
        "id": user.id,
        "authority": user.authority.as_str(),
        "authority_name": state.cases().directory().get(&user.authority).map(|a| a.name(&lang)),
        "country": user.country().map(|c| c.to_string()),
        "role": user.role.as_str(),
        "areas": areas,
    })))
}

/// `GET /api/v1/catalogue`.
pub(crate) async fn catalogue(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let cat = state.cases().catalogue();
    let areas: Vec<Value> = cat
        .areas()
        .iter()
        .map(|a| {
            json!({
                "code": a.code(),
                "name": a.name().get(&lang),
                "procedures": a.procedures().iter().map(|p| json!({
                    "code": p.code(),
                    "kind": p.kind().as_str(),
                    "name": p.name().get(&lang),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({"lang": lang, "areas": areas})))
}

/// `GET /api/v1/catalogue/{area}`.
pub(crate) async fn catalogue_area(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(area): Path<String>,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let cat = state.cases().catalogue();
    let a = cat.area(&area).ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({
        "lang": lang,
        "code": a.code(),
        "name": a.name().get(&lang),
        "procedures": a.procedures().iter().map(|p| json!({
            "code": p.code(),
            "kind": p.kind().as_str(),
            "name": p.name().get(&lang),
            "questions": p.question_codes(),
            "optional": p.optional(),
            "commission": (p.kind() == imi_domain::catalogue::ProcedureKind::Notification).then(|| p.commission().as_str()),
            "repository": p.repository(),
        })).collect::<Vec<_>>(),
        "questions": a.questions().iter().map(|x| json!({
            "code": x.code(),
            "answer_type": x.answer_type().as_str(),
            "text": x.text().get(&lang),
            "options": x.options().iter().map(|o| json!({"code": o.code(), "text": o.text().get(&lang)})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthoritiesQuery {
    country: Option<NodeId>,
    area: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    lang: Option<String>,
}

pub(crate) fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    match l {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request("bad_limit", "limit must be 1 to 200")),
    }
}

/// The case id a `cursor` names (the `next_cursor` of a list of cases or entries), if any.
pub(crate) fn case_cursor(cursor: Option<&str>) -> Result<Option<CaseId>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<CaseId>()
                .map_err(|_| ApiError::bad_request("bad_cursor", "malformed cursor"))
        })
        .transpose()
}

/// `GET /api/v1/authorities`.
pub(crate) async fn authorities(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<AuthoritiesQuery>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let limit = limit(q.limit)?;
    let mut items = Vec::new();
    let mut next = None;
    for a in state.cases().directory().iter() {
        if q.cursor.as_deref().is_some_and(|c| a.id.as_str() <= c)
            || q.country.is_some_and(|c| a.country != c)
            || q.area.as_deref().is_some_and(|x| !a.handles_area(x))
        {
            continue;
        }
        if items.len() == limit {
            next = items.last().and_then(|v: &Value| v.get("id").cloned());
            break;
        }
        items.push(views::authority(a, &lang));
    }
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

/// `GET /api/v1/authorities/{authority}`.
pub(crate) async fn authority(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    users::authenticate(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let id = AuthorityId::new(&id).map_err(|_| ApiError::not_found())?;
    let directory = state.cases().directory();
    let a = directory.get(&id).ok_or_else(ApiError::not_found)?;
    Ok(Json(views::authority(a, &lang)))
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

const STATES: &[&str] = &[
    "sent",
    "accepted",
    "deadline_proposed",
    "info_requested",
    "answered",
    "referred",
    "closed",
    "withdrawn",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    status: Option<String>,
    role: Option<String>,
    area: Option<String>,
    overdue: Option<bool>,
    country: Option<NodeId>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /api/v1/requests`.
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let limit = limit(q.limit)?;
    if let Some(s) = &q.status
        && !STATES.contains(&s.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_status",
            format!("unknown status; one of {}", STATES.join(", ")),
        ));
    }
    if let Some(r) = &q.role
        && !["requester", "responder", "coordinator"].contains(&r.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_role",
            "role must be requester, responder or coordinator",
        ));
    }
    let mut after = case_cursor(q.cursor.as_deref())?;
    let now = state.clock.now_ms();
    let my_country = user.country();
    let mut items = Vec::new();
    let mut next = None;
    'scan: loop {
        let rows = state.services.cases_after(after, 512).await?;
        let done = rows.len() < 512;
        for (id, ix, blocked) in rows {
            after = Some(id);
            let counterpart = ix
                .countries()
                .into_iter()
                .find(|c| Some(*c) != my_country)
                .or(my_country);
            let keep = shown(&user, &ix, blocked)
                && q.status.as_deref().is_none_or(|s| ix.state == s)
                && q.area.as_deref().is_none_or(|a| ix.area == a)
                && q.role
                    .as_deref()
                    .is_none_or(|r| views::my_role(&ix, &user) == r)
                && q.overdue.is_none_or(|o| ix.overdue(now) == o)
                && q.country.is_none_or(|c| counterpart == Some(c));
            if !keep {
                continue;
            }
            if items.len() == limit {
                next = items.last().and_then(|v: &Value| v.get("id").cloned());
                break 'scan;
            }
            items.push(views::summary(&id, &ix, &user, now));
        }
        if done {
            break;
        }
    }
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInput {
    responder: String,
    #[serde(default)]
    requester: Option<String>,
    area: String,
    procedure: String,
    #[serde(default)]
    questions: Vec<String>,
    #[serde(default)]
    free_text: String,
    subject: SubjectData,
    answer_by: String,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
}

/// `POST /api/v1/requests`.
pub(crate) async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    wait: QueryOf<WaitQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let wait = query(wait)?;
    let wait = wait.delivered()?;
    let idem = idempotency(&user, &headers, "/api/v1/requests", &body)?;
    json_content_type(&headers, &body)?;
    let (actor, msg) = create_message(&user, &body, state.clock.now_ms())?;
    let id = CaseId::random();
    let result = submit(&state, id, actor, msg, idem, wait, None).await?;
    tracing::info!(case = %id, user = %user.id, "request created");
    Ok((StatusCode::CREATED, Json(result)).into_response())
}

/// The step of `POST /api/v1/requests` by `user` at `now`, from its JSON body (whose content
/// type the handler checked): the actor and the message to submit, or the 4xx the body
/// earns. Pure: the state machine and the catalogue checks come later, in the request
/// application; the `api_bodies` fuzz target runs this on hostile bodies.
pub fn create_message(
    user: &User,
    body: &[u8],
    now: Timestamp,
) -> Result<(Actor, CaseMessage), ApiError> {
    let input: CreateInput = json_body(body)?;
    let requester = match &input.requester {
        Some(r) => authority_id(r, "requester")?,
        None => user.authority.clone(),
    };
    if !user.may_act_for(&requester) {
        return Err(ApiError::forbidden(
            "you may only send requests for your own authority",
        ));
    }
    let responder = authority_id(&input.responder, "responder")?;
    let answer_by = date_field(&input.answer_by, "answer_by")?.end_ms();
    if answer_by <= now {
        return Err(ApiError::unprocessable(
            "deadline_in_past",
            "answer_by must be a future date",
        ));
    }
    input.subject.validate()?;
    let actor = user
        .actor(&input.area)
        .ok_or_else(|| ApiError::forbidden("this role does not work on cases"))?;
    let (refs, files) = attachments(input.attachments)?;
    let t = Transition::Create {
        requester,
        responder,
        area: input.area,
        procedure: input.procedure,
        questions: input.questions,
        free_text: input.free_text,
        attachments: refs,
        subject: input.subject.commitment(),
        answer_by,
    };
    let msg = CaseMessage {
        v: MESSAGE_VERSION,
        step: TransitionBody::new(t),
        coordinator: actor.coordinator,
        subject: Some(input.subject),
        files,
    };
    Ok((actor, msg))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Empty {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToInput {
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadlineInput {
    answer_by: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnswerInput {
    question: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    value: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    answers: Vec<AnswerInput>,
    #[serde(default)]
    free_text: String,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextInput {
    text: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfoInput {
    text: String,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseInput {
    /// A JSON number, so that `4.0` is the rating 4 (see [`crate::numbers`]).
    #[serde(default)]
    timeliness: Option<serde_json::Number>,
    #[serde(default)]
    efforts: Option<serde_json::Number>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonInput {
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteInput {
    #[serde(default)]
    note: String,
}

fn rating(v: Option<&serde_json::Number>, field: &str) -> Result<Option<Rating>, ApiError> {
    Ok(match v.map(|n| crate::numbers::integer(n).unwrap_or(0)) {
        None => None,
        Some(1) => Some(Rating::VeryDissatisfied),
        Some(2) => Some(Rating::Dissatisfied),
        Some(3) => Some(Rating::Neutral),
        Some(4) => Some(Rating::Satisfied),
        Some(5) => Some(Rating::VerySatisfied),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_rating",
                format!("{field} must be 1 (very dissatisfied) to 5 (very satisfied)"),
            ));
        }
    })
}

pub(crate) fn answer(a: AnswerInput) -> Result<CodedAnswer, ApiError> {
    let bad = || {
        ApiError::unprocessable(
            "invalid_answer",
            format!("the value of {} does not fit type {}", a.question, a.ty),
        )
    };
    let payload = match a.ty.as_str() {
        "bool" => AnswerPayload::Bool(a.value.as_bool().ok_or_else(bad)?),
        "text" => AnswerPayload::Text(a.value.as_str().ok_or_else(bad)?.to_owned()),
        "number" => AnswerPayload::Number(crate::numbers::integer_value(&a.value).ok_or_else(bad)?),
        "date" => {
            let d = date_field(a.value.as_str().ok_or_else(bad)?, "value")?;
            if d.before_epoch() {
                return Err(ApiError::unprocessable(
                    "unsupported_date",
                    format!(
                        "date answers before 1970 are not supported ({})",
                        a.question
                    ),
                ));
            }
            AnswerPayload::Date(d.start_ms())
        }
        "choice" => AnswerPayload::Choice(a.value.as_str().ok_or_else(bad)?.to_owned()),
        "choices" => AnswerPayload::Choices(
            a.value
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?,
        ),
        "not_available" if a.value.is_null() => AnswerPayload::NotAvailable,
        _ => return Err(bad()),
    };
    Ok(CodedAnswer {
        question: a.question,
        answer: payload,
    })
}

/// `POST /api/v1/requests/{id}/<action>`.
pub(crate) async fn transition(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    wait: QueryOf<WaitQuery>,
    body: Bytes,
    action: &'static str,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let wait = query(wait)?;
    let wait = wait.delivered()?;
    let (id, index) = visible_case(&state, &user, &id).await?;
    let idem = idempotency(
        &user,
        &headers,
        &format!("/api/v1/requests/{id}/{action}"),
        &body,
    )?;
    json_content_type(&headers, &body)?;
    let (actor, msg) = step_message(&user, &index.area, action, &body, state.clock.now_ms())?;
    let result = submit(&state, id, actor, msg, idem, wait, Some(index)).await?;
    tracing::info!(case = %id, user = %user.id, action, "case step");
    Ok(Json(result))
}

/// The step `action` (`accept`, `forward`, ..., the last segment of the route) by `user`
/// at `now` on a case of legal area `area`, from its JSON body (whose content type the
/// handler checked): the actor and the message to submit, or the 4xx the body earns. Pure,
/// like [`create_message`].
pub fn step_message(
    user: &User,
    area: &str,
    action: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(Actor, CaseMessage), ApiError> {
    let mut files = Vec::new();
    let t = match action {
        "accept" => {
            json_body::<Empty>(body)?;
            Transition::Accept
        }
        "forward" => Transition::Forward {
            to: authority_id(&json_body::<ToInput>(body)?.to, "to")?,
        },
        "reassign" => Transition::Reassign {
            to: authority_id(&json_body::<ToInput>(body)?.to, "to")?,
        },
        "propose-deadline" => {
            let d = json_body::<DeadlineInput>(body)?;
            let new = date_field(&d.answer_by, "answer_by")?.end_ms();
            if new <= now {
                return Err(ApiError::unprocessable(
                    "deadline_in_past",
                    "answer_by must be a future date",
                ));
            }
            Transition::ProposeDeadline { new }
        }
        "accept-deadline" => {
            json_body::<Empty>(body)?;
            Transition::AcceptDeadline
        }
        "refuse-deadline" => {
            json_body::<Empty>(body)?;
            Transition::RefuseDeadline
        }
        "answer" => {
            let b = json_body::<AnswerBody>(body)?;
            let answers = b
                .answers
                .into_iter()
                .map(answer)
                .collect::<Result<Vec<_>, _>>()?;
            let (refs, f) = attachments(b.attachments)?;
            files = f;
            Transition::Answer {
                answers,
                free_text: b.free_text,
                attachments: refs,
            }
        }
        "request-info" => Transition::RequestInfo {
            text: json_body::<TextInput>(body)?.text,
        },
        "provide-info" => {
            let b = json_body::<InfoInput>(body)?;
            let (refs, f) = attachments(b.attachments)?;
            files = f;
            Transition::ProvideInfo {
                text: b.text,
                attachments: refs,
            }
        }
        "close" => {
            let b = json_body::<CloseInput>(body)?;
            Transition::Close {
                timeliness: rating(b.timeliness.as_ref(), "timeliness")?,
                efforts: rating(b.efforts.as_ref(), "efforts")?,
            }
        }
        "withdraw" => Transition::Withdraw {
            reason: json_body::<ReasonInput>(body)?.reason,
        },
        "refer" => Transition::Refer {
            reason: json_body::<ReasonInput>(body)?.reason,
        },
        "resolve" => Transition::Resolve {
            note: json_body::<NoteInput>(body)?.note,
        },
        _ => return Err(ApiError::not_found()),
    };
    let actor = user
        .actor(area)
        .ok_or_else(|| ApiError::forbidden("this role does not work on cases"))?;
    let msg = CaseMessage {
        v: MESSAGE_VERSION,
        step: TransitionBody::new(t),
        coordinator: actor.coordinator,
        subject: None,
        files,
    };
    Ok((actor, msg))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    lang: Option<String>,
}

/// `GET /api/v1/requests/{id}`: the full case, personal data included (access logged).
pub(crate) async fn read(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    // The index, the visibility check, the record and the steps' deliveries in one trip
    // to the blocking pool: the simulated year reads a case before most steps.
    let reader = user.clone();
    let page = state
        .services
        .case_page(id, move |index, blocked| shown(&reader, index, blocked))
        .await?
        .ok_or_else(ApiError::not_found)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    record_access(&state, &user, id, "read_request").await?;
    Ok(Json(page_view(&state, &id, &page, &user, &lang)))
}

/// `GET /api/v1/requests/{id}/attachments/{sha256}` (access logged).
pub(crate) async fn attachment(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, sha)): Path<(String, String)>,
    q: QueryOf<NoQuery>,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    query(q)?;
    let (id, _) = visible_case(&state, &user, &id).await?;
    let sha = Digest::from_hex(&sha).ok_or_else(ApiError::not_found)?;
    let bytes = state
        .services
        .attachment(id, sha.0)
        .await?
        .ok_or_else(ApiError::not_found)?;
    record_access(&state, &user, id, "read_attachment").await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessQuery {
    case: Option<String>,
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// `GET /api/v1/audit/access-log` (auditors).
pub(crate) async fn access_log(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<AccessQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = users::authenticate(&state, &headers).await?;
    if !user.is_auditor() {
        return Err(ApiError::forbidden("the access log is for auditors"));
    }
    let q = query(q)?;
    let limit = limit(q.limit)?;
    let case: Option<CaseId> = match &q.case {
        None => None,
        Some(c) => Some(
            c.parse()
                .map_err(|_| ApiError::bad_request("bad_case", "malformed case id"))?,
        ),
    };
    let mut start = q.cursor.map_or(0, |c| c.saturating_add(1));
    let mut items = Vec::new();
    let mut next = None;
    'scan: loop {
        let rows = state.services.access_log(start, 512).await?;
        let done = rows.len() < 512;
        for (seq, rec) in rows {
            start = seq.saturating_add(1);
            if case.is_some_and(|c| c != rec.case) {
                continue;
            }
            if items.len() == limit {
                next = items.last().and_then(|v: &Value| v.get("seq").cloned());
                break 'scan;
            }
            items.push(json!({
                "seq": seq,
                "at": rfc3339(rec.at),
                "user": rec.user,
                "authority": rec.authority.as_str(),
                "case": rec.case.to_string(),
                "action": rec.action,
            }));
        }
        if done {
            break;
        }
    }
    Ok(Json(
        json!({"items": items, "next_cursor": next.map(|v| v.to_string())}),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BundleQuery {
    case: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The selection of a bundle query: `case=ID`, or `from` and `to` (RFC 3339 UTC).
pub fn bundle_selection(
    case: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<imi_apps::evidence::Selection, ApiError> {
    use imi_apps::evidence::Selection;
    let bad = |d: &str| ApiError::bad_request("bad_selection", d);
    match (case, from, to) {
        (Some(c), None, None) => Ok(Selection::Case(
            c.parse().map_err(|_| ApiError::not_found())?,
        )),
        (None, Some(f), Some(t)) => {
            let f = imi_protocol::dates::parse_rfc3339(f)
                .ok_or_else(|| bad("from is not an RFC 3339 UTC time"))?;
            let t = imi_protocol::dates::parse_rfc3339(t)
                .ok_or_else(|| bad("to is not an RFC 3339 UTC time"))?;
            if f >= t {
                return Err(bad("from must be before to"));
            }
            Ok(Selection::Range { from: f, to: t })
        }
        _ => Err(bad("give case, or from and to")),
    }
}

/// `GET /api/v1/audit/bundle?case=ID` or `?from=..&to=..` (auditors): an evidence bundle.
pub(crate) async fn bundle(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<BundleQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = users::authenticate(&state, &headers).await?;
    if !user.is_auditor() {
        return Err(ApiError::forbidden("evidence bundles are for auditors"));
    }
    let q = query(q)?;
    let selection = bundle_selection(q.case.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    let b = export_bundle(&state, selection)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tracing::info!(user = %user.id, entries = b.entries.len(), "evidence bundle exported");
    Ok(Json(serde_json::to_value(b).map_err(ApiError::internal)?))
}

/// The evidence bundle of a selection (for the auditor route and the operator's CLI);
/// `None` for a case this node does not hold.
pub async fn export_bundle(
    state: &ApiState,
    selection: imi_apps::evidence::Selection,
) -> Result<Option<imi_audit::bundle::Bundle>, ApiError> {
    Ok(state.services.bundle(selection).await?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmsQuery {
    limit: Option<usize>,
    cursor: Option<u64>,
}

/// `GET /api/v1/audit/alarms` (auditors): the witness alarms this node raised, a page at a
/// time.
pub(crate) async fn alarms(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<AlarmsQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = users::authenticate(&state, &headers).await?;
    if !user.is_auditor() {
        return Err(ApiError::forbidden("witness alarms are for auditors"));
    }
    let q = query(q)?;
    let limit = limit(q.limit)?;
    let from = q.cursor.map_or(0, |c| c.saturating_add(1));
    let mut page = state.services.alarms(from, limit + 1).await?;
    let next = (page.len() > limit).then(|| {
        page.truncate(limit);
        page.last().map(|(seq, _)| seq.to_string())
    });
    let items: Vec<Value> = page
        .into_iter()
        .map(|(seq, a)| {
            let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("seq".into(), json!(seq));
            }
            v
        })
        .collect();
    Ok(Json(
        json!({ "items": items, "next_cursor": next.flatten() }),
    ))
}

/// `GET /api/v1/audit/blocked/{id}` (auditors): the explicit, logged read of a blocked
/// case's data.
pub(crate) async fn read_blocked(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: QueryOf<ReadQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = users::authenticate(&state, &headers).await?;
    if !user.is_auditor() {
        return Err(ApiError::forbidden("blocked data is read by auditors only"));
    }
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    Ok(Json(blocked_view(&state, &user, &id, &lang).await?))
}

/// The explicit read of a blocked case by `reader` (an auditor; the operator cannot read
/// case data): recorded in the access log and the transparency log
/// (`read_blocked`) before the data is returned.
pub(crate) async fn blocked_view(
    state: &ApiState,
    reader: &User,
    id: &str,
    lang: &str,
) -> Result<Value, ApiError> {
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    let (index, blocked) = state
        .services
        .case(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !blocked {
        return Err(ApiError::not_found());
    }
    let record = state.services.record(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::GONE,
            "case_erased",
            "the case's data has been erased",
        )
    })?;
    record_access(state, reader, id, "read_blocked").await?;
    tracing::warn!(case = %id, reader = %reader.id, role = reader.role.as_str(), "blocked case data read");
    let deliveries = state.services.step_deliveries(id).await?;
    let page = imi_apps::services::CasePage {
        index,
        record,
        deliveries,
    };
    Ok(page_view(state, &id, &page, reader, lang))
}

/// A case's full view ([`views::case_view`]) with the delivery state of its steps
/// ([`views::add_deliveries`]).
fn page_view(
    state: &ApiState,
    id: &CaseId,
    page: &imi_apps::services::CasePage,
    user: &User,
    lang: &str,
) -> Value {
    let mut view = views::case_view(
        state.cases(),
        id,
        &page.index,
        &page.record,
        user,
        lang,
        state.clock.now_ms(),
    );
    views::add_deliveries(&mut view, &page.record.case, &page.deliveries);
    view
}
