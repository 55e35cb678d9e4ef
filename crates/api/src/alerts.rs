//! The handlers of `/api/v1/alerts`: a competent authority sends an alert to every other
//! member state (or to the member states concerned and the Commission, as its type says),
//! modifies and closes it; each recipient's incoming-alert coordinator (`<CC>-NC`) sees the
//! profession and the measure, never the professional, and forwards the alert to
//! authorities of its country; those see the professional once the sender's node has
//! granted their node the identity key. An alert the caller's authority neither sent nor
//! holds in its box is the one 404.
use crate::problem::ApiError;
use crate::requests::{
    AnswerInput, LangQuery, NoQuery, QueryOf, answer, authority_id, case_worker, date_field,
    idempotency, json_body, json_content_type, lang, query, record_access,
};
use crate::{ApiState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use imi_apps::alerts::{AlertIndex, BoxEntry, BoxRole, NewAlert};
use imi_apps::requests::SubjectData;
use imi_domain::dates::{Date, rfc3339};
use imi_protocol::{CaseId, NodeId};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertInput {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    profession: String,
    #[serde(default)]
    fields: Vec<AnswerInput>,
    decided: String,
    #[serde(default)]
    valid_until: Option<String>,
    professional: SubjectData,
    #[serde(default)]
    member_states: Vec<String>,
    #[serde(default)]
    commission: bool,
}

fn role(r: BoxRole) -> &'static str {
    match r {
        BoxRole::Sender => "sender",
        BoxRole::Coordinator => "coordinator",
        BoxRole::Forwarded => "forwarded",
    }
}

fn view(
    state: &ApiState,
    id: &CaseId,
    ix: &AlertIndex,
    entry: &BoxEntry,
    identity: Option<&SubjectData>,
    lang: &str,
) -> Value {
    let cat = state.cases().catalogue();
    json!({
        "id": id.to_string(),
        "type": {"code": ix.procedure, "name": cat.procedure(&ix.procedure).and_then(|p| p.name().get(lang))},
        "profession": ix.profession,
        "fields": ix.fields.iter().map(|f| views::rendered_answer(cat, &f.question, &f.answer, lang)).collect::<Vec<_>>(),
        "decided": Date::of_ms(ix.decided).to_string(),
        "valid_until": ix.valid_until.map(|u| Date::of_ms(u).to_string()),
        "sender": {"id": ix.sender.as_str(), "country": ix.sender_node.to_string()},
        "sent_at": rfc3339(ix.sent_at),
        "late": ix.late,
        "role": role(entry.role),
        "recipient_countries": ix.recipients.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "professional": identity.map(|s| json!({
            "name": s.name,
            "date_of_birth": s.date_of_birth,
            "details": s.details,
        })),
        "identity_sealed": identity.is_none(),
        "revision": ix.revision,
        "modified_at": ix.modified.map(rfc3339),
        "closed": ix.closed.map(|(at, ended)| json!({"at": rfc3339(at), "ended": Date::of_ms(ended).to_string()})),
        "identity_erased": ix.erased.is_some(),
    })
}

/// An alert's measure as the API takes it, for a new alert and a modification: the type's
/// fields and the validity's last day.
fn measure(
    fields: Vec<AnswerInput>,
    valid_until: Option<&str>,
) -> Result<(Vec<imi_domain::request::CodedAnswer>, Option<u64>), ApiError> {
    let valid_until = match valid_until {
        Some(d) => Some(date_field(d, "valid_until")?.start_ms()),
        None => None,
    };
    let fields = fields
        .into_iter()
        .map(answer)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((fields, valid_until))
}

/// `POST /api/v1/alerts`.
pub(crate) async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let idem = idempotency(&user, &headers, "/api/v1/alerts", &body)?;
    json_content_type(&headers, &body)?;
    let input: AlertInput = json_body(&body)?;
    let decided = date_field(&input.decided, "decided")?;
    if decided.before_epoch() || decided.start_ms() > state.clock.now_ms() {
        return Err(ApiError::unprocessable(
            "invalid_date",
            "decided must be a past date",
        ));
    }
    let (fields, valid_until) = measure(input.fields, input.valid_until.as_deref())?;
    let member_states = input
        .member_states
        .iter()
        .map(|c| {
            c.parse::<NodeId>().map_err(|_| {
                ApiError::unprocessable(
                    "invalid_recipients",
                    format!("{c:?} is not a country code"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewAlert {
        member_states,
        commission: input.commission,
        procedure: input.ty,
        profession: input.profession,
        fields,
        decided: decided.start_ms(),
        valid_until,
        identity: input.professional,
    };
    let (id, ix) = state
        .services
        .send_alert(user.authority.clone(), new, idem)
        .await?;
    let entry = BoxEntry {
        role: BoxRole::Sender,
        at: ix.sent_at,
    };
    let v = view(&state, &id, &ix, &entry, None, &lang);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `GET /api/v1/alerts`: the caller's authority's alerts (sent, to route, forwarded to it).
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let items: Vec<Value> = state
        .services
        .alert_box(user.authority.clone())
        .await?
        .iter()
        .map(|(id, e, ix)| {
            let mut v = view(&state, id, ix, e, None, &lang);
            if let Some(o) = v.as_object_mut() {
                o.remove("professional");
                o.remove("identity_sealed");
            }
            v
        })
        .collect();
    Ok(Json(json!({"lang": lang, "items": items})))
}

/// `GET /api/v1/alerts/{id}` (access logged when the professional is shown).
pub(crate) async fn read(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    let (ix, entry, identity) = state
        .services
        .alert(id, user.authority.clone())
        .await?
        .ok_or_else(ApiError::not_found)?;
    if identity.is_some() {
        record_access(&state, &user, id, "read_alert").await?;
    }
    Ok(Json(view(
        &state,
        &id,
        &ix,
        &entry,
        identity.as_ref(),
        &lang,
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardInput {
    authorities: Vec<String>,
}

/// `POST /api/v1/alerts/{id}/forward`: the incoming-alert coordinator routes the alert to
/// authorities of its country.
pub(crate) async fn forward(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    query(q)?;
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    let (_, entry, _) = state
        .services
        .alert(id, user.authority.clone())
        .await?
        .ok_or_else(ApiError::not_found)?;
    if entry.role != BoxRole::Coordinator {
        return Err(ApiError::forbidden(
            "only the incoming-alert coordinator forwards an alert",
        ));
    }
    json_content_type(&headers, &body)?;
    let input: ForwardInput = json_body(&body)?;
    let authorities = input
        .authorities
        .iter()
        .map(|a| authority_id(a, "authorities"))
        .collect::<Result<Vec<_>, _>>()?;
    state
        .services
        .forward_alert(id, user.authority.clone(), authorities.clone())
        .await?;
    Ok(Json(json!({
        "id": id.to_string(),
        "forwarded_to": authorities.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseInput {
    ended: String,
}

/// `POST /api/v1/alerts/{id}/close`: the sender closes its alert.
pub(crate) async fn close(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    query(q)?;
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    json_content_type(&headers, &body)?;
    let input: CloseInput = json_body(&body)?;
    let ended = date_field(&input.ended, "ended")?;
    if ended.before_epoch() {
        return Err(ApiError::unprocessable(
            "invalid_date",
            "ended is before 1970",
        ));
    }
    let ix = state
        .services
        .close_alert(id, user.authority.clone(), ended.start_ms())
        .await?;
    let entry = BoxEntry {
        role: BoxRole::Sender,
        at: ix.sent_at,
    };
    Ok(Json(view(&state, &id, &ix, &entry, None, "en")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyInput {
    fields: Vec<AnswerInput>,
    #[serde(default)]
    valid_until: Option<String>,
}

/// `POST /api/v1/alerts/{id}/modify`: the sender changes the measure and its validity.
pub(crate) async fn modify(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    json_content_type(&headers, &body)?;
    let input: ModifyInput = json_body(&body)?;
    let (fields, valid_until) = measure(input.fields, input.valid_until.as_deref())?;
    let ix = state
        .services
        .modify_alert(id, user.authority.clone(), fields, valid_until)
        .await?;
    let entry = BoxEntry {
        role: BoxRole::Sender,
        at: ix.sent_at,
    };
    Ok(Json(view(&state, &id, &ix, &entry, None, &lang)))
}
