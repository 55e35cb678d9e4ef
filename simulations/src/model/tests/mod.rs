//! The model's tests: the scenario files and their validation ([`scenario`]).
use super::*;
use imi_scoreboard::Colour;
use std::collections::BTreeMap;
use std::sync::LazyLock;

mod scenario;

static Y2021: LazyLock<Scenario> = LazyLock::new(|| Scenario::load("scoreboard-2021").unwrap());
static MAP_2021: LazyLock<BTreeMap<String, Colour>> =
    LazyLock::new(|| expected_map(Y2021.scoreboard().unwrap()).unwrap());
