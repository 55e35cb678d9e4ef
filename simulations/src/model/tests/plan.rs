//! Plans: the 2021 calibration, margins, determinism, validity, volumes and shares.
use super::scenario::MINIMAL;
use super::*;
use crate::model::planner::{apportion, share, spread};
use imi_domain::Directory;
use imi_domain::catalogue::Catalogue;
use imi_domain::user::{Role, User};
use imi_protocol::dates::{DAY_MS, Date};
use imi_protocol::{AuthorityId, CaseId, NodeId};
use imi_scoreboard::{Board, Fact, Period, Scoreboard};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    imi_apps::catalogue_files::load_dir(repo_root().join("configs/catalogue")).unwrap()
});

static AUTHORITIES: LazyLock<Vec<imi_domain::Authority>> = LazyLock::new(|| {
    load_authorities(&repo_root().join("configs/directory/authorities.toml")).unwrap()
});

const SEEDS: [u64; 3] = [1, 2, 2021];

fn plan_of(s: &Scenario, scale: f64, seed: u64) -> Plan {
    plan_with_catalogue(s, scale, seed, &AUTHORITIES, &CATALOGUE).unwrap()
}

fn scoreboard_of(facts: impl Iterator<Item = Fact>) -> Scoreboard {
    let mut board = Board::new(Period::year(2021).unwrap());
    for f in facts {
        board.add(&f.record().unwrap());
    }
    board.scoreboard()
}

/// The countries whose overall colour is not the map's, with what they got.
fn mismatches(board: &Scoreboard, map: &BTreeMap<String, Colour>) -> Vec<String> {
    assert_eq!(map.len(), 30);
    board
        .countries
        .iter()
        .filter(|c| c.overall != map.get(&c.country).copied())
        .map(|c| {
            let values: Vec<String> = c
                .indicators
                .iter()
                .map(|i| format!("{:.1}", i.value.unwrap_or(f64::NAN)))
                .collect();
            format!(
                "{}: {:?} (score {}, indicators {}), expected {:?}",
                c.country,
                c.overall,
                c.score,
                values.join(" / "),
                map.get(&c.country)
            )
        })
        .collect()
}

/// Per expected colour, the range of each indicator over the countries of that colour.
fn figures(board: &Scoreboard, map: &BTreeMap<String, Colour>) -> String {
    let mut out = String::new();
    for colour in [Colour::Green, Colour::Yellow, Colour::Red] {
        let of: Vec<_> = board
            .countries
            .iter()
            .filter(|c| map.get(&c.country) == Some(&colour))
            .collect();
        let n: Vec<u64> = of.iter().map(|c| c.indicators[0].n).collect();
        out.push_str(&format!(
            "  {:6} ({:2} countries, {}..{} requests counted for [1]):",
            colour.as_str(),
            of.len(),
            n.iter().min().unwrap(),
            n.iter().max().unwrap()
        ));
        for i in 0..5 {
            let v: Vec<f64> = of.iter().filter_map(|c| c.indicators[i].value).collect();
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
            out.push_str(&format!("  [{}] {lo:.1}..{hi:.1}", i + 1));
        }
        out.push('\n');
    }
    out
}

fn check_map(scale: f64) {
    for seed in SEEDS {
        let plan = plan_of(&Y2021, scale, seed);
        let board = scoreboard_of(plan.cases.iter().map(expected_fact));
        let wrong = mismatches(&board, &MAP_2021);
        assert!(
            wrong.is_empty(),
            "scale {scale}, seed {seed}: {} countries off the 2021 map:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        println!(
            "scale {scale}, seed {seed}: {} cases, 30/30 colours as the 2021 map\n{}",
            plan.cases.len(),
            figures(&board, &MAP_2021)
        );
    }
}

#[test]
fn the_2021_map_at_scale_0_02() {
    check_map(0.02);
}

#[test]
fn the_2021_map_at_scale_0_05() {
    check_map(0.05);
}

#[test]
fn the_2021_map_at_scale_0_2() {
    check_map(0.2);
}

#[test]
fn the_2021_map_at_scale_1() {
    check_map(1.0);
}

/// The facts if the runner executes each step up to `late(case, step)` ms after its
/// planned time (never earlier), each step still after the one before it.
fn late_facts(plan: &Plan, mut late: impl FnMut(u64, usize) -> u64) -> Vec<Fact> {
    plan.cases
        .iter()
        .map(|c| {
            let mut c = c.clone();
            c.sent_ms += late(c.seq, 0);
            let mut prev = c.sent_ms;
            for (i, s) in c.steps.iter_mut().enumerate() {
                s.at_ms = (s.at_ms + late(c.seq, i + 1)).max(prev + 1);
                prev = s.at_ms;
            }
            expected_fact(&c)
        })
        .collect()
}

#[test]
fn steps_late_by_the_margin_keep_the_2021_map() {
    let margin = Y2021.time().margin_ms();
    for (scale, seeds) in [(0.02, &SEEDS[..]), (0.2, &SEEDS[..1]), (1.0, &SEEDS[..1])] {
        for seed in seeds {
            let plan = plan_of(&Y2021, scale, *seed);
            let mut rng = ChaCha8Rng::seed_from_u64(*seed);
            let variants: [(&str, Vec<Fact>); 3] = [
                (
                    "every step a margin late",
                    late_facts(&plan, |_, i| if i == 0 { 0 } else { margin }),
                ),
                (
                    "the creation a margin late, the steps on time unless pushed by it",
                    late_facts(&plan, |_, i| if i == 0 { margin } else { 0 }),
                ),
                (
                    "every step and the creation late by up to the margin, at random",
                    late_facts(&plan, |_, _| rng.random_range(0..=margin)),
                ),
            ];
            for (what, facts) in variants {
                let board = scoreboard_of(facts.into_iter());
                let wrong = mismatches(&board, &MAP_2021);
                assert!(
                    wrong.is_empty(),
                    "scale {scale}, seed {seed}, {what}: {} countries off the map:\n{}",
                    wrong.len(),
                    wrong.join("\n")
                );
            }
        }
    }
}

#[test]
fn without_the_calibration_the_map_is_not_reproduced() {
    let mut equal = Y2021.clone();
    let profiles = NodeId::ALL
        .iter()
        .filter(|n| **n != NodeId::EU)
        .map(|n| (*n, Profile::default()))
        .collect();
    equal.set_profiles(profiles).unwrap();
    let board = scoreboard_of(plan_of(&equal, 0.05, 1).cases.iter().map(expected_fact));
    let wrong = mismatches(&board, &MAP_2021);
    // Equal (default) profiles make every country green: the 10 yellow and red ones differ.
    assert_eq!(wrong.len(), 10, "{wrong:#?}");
    assert!(
        board
            .countries
            .iter()
            .all(|c| c.overall == Some(Colour::Green))
    );
}

#[test]
fn planning_is_deterministic_and_seeded() {
    let a = plan_of(&Y2021, 0.02, 5);
    let b = plan_of(&Y2021, 0.02, 5);
    assert_eq!(a, b);
    // The directory's order does not matter.
    let mut reversed = AUTHORITIES.clone();
    reversed.reverse();
    let c = plan_with_catalogue(&Y2021, 0.02, 5, &reversed, &CATALOGUE).unwrap();
    assert_eq!(a, c);
    let d = plan_of(&Y2021, 0.02, 6);
    assert_eq!(a.cases.len(), d.cases.len());
    let differ = a.cases.iter().zip(&d.cases).filter(|(x, y)| x != y).count();
    assert!(
        differ > a.cases.len() * 9 / 10,
        "only {differ} cases differ"
    );
}

fn user(authority: &str) -> User {
    User {
        id: "sim".into(),
        authority: AuthorityId::new(authority).unwrap(),
        role: Role::AuthorityUser,
    }
}

/// Runs every case of `plan` through the API's body parsing (`create_message`,
/// `step_message`, with "now" = the planned time + `late`) and the domain's state machine
/// and catalogue/directory checks, and compares the node's facts (`fact_of`) with
/// [`expected_fact`]; checks the planned times against the scenario's bounds.
fn check_plan_is_valid(s: &Scenario, plan: &Plan, late: u64) {
    let directory = Directory::from_authorities(AUTHORITIES.iter().cloned()).unwrap();
    let margin = s.time().margin_ms();
    for c in &plan.cases {
        let ctx = format!("case {} ({c:?})", c.seq);
        assert_ne!(c.requester, c.responder, "{ctx}");
        assert_ne!(c.requester, NodeId::EU, "{ctx}");
        assert_ne!(c.responder, NodeId::EU, "{ctx}");
        assert!(s.members().contains(&c.requester) && s.members().contains(&c.responder));
        assert!(
            c.requester_authority
                .starts_with(&format!("{}-", c.requester))
        );
        assert!(
            c.responder_authority
                .starts_with(&format!("{}-", c.responder))
        );
        assert!((1..=3).contains(&c.questions.len()), "{ctx}");
        assert!(c.sent_ms >= s.start_ms() && c.sent_ms < s.end_ms(), "{ctx}");
        let asked = Date::parse(&c.answer_by).unwrap();
        assert!(
            asked > Date::of_ms(c.sent_ms),
            "{ctx}: answer_by not after the sending day"
        );
        assert!(asked.end_ms() > c.sent_ms + margin, "{ctx}");
        // The margins: a step up to `margin` late changes no indicator.
        let gap = (2 * margin).max(3_600_000);
        for w in c.steps.windows(2) {
            assert!(w[1].at_ms - w[0].at_ms >= gap, "{ctx}: steps too close");
        }
        let week = 7 * DAY_MS;
        let agreed_end = Date::parse(c.agreed_answer_by()).unwrap().end_ms();
        for step in &c.steps {
            let after = step.at_ms - c.sent_ms;
            match step.action {
                Action::Accept => assert!(
                    after + margin <= week || after > week + margin,
                    "{ctx}: acceptance within the margin of 7 days"
                ),
                Action::Withdraw => assert!(after + margin <= week, "{ctx}"),
                Action::Answer => assert!(
                    step.at_ms + margin <= agreed_end || step.at_ms > agreed_end,
                    "{ctx}: answer within the margin of the agreed date's end"
                ),
                Action::ProposeDeadline { ref answer_by } => {
                    let proposed = Date::parse(answer_by).unwrap();
                    assert!(proposed.end_ms() > step.at_ms + margin, "{ctx}");
                    assert!(proposed > asked, "{ctx}: the proposal is not later");
                }
                _ => {}
            }
        }
        let mut prev = c.sent_ms;
        for (i, step) in c.steps.iter().enumerate() {
            assert!(step.at_ms > prev, "{ctx}: steps not strictly increasing");
            assert!(
                step.at_ms + margin < s.horizon_ms(),
                "{ctx}: step past the horizon"
            );
            if step.action == Action::Withdraw {
                assert_eq!(i + 1, c.steps.len(), "{ctx}: a step after withdraw");
            }
            prev = step.at_ms;
        }

        let requester = user(&c.requester_authority);
        let responder = user(&c.responder_authority);
        let body = serde_json::to_vec(&c.create_body()).unwrap();
        let created = c.sent_ms + late;
        let (actor, msg) = imi_api::requests::create_message(&requester, &body, created)
            .unwrap_or_else(|e| panic!("{ctx}: create refused: {e:?}"));
        let t = &msg.step.transition;
        let mut case = imi_domain::request::create(CaseId::random(), &actor, t, created)
            .unwrap_or_else(|e| panic!("{ctx}: create: {e}"));
        imi_domain::message::check_step(&CATALOGUE, &directory, t, &case)
            .unwrap_or_else(|e| panic!("{ctx}: create: {e:?}"));
        let mut defended = vec![created];
        for step in &c.steps {
            let by = if step.action.by_responder() {
                &responder
            } else {
                &requester
            };
            assert_eq!(
                by.authority.as_str(),
                c.actor_authority(&step.action),
                "{ctx}"
            );
            let at = step.at_ms + late;
            let body = serde_json::to_vec(&step.action.body(c)).unwrap();
            let (actor, msg) =
                imi_api::requests::step_message(by, &c.area, step.action.path(), &body, at)
                    .unwrap_or_else(|e| panic!("{ctx}: {} refused: {e:?}", step.action.path()));
            let t = &msg.step.transition;
            case = imi_domain::request::apply(&case, &actor, t, at)
                .unwrap_or_else(|e| panic!("{ctx}: {}: {e}", step.action.path()));
            imi_domain::message::check_step(&CATALOGUE, &directory, t, &case)
                .unwrap_or_else(|e| panic!("{ctx}: {}: {e:?}", step.action.path()));
            defended.push(at);
        }
        let final_state = case.state.name();
        assert!(
            final_state == "closed" || final_state == "withdrawn",
            "{ctx}: ends {final_state}"
        );
        assert_eq!(case.answers.len(), usize::from(final_state == "closed"));
        if late == 0 {
            let mut node = imi_apps::facts::fact_of(&case, &defended);
            node.case = format!("sim-{}", c.seq);
            assert_eq!(node, expected_fact(c), "{ctx}");
        }
    }
}

#[test]
fn every_step_is_valid_for_the_api_and_the_state_machine() {
    let plan = plan_of(&Y2021, 0.02, 3);
    check_plan_is_valid(&Y2021, &plan, 0);
    check_plan_is_valid(&Y2021, &plan, Y2021.time().margin_ms());
    for name in ["node-down", "partition", "kills"] {
        let s = Scenario::load(name).unwrap();
        let plan = plan_of(&s, 1.0, s.seed());
        check_plan_is_valid(&s, &plan, 0);
        check_plan_is_valid(&s, &plan, s.time().margin_ms());
    }
}

#[test]
fn plans_use_every_kind_of_step_and_answer() {
    let plan = plan_of(&Y2021, 0.05, 1);
    let mut paths = BTreeMap::new();
    for c in &plan.cases {
        for s in &c.steps {
            *paths.entry(s.action.path()).or_insert(0usize) += 1;
        }
    }
    for p in [
        "accept",
        "propose-deadline",
        "accept-deadline",
        "answer",
        "close",
        "withdraw",
    ] {
        assert!(paths.get(p).copied().unwrap_or(0) > 10, "{p}: {paths:?}");
    }
    let mut types = BTreeMap::new();
    for q in plan.cases.iter().flat_map(|c| &c.questions) {
        *types
            .entry(q.answer["type"].as_str().unwrap().to_owned())
            .or_insert(0usize) += 1;
    }
    for t in ["bool", "choice", "date", "number", "text", "not_available"] {
        assert!(types.contains_key(t), "{t}: {types:?}");
    }
    // Authorities other than the national coordinators are used.
    assert!(
        plan.cases
            .iter()
            .any(|c| !c.responder_authority.ends_with("-NC"))
    );
}

#[test]
fn volume_and_shares_follow_the_scenario() {
    for scale in [0.02, 0.2, 1.0] {
        let plan = plan_of(&Y2021, scale, 9);
        let expected = 112_550.0 * scale;
        let n = plan.cases.len() as f64;
        assert!(
            (n - expected).abs() <= 0.02 * expected,
            "scale {scale}: {n} cases"
        );
        let areas = &Y2021.traffic().areas;
        let total: f64 = areas.values().sum();
        for (code, w) in areas {
            let got = plan.cases.iter().filter(|c| &c.area == code).count() as f64 / n;
            assert!(
                (got - w / total).abs() < 0.01,
                "scale {scale}: {code} {got:.3} vs {:.3}",
                w / total
            );
        }
        let nationals = Y2021.nationals();
        let receive: f64 = nationals.iter().map(|c| Y2021.profile(*c).receive).sum();
        for c in &nationals {
            let got = plan.cases.iter().filter(|x| x.responder == *c).count() as f64 / n;
            let want = Y2021.profile(*c).receive / receive;
            assert!(
                (got - want).abs() < 0.002,
                "{c} receives {got:.4}, {want:.4}"
            );
        }
        // Sending times: sorted, within the window, working days busier than weekends.
        assert!(plan.cases.windows(2).all(|w| w[0].sent_ms <= w[1].sent_ms));
        let weekend = plan
            .cases
            .iter()
            .filter(|c| matches!((c.sent_ms / DAY_MS + 3) % 7, 5 | 6))
            .count() as f64;
        // 104 weekend days at 0.2, 261 working days at 1.
        let share = 104.0 * 0.2 / (104.0 * 0.2 + 261.0);
        assert!((weekend / n - share).abs() < 0.01, "{}", weekend / n);
    }
    // Large countries send more than small ones.
    let plan = plan_of(&Y2021, 0.2, 9);
    let sent_by = |c: NodeId| plan.cases.iter().filter(|x| x.requester == c).count();
    assert!(sent_by(NodeId::DE) > 10 * sent_by(NodeId::LI));
}

#[test]
fn stratified_fractions_are_exact_and_spread() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for n in [0, 1, 7, 75, 1000] {
        for f in [0.0, 0.01, 0.07, 0.5, 0.93, 1.0] {
            let k = share(n, f);
            let v = spread(n, k, &mut rng);
            assert_eq!(v.iter().filter(|x| **x).count(), k, "n {n}, f {f}");
            // Every tenth of the positions holds about a tenth of the chosen ones.
            if n >= 100 && k >= 10 {
                for part in v.chunks(n / 10) {
                    let got = part.iter().filter(|x| **x).count();
                    assert!(got.abs_diff(k / 10) <= 2, "n {n}, f {f}: {got}");
                }
            }
        }
    }
    assert_eq!(apportion(10, &[1.0, 1.0, 1.0]), vec![4, 3, 3]);
    assert_eq!(apportion(7, &[0.0, 2.0, 5.0]), vec![0, 2, 5]);
    assert_eq!(apportion(0, &[1.0]), vec![0]);
}

#[test]
fn plan_errors_name_the_profile() {
    let s = Scenario::parse(&format!("{MINIMAL}[profiles.AT]\nanswer_days = 1.5\n")).unwrap();
    let e = format!(
        "{:#}",
        plan_with_catalogue(&s, 1.0, 1, &AUTHORITIES, &CATALOGUE).unwrap_err()
    );
    assert!(e.contains("profiles.AT.answer_days"), "{e}");
    let s = Scenario::parse(&MINIMAL.replace("PQ = 1", "EC = 1")).unwrap();
    let e = format!(
        "{:#}",
        plan_with_catalogue(&s, 1.0, 1, &AUTHORITIES, &CATALOGUE).unwrap_err()
    );
    assert!(e.contains("traffic.areas.EC"), "{e}");
}

#[test]
fn every_scenario_plans() {
    for name in ["scoreboard-2021", "node-down", "partition", "kills"] {
        let s = Scenario::load(name).unwrap();
        for scale in [0.1, 1.0] {
            let plan = plan_of(&s, scale, s.seed());
            assert_eq!(plan.cases.len(), s.volume(scale), "{name} at {scale}");
        }
    }
}

#[test]
fn notifications_and_alerts_are_planned_as_the_scenario_says() {
    let s = &*Y2021;
    let a = plan_broadcasts(s, 0.02, 5, &CATALOGUE).unwrap();
    assert_eq!(
        a,
        plan_broadcasts(s, 0.02, 5, &CATALOGUE).unwrap(),
        "deterministic"
    );
    let n = a
        .iter()
        .filter(|b| b.kind == BroadcastKind::Notification)
        .count();
    let alerts: Vec<_> = a
        .iter()
        .filter(|b| b.kind == BroadcastKind::Alert)
        .collect();
    assert_eq!(n, s.per_window(s.traffic().notifications_per_year, 0.02));
    assert_eq!(
        alerts.len(),
        s.per_window(s.traffic().alerts_per_year, 0.02)
    );
    assert!(
        n > 500 && alerts.len() > 50,
        "{n} notifications, {} alerts",
        alerts.len()
    );
    assert!(
        a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "in sending order"
    );
    assert!(
        a.iter()
            .all(|b| (s.start_ms()..s.end_ms()).contains(&b.at_ms))
    );
    for b in &a {
        let ctx = format!("{b:?}");
        assert_eq!(b.authority, format!("{}-NC", b.sender), "{ctx}");
        let ty = CATALOGUE
            .procedure(b.body["type"].as_str().unwrap())
            .unwrap();
        match b.kind {
            BroadcastKind::Notification => {
                let to: Vec<&str> = b.body["recipients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["country"].as_str().unwrap())
                    .collect();
                assert!(!to.contains(&b.sender.as_str()), "{ctx}");
                let commission = ty.commission() == imi_domain::catalogue::CommissionRule::Required;
                assert_eq!(to.contains(&"EU"), commission, "{ctx}");
                let fields = b.body["fields"].as_array().unwrap().len();
                let required = ty
                    .question_codes()
                    .iter()
                    .filter(|q| ty.required(q))
                    .count();
                assert_eq!(fields, required, "{ctx}");
            }
            BroadcastKind::Alert => {
                let services = ty.code() == "SD-P02";
                assert_eq!(b.body["profession"].is_string(), !services, "{ctx}");
                assert_eq!(b.body["member_states"].is_array(), services, "{ctx}");
                assert_eq!(
                    b.body["fields"].as_array().unwrap().len(),
                    ty.question_codes().len()
                );
            }
        }
    }
    // About a tenth of the alerts late, and some Services Directive ones.
    let late = alerts.iter().filter(|b| b.late).count();
    assert!(late > 0 && late < alerts.len() / 4, "{late} late");
    assert!(alerts.iter().any(|b| b.body["type"] == "SD-P02"));
    // The requests are the same with or without them (streams of their own).
    let mut quiet = Y2021.clone();
    let mut traffic = quiet.traffic().clone();
    traffic.notifications_per_year = 0.0;
    traffic.alerts_per_year = 0.0;
    quiet.set_traffic(traffic);
    assert!(
        plan_broadcasts(&quiet, 0.02, 5, &CATALOGUE)
            .unwrap()
            .is_empty()
    );
    assert_eq!(plan_of(&quiet, 0.02, 5), plan_of(&Y2021, 0.02, 5));
}
