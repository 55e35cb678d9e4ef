//! The model's tests: the scenario files and their validation ([`scenario`]); the plans,
//! the 2021 calibration at several scales and seeds (also with every step as late as the
//! margin allows), determinism, validity of every planned step through the API's body
//! parsing and the domain's state machine, volumes and shares ([`plan`]).
use super::*;
use imi_scoreboard::Colour;
use std::collections::BTreeMap;
use std::sync::LazyLock;

mod plan;
mod scenario;

static Y2021: LazyLock<Scenario> = LazyLock::new(|| Scenario::load("scoreboard-2021").unwrap());
static MAP_2021: LazyLock<BTreeMap<String, Colour>> =
    LazyLock::new(|| expected_map(Y2021.scoreboard().unwrap()).unwrap());
