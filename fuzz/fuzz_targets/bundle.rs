//! Evidence bundles: `imi_audit::bundle::verify`, what `imi-node audit verify` runs on a
//! bundle another node exported, with the vectors' governance key pinned and one witness
//! required (the command's defaults).
//!
//! Input: the bundle's bytes (JSON).
//!
//! Asserts: no panic; the report is never empty and names each check; a bundle whose JSON
//! parses round-trips through the format (decode → encode → decode gives the same bundle);
//! a bundle that passes every check has a trust list, a checkpoint and its witness.
#![no_main]

use imi_audit::bundle::{Bundle, Options, verify};
use imi_fuzz_fixtures as fx;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn options() -> &'static Options {
    static O: OnceLock<Options> = OnceLock::new();
    O.get_or_init(|| Options {
        governance_key: Some(fx::governance_public()),
        min_witnesses: 1,
    })
}

fuzz_target!(|data: &[u8]| {
    let checks = verify(data, options());
    assert!(!checks.is_empty());
    assert!(checks.iter().all(|c| !c.name.is_empty()));
    if let Ok(b) = serde_json::from_slice::<Bundle>(data) {
        let text = serde_json::to_vec(&b).expect("encodes");
        let back: Bundle = serde_json::from_slice(&text).expect("decodes");
        assert_eq!(back, b);
    }
    if checks.iter().all(|c| c.ok) {
        for name in ["trust_list.signature", "governance_key.matches_pinned"] {
            assert!(
                checks.iter().any(|c| c.name == name),
                "passed without {name}"
            );
        }
        assert!(checks.iter().any(|c| c.name.ends_with(".witnesses")));
    }
});
