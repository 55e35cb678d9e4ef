//! The handlers of `/api/v1/notifications`: send a notification to named authorities of
//! other member states and/or the Commission, list an authority's inbox and sent box, read
//! one (rendered in the caller's language; access logged), acknowledge reading it, download
//! its attachments. The sender sees, per recipient node, when its signed receipt came back
//! and, per named authority, when it acknowledged.
//!
//! A notification is visible only to its sending authority and the authorities it names
//! (on their own node); any other caller gets the one 404.
use crate::problem::ApiError;
use crate::requests::{
    AnswerInput, Idem, LangQuery, NewAttachment, NoQuery, QueryOf, answer, attachments,
    authority_id, case_worker, delivery_outcomes, idempotency, json_body, json_content_type, lang,
    limit, query, record_access,
};
use crate::{ApiState, views};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use imi_apps::notifications::{self as apps, NotificationIndex};
use imi_domain::User;
use imi_domain::dates::rfc3339;
use imi_domain::notification::{Addressee, NOTIFICATION_VERSION, Notification};
use imi_protocol::{CaseId, NodeId};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientInput {
    country: String,
    authorities: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifyInput {
    #[serde(rename = "type")]
    ty: String,
    recipients: Vec<RecipientInput>,
    #[serde(default)]
    fields: Vec<AnswerInput>,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
}

/// The notification of a `POST /api/v1/notifications` body (whose content type the handler
/// checked). Pure: the catalogue and directory checks come next, in the application.
pub fn notification_from(body: &[u8]) -> Result<Notification, ApiError> {
    let input: NotifyInput = json_body(body)?;
    if input.recipients.len() > imi_domain::notification::MAX_RECIPIENT_AUTHORITIES {
        return Err(ApiError::unprocessable(
            "too_many_recipients",
            "too many recipient countries",
        ));
    }
    let mut recipients = Vec::with_capacity(input.recipients.len());
    for r in input.recipients {
        let country: NodeId = r.country.parse().map_err(|_| {
            ApiError::unprocessable(
                "invalid_recipients",
                format!("{} is not a member", r.country),
            )
        })?;
        let authorities = r
            .authorities
            .iter()
            .map(|a| authority_id(a, "recipient"))
            .collect::<Result<Vec<_>, _>>()?;
        recipients.push(Addressee {
            country,
            authorities,
        });
    }
    recipients.sort_by_key(|a| a.country);
    let fields = input
        .fields
        .into_iter()
        .map(answer)
        .collect::<Result<Vec<_>, _>>()?;
    let (refs, files) = attachments(input.attachments)?;
    Ok(Notification {
        v: NOTIFICATION_VERSION,
        procedure: input.ty,
        recipients,
        fields,
        attachments: refs,
        files,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitQuery {
    wait: Option<String>,
}

/// `POST /api/v1/notifications`.
pub(crate) async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<WaitQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let wait = match query(q)?.wait.as_deref() {
        None => false,
        Some("delivered") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad_request",
                "wait must be \"delivered\"",
            ));
        }
    };
    let idem: Option<Idem> = idempotency(&user, &headers, "/api/v1/notifications", &body)?;
    json_content_type(&headers, &body)?;
    let notification = notification_from(&body)?;
    let respond: apps::RespondSent = Box::new(|id, ix| {
        json!({
            "id": id.to_string(),
            "type": ix.procedure,
            "message_id": ix.message.to_string(),
            "sent_at": rfc3339(ix.sent_at),
            "recipients": ix.recipients.iter().map(|a| a.country.to_string()).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes()
    });
    let sent = match state
        .services
        .notify(user.authority.clone(), notification, idem, respond, wait)
        .await
    {
        Ok(s) => s,
        Err(imi_apps::AppError::Refused(r)) => {
            tracing::info!(user = %user.id, code = r.code.label(), "notification refused");
            return Err(r.into());
        }
        Err(e) => return Err(e.into()),
    };
    let mut v: Value = serde_json::from_slice(&sent.response).map_err(ApiError::internal)?;
    if let (Some(entry), Some(obj)) = (sent.entry, v.as_object_mut()) {
        obj.insert("repository_entry".into(), json!(entry.to_string()));
    }
    if wait && sent.committed {
        let delivery = delivery_outcomes(sent.deliveries).await;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("delivery".into(), Value::Array(delivery));
        }
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(rename = "box")]
    which: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    lang: Option<String>,
}

fn type_name(state: &ApiState, code: &str, lang: &str) -> Value {
    json!({"code": code, "name": state.cases().catalogue().procedure(code).and_then(|p| p.name().get(lang))})
}

fn authority_ref(state: &ApiState, id: &imi_protocol::AuthorityId, lang: &str) -> Value {
    json!({
        "id": id.as_str(),
        "name": state.cases().directory().get(id).map(|a| a.name(lang).to_owned()),
    })
}

/// `GET /api/v1/notifications`: the caller's authority's inbox (`box=inbox`, the default)
/// or sent box (`box=sent`), in id order, a page at a time.
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    q: QueryOf<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let outgoing = match q.which.as_deref() {
        None | Some("inbox") => false,
        Some("sent") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "bad_request",
                "box must be inbox or sent",
            ));
        }
    };
    let limit = limit(q.limit)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<CaseId>()
                .map_err(|_| ApiError::bad_request("bad_cursor", "after is not an id"))?,
        ),
    };
    // Read a page of the box, keeping the requested direction; a short scan ends the box.
    let mut items = Vec::new();
    let mut cursor = after;
    let mut next = None;
    loop {
        let page = state
            .services
            .notification_box(user.authority.clone(), cursor, limit)
            .await?;
        let n = page.len();
        for (id, entry, ix) in page {
            cursor = Some(id);
            if entry.outgoing != outgoing {
                continue;
            }
            items.push(json!({
                "id": id.to_string(),
                "type": type_name(&state, &ix.procedure, &lang),
                "area": ix.area,
                "sender": authority_ref(&state, &ix.sender, &lang),
                "sent_at": rfc3339(ix.sent_at),
                "received_at": rfc3339(ix.received_at),
                "read_at": views::opt_time(entry.read),
                "recipient_countries": ix.recipients.iter().map(|a| a.country.to_string()).collect::<Vec<_>>(),
            }));
            if items.len() == limit {
                next = Some(id.to_string());
                break;
            }
        }
        if next.is_some() || n < limit {
            break;
        }
    }
    Ok(Json(json!({"lang": lang, "items": items, "next": next})))
}

/// The notification `id` if the caller's authority sent it or is named by it; otherwise
/// the one 404.
async fn visible(
    state: &ApiState,
    user: &User,
    id: &str,
) -> Result<(CaseId, NotificationIndex, Option<apps::BoxEntry>), ApiError> {
    let id: CaseId = id.parse().map_err(|_| ApiError::not_found())?;
    let (ix, entry) = state
        .services
        .notification(id, user.authority.clone())
        .await?;
    let ix = ix.ok_or_else(ApiError::not_found)?;
    let mine = (ix.outgoing && ix.sender == user.authority) || (!ix.outgoing && entry.is_some());
    if mine {
        Ok((id, ix, entry))
    } else {
        Err(ApiError::not_found())
    }
}

/// `GET /api/v1/notifications/{id}` (access logged).
pub(crate) async fn read(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<LangQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    let q = query(q)?;
    let lang = lang(&state, q.lang.as_deref(), &headers);
    let (id, ix, entry) = visible(&state, &user, &id).await?;
    record_access(&state, &user, id, "read_notification").await?;
    let content = state
        .services
        .notification_content(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let cat = state.cases().catalogue();
    let fields: Vec<Value> = content
        .fields
        .iter()
        .map(|f| views::rendered_answer(cat, &f.question, &f.answer, &lang))
        .collect();
    let (deliveries, acks) = if ix.outgoing {
        state
            .services
            .notification_status(
                id,
                ix.message,
                ix.recipients.iter().map(|a| a.country).collect(),
            )
            .await?
    } else {
        (Vec::new(), Vec::new())
    };
    let mut recipients = Vec::new();
    for a in &ix.recipients {
        let delivery = deliveries
            .iter()
            .find(|(n, _)| *n == a.country)
            .and_then(|(_, d)| d.clone());
        let authorities: Vec<Value> = a
            .authorities
            .iter()
            .map(|auth| {
                let mut v = authority_ref(&state, auth, &lang);
                if ix.outgoing
                    && let Some(obj) = v.as_object_mut()
                {
                    let ack = acks
                        .iter()
                        .find(|(n, x, _)| *n == a.country && x == auth)
                        .map(|(_, _, ack)| rfc3339(ack.at));
                    obj.insert("acknowledged_at".into(), json!(ack));
                }
                v
            })
            .collect();
        let mut r = json!({"country": a.country.to_string(), "authorities": authorities});
        if ix.outgoing
            && let Some(obj) = r.as_object_mut()
        {
            obj.insert(
                "delivered_at".into(),
                json!(
                    delivery
                        .as_ref()
                        .filter(|d| d.code.is_none())
                        .map(|d| rfc3339(d.at))
                ),
            );
            obj.insert(
                "delivery".into(),
                json!(delivery.as_ref().map_or("pending", |d| d.outcome.as_str())),
            );
            obj.insert(
                "rejection_code".into(),
                json!(delivery.as_ref().and_then(|d| d.code.clone())),
            );
        }
        recipients.push(r);
    }
    Ok(Json(json!({
        "id": id.to_string(),
        "lang": lang,
        "direction": if ix.outgoing { "sent" } else { "received" },
        "type": type_name(&state, &ix.procedure, &lang),
        "area": {"code": ix.area, "name": cat.area(&ix.area).and_then(|a| a.name().get(&lang))},
        "sender": {
            "id": ix.sender.as_str(),
            "name": state.cases().directory().get(&ix.sender).map(|a| a.name(&lang).to_owned()),
            "country": ix.sender_node.to_string(),
        },
        "message_id": ix.message.to_string(),
        "sent_at": rfc3339(ix.sent_at),
        "received_at": rfc3339(ix.received_at),
        "read_at": views::opt_time(entry.and_then(|e| e.read)),
        "fields": fields,
        "attachments": views::attachments(&content.attachments),
        "recipients": recipients,
    })))
}

/// `POST /api/v1/notifications/{id}/read`: the caller's authority acknowledges reading the
/// notification (a signed acknowledgement goes back to the sender; again: the first time).
pub(crate) async fn acknowledge(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let user = case_worker(&state, &headers).await?;
    query(q)?;
    json_content_type(&headers, &body)?;
    let _: crate::requests::Empty = json_body(&body)?;
    let (id, ix, _) = visible(&state, &user, &id).await?;
    if ix.outgoing {
        return Err(ApiError::unprocessable(
            "own_notification",
            "the sender does not acknowledge its own notification",
        ));
    }
    let at = state
        .services
        .acknowledge_notification(id, user.authority.clone())
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(json!({"id": id.to_string(), "read_at": rfc3339(at)})))
}

/// `GET /api/v1/notifications/{id}/attachments/{sha256}` (access logged).
pub(crate) async fn attachment(
    State(state): State<ApiState>,
    Path((id, sha)): Path<(String, String)>,
    headers: HeaderMap,
    q: QueryOf<NoQuery>,
) -> Result<Response, ApiError> {
    let user = case_worker(&state, &headers).await?;
    query(q)?;
    let (id, _, _) = visible(&state, &user, &id).await?;
    let content = state
        .services
        .notification_content(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let Some((r, bytes)) = content
        .attachments
        .iter()
        .zip(content.files.iter())
        .find(|(r, _)| r.sha256.to_string() == sha)
    else {
        return Err(ApiError::not_found());
    };
    record_access(&state, &user, id, "read_notification_attachment").await?;
    let disposition = format!(
        "attachment; filename=\"{}\"",
        r.name
            .replace(|c: char| !c.is_ascii_graphic() || c == '"', "_")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes.to_vec(),
    )
        .into_response())
}
