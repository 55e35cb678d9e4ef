//! JSON views: cases, summaries, catalogue and authorities rendered in the caller's
//! language next to their codes.
use axum::http::{HeaderMap, header};
use imi_apps::requests::{CaseIndex, CaseRecord, Cases};
use imi_domain::Authority;
use imi_domain::catalogue::Catalogue;
use imi_domain::dates::{Date, rfc3339};
use imi_domain::request::{AnswerPayload, AttachmentRef, RequestCase, RequestState};
use imi_protocol::{CaseId, Timestamp};
use serde_json::{Value, json};

/// The language to render in: `?lang=` if the catalogue has it, else the first
/// `Accept-Language` entry (by quality) the catalogue has, else English.
pub fn language(catalogue: &Catalogue, query: Option<&str>, headers: &HeaderMap) -> String {
    let known = |l: &str| catalogue.languages().iter().any(|x| x.code() == l);
    if let Some(l) = query.map(str::to_ascii_lowercase)
        && known(&l)
    {
        return l;
    }
    if let Some(v) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    {
        let mut prefs: Vec<(f32, String)> = v
            .split(',')
            .take(32)
            .filter_map(|part| {
                let mut it = part.trim().split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                let primary = tag.split('-').next()?.to_ascii_lowercase();
                // Norwegian Bokmål/Nynorsk map to the catalogue's "no".
                let primary = match primary.as_str() {
                    "nb" | "nn" => "no".to_owned(),
                    _ => primary,
                };
                Some((q, primary))
            })
            .collect();
        prefs.sort_by(|a, b| b.0.total_cmp(&a.0));
        if let Some((_, l)) = prefs.into_iter().find(|(q, l)| *q > 0.0 && known(l)) {
            return l;
        }
    }
    "en".to_owned()
}

/// A code with its text in `lang`.
pub fn coded(catalogue: &Catalogue, code: &str, lang: &str) -> Value {
    json!({"code": code, "text": catalogue.text(code, lang)})
}

fn date(ms: Timestamp) -> String {
    Date::of_ms(ms).to_string()
}

pub(crate) fn opt_time(ms: Option<Timestamp>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(rfc3339(m)))
}

pub(crate) fn attachments(a: &[AttachmentRef]) -> Value {
    Value::Array(
        a.iter()
            .map(|r| json!({"name": r.name, "sha256": r.sha256.to_string(), "size": r.size}))
            .collect(),
    )
}

fn authority_name(cases: &Cases, id: &imi_protocol::AuthorityId, lang: &str) -> String {
    cases
        .directory()
        .get(id)
        .map_or_else(String::new, |a| a.name(lang).to_owned())
}

fn party(cases: &Cases, id: &imi_protocol::AuthorityId, lang: &str) -> Value {
    json!({
        "id": id.as_str(),
        "name": authority_name(cases, id, lang),
        "country": imi_domain::country_of(id).map(|c| c.to_string()),
    })
}

fn state_detail(state: &RequestState) -> Value {
    match state {
        RequestState::DeadlineProposed { proposed } => json!({"proposed": date(*proposed)}),
        RequestState::InfoRequested { by } => json!({"by": by.as_str()}),
        RequestState::Referred {
            coordinator,
            by,
            resume,
        } => json!({
            "previous": resume.name(),
            "by": by.as_str(),
            "coordinator_country": coordinator.to_string(),
        }),
        _ => json!({}),
    }
}

pub(crate) fn rendered_answer(
    catalogue: &Catalogue,
    question: &str,
    a: &AnswerPayload,
    lang: &str,
) -> Value {
    let (ty, value, value_text) = match a {
        AnswerPayload::Bool(b) => ("bool", json!(b), Value::Null),
        AnswerPayload::Text(t) => ("text", json!(t), Value::Null),
        AnswerPayload::Number(n) => ("number", json!(n), Value::Null),
        AnswerPayload::Date(ms) => ("date", json!(date(*ms)), Value::Null),
        AnswerPayload::Choice(c) => ("choice", json!(c), json!(catalogue.text(c, lang))),
        AnswerPayload::Choices(cs) => (
            "choices",
            json!(cs),
            json!(
                cs.iter()
                    .map(|c| catalogue.text(c, lang).unwrap_or(c))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        AnswerPayload::NotAvailable => ("not_available", Value::Null, Value::Null),
    };
    json!({
        "question": question,
        "question_text": catalogue.text(question, lang),
        "type": ty,
        "value": value,
        "value_text": value_text,
    })
}

/// The caller's relation to a case.
pub fn my_role(index: &CaseIndex, user: &imi_domain::User) -> &'static str {
    if index.requester == user.authority {
        "requester"
    } else if index.responder == user.authority {
        "responder"
    } else {
        "coordinator"
    }
}

/// The full view of a case (contains personal data).
pub fn case_view(
    cases: &Cases,
    id: &CaseId,
    index: &CaseIndex,
    record: &CaseRecord,
    user: &imi_domain::User,
    lang: &str,
    now: Timestamp,
) -> Value {
    let cat = cases.catalogue();
    let c: &RequestCase = &record.case;
    json!({
        "id": id.to_string(),
        "area": coded(cat, &c.area, lang),
        "procedure": coded(cat, &c.procedure, lang),
        "requester": party(cases, &c.requester, lang),
        "responder": party(cases, &c.responder, lang),
        "my_role": my_role(index, user),
        "state": c.state.name(),
        "state_detail": state_detail(&c.state),
        "actions": user.actor(&c.area).map_or_else(Vec::new, |a| {
            imi_domain::actions(c, &a)
                .into_iter()
                .map(|k| k.as_str().replace('_', "-"))
                .collect()
        }),
        "answer_by": date(c.answer_by),
        "requested_answer_by": date(c.requested_answer_by),
        "created": rfc3339(c.created),
        "accepted_at": opt_time(c.accepted_at),
        "answered_at": opt_time(c.answered_at),
        "ended_at": opt_time(c.ended_at),
        "overdue": c.is_overdue(now),
        "lang": lang,
        "questions": c.questions.iter().map(|q| json!({
            "code": q,
            "answer_type": cat.question(q).map(|x| x.answer_type().as_str()),
            "text": cat.text(q, lang),
        })).collect::<Vec<_>>(),
        "free_text": c.free_text,
        "subject": {
            "name": record.subject.name,
            "date_of_birth": record.subject.date_of_birth,
            "details": record.subject.details,
        },
        "attachments": attachments(&c.attachments),
        "answers": c.answers.iter().map(|r| json!({
            "at": rfc3339(r.at),
            "by": r.by.as_str(),
            "free_text": r.free_text,
            "attachments": attachments(&r.attachments),
            "answers": r.answers.iter().map(|a| rendered_answer(cat, &a.question, &a.answer, lang)).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "notes": c.notes.iter().map(|n| json!({
            "at": rfc3339(n.at),
            "by": n.by.as_str(),
            "kind": n.kind.as_str(),
            "text": n.text,
            "attachments": attachments(&n.attachments),
        })).collect::<Vec<_>>(),
        "ratings": {
            "timeliness": c.ratings.timeliness.map(|r| r.score()),
            "efforts": c.ratings.efforts.map(|r| r.score()),
        },
        "history": c.history.iter().map(|h| json!({
            "at": rfc3339(h.at),
            "actor": h.actor.as_str(),
            "coordinator": h.coordinator,
            "kind": h.kind.as_str(),
            "summary": h.summary,
        })).collect::<Vec<_>>(),
    })
}

/// Adds `history_delivery` to a case view: beside each step of its `history`, where the
/// step's signed envelope stands on this node: `sent` with `delivered`, `rejected` or
/// `pending` (the other node's signed receipt not back yet), `received` (this node signed
/// its receipt), or `local` (a step between two authorities of this node: no envelope).
/// Steps and envelopes are matched by step name and signed time. `history` itself stays
/// what both nodes agree on.
pub fn add_deliveries(
    view: &mut Value,
    case: &RequestCase,
    deliveries: &[imi_apps::evidence::StepDelivery],
) {
    let mut used = vec![false; deliveries.len()];
    let mut out = Vec::with_capacity(case.history.len());
    for h in &case.history {
        let found = deliveries.iter().enumerate().find(|(i, d)| {
            !used.get(*i).copied().unwrap_or(true)
                && d.kind == imi_protocol::Kind::REQUEST
                && d.step == h.kind.as_str()
                && d.created == h.at
        });
        out.push(match found {
            None => json!({"direction": "local", "state": "local", "at": null}),
            Some((i, d)) => {
                if let Some(u) = used.get_mut(i) {
                    *u = true;
                }
                let (state, at) = match (d.outgoing, d.receipts.first()) {
                    (true, None) => ("pending", None),
                    (true, Some((_, outcome, at))) if outcome == "rejected" => {
                        ("rejected", Some(*at))
                    }
                    (true, Some((_, _, at))) => ("delivered", Some(*at)),
                    (false, r) => ("received", r.map(|(_, _, at)| *at)),
                };
                json!({
                    "direction": if d.outgoing { "sent" } else { "received" },
                    "state": state,
                    "at": at.map(rfc3339),
                    "message_id": d.message,
                })
            }
        });
    }
    if let Some(o) = view.as_object_mut() {
        o.insert("history_delivery".into(), Value::Array(out));
    }
}

/// A list entry (no personal data).
pub fn summary(id: &CaseId, index: &CaseIndex, user: &imi_domain::User, now: Timestamp) -> Value {
    let me = user.country();
    let counterpart = index
        .countries()
        .into_iter()
        .find(|c| Some(*c) != me)
        .or(me);
    json!({
        "id": id.to_string(),
        "area": index.area,
        "procedure": index.procedure,
        "requester": index.requester.as_str(),
        "responder": index.responder.as_str(),
        "counterpart_country": counterpart.map(|c| c.to_string()),
        "my_role": my_role(index, user),
        "state": index.state,
        "answer_by": date(index.answer_by),
        "created": rfc3339(index.created),
        "updated": rfc3339(index.updated),
        "overdue": index.overdue(now),
    })
}

/// An authority.
pub fn authority(a: &Authority, lang: &str) -> Value {
    json!({
        "id": a.id.as_str(),
        "country": a.country.to_string(),
        "name": a.name(lang),
        "names": a.names,
        "level": a.level.as_str(),
        "areas": a.areas,
        "procedures": a.procedures,
    })
}
