//! Scenario files (`simulations/scenarios/NAME.toml`) and expected maps
//! (`simulations/scenarios/maps/NAME.toml`): parsing and validation. The format, every key,
//! its default and its unit are documented in `simulations/scenarios/README.md`.
use anyhow::{Context, Result, anyhow, bail, ensure};
use imi_domain::Authority;
use imi_protocol::NodeId;
use imi_protocol::dates::{DAY_MS, Date};
use imi_scoreboard::{COUNTRIES, Colour};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The directory file given to the nodes when a scenario names none.
pub const DEFAULT_DIRECTORY: &str = "configs/directory/authorities.toml";
/// Longest margin a scenario may ask for: an acceptance "within 7 days" is planned at most
/// 7 days minus the margin after sending, so the margin must leave room for it.
pub const MAX_MARGIN_HOURS: f64 = 72.0;

/// The repository root (scenario `directory` paths are relative to it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `simulations/scenarios/`.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The simulated time of a scenario.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Time {
    /// First day of the sending window, `YYYY-MM-DD` (UTC midnight).
    pub start: String,
    /// First day after the sending window, `YYYY-MM-DD`.
    pub end: String,
    /// Simulated days after `end` in which cases finish (default 120).
    #[serde(default = "Time::default_tail_days")]
    pub tail_days: f64,
    /// Wall seconds for the whole run (start to horizon) at scale 1 (default 480).
    #[serde(default = "Time::default_wall_s")]
    pub wall_s: f64,
    /// The run never takes fewer wall seconds than this, whatever the scale (default 75).
    #[serde(default = "Time::default_min_wall_s")]
    pub min_wall_s: f64,
    /// How late (simulated hours) a step may happen without changing any indicator
    /// (default 24).
    #[serde(default = "Time::default_margin_hours")]
    pub margin_hours: f64,
}

impl Time {
    fn default_tail_days() -> f64 {
        120.0
    }
    fn default_wall_s() -> f64 {
        480.0
    }
    fn default_min_wall_s() -> f64 {
        75.0
    }
    fn default_margin_hours() -> f64 {
        24.0
    }

    /// The margin in ms.
    pub fn margin_ms(&self) -> u64 {
        (self.margin_hours * 3_600_000.0).round() as u64
    }
}

/// The volume and mix of the traffic.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Traffic {
    /// Requests in a 365-day year at scale 1; a window of another length gets its share.
    pub exchanges_per_year: f64,
    /// Legal area code → relative share (normalised). Areas must have a request procedure
    /// in the catalogue (checked when planning).
    pub areas: BTreeMap<String, f64>,
    /// How busy a Saturday or Sunday is relative to a working day (default 0.2).
    #[serde(default = "Traffic::default_weekend_weight")]
    pub weekend_weight: f64,
    /// Requests are sent between these UTC hours of the day (default `[7, 17]`).
    #[serde(default = "Traffic::default_office_hours")]
    pub office_hours: [f64; 2],
    /// Notifications in a 365-day year at scale 1 (default 0), sent by each country in
    /// proportion to its profile's `send`.
    #[serde(default)]
    pub notifications_per_year: f64,
    /// Alerts in a 365-day year at scale 1 (default 0), likewise.
    #[serde(default)]
    pub alerts_per_year: f64,
}

impl Traffic {
    fn default_weekend_weight() -> f64 {
        0.2
    }
    fn default_office_hours() -> [f64; 2] {
        [7.0, 17.0]
    }
}

/// How a country behaves: its share of the traffic, and as responder how it treats the
/// requests it receives (and how its counterparts rate it). Fractions are of the requests
/// it receives, in `0..=1`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Relative share of the requests sent (positive).
    pub send: f64,
    /// Relative share of the requests received (positive).
    pub receive: f64,
    /// Fraction of the requests it receives (not withdrawn) accepted within 7 days; the
    /// rest are accepted later.
    pub accept_in_week: f64,
    /// Mean days from sending to the first answer.
    pub answer_days: f64,
    /// Fraction answered on or before the agreed date.
    pub on_time: f64,
    /// Fraction where it proposes a later date and the requester accepts it.
    pub renegotiate: f64,
    /// Fraction of the timeliness ratings it gets that are 1 or 2.
    pub negative_timeliness: f64,
    /// Fraction of the efforts ratings it gets that are 1 or 2.
    pub negative_efforts: f64,
    /// Fraction of closures (of requests it answered) that carry ratings.
    pub rated: f64,
    /// Fraction of the requests it receives that the requester withdraws before acceptance
    /// (within the first week).
    pub withdrawn: f64,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            send: 1.0,
            receive: 1.0,
            accept_in_week: 0.93,
            answer_days: 12.0,
            on_time: 0.90,
            renegotiate: 0.10,
            negative_timeliness: 0.02,
            negative_efforts: 0.02,
            rated: 0.7,
            withdrawn: 0.01,
        }
    }
}

impl Profile {
    fn check(&self, key: &str) -> Result<()> {
        for (name, v) in [("send", self.send), ("receive", self.receive)] {
            ensure!(
                v.is_finite() && v > 0.0,
                "{key}.{name} = {v}: a weight must be positive"
            );
        }
        ensure!(
            self.answer_days.is_finite() && self.answer_days > 0.0,
            "{key}.answer_days = {}: must be a positive number of days",
            self.answer_days
        );
        for (name, v) in [
            ("accept_in_week", self.accept_in_week),
            ("on_time", self.on_time),
            ("renegotiate", self.renegotiate),
            ("negative_timeliness", self.negative_timeliness),
            ("negative_efforts", self.negative_efforts),
            ("rated", self.rated),
            ("withdrawn", self.withdrawn),
        ] {
            ensure!(
                (0.0..=1.0).contains(&v),
                "{key}.{name} = {v} is outside 0..=1"
            );
        }
        ensure!(
            self.withdrawn < 1.0,
            "{key}.withdrawn = 1 leaves no request to answer"
        );
        Ok(())
    }
}

/// A fault the runner injects.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// `node` is stopped (SIGTERM) at simulated day `at_day` (days since start) and started
    /// again `days` later.
    Down {
        /// The node.
        node: NodeId,
        /// Days since `time.start`.
        at_day: f64,
        /// How long it stays down, days.
        days: f64,
    },
    /// The federation is cut in two (`a` and `b`: node lists; every connection between a
    /// and b is refused) from `at_day` for `days`.
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
        /// Days since `time.start`.
        at_day: f64,
        /// How long until it heals, days.
        days: f64,
    },
    /// `node` is SIGKILLed and restarted at once at each of `at_days`.
    Kill {
        /// The node.
        node: NodeId,
        /// Days since `time.start`, ascending.
        at_days: Vec<f64>,
    },
}

impl Fault {
    /// The simulated day (since start) the fault begins.
    pub fn start_day(&self) -> f64 {
        match self {
            Fault::Down { at_day, .. } | Fault::Partition { at_day, .. } => *at_day,
            Fault::Kill { at_days, .. } => at_days.first().copied().unwrap_or(0.0),
        }
    }

    fn check(&mut self, key: &str, members: &[NodeId], horizon_days: f64) -> Result<()> {
        let member = |n: &NodeId, what: &str| {
            ensure!(
                members.contains(n),
                "{key}.{what}: node {n} is not among the scenario's nodes"
            );
            Ok(())
        };
        let window = |at: f64, days: f64| {
            ensure!(
                at.is_finite() && at >= 0.0 && at < horizon_days,
                "{key}.at_day = {at}: must be within the run (0 to {horizon_days} days)"
            );
            ensure!(
                days.is_finite() && days > 0.0 && at + days <= horizon_days,
                "{key}.days = {days}: must be positive and end within the run ({horizon_days} days)"
            );
            Ok(())
        };
        match self {
            Fault::Down { node, at_day, days } => {
                member(node, "node")?;
                window(*at_day, *days)?;
            }
            Fault::Partition { a, b, at_day, days } => {
                ensure!(
                    !a.is_empty() && !b.is_empty(),
                    "{key}: both sides (a, b) need at least one node"
                );
                for n in a.iter() {
                    member(n, "a")?;
                }
                for n in b.iter() {
                    member(n, "b")?;
                    ensure!(!a.contains(n), "{key}.b: node {n} is on both sides");
                }
                window(*at_day, *days)?;
            }
            Fault::Kill { node, at_days } => {
                member(node, "node")?;
                ensure!(!at_days.is_empty(), "{key}.at_days: no kill listed");
                for at in at_days.iter() {
                    ensure!(
                        at.is_finite() && *at >= 0.0 && *at < horizon_days,
                        "{key}.at_days: {at} is not within the run (0 to {horizon_days} days)"
                    );
                }
                at_days.sort_by(f64::total_cmp);
            }
        }
        Ok(())
    }
}

/// The scoreboard a scenario checks at the end of its run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreboardCheck {
    /// The period asked of the Commission node: "2021".
    pub period: String,
    /// The expected map file, relative to simulations/scenarios/ ("maps/2021.toml").
    pub expect: String,
}

/// `nodes = "all"` or a list of node codes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NodesFile {
    Keyword(String),
    List(Vec<String>),
}

/// The file as written; [`Scenario`] is it validated.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    nodes: Option<NodesFile>,
    #[serde(default)]
    directory: Option<String>,
    #[serde(default)]
    seed: u64,
    time: Time,
    traffic: Traffic,
    #[serde(default)]
    scoreboard: Option<ScoreboardCheck>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
    #[serde(default)]
    faults: Vec<Fault>,
}

/// A scenario file (simulations/scenarios/NAME.toml), validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ScenarioFile")]
pub struct Scenario {
    name: String,
    description: String,
    members: Vec<NodeId>,
    directory: String,
    seed: u64,
    time: Time,
    traffic: Traffic,
    scoreboard: Option<ScoreboardCheck>,
    profiles: BTreeMap<NodeId, Profile>,
    faults: Vec<Fault>,
    start_ms: u64,
    end_ms: u64,
    horizon_ms: u64,
}

impl TryFrom<ScenarioFile> for Scenario {
    type Error = anyhow::Error;

    fn try_from(f: ScenarioFile) -> Result<Scenario> {
        ensure!(!f.name.trim().is_empty(), "name: must not be empty");
        let members = match f.nodes {
            None => NodeId::ALL.to_vec(),
            Some(NodesFile::Keyword(k)) if k == "all" => NodeId::ALL.to_vec(),
            Some(NodesFile::Keyword(k)) => {
                bail!("nodes = {k:?}: must be \"all\" or a list of node codes")
            }
            Some(NodesFile::List(list)) => {
                let mut seen = BTreeSet::new();
                let mut out = Vec::with_capacity(list.len());
                for code in &list {
                    let n: NodeId = code
                        .parse()
                        .map_err(|_| anyhow!("nodes: unknown country {code:?}"))?;
                    ensure!(seen.insert(n), "nodes: {code} is listed twice");
                    out.push(n);
                }
                out
            }
        };
        let nationals = members.iter().filter(|n| **n != NodeId::EU).count();
        ensure!(
            nationals >= 2,
            "nodes: at least two national nodes are needed to exchange requests"
        );
        if f.scoreboard.is_some() {
            ensure!(
                members.contains(&NodeId::EU),
                "scoreboard: the check asks the Commission node, so nodes must include EU"
            );
        }

        let t = &f.time;
        let start = Date::parse(&t.start)
            .ok_or_else(|| anyhow!("time.start = {:?}: not a YYYY-MM-DD date", t.start))?;
        let end = Date::parse(&t.end)
            .ok_or_else(|| anyhow!("time.end = {:?}: not a YYYY-MM-DD date", t.end))?;
        ensure!(
            !start.before_epoch(),
            "time.start = {start}: dates before 1970 are not supported"
        );
        ensure!(
            end > start,
            "time.end = {end}: must be after time.start = {start}"
        );
        ensure!(
            t.tail_days.is_finite() && t.tail_days >= 0.0,
            "time.tail_days = {}: must be zero or more days",
            t.tail_days
        );
        ensure!(
            t.wall_s.is_finite() && t.wall_s > 0.0,
            "time.wall_s = {}: must be positive",
            t.wall_s
        );
        ensure!(
            t.min_wall_s.is_finite() && t.min_wall_s >= 0.0,
            "time.min_wall_s = {}: must be zero or more",
            t.min_wall_s
        );
        ensure!(
            (0.0..=MAX_MARGIN_HOURS).contains(&t.margin_hours),
            "time.margin_hours = {}: must be within 0..={MAX_MARGIN_HOURS}",
            t.margin_hours
        );
        let start_ms = start.start_ms();
        let end_ms = end.start_ms();
        let horizon_ms = end_ms + (t.tail_days * DAY_MS as f64).round() as u64;

        let tr = &f.traffic;
        ensure!(
            tr.exchanges_per_year.is_finite() && tr.exchanges_per_year > 0.0,
            "traffic.exchanges_per_year = {}: must be positive",
            tr.exchanges_per_year
        );
        ensure!(!tr.areas.is_empty(), "traffic.areas: no area listed");
        for (code, w) in &tr.areas {
            ensure!(
                w.is_finite() && *w > 0.0,
                "traffic.areas.{code} = {w}: a weight must be positive"
            );
        }
        ensure!(
            tr.weekend_weight.is_finite() && tr.weekend_weight >= 0.0,
            "traffic.weekend_weight = {}: must be zero or more",
            tr.weekend_weight
        );
        for (key, v) in [
            ("notifications_per_year", tr.notifications_per_year),
            ("alerts_per_year", tr.alerts_per_year),
        ] {
            ensure!(
                v.is_finite() && v >= 0.0,
                "traffic.{key} = {v}: must be zero or more"
            );
        }
        let [h0, h1] = tr.office_hours;
        ensure!(
            (0.0..24.0).contains(&h0) && h1 > h0 && h1 <= 24.0,
            "traffic.office_hours = [{h0}, {h1}]: must be two UTC hours within 0..=24, the first earlier"
        );

        let mut profiles = BTreeMap::new();
        for (code, p) in &f.profiles {
            let key = format!("profiles.{code}");
            ensure!(
                code != "EU",
                "{key}: the Commission node sends and receives no requests"
            );
            let node: NodeId = code
                .parse()
                .ok()
                .filter(|_| COUNTRIES.contains(&code.as_str()))
                .ok_or_else(|| anyhow!("{key}: unknown country {code:?}"))?;
            p.check(&key)?;
            profiles.insert(node, *p);
        }

        if let Some(check) = &f.scoreboard {
            ensure!(
                imi_scoreboard::Period::parse(&check.period).is_some(),
                "scoreboard.period = {:?}: not a year (2021) or a quarter (2021-Q2)",
                check.period
            );
            ensure!(
                !check.expect.trim().is_empty(),
                "scoreboard.expect: must name a map file"
            );
        }

        let horizon_days = (horizon_ms - start_ms) as f64 / DAY_MS as f64;
        let mut faults = f.faults;
        for (i, fault) in faults.iter_mut().enumerate() {
            fault.check(&format!("faults[{i}]"), &members, horizon_days)?;
        }
        faults.sort_by(|a, b| a.start_day().total_cmp(&b.start_day()));

        Ok(Scenario {
            name: f.name,
            description: f.description,
            members,
            directory: f.directory.unwrap_or_else(|| DEFAULT_DIRECTORY.to_owned()),
            seed: f.seed,
            time: f.time,
            traffic: f.traffic,
            scoreboard: f.scoreboard,
            profiles,
            faults,
            start_ms,
            end_ms,
            horizon_ms,
        })
    }
}

impl Scenario {
    /// Parses and validates (errors name the key: unknown country, weights not positive,
    /// fractions outside 0..=1, end before start, ...).
    pub fn parse(text: &str) -> Result<Scenario> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| anyhow!("{e}"))?;
        Scenario::try_from(file)
    }

    /// Reads simulations/scenarios/NAME.toml (name without .toml) or a path to a file.
    pub fn load(name_or_path: &str) -> Result<Scenario> {
        let as_path = Path::new(name_or_path);
        let path = if name_or_path.ends_with(".toml") || as_path.components().count() > 1 {
            as_path.to_path_buf()
        } else {
            scenarios_dir().join(format!("{name_or_path}.toml"))
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it is for.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The member nodes to start: `nodes = "all"` (default: the 30 EEA countries and EU,
    /// `imi_protocol::NodeId::ALL`) or a list of codes.
    pub fn members(&self) -> Vec<NodeId> {
        self.members.clone()
    }

    /// The members that exchange requests (every member but `EU`), in `NodeId` order.
    pub fn nationals(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|n| *n != NodeId::EU)
            .collect();
        out.sort();
        out
    }

    /// The authority directory file to give the nodes (default
    /// configs/directory/authorities.toml), relative to the repository root.
    pub fn directory(&self) -> &str {
        &self.directory
    }

    /// The default seed (the runner's `--seed` overrides it).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The `[time]` table.
    pub fn time(&self) -> &Time {
        &self.time
    }

    /// The `[traffic]` table.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The profile of `country` (its `[profiles.CC]` table, else the defaults).
    pub fn profile(&self, country: NodeId) -> Profile {
        self.profiles.get(&country).copied().unwrap_or_default()
    }

    /// Replaces the `[traffic]` table (for experiments and tests); the caller keeps it
    /// valid.
    pub fn set_traffic(&mut self, traffic: Traffic) {
        self.traffic = traffic;
    }

    /// Replaces every profile (for experiments and tests).
    pub fn set_profiles(&mut self, profiles: BTreeMap<NodeId, Profile>) -> Result<()> {
        for (n, p) in &profiles {
            ensure!(
                COUNTRIES.contains(&n.as_str()),
                "profiles.{n}: unknown country"
            );
            p.check(&format!("profiles.{n}"))?;
        }
        self.profiles = profiles;
        Ok(())
    }

    /// Simulated start of the sending window, unix ms (UTC midnight of `time.start`).
    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// Simulated end (exclusive) of the sending window, unix ms.
    pub fn end_ms(&self) -> u64 {
        self.end_ms
    }

    /// Simulated end of the run: end_ms + tail_days (cases finish in the tail).
    pub fn horizon_ms(&self) -> u64 {
        self.horizon_ms
    }

    /// Clock speed (simulated ms per wall ms) at `scale`: (horizon - start) / wall_ms where
    /// wall_s = max(time.wall_s * scale, time.min_wall_s).
    pub fn speed(&self, scale: f64) -> f64 {
        let wall_s = (self.time.wall_s * scale).max(self.time.min_wall_s);
        (self.horizon_ms - self.start_ms) as f64 / (wall_s * 1000.0)
    }

    /// Faults in order of their start.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// The scoreboard check, if the scenario has one.
    pub fn scoreboard(&self) -> Option<&ScoreboardCheck> {
        self.scoreboard.as_ref()
    }

    /// How many cases [`crate::model::plan`] plans at `scale`:
    /// `exchanges_per_year × scale × (window days / 365)`, rounded.
    pub fn volume(&self, scale: f64) -> usize {
        self.per_window(self.traffic.exchanges_per_year, scale)
    }

    /// How many of `per_year` fall in the sending window at `scale`.
    pub fn per_window(&self, per_year: f64, scale: f64) -> usize {
        let days = (self.end_ms - self.start_ms) as f64 / DAY_MS as f64;
        (per_year * scale * days / 365.0).round() as usize
    }
}

/// The expected map: country code → colour, from maps/NAME.toml (one `CC = "green"` line
/// per country; only EEA country codes).
pub fn load_map(path: &Path) -> Result<BTreeMap<String, Colour>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading map {}", path.display()))?;
    let map: BTreeMap<String, Colour> =
        toml::from_str(&text).map_err(|e| anyhow!("map {}: {e}", path.display()))?;
    for code in map.keys() {
        ensure!(
            COUNTRIES.contains(&code.as_str()),
            "map {}: {code}: not an EEA country of the scoreboard",
            path.display()
        );
    }
    Ok(map)
}

/// Same as [`load_map`], resolved relative to simulations/scenarios/.
pub fn expected_map(check: &ScoreboardCheck) -> Result<BTreeMap<String, Colour>> {
    load_map(&scenarios_dir().join(&check.expect))
}

/// The authorities of a directory file (the `[[authorities]]` format), read with the node's
/// own loader (`imi_node::config::load_directory`), ordered by id.
pub fn load_authorities(path: &Path) -> Result<Vec<Authority>> {
    Ok(imi_node::config::load_directory(path)?
        .iter()
        .cloned()
        .collect())
}
