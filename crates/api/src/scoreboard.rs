//! The scoreboard routes (public: indicator facts carry no personal data).
//!
//! On the Commission node (`EU`) they publish what the member states reported, cross-checked;
//! on a member-state node, the facts that node reported itself, so that anyone can recompute
//! a country's figures and compare them with the Commission's.
use crate::ApiState;
use crate::problem::ApiError;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use imi_protocol::NodeId;
use imi_protocol::dates::Date;
use imi_scoreboard::{Board, Period};
use serde::Deserialize;

/// `?period=2021` (or `2021-Q2`), or `?from=YYYY-MM-DD&to=YYYY-MM-DD`; `format`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreboardQuery {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

impl ScoreboardQuery {
    fn period(&self, state: &ApiState) -> Result<Period, ApiError> {
        let bad = |d: &str| ApiError::bad_request("bad_period", d);
        match (&self.period, &self.from, &self.to) {
            (Some(p), None, None) => Period::parse(p)
                .ok_or_else(|| bad("period must be a year (2021) or a quarter (2021-Q2)")),
            (None, Some(f), Some(t)) => {
                let f = Date::parse(f).ok_or_else(|| bad("from is not a YYYY-MM-DD date"))?;
                let t = Date::parse(t).ok_or_else(|| bad("to is not a YYYY-MM-DD date"))?;
                Period::between(f, t).ok_or_else(|| bad("from must be before to"))
            }
            (None, None, None) => {
                let year = Date::of_ms(state.clock.now_ms()).year;
                Period::year(year).ok_or_else(|| bad("no current year"))
            }
            _ => Err(bad("give period, or from and to")),
        }
    }
}

/// The board of `period` from the facts the node holds (on `EU` the cross-checked facts of
/// every case; elsewhere the node's own latest reports), folded one fact at a time.
async fn board(state: &ApiState, period: Period) -> Result<Board, ApiError> {
    Ok(state
        .services
        .fold_facts(Board::new(period), |b, f| {
            if let Ok(r) = f.record() {
                b.add(&r);
            }
        })
        .await?)
}

fn render(board: &Board, format: Option<&str>) -> Result<Response, ApiError> {
    Ok(match format.unwrap_or("json") {
        "json" => (
            [(header::CONTENT_TYPE, "application/json")],
            board.scoreboard().to_json(),
        )
            .into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            board.scoreboard().to_csv(),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            imi_scoreboard::html::page(board),
        )
            .into_response(),
        _ => {
            return Err(ApiError::bad_request(
                "bad_format",
                "format must be json, csv or html",
            ));
        }
    })
}

/// `GET /api/v1/scoreboard`.
pub(crate) async fn scoreboard(
    State(state): State<ApiState>,
    Query(q): Query<ScoreboardQuery>,
) -> Result<Response, ApiError> {
    let period = q.period(&state)?;
    render(&board(&state, period).await?, q.format.as_deref())
}

/// `GET /scoreboard`: the HTML page.
pub(crate) async fn page(
    State(state): State<ApiState>,
    Query(q): Query<ScoreboardQuery>,
) -> Result<Response, ApiError> {
    if q.format.is_some() {
        return Err(ApiError::bad_request(
            "bad_request",
            "the scoreboard page is HTML; use /api/v1/scoreboard?format= for other formats",
        ));
    }
    let period = q.period(&state)?;
    render(&board(&state, period).await?, Some("html"))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactsQuery {
    period: Option<String>,
}

/// Stored rows read per page of the facts export: on the Commission node 1,024 cases,
/// about 290 KiB of JSON Lines.
const EXPORT_PAGE_ROWS: usize = 2048;

/// `GET /api/v1/scoreboard/facts`: JSON Lines, one case per line (all, or sent within
/// `period`), streamed a page at a time ([`Services::facts_page`]): the body is read
/// from the store as the client reads it, so an export of any size holds one page, and a
/// client that stops reading holds no thread. An error before the first page is the
/// response's status; one after it ends the body early (the client sees a cut-off chunked
/// body, never a line cut in two presented as complete).
///
/// [`Services::facts_page`]: imi_apps::Services::facts_page
pub(crate) async fn export(
    State(state): State<ApiState>,
    Query(q): Query<FactsQuery>,
) -> Result<Response, ApiError> {
    let period = match &q.period {
        None => None,
        Some(p) => Some(Period::parse(p).ok_or_else(|| {
            ApiError::bad_request("bad_period", "period must be a year or a quarter")
        })?),
    };
    let services = state.services.clone();
    let page = move |start: Vec<u8>| {
        let services = services.clone();
        async move {
            // Pages whose facts the period leaves out are skipped: a chunk is never empty.
            let mut start = start;
            loop {
                let (facts, next) = services.facts_page(start, EXPORT_PAGE_ROWS).await?;
                let lines = json_lines(&facts, period)?;
                match next {
                    Some(n) if lines.is_empty() => start = n,
                    next => return Ok::<_, ApiError>((lines, next)),
                }
            }
        }
    };
    let (first, next) = page(Vec::new()).await?;
    let rest = futures::stream::try_unfold(next, move |next| {
        let page = page.clone();
        async move {
            let Some(start) = next else {
                return Ok(None);
            };
            match page(start).await {
                Ok((lines, next)) => Ok(Some((axum::body::Bytes::from(lines), next))),
                Err(e) => {
                    tracing::warn!(code = %e.code, "facts export cut short");
                    Err(std::io::Error::other("the facts export could not be read"))
                }
            }
        }
    });
    let body =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(first)) },
        )
        .chain(rest)
        .try_filter(|chunk| std::future::ready(!chunk.is_empty()));
    Ok((
        [(header::CONTENT_TYPE, "application/jsonl")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// `facts` as JSON Lines, those sent within `period` if one is given.
fn json_lines(facts: &[imi_scoreboard::Fact], period: Option<Period>) -> Result<String, ApiError> {
    let mut out = String::new();
    for f in facts {
        if let Some(p) = period {
            let Ok(r) = f.record() else { continue };
            let from = p.from.start_ms() as i64;
            let to = p.to.start_ms() as i64;
            if r.sent < from || r.sent >= to {
                continue;
            }
        }
        let line = serde_json::to_string(f).map_err(|e| ApiError::internal(e.to_string()))?;
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}

/// `GET /api/v1/scoreboard/flags`: the Commission node's cross-check.
pub(crate) async fn flags(
    State(state): State<ApiState>,
    q: crate::requests::QueryOf<crate::requests::NoQuery>,
) -> Result<Response, ApiError> {
    crate::requests::query(q)?;
    if state.services.node() != NodeId::EU {
        return Err(ApiError::not_found());
    }
    /// The cross-check's findings, gathered one case at a time.
    #[derive(Default)]
    struct Flags {
        cases: usize,
        both_reported: usize,
        in_flight: usize,
        flagged: Vec<serde_json::Value>,
        one_sided: Vec<serde_json::Value>,
    }
    let flags = state
        .services
        .fold_commission_cases(Flags::default(), |acc, c| {
            acc.cases += 1;
            acc.both_reported += usize::from(c.checked.both_reported);
            acc.in_flight += usize::from(c.requester_steps != c.responder_steps);
            if c.flagged() {
                acc.flagged.push(serde_json::json!({
                    "case": c.case,
                    "disagreements": c.checked.disagreements,
                    "steps": c.requester_steps,
                }));
            }
            // Counted in the figures on one side's word only (the other side's report may
            // still be in flight, or never come).
            if let Some(side) = c.one_sided() {
                acc.one_sided.push(serde_json::json!({
                    "case": c.case,
                    "side": side,
                    "steps": c.requester_steps.or(c.responder_steps),
                }));
            }
        })
        .await?;
    let body = serde_json::json!({
        "cases": flags.cases,
        "both_reported": flags.both_reported,
        "in_flight": flags.in_flight,
        "flagged": flags.flagged,
        "one_sided": flags.one_sided,
    });
    Ok(axum::Json(body).into_response())
}

/// `?period=` or `?from=&to=` (no format: the usage statistics are JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    period: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/scoreboard/usage`: the one-to-many exchanges sent in the period, per
/// country (sent and received) and in total. On the Commission node from every member's
/// usage facts; on a member node from its own, so that anyone can compare.
pub(crate) async fn usage(
    State(state): State<ApiState>,
    Query(q): Query<UsageQuery>,
) -> Result<Response, ApiError> {
    let q = ScoreboardQuery {
        period: q.period,
        from: q.from,
        to: q.to,
        format: None,
    };
    let period = q.period(&state)?;
    let usage = state
        .services
        .fold_usage_facts(imi_scoreboard::usage::UsageBuilder::new(period), |b, f| {
            b.add(&f)
        })
        .await?
        .finish();
    Ok(axum::Json(usage).into_response())
}
