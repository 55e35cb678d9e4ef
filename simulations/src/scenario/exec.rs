//! Playing the plan: every case's steps through the authorities' HTTPS API, each when the
//! shared simulated clock reaches its planned time.
//!
//! A case starts at its planned sending time. If the simulator reaches it more than six
//! simulated hours late (the machine was busy), the whole case moves to the same time of a
//! later day: every step and every date it names (`answer_by`, a proposed date) by the same
//! whole number of days, so the intervals and dates the indicators measure stay exactly as
//! planned (the model keeps every step a margin away from each threshold, which absorbs the
//! lateness of a single step). The summary counts the cases moved. A case moved so far that
//! its last step would come after the horizon is not played at all (`unplayed`): past the
//! horizon the clock runs at real speed, and the case would wait real days. A machine that
//! falls that far behind needs a longer `--wall-s`; the run says so and fails its check.
//!
//! Every step is a POST with its own `Idempotency-Key`, sent until it is answered: an
//! attempt that got no answer (the node is down, or was killed with the request in flight) is
//! sent again with the same key and body, and the node either commits it then or replays the
//! first answer. A step that waits for the previous one to arrive polls: `404` until the case
//! reaches the responder, `409 invalid_transition` until the step it follows arrives. Each
//! step answered is recorded once in the ledger with the envelope the node committed, which
//! the final accounting compares with every store.
use super::clock::SimTime;
use crate::model::{Action, BroadcastKind, PlannedBroadcast, PlannedCase};
use crate::torture::traffic::Ledger;
use anyhow::{Result, anyhow, bail};
use imi_protocol::NodeId;
use imi_protocol::dates::Date;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Poll interval of a step waiting for the previous step to arrive or a node to come back.
const POLL: Duration = Duration::from_millis(25);
/// Failure guard of one step, retries and waits included (not an expected duration): a
/// node may be down for a simulated week.
const STEP_GUARD: Duration = Duration::from_secs(600);
/// Timeout of one HTTP attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const DAY_MS: u64 = 86_400_000;
/// How late (simulated ms) a case may be created against its plan before it moves to a
/// later day: 6 hours, a quarter of the model's smallest margin.
const CREATE_TOLERANCE_MS: u64 = 6 * 3_600_000;
/// How often a late deadline proposal is made again, later, before the case fails.
const MAX_LATE_REFUSALS: u32 = 16;
/// How many of the run's longest waits the summary names.
const SLOWEST_KEPT: usize = 5;

/// One of the run's longest waits: a step's API call until answered (its polls for the
/// step before it to arrive included) or a wait for the other party's step to show on the
/// case page. A stall of the federation shows here with the node, the request and the
/// moment; the lateness of the steps after it only says that there was one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlowWait {
    /// The node asked.
    pub node: String,
    /// What was asked (`POST <path>`, or `step N of case <id> to arrive`).
    pub what: String,
    /// Wall seconds it took.
    pub wall_s: f64,
    /// The simulated instant it began (RFC 3339), to set beside the progress lines.
    pub began: String,
}

/// What a step accepts as "not yet, ask again".
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotYet {
    Never,
    NotFound,
    Conflict,
}

/// Counters the progress line and the summary read.
#[derive(Default)]
pub struct Progress {
    /// Cases created.
    pub created: AtomicU64,
    /// Cases whose every step was answered.
    pub finished: AtomicU64,
    /// Steps answered (create included).
    pub steps: AtomicU64,
    /// Cases given up on (an error; see the ledger).
    pub failed: AtomicU64,
    /// Cases the simulator reached late and played whole days later than planned.
    pub shifted: AtomicU64,
    /// Cases not played: the simulator reached them so late that, moved to a later day,
    /// they would have ended after the horizon.
    pub unplayed: AtomicU64,
    /// The largest lag (simulated ms) of such a case against its plan.
    pub unplayed_lag_ms: AtomicU64,
    /// Deadline proposals made so late that their planned date had passed (a later one
    /// was proposed).
    pub late_proposals: AtomicU64,
    /// Notifications sent (answered 201).
    pub notifications: AtomicU64,
    /// Alerts sent (answered 201).
    pub alerts: AtomicU64,
    /// Of those, the ones the sender's node marked late.
    pub alerts_late: AtomicU64,
    /// Repository entries the notifications populated.
    pub entries: AtomicU64,
    /// Notifications and alerts given up on (an error; see the ledger).
    pub broadcasts_failed: AtomicU64,
}

/// The executor shared by every case task.
pub struct Exec {
    http: reqwest::Client,
    bases: BTreeMap<NodeId, String>,
    tokens: HashMap<String, String>,
    time: SimTime,
    /// The end of the simulated period (the clock runs at real speed after it).
    horizon_ms: u64,
    http_slots: Semaphore,
    run: String,
    /// What was asked and answered, for the accounting.
    pub ledger: Mutex<Ledger>,
    /// Counters.
    pub progress: Progress,
    /// Per step: how late (simulated ms) its first attempt was against its planned time.
    pub lateness: Mutex<Vec<u64>>,
    /// Per step: wall ms from its first attempt to its answer (polls included).
    pub step_ms: Mutex<Vec<f64>>,
    /// The longest waits, longest first (at most five).
    pub slowest: Mutex<Vec<SlowWait>>,
    /// Per finished case id: the shape its final indicator fact must have.
    pub finals: Mutex<BTreeMap<String, FinalFact>>,
}

/// What a finished case's final fact at the Commission node must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinalFact {
    /// An answer time.
    pub answered: bool,
    /// A withdrawal time.
    pub withdrawn: bool,
    /// A rating (timeliness or efforts).
    pub rated: bool,
}

impl FinalFact {
    /// The shape of `f`.
    pub fn of(f: &imi_scoreboard::Fact) -> FinalFact {
        FinalFact {
            answered: f.answered_at.is_some(),
            withdrawn: f.withdrawn_at.is_some(),
            rated: f.timeliness.is_some() || f.efforts.is_some(),
        }
    }

    /// The shape the plan of `c` ends in.
    fn planned(c: &PlannedCase) -> FinalFact {
        let any = |p: fn(&Action) -> bool| c.steps.iter().any(|s| p(&s.action));
        FinalFact {
            answered: any(|a| *a == Action::Answer),
            withdrawn: any(|a| *a == Action::Withdraw),
            rated: any(|a| {
                matches!(a, Action::Close { timeliness, efforts }
                    if timeliness.is_some() || efforts.is_some())
            }),
        }
    }
}

/// Adds the wait of `wall_s` (built by `wait` only if kept) to `slowest`, which keeps the
/// [`SLOWEST_KEPT`] longest, longest first.
fn keep_longest(slowest: &mut Vec<SlowWait>, wall_s: f64, wait: impl FnOnce() -> SlowWait) {
    if slowest.len() >= SLOWEST_KEPT && slowest.last().is_some_and(|w| w.wall_s >= wall_s) {
        return;
    }
    let at = slowest.partition_point(|w| w.wall_s >= wall_s);
    slowest.insert(at, wait());
    slowest.truncate(SLOWEST_KEPT);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `date` moved `days` days later.
fn later(date: &str, days: u64) -> Result<String> {
    let d = Date::parse(date).ok_or_else(|| anyhow!("bad planned date {date:?}"))?;
    Ok(Date::of_ms(d.start_ms() + days * DAY_MS).to_string())
}

/// The fewest days, at least `at_least`, that move `date` so that it ends more than half a
/// day after `now` (simulated ms): a deadline the node, whose clock is the simulator's, takes
/// as future even if the request reaches it a while later. On an overloaded machine an
/// attempt can take longer than a simulated day, so one day more per refusal could fall
/// ever further behind the clock.
fn days_to_future(date: &str, at_least: u64, now: u64) -> Result<u64> {
    let d = Date::parse(date).ok_or_else(|| anyhow!("bad planned date {date:?}"))?;
    let need = (now + DAY_MS / 2).saturating_sub(d.end_ms());
    Ok(at_least.max(need / DAY_MS + 1))
}

/// Days beyond the first date the clock has not passed that a proposal asks for after its
/// `refusals`-th refusal as too late: 1, 2, 4, … up to 64.
fn margin_days(refusals: u32) -> u64 {
    1 << refusals.saturating_sub(1).min(6)
}

/// What became of a case.
enum Played {
    /// Every step answered.
    Finished,
    /// Not played: moved by `lag_ms` it would have ended after the horizon.
    Unplayed { lag_ms: u64 },
}

/// Whether `c`, moved `shift_days` later, ends after `horizon_ms`.
fn ends_after(c: &PlannedCase, shift_days: u64, horizon_ms: u64) -> bool {
    let last = c.steps.last().map_or(c.sent_ms, |s| s.at_ms);
    last.saturating_add(shift_days * DAY_MS) > horizon_ms
}

impl Exec {
    /// An executor on `bases` (node → `https://127.0.0.1:PORT`) with one token per authority,
    /// playing cases up to `horizon_ms`.
    pub fn new(
        ca: &std::path::Path,
        bases: BTreeMap<NodeId, String>,
        tokens: HashMap<String, String>,
        time: SimTime,
        horizon_ms: u64,
        concurrency: usize,
        run: String,
    ) -> Result<Exec> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(imi_node::tls::client_config(ca)?)
            .connect_timeout(Duration::from_secs(2))
            .timeout(ATTEMPT_TIMEOUT)
            .pool_max_idle_per_host(concurrency)
            .build()?;
        Ok(Exec {
            http,
            bases,
            tokens,
            time,
            horizon_ms,
            http_slots: Semaphore::new(concurrency.max(1)),
            run,
            ledger: Mutex::new(Ledger::default()),
            progress: Progress::default(),
            lateness: Mutex::new(Vec::new()),
            step_ms: Mutex::new(Vec::new()),
            slowest: Mutex::new(Vec::new()),
            finals: Mutex::new(BTreeMap::new()),
        })
    }

    async fn attempt(
        &self,
        url: &str,
        token: &str,
        key: &str,
        body: &Value,
    ) -> Option<(u16, Value)> {
        let _slot = self.http_slots.acquire().await.ok()?;
        let resp = self
            .http
            .post(url)
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.ok()?;
        Some((
            status,
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        ))
    }

    /// The URL of `path` on `node` and the token of the user of `authority`.
    fn endpoint(&self, (node, authority): (NodeId, &str), path: &str) -> Result<(String, &str)> {
        let base = self
            .bases
            .get(&node)
            .ok_or_else(|| anyhow!("{node} is not a member"))?;
        let token = self
            .tokens
            .get(authority)
            .ok_or_else(|| anyhow!("no user of {authority}"))?;
        Ok((format!("{base}{path}"), token))
    }

    /// One step, sent until answered `want`.
    async fn step(
        &self,
        (node, authority): (NodeId, &str),
        path: &str,
        key: &str,
        body: &Value,
        want: u16,
        not_yet: NotYet,
    ) -> Result<Value> {
        let (url, token) = self.endpoint((node, authority), path)?;
        let (started, began_ms) = (Instant::now(), self.time.now());
        loop {
            if started.elapsed() > STEP_GUARD {
                bail!(
                    "POST {path} on {node}: no success within {} s",
                    STEP_GUARD.as_secs()
                );
            }
            match self.attempt(&url, token, key, body).await {
                Some((s, v)) if s == want => {
                    lock(&self.step_ms).push(started.elapsed().as_secs_f64() * 1000.0);
                    self.note_wait(node, (started, began_ms), || format!("POST {path}"));
                    self.progress.steps.fetch_add(1, Ordering::Relaxed);
                    return Ok(v);
                }
                Some((404, _)) if not_yet == NotYet::NotFound => lock(&self.ledger).waits += 1,
                Some((409, v))
                    if not_yet == NotYet::Conflict && v["code"] == "invalid_transition" =>
                {
                    lock(&self.ledger).waits += 1;
                }
                // Down, restarting, shutting down, or the answer was lost: the same again.
                Some((503, _)) | None => lock(&self.ledger).unanswered_attempts += 1,
                Some((s, v)) => bail!("POST {path} on {node}: HTTP {s} (wanted {want}): {v}"),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the case's copy on `node` holds `steps` steps: the actor has seen the
    /// other party's last step before acting, as a user reading the case page would. (Two
    /// parties acting at once, each on a copy without the other's step, is not played:
    /// see the issue note on concurrent steps.)
    async fn wait_seen(
        &self,
        (node, authority): (NodeId, &str),
        id: &str,
        steps: usize,
    ) -> Result<()> {
        let (url, token) = self.endpoint((node, authority), &format!("/api/v1/requests/{id}"))?;
        let (started, began_ms) = (Instant::now(), self.time.now());
        loop {
            if started.elapsed() > STEP_GUARD {
                bail!(
                    "{node} did not see step {steps} of case {id} within {} s",
                    STEP_GUARD.as_secs()
                );
            }
            let seen = {
                let _slot = self.http_slots.acquire().await?;
                match self.http.get(&url).bearer_auth(token).send().await {
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["history"].as_array().map(Vec::len))
                        .unwrap_or(0),
                    _ => 0,
                }
            };
            if seen >= steps {
                self.note_wait(node, (started, began_ms), || {
                    format!("step {steps} of case {id} to arrive")
                });
                return Ok(());
            }
            lock(&self.ledger).waits += 1;
            tokio::time::sleep(POLL).await;
        }
    }

    /// Keeps the wait on `node` that began at `started` (simulated `began_ms`) among the
    /// longest ([`Exec::slowest`]); `what` is built only if it is.
    fn note_wait(
        &self,
        node: NodeId,
        (started, began_ms): (Instant, u64),
        what: impl FnOnce() -> String,
    ) {
        let wall_s = started.elapsed().as_secs_f64();
        keep_longest(&mut lock(&self.slowest), wall_s, || SlowWait {
            node: node.to_string(),
            what: what(),
            wall_s,
            began: imi_protocol::dates::rfc3339(began_ms),
        });
    }

    /// Plays case `c`: waits for its sending time, then every step in order.
    pub async fn play(self: Arc<Self>, c: Arc<PlannedCase>) {
        let result = self.play_case(&c).await;
        match result {
            Ok(Played::Finished) => {
                self.progress.finished.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Played::Unplayed { lag_ms }) => {
                let p = &self.progress;
                p.unplayed_lag_ms.fetch_max(lag_ms, Ordering::Relaxed);
                if p.unplayed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!(
                        "  the simulator is {:.1} simulated days behind the plan: cases that would end after the horizon are not played (this machine needs a longer --wall-s for this scale)",
                        lag_ms as f64 / DAY_MS as f64
                    );
                }
            }
            Err(e) => {
                if self.progress.failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("  case {} failed: {e:#}", c.seq);
                }
                lock(&self.ledger)
                    .errors
                    .push(format!("case {}: {e:#}", c.seq));
            }
        }
    }

    /// Sends notification or alert `b` at its time, as its sender's coordinator, with an
    /// `Idempotency-Key` so that a retry after a lost answer sends nothing twice.
    pub async fn broadcast(self: Arc<Self>, b: Arc<PlannedBroadcast>) {
        self.time.sleep_until(b.at_ms).await;
        let key = format!("sim-{}-b{}", self.run, b.seq);
        let sent = self
            .step(
                (b.sender, &b.authority),
                b.path(),
                &key,
                &b.body,
                201,
                NotYet::Never,
            )
            .await;
        let p = &self.progress;
        match sent {
            Ok(v) => match b.kind {
                BroadcastKind::Notification => {
                    p.notifications.fetch_add(1, Ordering::Relaxed);
                    if v["repository_entry"].is_string() {
                        p.entries.fetch_add(1, Ordering::Relaxed);
                    }
                }
                BroadcastKind::Alert => {
                    p.alerts.fetch_add(1, Ordering::Relaxed);
                    if v["late"] == true {
                        p.alerts_late.fetch_add(1, Ordering::Relaxed);
                    }
                }
            },
            Err(e) => {
                if p.broadcasts_failed.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("  broadcast {} failed: {e:#}", b.seq);
                }
                lock(&self.ledger)
                    .errors
                    .push(format!("broadcast {}: {e:#}", b.seq));
            }
        }
    }

    async fn play_case(&self, c: &PlannedCase) -> Result<Played> {
        let slot = lock(&self.ledger).open_case(c.seq, c.requester, c.responder);
        let record = |step: &'static str, node: NodeId, v: &Value| {
            lock(&self.ledger).record_step(slot, step, node, v)
        };
        let key = |step: &str| format!("sim-{}-{}-{step}", self.run, c.seq);
        // The create, whole simulated days later than planned if the simulator is late:
        // the case then plays exactly as planned, shifted.
        let mut shift_days = 0;
        let created = loop {
            if ends_after(c, shift_days, self.horizon_ms) {
                let lag_ms = self.time.now().saturating_sub(c.sent_ms);
                return Ok(Played::Unplayed { lag_ms });
            }
            let planned = c.sent_ms + shift_days * DAY_MS;
            self.time.sleep_until(planned).await;
            let lag = self.time.now().saturating_sub(planned);
            if lag > CREATE_TOLERANCE_MS {
                shift_days += lag.div_ceil(DAY_MS);
                continue;
            }
            lock(&self.lateness).push(lag);
            let mut body = c.create_body();
            body["answer_by"] = json!(later(&c.answer_by, shift_days)?);
            let attempt = self
                .step(
                    (c.requester, &c.requester_authority),
                    "/api/v1/requests",
                    &key(&format!("create-{shift_days}")),
                    &body,
                    201,
                    NotYet::Never,
                )
                .await;
            match attempt {
                Ok(v) => break v,
                // The node stamped it later than the date it asks for allows (an
                // overloaded machine): nothing was committed; a day later again.
                Err(e) if format!("{e:#}").contains("deadline_in_past") => shift_days += 1,
                Err(e) => return Err(e),
            }
        };
        if shift_days > 0 {
            self.progress.shifted.fetch_add(1, Ordering::Relaxed);
        }
        let lag = shift_days * DAY_MS;
        self.progress.created.fetch_add(1, Ordering::Relaxed);
        record("create", c.requester, &created)?;
        let id = created["id"]
            .as_str()
            .ok_or_else(|| anyhow!("create answered without an id: {created}"))?
            .to_owned();
        let mut responder_started = false;
        for (i, s) in c.steps.iter().enumerate() {
            let due = s.at_ms.saturating_add(lag);
            self.time.sleep_until(due).await;
            lock(&self.lateness).push(self.time.now().saturating_sub(due));
            let (node, authority) = if s.action.by_responder() {
                (c.responder, &c.responder_authority)
            } else {
                (c.requester, &c.requester_authority)
            };
            let not_yet = if s.action.by_responder() && !responder_started {
                NotYet::NotFound
            } else {
                NotYet::Conflict
            };
            responder_started |= s.action.by_responder();
            let previous_by_responder = i
                .checked_sub(1)
                .and_then(|p| c.steps.get(p))
                .is_some_and(|p| p.action.by_responder());
            if i > 0 && previous_by_responder != s.action.by_responder() {
                self.wait_seen((node, authority), &id, i + 1).await?;
            }
            let path = s.action.path();
            // A proposal reached so late that its date has passed (an overloaded machine,
            // days behind the plan) asks, each time it is refused, for a date beyond the
            // first one the clock has not passed yet, twice as far beyond at each refusal
            // (`margin_days`): a machine that stalls for simulated days between two
            // attempts is outrun within a few.
            let mut extra_days = 0;
            let mut refusals = 0;
            let v = loop {
                let body = match &s.action {
                    Action::ProposeDeadline { answer_by } => {
                        json!({"answer_by": later(answer_by, shift_days + extra_days)?})
                    }
                    other => other.body(c),
                };
                let attempt = self
                    .step(
                        (node, authority),
                        &format!("/api/v1/requests/{id}/{path}"),
                        &key(&format!("{i}-{path}-{extra_days}")),
                        &body,
                        200,
                        not_yet,
                    )
                    .await;
                match (attempt, &s.action) {
                    (Ok(v), _) => break v,
                    (Err(e), Action::ProposeDeadline { answer_by })
                        if refusals < MAX_LATE_REFUSALS
                            && format!("{e:#}").contains("deadline_in_past") =>
                    {
                        if refusals == 0 {
                            self.progress.late_proposals.fetch_add(1, Ordering::Relaxed);
                        }
                        refusals += 1;
                        let moved = shift_days + extra_days + 1;
                        extra_days = days_to_future(answer_by, moved, self.time.now())?
                            - shift_days
                            + margin_days(refusals);
                    }
                    (Err(e), _) => return Err(e),
                }
            };
            record(path, node, &v)?;
        }
        lock(&self.finals).insert(id, FinalFact::planned(c));
        Ok(Played::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PlannedStep;

    fn ms(date: &str) -> u64 {
        Date::parse(date).map(|d| d.start_ms()).unwrap_or_default()
    }

    #[test]
    fn a_late_proposal_jumps_to_the_first_date_the_clock_has_not_passed() {
        // Planned for 10 March; the clock reads 20 March, 08:00: 11 March would be refused
        // again and again on a machine slower than a simulated day per attempt. The 20th
        // ends in 16 hours: taken.
        let now = ms("2021-03-20") + 8 * 3_600_000;
        let days = days_to_future("2021-03-10", 1, now).unwrap();
        assert_eq!(later("2021-03-10", days).unwrap(), "2021-03-20");
        // At 20:00 the 20th ends in less than half a day: the 21st.
        let evening = ms("2021-03-20") + 20 * 3_600_000;
        let days = days_to_future("2021-03-10", 1, evening).unwrap();
        assert_eq!(later("2021-03-10", days).unwrap(), "2021-03-21");
        // A date still ahead moves by the days asked for, no fewer.
        assert_eq!(
            days_to_future("2021-03-10", 3, ms("2021-03-01")).unwrap(),
            3
        );
        assert!(days_to_future("10 March", 1, now).is_err());
    }

    #[test]
    fn the_longest_waits_are_kept_longest_first() {
        let mut slowest = Vec::new();
        let mut built = 0;
        for (i, s) in [3.0, 75.0, 1.0, 9.0, 2.0, 4.0, 0.5, 12.0]
            .into_iter()
            .enumerate()
        {
            keep_longest(&mut slowest, s, || {
                built += 1;
                SlowWait {
                    node: "DE".into(),
                    what: format!("wait {i}"),
                    wall_s: s,
                    began: String::new(),
                }
            });
        }
        let kept: Vec<f64> = slowest.iter().map(|w| w.wall_s).collect();
        assert_eq!(kept, [75.0, 12.0, 9.0, 4.0, 3.0]);
        assert_eq!(slowest[0].what, "wait 1");
        // The 0.5 s wait, shorter than all five kept, was not even built.
        assert_eq!(built, 7);
    }

    #[test]
    fn each_refusal_of_a_late_proposal_asks_twice_as_far_ahead() {
        let asked: Vec<u64> = (1..=9).map(margin_days).collect();
        assert_eq!(asked, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
        // Within the attempts allowed, more than the longest stall seen at 1,500 s for the
        // year (a step 24 simulated days late).
        let total: u64 = (1..=MAX_LATE_REFUSALS).map(margin_days).sum();
        assert!(total > 24, "{total}");
    }

    #[test]
    fn a_case_moved_past_the_horizon_is_not_played() {
        let c = PlannedCase {
            seq: 0,
            area: "PQ".into(),
            procedure: "PQ-1".into(),
            questions: Vec::new(),
            requester: NodeId::AT,
            requester_authority: "AT-1".into(),
            responder: NodeId::DE,
            responder_authority: "DE-1".into(),
            sent_ms: ms("2021-12-01"),
            answer_by: "2021-12-15".into(),
            steps: vec![PlannedStep {
                at_ms: ms("2022-01-10"),
                action: Action::Accept,
            }],
        };
        let horizon = ms("2022-05-01");
        assert!(!ends_after(&c, 0, horizon));
        assert!(
            !ends_after(&c, 111, horizon),
            "its last step on the horizon's day"
        );
        assert!(ends_after(&c, 112, horizon));
        let lone = PlannedCase {
            steps: Vec::new(),
            ..c
        };
        assert!(!ends_after(&lone, 151, horizon));
        assert!(ends_after(&lone, 152, horizon));
    }
}
