//! Scenario files: parsing, defaults, errors naming their key, the shipped files.
use super::*;
use imi_protocol::NodeId;
use imi_protocol::dates::{DAY_MS, Date};
use imi_scoreboard::COUNTRIES;

#[test]
fn the_2021_map_is_the_seed_table() {
    let count = |c: Colour| MAP_2021.values().filter(|v| **v == c).count();
    assert_eq!(MAP_2021.len(), 30);
    assert_eq!(
        (
            count(Colour::Green),
            count(Colour::Yellow),
            count(Colour::Red)
        ),
        (20, 8, 2)
    );
    assert!(COUNTRIES.iter().all(|c| MAP_2021.contains_key(*c)));
    for (c, colour) in [
        ("BG", Colour::Red),
        ("FR", Colour::Red),
        ("EL", Colour::Yellow),
        ("LI", Colour::Yellow),
        ("NO", Colour::Yellow),
        ("DE", Colour::Green),
        ("MT", Colour::Green),
    ] {
        assert_eq!(MAP_2021[c], colour, "{c}");
    }
}

#[test]
fn every_scenario_file_parses() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let s = Scenario::load(path.to_str().unwrap()).unwrap();
            assert_eq!(
                path.file_stem().unwrap().to_str(),
                Some(s.name()),
                "a scenario's name is its file name"
            );
            assert!(!s.description().is_empty());
            if let Some(check) = s.scoreboard() {
                assert_eq!(expected_map(check).unwrap().len(), 30);
            }
            assert!(repo_root().join(s.directory()).is_file());
            names.push(s.name().to_owned());
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["kills", "node-down", "partition", "scoreboard-2021"]
    );
}

#[test]
fn fault_scenarios_are_small_and_inject_their_fault() {
    for name in ["node-down", "partition", "kills"] {
        let s = Scenario::load(name).unwrap();
        let nationals = s.nationals().len();
        assert!((4..=6).contains(&nationals), "{name}: {nationals} nodes");
        assert!(s.members().contains(&NodeId::EU), "{name}");
        let window_days = (s.end_ms() - s.start_ms()) / DAY_MS;
        assert!(window_days <= 60, "{name}: {window_days} days");
        let volume = s.volume(1.0);
        assert!((100..=1000).contains(&volume), "{name}: {volume} requests");
        assert!(s.scoreboard().is_none());
        let horizon_days = (s.horizon_ms() - s.start_ms()) as f64 / DAY_MS as f64;
        match (name, s.faults()) {
            ("node-down", [Fault::Down { node, at_day, days }]) => {
                assert!(s.members().contains(node));
                assert_eq!(*days, 7.0);
                assert!(at_day + days < window_days as f64);
            }
            ("partition", [Fault::Partition { a, b, at_day, days }]) => {
                let mut all: Vec<NodeId> = a.iter().chain(b).copied().collect();
                all.sort();
                let mut members = s.members();
                members.sort();
                assert_eq!(all, members, "the partition splits every node");
                assert!(*days > 0.0 && at_day + days < window_days as f64);
            }
            ("kills", [Fault::Kill { node, at_days }]) => {
                assert!(s.members().contains(node));
                assert_eq!(at_days.len(), 3);
                assert!(at_days.iter().all(|d| *d < horizon_days));
            }
            (name, faults) => panic!("{name}: unexpected faults {faults:?}"),
        }
    }
}

#[test]
fn time_and_speed() {
    let s = &*Y2021;
    assert_eq!(s.start_ms(), Date::parse("2021-01-01").unwrap().start_ms());
    assert_eq!(s.end_ms(), Date::parse("2022-01-01").unwrap().start_ms());
    assert_eq!(s.horizon_ms(), s.end_ms() + 120 * DAY_MS);
    let run = (365.0 + 120.0) * DAY_MS as f64;
    assert!((s.speed(1.0) - run / 480_000.0).abs() < 1e-6);
    // 480 × 0.02 = 9.6 s, below the 75 s floor.
    assert!((s.speed(0.02) - run / 75_000.0).abs() < 1e-6);
    assert_eq!(s.members(), NodeId::ALL.to_vec());
    assert_eq!(s.nationals().len(), 30);
    assert_eq!(s.directory(), "configs/directory/authorities.toml");
    assert_eq!(s.seed(), 2021);
    assert_eq!(s.scoreboard().unwrap().period, "2021");
}

pub(super) const MINIMAL: &str = r#"
name = "t"
[time]
start = "2021-01-01"
end = "2021-03-01"
[traffic]
exchanges_per_year = 1000
areas = { PQ = 1 }
"#;

fn rejected(text: &str) -> String {
    format!("{:#}", Scenario::parse(text).unwrap_err())
}

#[test]
fn parse_applies_the_defaults() {
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(s.members(), NodeId::ALL.to_vec());
    assert_eq!(s.directory(), "configs/directory/authorities.toml");
    assert_eq!(s.time().tail_days, 120.0);
    assert_eq!(s.time().margin_hours, 24.0);
    assert_eq!(s.profile(NodeId::AT), Profile::default());
    assert!(s.faults().is_empty() && s.scoreboard().is_none());
    let with = |extra: &str| Scenario::parse(&format!("{MINIMAL}{extra}")).unwrap();
    let s = with("[profiles.AT]\nanswer_days = 5\n");
    assert_eq!(s.profile(NodeId::AT).answer_days, 5.0);
    assert_eq!(s.profile(NodeId::AT).send, 1.0);
    // Faults come in order of their start whatever the file's order.
    let s = with(
        "[[faults]]\nkind = \"kill\"\nnode = \"DE\"\nat_days = [30, 10]\n\
         [[faults]]\nkind = \"down\"\nnode = \"AT\"\nat_day = 5\ndays = 1\n",
    );
    assert!(matches!(s.faults()[0], Fault::Down { .. }));
    assert!(matches!(&s.faults()[1], Fault::Kill { at_days, .. } if at_days == &[10.0, 30.0]));
}

#[test]
fn parse_rejects_naming_the_key() {
    let with = |extra: &str| rejected(&format!("{MINIMAL}{extra}"));
    let e = rejected(&MINIMAL.replace("name = \"t\"", "name = \"t\"\ncolour = \"blue\""));
    assert!(e.contains("colour"), "{e}");
    let e = with("[profiles.AT]\nspeed = 3\n");
    assert!(e.contains("speed"), "{e}");
    let e = with("[profiles.XX]\nsend = 1\n");
    assert!(
        e.contains("profiles.XX") && e.contains("unknown country"),
        "{e}"
    );
    let e = with("[profiles.EU]\nsend = 1\n");
    assert!(e.contains("profiles.EU"), "{e}");
    let e = rejected(&MINIMAL.replace("name = \"t\"", "name = \"t\"\nnodes = [\"DE\", \"XX\"]"));
    assert!(e.contains("nodes") && e.contains("XX"), "{e}");
    let e = with("[profiles.AT]\naccept_in_week = 1.5\n");
    assert!(
        e.contains("profiles.AT.accept_in_week") && e.contains("1.5"),
        "{e}"
    );
    let e = with("[profiles.AT]\nreceive = 0\n");
    assert!(
        e.contains("profiles.AT.receive") && e.contains("positive"),
        "{e}"
    );
    let e = rejected(&MINIMAL.replace("end = \"2021-03-01\"", "end = \"2020-12-01\""));
    assert!(e.contains("time.end") && e.contains("time.start"), "{e}");
    let e = rejected(&MINIMAL.replace("PQ = 1", "PQ = -1"));
    assert!(e.contains("traffic.areas.PQ"), "{e}");
    let e = with("[[faults]]\nkind = \"down\"\nnode = \"DE\"\nat_day = 5\n");
    assert!(e.contains("days"), "{e}");
    let e = with("[[faults]]\nkind = \"melt\"\nnode = \"DE\"\n");
    assert!(e.contains("melt"), "{e}");
    let e = rejected(&MINIMAL.replace(
        "name = \"t\"",
        "name = \"t\"\nnodes = [\"DE\", \"AT\"]\n[[faults]]\nkind = \"down\"\nnode = \"FR\"\nat_day = 1\ndays = 1",
    ));
    assert!(e.contains("faults[0].node") && e.contains("FR"), "{e}");
    let e = rejected(&MINIMAL.replace(
        "name = \"t\"",
        "name = \"t\"\nnodes = [\"DE\", \"AT\"]\n[scoreboard]\nperiod = \"2021\"\nexpect = \"maps/2021.toml\"",
    ));
    assert!(e.contains("scoreboard") && e.contains("EU"), "{e}");
}
