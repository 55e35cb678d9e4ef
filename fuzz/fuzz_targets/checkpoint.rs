//! Checkpoints and cosignatures as signed notes (`imi_audit::note`): `SignedNote::parse`,
//! `Checkpoint::parse`, `SignedNote::verify` and `verify_cosignature`, which a witness runs
//! on every checkpoint a log node sends and the evidence verifier on every checkpoint of a
//! bundle.
//!
//! Input: a selector byte, then UTF-8 text (the notes travel as CBOR text strings, so only
//! UTF-8 reaches the parser). Selector bit 0 clear: the text is a signed note. Set: the
//! text is a note text (a checkpoint body, say), which the target signs as AT's log and
//! cosigns as DE's witness before parsing it back.
//!
//! Asserts: no panic; a parsed note is canonical (its `text()` is the input, and parses to
//! the same note); a parsed checkpoint re-formats to itself; a valid signature or
//! cosignature has its exact length; any valid note text the target signed parses back to
//! the same note, whose signature verifies and whose cosignature carries the timestamp
//! signed.
#![no_main]

use imi_audit::bundle::witness_name;
use imi_audit::note::{Checkpoint, SignedNote, origin_of};
use imi_fuzz_fixtures as fx;
use imi_protocol::NodeSigner;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn signers() -> &'static Vec<NodeSigner> {
    static S: OnceLock<Vec<NodeSigner>> = OnceLock::new();
    S.get_or_init(|| fx::SIGNERS.iter().map(|n| fx::signer(n)).collect())
}

fn check_note(text: &str) -> Option<SignedNote> {
    let note = SignedNote::parse(text).ok()?;
    assert_eq!(note.text(), text, "a parsed note is not canonical");
    assert_eq!(SignedNote::parse(&note.text()).as_ref(), Ok(&note));
    assert!(note.body.ends_with('\n'));
    assert!(!note.signatures.is_empty());
    for s in signers() {
        for name in [origin_of(s.node.as_str()), witness_name(s.node.as_str())] {
            if note.verify(&name, &s.public()) {
                assert!(
                    note.signatures
                        .iter()
                        .any(|l| l.name == name && l.bytes.len() == 68)
                );
            }
            if note.verify_cosignature(&name, &s.public()).is_some() {
                assert!(
                    note.signatures
                        .iter()
                        .any(|l| l.name == name && l.bytes.len() == 76)
                );
            }
        }
    }
    if let Ok(cp) = Checkpoint::parse(&note.body) {
        assert_eq!(Checkpoint::parse(&cp.body()), Ok(cp.clone()));
        if note.body.matches('\n').count() == 3 {
            assert_eq!(
                cp.body(),
                note.body,
                "a three-line checkpoint is not canonical"
            );
        }
    }
    Some(note)
}

fuzz_target!(|data: &[u8]| {
    let (sel, rest) = fx::split_first(data);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if sel & 1 == 0 {
        check_note(text);
        return;
    }
    // Sign `text` as a checkpoint body of AT's log, cosign it as DE. Only a valid note text
    // can be signed: it ends with a newline and holds no control character but newlines
    // (empty lines are allowed).
    if !text.ends_with('\n') || text.chars().any(|c| c.is_control() && c != '\n') {
        return;
    }
    let (at, de) = (&signers()[0], &signers()[2]);
    let origin = origin_of("AT");
    let ts = u64::from(sel) * 1_000_003;
    let mut note = SignedNote::sign(text, &origin, at);
    note.cosign(&witness_name("DE"), de, ts);
    let parsed = check_note(&note.text()).expect("a signed note text does not parse back");
    assert_eq!(parsed, note);
    assert!(parsed.verify(&origin, &at.public()));
    assert_eq!(
        parsed.verify_cosignature(&witness_name("DE"), &de.public()),
        Some(ts)
    );
});
