//! Signed notes against the C2SP `signed-note` rules, from inputs the `checkpoint` fuzz
//! target (fuzz/fuzz_targets/checkpoint.rs) produced: a note text may contain empty lines
//! and the signatures follow the last one; control characters and spaces in key names are
//! refused.
use imi_audit::note::{SignedNote, origin_of};
use imi_protocol::{NodeId, NodeSigner};

#[test]
fn a_note_text_with_empty_lines_round_trips() {
    let log = NodeSigner::from_seed(NodeId::AT, &[1; 32]);
    let witness = NodeSigner::from_seed(NodeId::DE, &[2; 32]);
    let origin = origin_of("AT");
    // The shape of the fuzz input: a note text holding an empty line and what looks like a
    // signature line of another note.
    for text in [
        "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n",
        "imi-federation.invalid/log/AT\n4\ne6OUUqxDhXoV3yMchdsOljYsufNWqXoK9RwEudUwPzo=\n\n— imi-federation.invalid/log/AT B0wHv14pGIQG7VAKs0RdL6zKHBm9hH3hAKMnfkEnPAlBWOMthC5oQ0tvXr/C1fJfalqmEvMqwMqrZcwZHDKi\n",
    ] {
        let mut note = SignedNote::sign(text, &origin, &log);
        note.cosign("imi-federation.invalid/witness/DE", &witness, 1_769_940_000);
        let parsed = SignedNote::parse(&note.text()).expect("a valid note parses");
        assert_eq!(parsed, note, "{text:?}");
        assert_eq!(parsed.text(), note.text());
        assert!(parsed.verify(&origin, &log.public()));
        assert_eq!(
            parsed.verify_cosignature("imi-federation.invalid/witness/DE", &witness.public()),
            Some(1_769_940_000)
        );
    }
}

#[test]
fn control_characters_and_spaces_in_key_names_are_refused() {
    let log = NodeSigner::from_seed(NodeId::AT, &[1; 32]);
    let note = SignedNote::sign("imi-federation.invalid/log/AT\n0\n", &origin_of("AT"), &log);
    let text = note.text();
    assert!(SignedNote::parse(&text).is_ok());
    for bad in [
        text.replace("/log/AT ", "/log/AT\r "),
        text.replace("/log/AT ", "/log/AT\u{a0}x "),
        text.replace("\n0\n", "\n0\u{7}\n"),
    ] {
        assert!(SignedNote::parse(&bad).is_err(), "{bad:?}");
    }
}
