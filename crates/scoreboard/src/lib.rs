//! `imi-scoreboard`: the IMI scoreboard computed from indicator facts.
//!
//! A [`Fact`] is the lifecycle metadata of one request (no names, no texts, no attachments):
//! an opaque case id, legal area, requester and responder country, when it was sent,
//! accepted, withdrawn and first answered, the agreed deadline and the requester's ratings.
//! Facts are read as JSON Lines ([`read_facts`], streaming, on several threads, memory
//! bounded by the accumulators), folded into per-country, per-area and per-quarter
//! accumulators ([`Board`]) and turned into the five indicators with their colours, the
//! score and the overall colour ([`Scoreboard`]), exactly as the rules below say.
//!
//! # The rules
//!
//! A country's indicators count the requests its authorities **received** (it is the
//! responder), in the areas PQ, SD, PW and PR only, **sent** within the period
//! (`from` inclusive, `to` exclusive).
//!
//! 1. % accepted within 7 days: accepted with `accepted_at - sent_at` ≤ 7×24 h, over all
//!    counted requests except those withdrawn within 7×24 h of sending (≤) that had not
//!    been accepted before (strictly) the withdrawal.
//! 2. Average days to answer: mean of `answered_at - sent_at` in (fractional) days over the
//!    answered requests.
//! 3. % answered by the agreed date: answered requests with a deadline whose answer's UTC
//!    date is on or before the deadline, over the answered requests with a deadline.
//! 4. % negative timeliness ratings: ratings 1 or 2 over the requests with a timeliness rating.
//! 5. % negative efforts ratings: the same with the efforts rating.
//!
//! Colours on unrounded values: \[1\] and \[3\] green at 80 or more, yellow at 60 or more, else
//! red; \[2\] green under 16, yellow up to 25, else red; \[4\] and \[5\] green under 5, yellow under
//! 15, else red. An indicator with nothing to count has value, colour null and scores 0.
//! Score: green +1, yellow 0, red −1; overall: 2 or more green ("above average"), −2 or
//! less red ("below average"), otherwise yellow ("average"); a country with nothing to
//! count has overall null.

pub mod crosscheck;
pub mod html;
mod read;
pub mod usage;

pub use read::{ReadError, read_facts};

use imi_protocol::dates::{DAY_MS, Date, parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};

/// The 30 EEA countries the scoreboard covers, in output order (IMI node ids: `EL` is
/// Greece).
pub const COUNTRIES: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The legal areas counted.
pub const AREAS: [&str; 4] = ["PQ", "SD", "PW", "PR"];

/// Most quarters a period may span (the trend chart).
pub const MAX_QUARTERS: usize = 80;

const WEEK_MS: i64 = 7 * DAY_MS as i64;

/// One request's indicator facts, as exported and imported (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    /// Opaque case id.
    pub case: String,
    /// Legal area code.
    pub area: String,
    /// Requester country.
    pub requester: String,
    /// Responder country.
    pub responder: String,
    /// Sent, RFC 3339 UTC.
    pub sent_at: String,
    /// Accepted by the responder.
    pub accepted_at: Option<String>,
    /// Withdrawn by the requester.
    pub withdrawn_at: Option<String>,
    /// First answered.
    pub answered_at: Option<String>,
    /// The agreed deadline, `YYYY-MM-DD`.
    pub deadline: Option<String>,
    /// Timeliness rating, 1 (very dissatisfied) to 5 (very satisfied).
    pub timeliness: Option<u8>,
    /// Efforts rating, 1 to 5.
    pub efforts: Option<u8>,
}

/// A fact reduced to what the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Index into [`AREAS`], `None` for an area that is not counted.
    pub area: Option<usize>,
    /// Index into [`COUNTRIES`] of the responder, `None` if it is not an EEA country.
    pub responder: Option<usize>,
    /// Requester and responder in the same country: not cross-border, not counted.
    pub domestic: bool,
    /// Sent, ms.
    pub sent: i64,
    /// Accepted, ms.
    pub accepted: Option<i64>,
    /// Withdrawn, ms.
    pub withdrawn: Option<i64>,
    /// First answered, ms.
    pub answered: Option<i64>,
    /// Deadline, days since 1970-01-01.
    pub deadline: Option<i64>,
    /// Timeliness rating.
    pub timeliness: Option<u8>,
    /// Efforts rating.
    pub efforts: Option<u8>,
}

/// Why a fact is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FactError {
    /// A time is not RFC 3339 UTC.
    #[error("{0} is not an RFC 3339 UTC time")]
    BadTime(&'static str),
    /// The deadline is not a date.
    #[error("deadline is not a YYYY-MM-DD date")]
    BadDate,
    /// A rating is outside 1..=5.
    #[error("{0} must be 1 to 5 or null")]
    BadRating(&'static str),
    /// A country is not a two-letter node id.
    #[error("{0} is not a country code")]
    BadCountry(&'static str),
}

/// `YYYY-MM-DDTHH:MM:SSZ` (the form facts are written in) without allocation or
/// iterators; anything else goes through the general RFC 3339 parser.
fn fast_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
        b'Z',
    ] = *b
    else {
        return None;
    };
    let d = |c: u8| -> Option<u32> { c.is_ascii_digit().then(|| u32::from(c - b'0')) };
    let year = d(y0)? * 1000 + d(y1)? * 100 + d(y2)? * 10 + d(y3)?;
    let month = d(m0)? * 10 + d(m1)?;
    let day = d(d0)? * 10 + d(d1)?;
    let (h, m, sec) = (
        d(h0)? * 10 + d(h1)?,
        d(n0)? * 10 + d(n1)?,
        d(s0)? * 10 + d(s1)?,
    );
    if h > 23 || m > 59 || sec > 59 || year < 1970 {
        return None;
    }
    let days = Date::new(year, month, day)?.days();
    Some(days * DAY_MS as i64 + i64::from(h * 3_600_000 + m * 60_000 + sec * 1000))
}

fn time(s: &str, field: &'static str) -> Result<i64, FactError> {
    fast_time(s)
        .or_else(|| parse_rfc3339(s).and_then(|t| i64::try_from(t).ok()))
        .ok_or(FactError::BadTime(field))
}

fn opt_time(s: Option<&str>, field: &'static str) -> Result<Option<i64>, FactError> {
    s.map(|s| time(s, field)).transpose()
}

fn rating(r: Option<u8>, field: &'static str) -> Result<Option<u8>, FactError> {
    match r {
        Some(v) if !(1..=5).contains(&v) => Err(FactError::BadRating(field)),
        other => Ok(other),
    }
}

/// Index of a country in [`COUNTRIES`].
pub fn country_index(code: &str) -> Option<usize> {
    COUNTRIES.iter().position(|c| *c == code)
}

fn check_country(code: &str, field: &'static str) -> Result<Option<usize>, FactError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(country_index(code))
    } else {
        Err(FactError::BadCountry(field))
    }
}

/// Builds a record from the fields of a fact.
#[allow(clippy::too_many_arguments)]
pub fn record(
    area: &str,
    requester: &str,
    responder: &str,
    sent_at: &str,
    accepted_at: Option<&str>,
    withdrawn_at: Option<&str>,
    answered_at: Option<&str>,
    deadline: Option<&str>,
    timeliness: Option<u8>,
    efforts: Option<u8>,
) -> Result<Record, FactError> {
    check_country(requester, "requester")?;
    Ok(Record {
        area: AREAS.iter().position(|a| *a == area),
        responder: check_country(responder, "responder")?,
        domestic: requester == responder,
        sent: time(sent_at, "sent_at")?,
        accepted: opt_time(accepted_at, "accepted_at")?,
        withdrawn: opt_time(withdrawn_at, "withdrawn_at")?,
        answered: opt_time(answered_at, "answered_at")?,
        deadline: deadline
            .map(|d| Date::parse(d).map(|d| d.days()).ok_or(FactError::BadDate))
            .transpose()?,
        timeliness: rating(timeliness, "timeliness")?,
        efforts: rating(efforts, "efforts")?,
    })
}

impl Fact {
    /// The record of this fact.
    pub fn record(&self) -> Result<Record, FactError> {
        record(
            &self.area,
            &self.requester,
            &self.responder,
            &self.sent_at,
            self.accepted_at.as_deref(),
            self.withdrawn_at.as_deref(),
            self.answered_at.as_deref(),
            self.deadline.as_deref(),
            self.timeliness,
            self.efforts,
        )
    }

    /// Formats a timestamp (ms) as the facts' time format.
    pub fn time(ms: u64) -> String {
        // Whole seconds are what the format shows in the examples; keep milliseconds when
        // there are some.
        let s = rfc3339(ms);
        match s.strip_suffix(".000Z") {
            Some(whole) => format!("{whole}Z"),
            None => s,
        }
    }
}

/// A period: `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First day.
    pub from: Date,
    /// First day after.
    pub to: Date,
}

impl Period {
    /// A calendar year.
    pub fn year(year: u32) -> Option<Period> {
        Some(Period {
            from: Date::parse(&format!("{year:04}-01-01"))?,
            to: Date::parse(&format!("{:04}-01-01", year.checked_add(1)?))?,
        })
    }

    /// `--period 2021` (a year) or `2021-Q2` (a quarter).
    pub fn parse(s: &str) -> Option<Period> {
        if let Some((y, q)) = s.split_once("-Q") {
            let year: u32 = y.parse().ok()?;
            let q: u32 = q.parse().ok().filter(|q| (1..=4).contains(q))?;
            let from = Date::parse(&format!("{year:04}-{:02}-01", 3 * q - 2))?;
            let to = if q == 4 {
                Date::parse(&format!("{:04}-01-01", year + 1))?
            } else {
                Date::parse(&format!("{year:04}-{:02}-01", 3 * q + 1))?
            };
            return Some(Period { from, to });
        }
        if s.len() == 4 {
            return Period::year(s.parse().ok()?);
        }
        None
    }

    /// From two dates; `None` unless `from < to`.
    pub fn between(from: Date, to: Date) -> Option<Period> {
        (from < to).then_some(Period { from, to })
    }

    fn start_ms(&self) -> i64 {
        self.from.days() * DAY_MS as i64
    }

    fn end_ms(&self) -> i64 {
        self.to.days() * DAY_MS as i64
    }

    /// The calendar quarters the period touches, as (label, start ms), at most
    /// [`MAX_QUARTERS`].
    pub fn quarters(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        let (mut y, mut q) = (self.from.year, (self.from.month - 1) / 3 + 1);
        while out.len() < MAX_QUARTERS {
            let Some(start) = Date::parse(&format!("{y:04}-{:02}-01", 3 * q - 2)) else {
                break;
            };
            if start >= self.to {
                break;
            }
            out.push((format!("{y}-Q{q}"), start.days() * DAY_MS as i64));
            if q == 4 {
                y += 1;
                q = 1;
            } else {
                q += 1;
            }
        }
        out
    }
}

/// Counters of one group of requests (a country, an area, a quarter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Acc {
    /// Counted requests.
    pub counted: u64,
    i1_den: u64,
    i1_num: u64,
    i2_n: u64,
    i2_sum_ms: i128,
    i3_den: u64,
    i3_num: u64,
    i4_den: u64,
    i4_num: u64,
    i5_den: u64,
    i5_num: u64,
}

impl Acc {
    /// Adds one counted request.
    pub fn add(&mut self, r: &Record) {
        self.counted += 1;
        let withdrawn_early_unaccepted = r
            .withdrawn
            .is_some_and(|w| w - r.sent <= WEEK_MS && r.accepted.is_none_or(|a| a >= w));
        if !withdrawn_early_unaccepted {
            self.i1_den += 1;
            if r.accepted.is_some_and(|a| a - r.sent <= WEEK_MS) {
                self.i1_num += 1;
            }
        }
        if let Some(answered) = r.answered {
            self.i2_n += 1;
            self.i2_sum_ms += i128::from(answered - r.sent);
            if let Some(deadline) = r.deadline {
                self.i3_den += 1;
                if answered.div_euclid(DAY_MS as i64) <= deadline {
                    self.i3_num += 1;
                }
            }
        }
        if let Some(t) = r.timeliness {
            self.i4_den += 1;
            self.i4_num += u64::from(t <= 2);
        }
        if let Some(e) = r.efforts {
            self.i5_den += 1;
            self.i5_num += u64::from(e <= 2);
        }
    }

    /// Adds another accumulator's counts.
    pub fn merge(&mut self, o: &Acc) {
        self.counted += o.counted;
        self.i1_den += o.i1_den;
        self.i1_num += o.i1_num;
        self.i2_n += o.i2_n;
        self.i2_sum_ms += o.i2_sum_ms;
        self.i3_den += o.i3_den;
        self.i3_num += o.i3_num;
        self.i4_den += o.i4_den;
        self.i4_num += o.i4_num;
        self.i5_den += o.i5_den;
        self.i5_num += o.i5_num;
    }

    /// The five indicators.
    pub fn indicators(&self) -> [Indicator; 5] {
        let pct = |num: u64, den: u64| (den > 0).then(|| 100.0 * num as f64 / den as f64);
        let days =
            (self.i2_n > 0).then(|| self.i2_sum_ms as f64 / self.i2_n as f64 / DAY_MS as f64);
        [
            Indicator::new(1, pct(self.i1_num, self.i1_den), self.i1_den),
            Indicator::new(2, days, self.i2_n),
            Indicator::new(3, pct(self.i3_num, self.i3_den), self.i3_den),
            Indicator::new(4, pct(self.i4_num, self.i4_den), self.i4_den),
            Indicator::new(5, pct(self.i5_num, self.i5_den), self.i5_den),
        ]
    }
}

/// A colour of the scoreboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// Good.
    Green,
    /// Average.
    Yellow,
    /// Poor.
    Red,
}

impl Colour {
    /// The score of the colour.
    pub fn score(self) -> i32 {
        match self {
            Colour::Green => 1,
            Colour::Yellow => 0,
            Colour::Red => -1,
        }
    }

    /// `green`, `yellow`, `red`.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        }
    }
}

/// The colour of indicator `id` at `value` (unrounded).
pub fn colour(id: u8, value: f64) -> Colour {
    match id {
        1 | 3 if value >= 80.0 => Colour::Green,
        1 | 3 if value >= 60.0 => Colour::Yellow,
        1 | 3 => Colour::Red,
        2 if value < 16.0 => Colour::Green,
        2 if value <= 25.0 => Colour::Yellow,
        2 => Colour::Red,
        _ if value < 5.0 => Colour::Green,
        _ if value < 15.0 => Colour::Yellow,
        _ => Colour::Red,
    }
}

/// One indicator of a country.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Indicator {
    /// 1 to 5.
    pub id: u8,
    /// The unrounded value, or null with nothing to count.
    pub value: Option<f64>,
    /// Its colour.
    pub colour: Option<Colour>,
    /// How many requests the value was computed over.
    pub n: u64,
}

impl Indicator {
    fn new(id: u8, value: Option<f64>, n: u64) -> Self {
        Self {
            id,
            value,
            colour: value.map(|v| colour(id, v)),
            n,
        }
    }
}

/// One country's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountryResult {
    /// Node id.
    pub country: String,
    /// Indicators 1 to 5.
    pub indicators: [Indicator; 5],
    /// Sum of the colours' scores.
    pub score: i32,
    /// The overall colour, null with nothing to count.
    pub overall: Option<Colour>,
}

impl CountryResult {
    /// From a country's accumulator.
    pub fn of(country: &str, acc: &Acc) -> Self {
        let indicators = acc.indicators();
        let score = indicators
            .iter()
            .filter_map(|i| i.colour)
            .map(Colour::score)
            .sum();
        let colour = if score >= 2 {
            Colour::Green
        } else if score <= -2 {
            Colour::Red
        } else {
            Colour::Yellow
        };
        let overall = indicators
            .iter()
            .any(|i| i.value.is_some())
            .then_some(colour);
        Self {
            country: country.to_owned(),
            indicators,
            score,
            overall,
        }
    }
}

/// The period as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodView {
    /// First day.
    pub from: String,
    /// First day after.
    pub to: String,
}

/// The scoreboard: the published JSON document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scoreboard {
    /// The period.
    pub period: PeriodView,
    /// Every EEA country, by code.
    pub countries: Vec<CountryResult>,
}

/// Accumulators of a period: per country, per area (all countries) and per quarter (all
/// countries). Their size does not depend on the number of facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    period: Period,
    quarter_starts: Vec<i64>,
    /// Per country, [`COUNTRIES`] order.
    pub countries: [Acc; 30],
    /// Per area, [`AREAS`] order, all countries.
    pub areas: [Acc; 4],
    /// Per quarter of the period, all countries.
    pub quarters: Vec<Acc>,
    /// Facts read in total (counted or not).
    pub facts: u64,
}

impl Board {
    /// Empty accumulators for `period`.
    pub fn new(period: Period) -> Self {
        let quarter_starts: Vec<i64> = period.quarters().into_iter().map(|(_, s)| s).collect();
        Self {
            period,
            quarters: vec![Acc::default(); quarter_starts.len()],
            quarter_starts,
            countries: [Acc::default(); 30],
            areas: [Acc::default(); 4],
            facts: 0,
        }
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// Adds one fact's record: counted if its area is counted, its responder an EEA country,
    /// it is cross-border (a domestic case is not an IMI exchange between Member States) and
    /// it was sent within the period.
    pub fn add(&mut self, r: &Record) {
        self.facts += 1;
        let (Some(area), Some(country)) = (r.area, r.responder) else {
            return;
        };
        if r.domestic {
            return;
        }
        if r.sent < self.period.start_ms() || r.sent >= self.period.end_ms() {
            return;
        }
        if let Some(a) = self.countries.get_mut(country) {
            a.add(r);
        }
        if let Some(a) = self.areas.get_mut(area) {
            a.add(r);
        }
        let q = self.quarter_starts.partition_point(|s| *s <= r.sent);
        if let Some(a) = q.checked_sub(1).and_then(|q| self.quarters.get_mut(q)) {
            a.add(r);
        }
    }

    /// Adds another board of the same period.
    pub fn merge(&mut self, o: &Board) {
        for (a, b) in self.countries.iter_mut().zip(&o.countries) {
            a.merge(b);
        }
        for (a, b) in self.areas.iter_mut().zip(&o.areas) {
            a.merge(b);
        }
        for (a, b) in self.quarters.iter_mut().zip(&o.quarters) {
            a.merge(b);
        }
        self.facts += o.facts;
    }

    /// The scoreboard.
    pub fn scoreboard(&self) -> Scoreboard {
        Scoreboard {
            period: PeriodView {
                from: self.period.from.to_string(),
                to: self.period.to.to_string(),
            },
            countries: COUNTRIES
                .iter()
                .zip(&self.countries)
                .map(|(c, a)| CountryResult::of(c, a))
                .collect(),
        }
    }

    /// The quarters' labels and indicators (all countries).
    pub fn quarter_indicators(&self) -> Vec<(String, [Indicator; 5])> {
        self.period
            .quarters()
            .into_iter()
            .zip(&self.quarters)
            .map(|((label, _), acc)| (label, acc.indicators()))
            .collect()
    }
}

impl Scoreboard {
    /// The published JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// CSV: one line per country and indicator.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("country,indicator,value,colour,n,score,overall\n");
        for c in &self.countries {
            for i in &c.indicators {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    c.country,
                    i.id,
                    i.value.map(|v| v.to_string()).unwrap_or_default(),
                    i.colour.map(Colour::as_str).unwrap_or_default(),
                    i.n,
                    c.score,
                    c.overall.map(Colour::as_str).unwrap_or_default(),
                ));
            }
        }
        out
    }
}
