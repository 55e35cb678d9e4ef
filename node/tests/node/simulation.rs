//! `[simulation]`: the scaled clock, its refusal off loopback, and `[network]
//! peer_addresses` replacing the trust list's dial addresses.
use imi_node::config::{NodeConfig, SimulationSection};
use imi_protocol::NodeId;
use std::path::Path;

fn example() -> NodeConfig {
    NodeConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/node.example.toml"))
        .unwrap()
}

fn section(speed: f64) -> SimulationSection {
    SimulationSection {
        start: "2021-01-01T00:00:00Z".into(),
        anchor_ms: 1_800_000_000_000,
        speed,
        until: None,
    }
}

#[test]
fn the_scaled_clock_runs_speed_times_faster_from_the_anchor() {
    let c = section(1000.0).clock().unwrap();
    let start = imi_protocol::dates::parse_rfc3339("2021-01-01T00:00:00Z").unwrap();
    assert_eq!(c.at(1_800_000_000_000), start);
    // One wall second is 1000 simulated seconds.
    assert_eq!(c.at(1_800_000_001_000), start + 1_000_000);
    // Before the anchor the clock reads before start.
    assert_eq!(c.at(1_799_999_999_000), start - 1_000_000);
    // Far before it, 0, not a wrapped value.
    assert_eq!(c.at(0), 0);
    // The simulated clock of a config is that clock.
    let mut cfg = example();
    cfg.simulation = Some(section(1000.0));
    assert_eq!(cfg.simulation_clock().unwrap(), Some(c));
    cfg.simulation = None;
    assert_eq!(cfg.simulation_clock().unwrap(), None);
}

#[test]
fn past_until_the_scaled_clock_runs_at_real_speed() {
    let mut s = section(1000.0);
    s.until = Some("2021-01-02T00:00:00Z".into());
    let c = s.clock().unwrap();
    let start = imi_protocol::dates::parse_rfc3339("2021-01-01T00:00:00Z").unwrap();
    let until = start + 86_400_000;
    // A simulated day is 86.4 wall seconds; until then, 1000 times faster.
    assert_eq!(c.at(1_800_000_001_000), start + 1_000_000);
    assert_eq!(c.at(1_800_000_086_400), until);
    assert_eq!(c.wall_of(until), 1_800_000_086_400);
    // Then one simulated ms per wall ms.
    assert_eq!(c.at(1_800_000_087_400), until + 1_000);
    assert_eq!(c.at(1_800_003_686_400), until + 3_600_000);
    assert_eq!(c.wall_of(until + 3_600_000), 1_800_003_686_400);
    assert_eq!(c.wall_of(start + 1_000_000), 1_800_000_001_000);
    // Without it the clock races on.
    assert_eq!(
        section(1000.0).clock().unwrap().at(1_800_003_686_400),
        start + 3_686_400_000
    );
    // Before start, or not a time: refused, naming the key.
    for bad in ["2020-12-31T00:00:00Z", "tomorrow"] {
        s.until = Some(bad.into());
        let e = s.clock().unwrap_err().to_string();
        assert!(e.contains("simulation.until"), "{bad}: {e}");
    }
}

#[test]
fn a_bad_simulation_section_is_refused_naming_the_key() {
    for speed in [0.0, 0.5, -3.0, 1e9, f64::NAN] {
        let e = section(speed).clock().unwrap_err().to_string();
        assert!(e.contains("simulation.speed"), "{speed}: {e}");
    }
    let mut s = section(10.0);
    s.start = "2021-01-01".into();
    let e = s.clock().unwrap_err().to_string();
    assert!(e.contains("simulation.start"), "{e}");
}

#[test]
fn a_simulated_clock_runs_only_on_loopback_listeners() {
    let mut cfg = example();
    cfg.simulation = Some(section(1000.0));
    cfg.http.listen = "127.0.0.1:47001".parse().unwrap();
    cfg.network.listen = vec!["/ip4/127.0.0.1/tcp/47000".into()];
    assert!(cfg.simulation_clock().unwrap().is_some());
    cfg.http.listen = "0.0.0.0:47001".parse().unwrap();
    let e = cfg.simulation_clock().unwrap_err().to_string();
    assert!(e.contains("http.listen"), "{e}");
    cfg.http.listen = "[::1]:47001".parse().unwrap();
    cfg.network.listen = vec!["/ip4/10.1.2.3/tcp/47000".into()];
    let e = cfg.simulation_clock().unwrap_err().to_string();
    assert!(e.contains("network.listen"), "{e}");
    // A production config (no section) on any address has the system clock.
    cfg.simulation = None;
    assert!(cfg.simulation_clock().unwrap().is_none());
}

#[test]
fn a_simulation_section_in_a_file_is_read_and_peer_addresses_reach_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/node.example.toml"),
    )
    .unwrap();
    let text = text.replacen(
        "[network]",
        "[network]\npeer_addresses = { DE = [\"/ip4/127.0.0.1/tcp/9\"] }",
        1,
    ) + "\n[simulation]\nstart = \"2021-01-01T00:00:00Z\"\nanchor_ms = 5\nspeed = 2.5\n";
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = NodeConfig::load(&path).unwrap();
    let sim = cfg.simulation.as_ref().unwrap();
    assert_eq!((sim.anchor_ms, sim.speed), (5, 2.5));
    let want = vec!["/ip4/127.0.0.1/tcp/9".to_owned()];
    assert_eq!(cfg.network.peer_addresses.get(&NodeId::DE), Some(&want));
    assert_eq!(cfg.engine.peer_addresses.get(&NodeId::DE), Some(&want));
}
