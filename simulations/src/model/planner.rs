//! Planning a run: every case (parties, area, procedure, questions, answers) and every step
//! with its simulated time, decided before the run starts.
//!
//! In order, each part from its own ChaCha8 stream of the seed:
//!
//! 1. **Sending times**: `volume(scale)` times over the window, one in each of as many
//!    equal slices of the window's weight (a working day weighs 1, a Saturday or Sunday
//!    `traffic.weekend_weight`), within `traffic.office_hours`; sorted, so `seq` is the
//!    sending order.
//! 2. **Composition**: the requests each country receives are apportioned by the `receive`
//!    weights (largest remainder); a country's requests are apportioned among the other
//!    countries by their `send` weights and among the areas by `traffic.areas`; the whole
//!    list is shuffled onto the sending times.
//! 3. **Behaviour**, per responder and per group (the counted areas PQ, SD, PW, PR; the
//!    others): stratified fractions of its profile (withdrawn, accepted within the week,
//!    renegotiated, answered on time, rated, negative ratings), the times of the steps
//!    within the margins, the answer times scaled so that their mean is exactly
//!    `answer_days`, then the agreed dates chosen around the answers (on time: at least the
//!    margin after the answer; late: before the answer's date).
//! 4. **Details**: procedure, 1–3 of its questions with answers of the right type, and the
//!    two authorities (of the country, handling the area and procedure; else `<CC>-NC`).
use super::scenario::{Profile, Scenario};
use anyhow::{Context, Result, anyhow, ensure};
use imi_domain::Authority;
use imi_domain::catalogue::{AnswerType, Catalogue, ProcedureKind, Question};
use imi_protocol::NodeId;
use imi_protocol::dates::{DAY_MS, Date};
use imi_scoreboard::{AREAS, Board, Fact, Period, Scoreboard};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const HOUR_MS: u64 = 3_600_000;
const WEEK_MS: u64 = 7 * DAY_MS;
/// The first step comes at least this long after sending, and consecutive steps at least
/// this long apart even with a zero margin.
const MIN_STEP_MS: u64 = HOUR_MS;
/// Late acceptances are spread over this span after the earliest late moment.
const LATE_ACCEPT_SPAN_MS: u64 = 10 * DAY_MS;
/// The earliest answer is up to this much later than the minimum gap after the step
/// before it (no pile of answers exactly one gap after acceptance).
const ANSWER_JITTER_MS: u64 = DAY_MS;
/// A renegotiation: the proposal within this span after the minimum gap after acceptance.
const PROPOSE_SPAN_MS: u64 = 3 * DAY_MS;
/// ... and the requester's acceptance of it within this span after the minimum gap.
const ACCEPT_DEADLINE_SPAN_MS: u64 = 2 * DAY_MS;
/// The requester closes within this span after the minimum gap after the answer.
const CLOSE_SPAN_MS: u64 = 7 * DAY_MS;
/// An answer on time: the agreed date is 0 to this many days after the earliest safe date.
const ON_TIME_SLACK_DAYS: u64 = 14;
/// A late answer: the agreed date is 1 to 1 + this many days before the answer's date.
const LATE_SLACK_DAYS: u64 = 10;
/// A renegotiated request: the date first asked for is 1 to 1 + this many days before the
/// agreed one.
const RENEGOTIATED_SLACK_DAYS: u64 = 10;
/// A withdrawn request asked for an answer this many days after its first possible date.
const WITHDRAWN_DEADLINE_DAYS: std::ops::RangeInclusive<u64> = 7..=30;
/// Shape of the Weibull distribution of answer times before each is clamped to what its
/// case allows and all are scaled to the profile's mean.
const ANSWER_SHAPE: f64 = 1.5;
/// Most questions a planned request asks.
const MAX_QUESTIONS_PER_CASE: usize = 3;

/// Every case of the run, planned in advance (deterministic for (scenario, scale, seed,
/// directory, catalogue)).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// In sending order (`seq` = index).
    pub cases: Vec<PlannedCase>,
}

/// One request and everything that will happen to it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCase {
    /// 0.. in sending order.
    pub seq: u64,
    /// Legal area code.
    pub area: String,
    /// Procedure code (a request procedure of the area).
    pub procedure: String,
    /// The questions asked, with the answer each will get.
    pub questions: Vec<PlannedQuestion>,
    /// The requester's country.
    pub requester: NodeId,
    /// An AuthorityId string of the requester's country.
    pub requester_authority: String,
    /// The responder's country (never the requester's).
    pub responder: NodeId,
    /// An AuthorityId string of the responder's country.
    pub responder_authority: String,
    /// Simulated unix ms when the requester creates it.
    pub sent_ms: u64,
    /// The date asked for at creation, `YYYY-MM-DD`, after `sent_ms`'s date.
    pub answer_by: String,
    /// After create, strictly increasing `at_ms`, all after `sent_ms` and before the horizon.
    pub steps: Vec<PlannedStep>,
}

/// A question of a planned request.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedQuestion {
    /// Question code.
    pub code: String,
    /// The API's answer object for it, e.g.
    /// `{"question":"PQ-Q01","type":"bool","value":true}`, valid for the question's type in
    /// the catalogue (an attachment question is answered `not_available`).
    pub answer: Value,
}

/// A step after create.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    /// Simulated unix ms at which it is due.
    pub at_ms: u64,
    /// What happens.
    pub action: Action,
}

/// The steps a plan uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Responder accepts.
    Accept,
    /// Responder proposes a later date; it is in the future at `at_ms + margin`.
    ProposeDeadline {
        /// `YYYY-MM-DD`.
        answer_by: String,
    },
    /// Requester accepts the proposed date.
    AcceptDeadline,
    /// Responder answers every question.
    Answer,
    /// Requester closes, with or without ratings (1 to 5).
    Close {
        /// Timeliness rating.
        timeliness: Option<u8>,
        /// Efforts rating.
        efforts: Option<u8>,
    },
    /// Requester withdraws (a case withdrawn has no later step).
    Withdraw,
}

impl Action {
    /// Whether the responder performs it (else the requester).
    pub fn by_responder(&self) -> bool {
        matches!(
            self,
            Action::Accept | Action::ProposeDeadline { .. } | Action::Answer
        )
    }

    /// The last segment of `POST /api/v1/requests/{id}/{path}`.
    pub fn path(&self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::ProposeDeadline { .. } => "propose-deadline",
            Action::AcceptDeadline => "accept-deadline",
            Action::Answer => "answer",
            Action::Close { .. } => "close",
            Action::Withdraw => "withdraw",
        }
    }

    /// The JSON body of the step.
    pub fn body(&self, case: &PlannedCase) -> Value {
        match self {
            Action::Accept | Action::AcceptDeadline => json!({}),
            Action::ProposeDeadline { answer_by } => json!({ "answer_by": answer_by }),
            Action::Answer => json!({
                "answers": case.questions.iter().map(|q| q.answer.clone()).collect::<Vec<_>>(),
            }),
            Action::Close {
                timeliness,
                efforts,
            } => {
                let mut body = serde_json::Map::new();
                if let Some(t) = timeliness {
                    body.insert("timeliness".into(), json!(t));
                }
                if let Some(e) = efforts {
                    body.insert("efforts".into(), json!(e));
                }
                Value::Object(body)
            }
            Action::Withdraw => json!({ "reason": "The information is no longer needed." }),
        }
    }
}

impl Plan {
    /// Every authority that takes part in a case (the runner needs a user for each).
    pub fn authorities(&self) -> std::collections::BTreeSet<&str> {
        self.cases
            .iter()
            .flat_map(|c| {
                [
                    c.requester_authority.as_str(),
                    c.responder_authority.as_str(),
                ]
            })
            .collect()
    }
}

impl PlannedCase {
    /// The body of `POST /api/v1/requests` that creates it (sent by a user of
    /// `requester_authority`).
    pub fn create_body(&self) -> Value {
        json!({
            "requester": self.requester_authority,
            "responder": self.responder_authority,
            "area": self.area,
            "procedure": self.procedure,
            "questions": self.questions.iter().map(|q| q.code.as_str()).collect::<Vec<_>>(),
            "free_text": format!("Simulated request {}.", self.seq),
            "subject": { "name": format!("Simulated Subject {}", self.seq) },
            "answer_by": self.answer_by,
        })
    }

    /// The authority that performs `action` on this case.
    pub fn actor_authority(&self, action: &Action) -> &str {
        if action.by_responder() {
            &self.responder_authority
        } else {
            &self.requester_authority
        }
    }

    /// The agreed date once every step has happened: the accepted proposal, else the date
    /// asked for.
    pub fn agreed_answer_by(&self) -> &str {
        let mut agreed = self.answer_by.as_str();
        let mut proposed = None;
        for s in &self.steps {
            match &s.action {
                Action::ProposeDeadline { answer_by } => proposed = Some(answer_by.as_str()),
                Action::AcceptDeadline => agreed = proposed.take().unwrap_or(agreed),
                _ => {}
            }
        }
        agreed
    }
}

/// The fact the Commission should learn for this case if every step happens exactly at its
/// `at_ms` (as `imi_apps::facts::fact_of` derives it; the case id is `sim-<seq>`).
pub fn expected_fact(c: &PlannedCase) -> Fact {
    let mut f = Fact {
        case: format!("sim-{}", c.seq),
        area: c.area.clone(),
        requester: c.requester.to_string(),
        responder: c.responder.to_string(),
        sent_at: Fact::time(c.sent_ms),
        accepted_at: None,
        withdrawn_at: None,
        answered_at: None,
        deadline: Some(c.answer_by.clone()),
        timeliness: None,
        efforts: None,
    };
    let mut proposed = None;
    for s in &c.steps {
        let at = || Some(Fact::time(s.at_ms));
        match &s.action {
            Action::Accept => f.accepted_at = at(),
            Action::ProposeDeadline { answer_by } => proposed = Some(answer_by.clone()),
            Action::AcceptDeadline => {
                if let Some(p) = proposed.take() {
                    f.deadline = Some(p);
                }
            }
            Action::Answer => {
                if f.answered_at.is_none() {
                    f.answered_at = at();
                }
            }
            Action::Close {
                timeliness,
                efforts,
            } => {
                f.timeliness = *timeliness;
                f.efforts = *efforts;
            }
            Action::Withdraw => f.withdrawn_at = at(),
        }
    }
    f
}

/// The scoreboard of `period` over the expected facts of every planned case.
pub fn expected_scoreboard(plan: &Plan, period: Period) -> Scoreboard {
    let mut board = Board::new(period);
    for c in &plan.cases {
        if let Ok(r) = expected_fact(c).record() {
            board.add(&r);
        }
    }
    board.scoreboard()
}

/// Plans the run: about `traffic.exchanges_per_year × scale × (sending window / 365 days)`
/// cases (see the module documentation), with the catalogue loaded from `catalogue_dir`
/// (`configs/catalogue`).
pub fn plan(
    s: &Scenario,
    scale: f64,
    seed: u64,
    directory: &[Authority],
    catalogue_dir: &Path,
) -> Result<Plan> {
    let catalogue = imi_apps::catalogue_files::load_dir(catalogue_dir)
        .with_context(|| format!("loading the catalogue {}", catalogue_dir.display()))?;
    plan_with_catalogue(s, scale, seed, directory, &catalogue)
}

/// [`plan`] with an already loaded catalogue.
pub fn plan_with_catalogue(
    s: &Scenario,
    scale: f64,
    seed: u64,
    directory: &[Authority],
    catalogue: &Catalogue,
) -> Result<Plan> {
    ensure!(
        scale.is_finite() && scale > 0.0,
        "scale = {scale}: must be positive"
    );
    let nationals = s.nationals();
    let areas = area_choices(s, catalogue)?;
    let total = s.volume(scale);
    let sent = sending_times(s, total, &mut stream(seed, Stream::Times))?;
    let slots = compose(
        s,
        &nationals,
        &areas,
        total,
        &mut stream(seed, Stream::Composition),
    );

    // Behaviour, per responder and group (counted areas, others), in time order.
    let limits = Limits {
        margin: s.time().margin_ms(),
        gap: (2 * s.time().margin_ms()).max(MIN_STEP_MS),
        horizon: s.horizon_ms(),
    };
    let mut timelines: Vec<Option<Timeline>> = vec![None; total];
    let mut groups: Vec<[Vec<usize>; 2]> = vec![[Vec::new(), Vec::new()]; nationals.len()];
    for (i, slot) in slots.iter().enumerate() {
        groups[slot.responder][usize::from(!areas[slot.area].counted)].push(i);
    }
    let mut rng = stream(seed, Stream::Behaviour);
    for (node, by_group) in nationals.iter().zip(groups) {
        let profile = s.profile(*node);
        let who = format!("profiles.{node}");
        for group in by_group {
            let planned = plan_group(&group, &sent, &profile, &limits, &mut rng, &who)?;
            for (i, t) in group.into_iter().zip(planned) {
                timelines[i] = Some(t);
            }
        }
    }

    // Details.
    let mut rng = stream(seed, Stream::Details);
    let mut authorities = AuthorityIndex::new(directory);
    let mut cases = Vec::with_capacity(total);
    for (i, ((slot, sent_ms), timeline)) in slots.iter().zip(&sent).zip(timelines).enumerate() {
        let timeline = timeline.ok_or_else(|| anyhow!("case {i} got no timeline"))?;
        let area = &areas[slot.area];
        let procedure = &area.procedures[rng.random_range(0..area.procedures.len())];
        let n = rng.random_range(1..=procedure.questions.len().min(MAX_QUESTIONS_PER_CASE));
        let mut picked: Vec<usize> = (0..procedure.questions.len()).collect();
        picked.shuffle(&mut rng);
        picked.truncate(n);
        picked.sort_unstable();
        let questions = picked
            .into_iter()
            .map(|q| {
                let question = procedure.questions[q];
                PlannedQuestion {
                    code: question.code().to_owned(),
                    answer: answer_value(question, &mut rng),
                }
            })
            .collect();
        let (requester, responder) = (nationals[slot.requester], nationals[slot.responder]);
        let requester_authority =
            authorities.pick(requester, &area.code, &procedure.code, &mut rng);
        let responder_authority =
            authorities.pick(responder, &area.code, &procedure.code, &mut rng);
        cases.push(PlannedCase {
            seq: i as u64,
            area: area.code.clone(),
            procedure: procedure.code.clone(),
            questions,
            requester,
            requester_authority,
            responder,
            responder_authority,
            sent_ms: *sent_ms,
            answer_by: Date::from_days(timeline.answer_by).to_string(),
            steps: timeline.steps,
        });
    }
    Ok(Plan { cases })
}

// --- Randomness -------------------------------------------------------------------------

/// The independent parts of a plan, each from its own ChaCha8 stream of the seed: changing
/// how one part is drawn leaves the others as they were.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Times = 1,
    Composition = 2,
    Behaviour = 3,
    Details = 4,
}

fn stream(seed: u64, s: Stream) -> ChaCha8Rng {
    stream_of(seed, s as u64)
}

/// Stream `n` of the seed (1 to 4 are the requests'; [`super::broadcasts`] uses 5 and 6).
pub(super) fn stream_of(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    rng
}

/// `round(f × n)`: how many of `n` requests get a behaviour of fraction `f`.
pub(super) fn share(n: usize, f: f64) -> usize {
    ((f * n as f64).round() as usize).min(n)
}

/// Exactly `count` of `n` positions, one in each of `count` equal slices of `0..n`, at a
/// random place in its slice: the positions are spread evenly (over time, the positions
/// being in sending order) and the count is exact whatever `n`.
pub(super) fn spread(n: usize, count: usize, rng: &mut ChaCha8Rng) -> Vec<bool> {
    let count = count.min(n);
    let mut out = vec![false; n];
    for j in 0..count {
        let (lo, hi) = (j * n / count, (j + 1) * n / count);
        out[rng.random_range(lo..hi)] = true;
    }
    out
}

/// `n` values in `0..1`, one in each of `n` equal slices, in random order.
fn stratified_uniforms(n: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let mut slices: Vec<usize> = (0..n).collect();
    slices.shuffle(rng);
    slices
        .into_iter()
        .map(|k| (k as f64 + rng.random::<f64>()) / n as f64)
        .collect()
}

/// Largest-remainder apportionment of `total` by `weights` (ties to the lower index).
pub(super) fn apportion(total: usize, weights: &[f64]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    if sum <= 0.0 || total == 0 {
        return vec![0; weights.len()];
    }
    let quotas: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<usize> = quotas.iter().map(|q| q.floor() as usize).collect();
    let given: usize = out.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        let (ra, rb) = (
            quotas[*a] - quotas[*a].floor(),
            quotas[*b] - quotas[*b].floor(),
        );
        rb.total_cmp(&ra).then(a.cmp(b))
    });
    for i in order.into_iter().take(total.saturating_sub(given)) {
        out[i] += 1;
    }
    out
}

// --- Sending times and composition -------------------------------------------------------

/// Whether day `d` (since 1970-01-01, a Thursday) is a Saturday or a Sunday.
fn is_weekend(d: u64) -> bool {
    (d + 3) % 7 >= 5
}

pub(super) fn sending_times(s: &Scenario, total: usize, rng: &mut ChaCha8Rng) -> Result<Vec<u64>> {
    let (first, last) = (s.start_ms() / DAY_MS, s.end_ms() / DAY_MS);
    let weekend = s.traffic().weekend_weight;
    let weights: Vec<f64> = (first..last)
        .map(|d| if is_weekend(d) { weekend } else { 1.0 })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    ensure!(
        total_weight > 0.0,
        "traffic.weekend_weight = 0 and the window has no working day"
    );
    let [h0, h1] = s.traffic().office_hours;
    let (open, span) = (h0 * HOUR_MS as f64, (h1 - h0) * HOUR_MS as f64);
    let mut out = Vec::with_capacity(total);
    let (mut day, mut before) = (0usize, 0.0f64);
    for i in 0..total {
        let u = (i as f64 + rng.random::<f64>()) / total as f64 * total_weight;
        while day + 1 < weights.len() && before + weights[day] <= u {
            before += weights[day];
            day += 1;
        }
        let w = weights[day];
        let within = if w > 0.0 {
            ((u - before) / w).clamp(0.0, 1.0)
        } else {
            0.5
        };
        let t = (first + day as u64) * DAY_MS + (open + within * span) as u64;
        out.push(t.min(s.end_ms() - 1));
    }
    Ok(out)
}

/// A legal area the traffic uses, with its request procedures.
struct AreaChoice<'c> {
    code: String,
    weight: f64,
    /// One of the scoreboard's areas.
    counted: bool,
    procedures: Vec<ProcedureChoice<'c>>,
}

struct ProcedureChoice<'c> {
    code: String,
    questions: Vec<&'c Question>,
}

fn area_choices<'c>(s: &Scenario, catalogue: &'c Catalogue) -> Result<Vec<AreaChoice<'c>>> {
    let mut out = Vec::new();
    for (code, weight) in &s.traffic().areas {
        let area = catalogue
            .area(code)
            .ok_or_else(|| anyhow!("traffic.areas.{code}: no such legal area in the catalogue"))?;
        let procedures: Vec<ProcedureChoice<'c>> = area
            .procedures()
            .iter()
            .filter(|p| p.kind() == ProcedureKind::Request)
            .map(|p| {
                let mut questions: Vec<&Question> = p
                    .question_codes()
                    .iter()
                    .filter_map(|q| catalogue.question(q))
                    .collect();
                if questions.is_empty() {
                    questions = area.questions().iter().collect();
                }
                ProcedureChoice {
                    code: p.code().to_owned(),
                    questions,
                }
            })
            .filter(|p| !p.questions.is_empty())
            .collect();
        ensure!(
            !procedures.is_empty(),
            "traffic.areas.{code}: the area has no request procedure with questions"
        );
        out.push(AreaChoice {
            code: code.clone(),
            weight: *weight,
            counted: AREAS.contains(&code.as_str()),
            procedures,
        });
    }
    Ok(out)
}

/// Who asks whom about what (indices into the nationals and the areas).
#[derive(Debug, Clone, Copy)]
struct Slot {
    responder: usize,
    requester: usize,
    area: usize,
}

fn compose(
    s: &Scenario,
    nationals: &[NodeId],
    areas: &[AreaChoice<'_>],
    total: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<Slot> {
    let receive: Vec<f64> = nationals.iter().map(|n| s.profile(*n).receive).collect();
    let send: Vec<f64> = nationals.iter().map(|n| s.profile(*n).send).collect();
    let area_weights: Vec<f64> = areas.iter().map(|a| a.weight).collect();
    let mut slots = Vec::with_capacity(total);
    for (responder, n) in apportion(total, &receive).into_iter().enumerate() {
        let mut senders = send.clone();
        senders[responder] = 0.0;
        let mut by_area: Vec<usize> = apportion(n, &area_weights)
            .into_iter()
            .enumerate()
            .flat_map(|(a, k)| std::iter::repeat_n(a, k))
            .collect();
        by_area.shuffle(rng);
        let by_requester = apportion(n, &senders)
            .into_iter()
            .enumerate()
            .flat_map(|(q, k)| std::iter::repeat_n(q, k));
        slots.extend(by_requester.zip(by_area).map(|(requester, area)| Slot {
            responder,
            requester,
            area,
        }));
    }
    slots.shuffle(rng);
    slots
}

// --- Behaviour ---------------------------------------------------------------------------

/// The bounds every planned time respects.
struct Limits {
    /// How late a step may happen without changing an indicator, ms.
    margin: u64,
    /// Least time between two steps of a case: twice the margin (at least an hour), so
    /// that a step late by the margin still comes before the next one planned.
    gap: u64,
    /// End of the run.
    horizon: u64,
}

impl Limits {
    /// Latest time a step may be planned: a margin before the horizon.
    fn last(&self) -> u64 {
        self.horizon.saturating_sub(self.margin + 1)
    }
}

/// A case's steps and the date asked for at creation (days since 1970-01-01).
#[derive(Debug, Clone)]
struct Timeline {
    answer_by: u64,
    steps: Vec<PlannedStep>,
}

/// The first day whose end is strictly after `t` (days since 1970-01-01).
fn first_day_ending_after(t: u64) -> u64 {
    (t + 1) / DAY_MS
}

/// The first date a request sent at `sent` may ask for: after the sending day, and still
/// in the future if the creation happens a margin late.
fn first_deadline_day(sent: u64, margin: u64) -> u64 {
    (sent / DAY_MS + 1).max(first_day_ending_after(sent + margin))
}

/// The days of an answer time as drawn: a Weibull quantile (mean about 0.9; the scale is
/// fitted afterwards).
fn weibull(u: f64) -> f64 {
    (-(1.0 - u).ln()).powf(1.0 / ANSWER_SHAPE)
}

/// What one active (not withdrawn) request does before its answer.
struct Before {
    accept: u64,
    /// (propose, accept-deadline) of a renegotiated request.
    renegotiation: Option<(u64, u64)>,
    /// For a late answer: the earliest the agreed date may be (days since 1970-01-01).
    late_floor: Option<u64>,
    /// Earliest and latest answer time.
    lo: u64,
    cap: u64,
}

/// Plans the requests of one group (a responder, counted or other areas), `group` being
/// indices into `sent` in sending order.
fn plan_group(
    group: &[usize],
    sent: &[u64],
    p: &Profile,
    l: &Limits,
    rng: &mut ChaCha8Rng,
    who: &str,
) -> Result<Vec<Timeline>> {
    let n = group.len();
    let withdrawn = spread(n, share(n, p.withdrawn), rng);
    let active: Vec<usize> = (0..n).filter(|i| !withdrawn[*i]).collect();
    let k = active.len();
    let in_week = spread(k, share(k, p.accept_in_week), rng);
    let renegotiated = spread(k, share(k, p.renegotiate), rng);
    let on_time = spread(k, share(k, p.on_time), rng);
    let rated = spread(k, share(k, p.rated), rng);
    let r = rated.iter().filter(|x| **x).count();
    let negative_timeliness = spread(r, share(r, p.negative_timeliness), rng);
    let negative_efforts = spread(r, share(r, p.negative_efforts), rng);

    let tail_error = |sent: u64| {
        anyhow!(
            "time.tail_days is too short: a request to {} sent on {} cannot finish before the \
             horizon with a margin of {} h",
            who.trim_start_matches("profiles."),
            Date::of_ms(sent),
            l.margin / HOUR_MS
        )
    };

    let mut out: Vec<Option<Timeline>> = vec![None; n];
    // Withdrawn: within the week (less the margin), never accepted.
    for (i, slot) in out.iter_mut().enumerate().filter(|(i, _)| withdrawn[*i]) {
        let sent = sent[group[i]];
        let latest = (sent + WEEK_MS - l.margin).min(l.last());
        let earliest = sent + MIN_STEP_MS;
        if latest < earliest {
            return Err(tail_error(sent));
        }
        let at = earliest + rng.random_range(0..=latest - earliest);
        let first = first_deadline_day(sent, l.margin);
        *slot = Some(Timeline {
            answer_by: first + rng.random_range(WITHDRAWN_DEADLINE_DAYS),
            steps: vec![PlannedStep {
                at_ms: at,
                action: Action::Withdraw,
            }],
        });
    }

    // Active: acceptance, renegotiation, then the bounds of the answer.
    let mut before = Vec::with_capacity(k);
    for (j, i) in active.iter().enumerate() {
        let sent = sent[group[*i]];
        let u: f64 = rng.random();
        let accept = if in_week[j] {
            // Early in the week more often than late.
            let span = WEEK_MS - l.margin - MIN_STEP_MS;
            sent + MIN_STEP_MS + (u * u * span as f64) as u64
        } else {
            sent + WEEK_MS + l.margin + MIN_STEP_MS + (u * LATE_ACCEPT_SPAN_MS as f64) as u64
        };
        let renegotiation = renegotiated[j].then(|| {
            let propose = accept + l.gap + rng.random_range(0..=PROPOSE_SPAN_MS);
            let agreed = propose + l.gap + rng.random_range(0..=ACCEPT_DEADLINE_SPAN_MS);
            (propose, agreed)
        });
        let mut lo = renegotiation.map_or(accept, |(_, agreed)| agreed)
            + l.gap
            + rng.random_range(0..=ANSWER_JITTER_MS);
        let first = first_deadline_day(sent, l.margin);
        let late_floor = (!on_time[j]).then(|| match renegotiation {
            // The proposal is after the date first asked for, and in the future when made.
            Some((propose, _)) => (first + 1).max(first_day_ending_after(propose + l.margin)),
            None => first,
        });
        if let Some(floor) = late_floor {
            // A late answer comes on a date after the agreed one.
            lo = lo.max((floor + 1) * DAY_MS);
        }
        let cap = l.last().saturating_sub(l.gap);
        if lo > cap {
            return Err(tail_error(sent));
        }
        before.push(Before {
            accept,
            renegotiation,
            late_floor,
            lo,
            cap,
        });
    }

    // Answer times: drawn, clamped to each case's bounds, scaled to the profile's mean.
    let day = DAY_MS as f64;
    let sent_of = |j: usize| sent[group[active[j]]];
    let bounds: Vec<(f64, f64)> = before
        .iter()
        .enumerate()
        .map(|(j, b)| {
            let s = sent_of(j);
            ((b.lo - s) as f64 / day, (b.cap - s) as f64 / day)
        })
        .collect();
    let draws: Vec<f64> = stratified_uniforms(k, rng)
        .into_iter()
        .map(weibull)
        .collect();
    let answer_days = fit_mean(&draws, &bounds, p.answer_days, who, l)?;

    let mut ratings_given = 0;
    for (j, (b, d)) in before.iter().zip(answer_days).enumerate() {
        let sent = sent_of(j);
        let answered = (sent + (d * day).round() as u64).clamp(b.lo, b.cap);
        let answer_day = answered / DAY_MS;
        let first = first_deadline_day(sent, l.margin);
        let agreed = match b.late_floor {
            None => {
                // On time even if the answer comes a margin late.
                let floor = ((answered + l.margin) / DAY_MS)
                    .max(first + u64::from(b.renegotiation.is_some()));
                floor + rng.random_range(0..=ON_TIME_SLACK_DAYS)
            }
            Some(floor) => {
                let slack = 1 + rng.random_range(0..=LATE_SLACK_DAYS);
                answer_day.saturating_sub(slack).max(floor)
            }
        };
        let asked = if b.renegotiation.is_some() {
            let slack = 1 + rng.random_range(0..=RENEGOTIATED_SLACK_DAYS);
            agreed.saturating_sub(slack).max(first)
        } else {
            agreed
        };
        let close_at = (answered + l.gap + rng.random_range(0..=CLOSE_SPAN_MS)).min(l.last());
        let (timeliness, efforts) = if rated[j] {
            let r = ratings_given;
            ratings_given += 1;
            (
                Some(rating(negative_timeliness[r], rng)),
                Some(rating(negative_efforts[r], rng)),
            )
        } else {
            (None, None)
        };

        let mut steps = vec![PlannedStep {
            at_ms: b.accept,
            action: Action::Accept,
        }];
        if let Some((propose, agree)) = b.renegotiation {
            steps.push(PlannedStep {
                at_ms: propose,
                action: Action::ProposeDeadline {
                    answer_by: Date::from_days(agreed).to_string(),
                },
            });
            steps.push(PlannedStep {
                at_ms: agree,
                action: Action::AcceptDeadline,
            });
        }
        steps.push(PlannedStep {
            at_ms: answered,
            action: Action::Answer,
        });
        steps.push(PlannedStep {
            at_ms: close_at,
            action: Action::Close {
                timeliness,
                efforts,
            },
        });
        out[active[j]] = Some(Timeline {
            answer_by: asked,
            steps,
        });
    }
    out.into_iter()
        .map(|t| t.ok_or_else(|| anyhow!("{who}: a request got no timeline")))
        .collect()
}

/// A rating: 1 or 2 when negative, else 3 (15 %), 4 (40 %) or 5 (45 %).
fn rating(negative: bool, rng: &mut ChaCha8Rng) -> u8 {
    if negative {
        return rng.random_range(1..=2);
    }
    match rng.random_range(0..100) {
        0..15 => 3,
        15..55 => 4,
        _ => 5,
    }
}

/// The answer times (days after sending) `clamp(scale × draw, lo, cap)` whose mean is
/// `target`, the scale found by bisection (the mean is non-decreasing in the scale).
fn fit_mean(
    draws: &[f64],
    bounds: &[(f64, f64)],
    target: f64,
    who: &str,
    l: &Limits,
) -> Result<Vec<f64>> {
    if draws.is_empty() {
        return Ok(Vec::new());
    }
    let n = draws.len() as f64;
    let at = |scale: f64| -> Vec<f64> {
        draws
            .iter()
            .zip(bounds)
            .map(|(x, (lo, cap))| (scale * x).max(*lo).min(*cap))
            .collect()
    };
    let mean = |scale: f64| at(scale).iter().sum::<f64>() / n;
    let least = mean(0.0);
    ensure!(
        target >= least,
        "{who}.answer_days = {target}: its other behaviour (acceptance, renegotiation, late \
         answers, steps at least {} h apart) needs at least {least:.2} days on average",
        l.gap / HOUR_MS
    );
    let most = bounds.iter().map(|(_, cap)| cap).sum::<f64>() / n;
    ensure!(
        target <= most,
        "{who}.answer_days = {target}: answers must come before the horizon, so at most \
         {most:.2} days on average (raise time.tail_days)"
    );
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    while mean(hi) < target && hi < 1e9 {
        hi *= 2.0;
    }
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if mean(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(at(hi))
}

// --- Details -----------------------------------------------------------------------------

/// The API's answer object for `q`, valid for its type.
pub(super) fn answer_value(q: &Question, rng: &mut ChaCha8Rng) -> Value {
    let code = q.code();
    let (ty, value) = match q.answer_type() {
        AnswerType::YesNo => ("bool", json!(rng.random_bool(0.8))),
        AnswerType::Choice => {
            let options = q.options();
            match options.get(rng.random_range(0..options.len().max(1))) {
                Some(o) => ("choice", json!(o.code())),
                None => ("not_available", Value::Null),
            }
        }
        AnswerType::Date => {
            // A date in 1985..2020 (diplomas, registrations, postings).
            let first = Date::new(1985, 1, 1).map_or(5479, |d| d.days()) as u64;
            let date = Date::from_days(first + rng.random_range(0..35 * 365));
            ("date", json!(date.to_string()))
        }
        AnswerType::Number => ("number", json!(rng.random_range(1..=500))),
        AnswerType::FreeText => ("text", json!(format!("Simulated answer to {code}."))),
        // An attachment needs a file; the simulation has none to send.
        AnswerType::Attachment => ("not_available", Value::Null),
    };
    json!({ "question": code, "type": ty, "value": value })
}

/// Authorities by (country, area, procedure), looked up once each.
struct AuthorityIndex<'d> {
    directory: &'d [Authority],
    cache: BTreeMap<(NodeId, String, String), Vec<String>>,
}

impl<'d> AuthorityIndex<'d> {
    fn new(directory: &'d [Authority]) -> Self {
        Self {
            directory,
            cache: BTreeMap::new(),
        }
    }

    /// One authority of `country` handling `area` (and `procedure`, if any does), ordered
    /// by id whatever the directory's order; `<CC>-NC` when none does.
    fn pick(
        &mut self,
        country: NodeId,
        area: &str,
        procedure: &str,
        rng: &mut ChaCha8Rng,
    ) -> String {
        let directory = self.directory;
        let ids = self
            .cache
            .entry((country, area.to_owned(), procedure.to_owned()))
            .or_insert_with(|| {
                let of_area = || {
                    directory
                        .iter()
                        .filter(|a| a.country == country && a.handles_area(area))
                };
                let mut ids: Vec<String> = of_area()
                    .filter(|a| a.handles_procedure(procedure))
                    .map(|a| a.id.to_string())
                    .collect();
                if ids.is_empty() {
                    ids = of_area().map(|a| a.id.to_string()).collect();
                }
                if ids.is_empty() {
                    ids.push(format!("{country}-NC"));
                }
                ids.sort();
                ids.dedup();
                ids
            });
        ids[rng.random_range(0..ids.len())].clone()
    }
}
