//! Sealed fields (`imi_protocol::fields`) against `protocol/vectors/fields.json`.
//!
//! - `regenerate_fields_vectors` (ignored; or `IMI_REGEN_VECTORS=1 cargo test -p
//!   imi-protocol --test main fields`) writes the file from the constants here.
//! - `fields_vectors_match` reads the file and checks every case: sealing gives the expected
//!   `ct` and CBOR (the CBOR also against an encoder written from the README), opening gives
//!   the plaintext, and every negative case gives its code.
//! - `fields_vectors_file_is_up_to_date` checks that the generator still produces the file.
//! - `seal_fields_is_chacha20poly1305_with_prefixed_aad` and
//!   `rfc8439_keystream_and_tag`: the construction against ChaCha20-Poly1305 used directly,
//!   and against the RFC 8439 §2.8.2 test vector.
use crate::common::{flip, seed};
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use ciborium::Value;
use imi_protocol::fields::MAX_SEALED_FIELDS_CBOR_BYTES;
use imi_protocol::{
    FIELDS_AAD_PREFIX, MAX_SEALED_FIELDS_BYTES, RejectCode, SealedFields, open_fields,
    random_field_key, random_nonce, seal_fields,
};
use serde::{Deserialize, Serialize};

const FIELDS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/fields.json");

/// The alert id of the vectors' contexts.
const ALERT_ID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
/// Another alert id.
const OTHER_ALERT_ID: &str = "3a5c0e52d1f84b6c9e07a2b4c6d8e0f1";

/// RFC 8439 §2.8.2: the AEAD test vector.
const RFC_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
const RFC_NONCE: &str = "070000004041424344454647";
const RFC_AAD: &str = "50515253c0c1c2c3c4c5c6c7";
const RFC_PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
const RFC_CIPHERTEXT: &str = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116";
const RFC_TAG: &str = "1ae10b594f09e26a7e902ecbd0600691";

// ---------------------------------------------------------------------------------------
// File format (see protocol/vectors/README.md, "Sealed fields").

#[derive(Debug, Serialize, Deserialize)]
struct FieldsFile {
    description: String,
    aad_prefix: String,
    max_ct_bytes: usize,
    cases: Vec<Case>,
    decoding: Vec<DecodingCase>,
}

/// One call of `open_fields` (and, when `expect` is `ok`, of `seal_fields`).
#[derive(Debug, Serialize, Deserialize)]
struct Case {
    name: String,
    description: String,
    key: String,
    nonce: String,
    context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    ct: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pad_to: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cbor: Option<String>,
    expect: String,
}

/// One call of `SealedFields::from_cbor` that must fail.
#[derive(Debug, Serialize, Deserialize)]
struct DecodingCase {
    name: String,
    description: String,
    cbor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pad_to: Option<usize>,
    expect: String,
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn padded(bytes: &[u8], pad_to: Option<usize>) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(n) = pad_to {
        assert!(n >= out.len());
        out.resize(n, 0);
    }
    out
}

/// The head of a CBOR byte string of `len` bytes (major type 2, shortest form), written from
/// RFC 8949 rather than with the crate's encoder.
fn bstr_head(len: usize) -> Vec<u8> {
    match len {
        0..=23 => vec![0x40 | len as u8],
        24..=0xff => vec![0x58, len as u8],
        0x100..=0xffff => vec![0x59, (len >> 8) as u8, len as u8],
        _ => {
            let mut h = vec![0x5a];
            h.extend_from_slice(&u32::try_from(len).unwrap().to_be_bytes());
            h
        }
    }
}

/// `{"nonce": bstr12, "ct": bstr}` as the README spells it out.
fn readme_cbor(nonce: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut out = vec![0xa2, 0x65];
    out.extend_from_slice(b"nonce");
    out.extend(bstr_head(nonce.len()));
    out.extend_from_slice(nonce);
    out.push(0x62);
    out.extend_from_slice(b"ct");
    out.extend(bstr_head(ct.len()));
    out.extend_from_slice(ct);
    out
}

// ---------------------------------------------------------------------------------------
// Generator.

fn context(id: &str, group: &str) -> Vec<u8> {
    let mut c = unhex(id);
    c.extend_from_slice(group.as_bytes());
    c
}

fn nonce_of(label: &str) -> [u8; 12] {
    seed(label)[..12].try_into().unwrap()
}

/// A professional's identity, as an alert would carry it: a small CBOR map.
fn identity_plaintext() -> Vec<u8> {
    let text = |s: &str| Value::Text(s.into());
    let map = Value::Map(vec![
        (text("family_name"), text("Müller-Lüdenscheidt")),
        (text("given_names"), text("Erika Maria")),
        (text("birth_date"), text("1975-03-14")),
        (text("birth_place"), text("Graz")),
        (text("nationality"), text("AT")),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

fn positive(
    name: &str,
    description: &str,
    key: &[u8; 32],
    nonce: [u8; 12],
    context: &[u8],
    plaintext: &[u8],
) -> Case {
    let sealed = seal_fields(key, nonce, context, plaintext);
    Case {
        name: name.into(),
        description: description.into(),
        key: hex::encode(key),
        nonce: hex::encode(nonce),
        context: hex::encode(context),
        plaintext: Some(hex::encode(plaintext)),
        ct: hex::encode(&sealed.ct),
        pad_to: None,
        cbor: Some(hex::encode(sealed.to_cbor().unwrap())),
        expect: "ok".into(),
    }
}

/// A case of opening that fails with `decrypt_failed`.
fn negative(
    name: &str,
    description: &str,
    key: &[u8],
    nonce: &[u8],
    context: &[u8],
    ct: &[u8],
) -> Case {
    Case {
        name: name.into(),
        description: description.into(),
        key: hex::encode(key),
        nonce: hex::encode(nonce),
        context: hex::encode(context),
        plaintext: None,
        ct: hex::encode(ct),
        pad_to: None,
        cbor: None,
        expect: RejectCode::DecryptFailed.label().into(),
    }
}

fn generate() -> FieldsFile {
    let key = seed("fields key 1");
    let other_key = seed("fields key 2");
    let identity = context(ALERT_ID, "identity");
    let plaintext = identity_plaintext();
    let nonce = nonce_of("fields nonce 1");
    let rfc_key: [u8; 32] = unhex(RFC_KEY).try_into().unwrap();
    let rfc_nonce: [u8; 12] = unhex(RFC_NONCE).try_into().unwrap();
    let cases_pos = vec![
        positive(
            "alert_identity",
            "The identity group of an alert: context = the 16-byte alert id || \"identity\".",
            &key,
            nonce,
            &identity,
            &plaintext,
        ),
        positive(
            "empty_plaintext",
            "An empty group: ct is the 16-byte tag alone.",
            &key,
            nonce_of("fields nonce 2"),
            &identity,
            b"",
        ),
        positive(
            "empty_context",
            "An empty context: the AAD is the 19-byte prefix alone.",
            &other_key,
            nonce_of("fields nonce 3"),
            b"",
            b"imi",
        ),
        positive(
            "two_blocks",
            "65 bytes of plaintext, one byte into the second ChaCha20 block; another group name.",
            &other_key,
            nonce_of("fields nonce 4"),
            &context(OTHER_ALERT_ID, "decision"),
            &[0xa5; 65],
        ),
        positive(
            "rfc8439_inputs",
            "The key, nonce and plaintext of RFC 8439 section 2.8.2, its AAD as the context: ct \
             without its last 16 bytes is the RFC's ciphertext (the keystream does not depend \
             on the AAD); the tag differs from the RFC's, as the AAD is prefixed.",
            &rfc_key,
            rfc_nonce,
            &unhex(RFC_AAD),
            RFC_PLAINTEXT,
        ),
    ];
    let sealed = seal_fields(&key, nonce, &identity, &plaintext);
    let ct = &sealed.ct;
    let tag_bit = (ct.len() - 1) * 8;
    let mut cases = cases_pos;
    cases.extend([
        negative(
            "wrong_key",
            "alert_identity opened with another key.",
            &other_key,
            &nonce,
            &identity,
            ct,
        ),
        negative(
            "wrong_key_one_bit",
            "alert_identity opened with its key with bit 0 flipped.",
            &flip(&key, 0),
            &nonce,
            &identity,
            ct,
        ),
        negative(
            "wrong_context_group",
            "alert_identity opened as another group of the same alert (\"decision\").",
            &key,
            &nonce,
            &context(ALERT_ID, "decision"),
            ct,
        ),
        negative(
            "wrong_context_alert",
            "alert_identity opened as the identity group of another alert.",
            &key,
            &nonce,
            &context(OTHER_ALERT_ID, "identity"),
            ct,
        ),
        negative(
            "context_empty",
            "alert_identity opened with an empty context.",
            &key,
            &nonce,
            b"",
            ct,
        ),
        negative(
            "wrong_nonce",
            "alert_identity with bit 0 of its nonce flipped.",
            &key,
            &flip(&nonce, 0),
            &identity,
            ct,
        ),
        negative(
            "flipped_ct_bit",
            "alert_identity with bit 0 of ct (the first ciphertext byte) flipped.",
            &key,
            &nonce,
            &identity,
            &flip(ct, 0),
        ),
        negative(
            "flipped_tag_bit",
            "alert_identity with bit 0 of the last byte of ct (in the tag) flipped.",
            &key,
            &nonce,
            &identity,
            &flip(ct, tag_bit),
        ),
        negative(
            "truncated_ct",
            "alert_identity with the last byte of ct removed.",
            &key,
            &nonce,
            &identity,
            &ct[..ct.len() - 1],
        ),
        negative(
            "ct_shorter_than_tag",
            "Only the first 15 bytes of alert_identity's ct.",
            &key,
            &nonce,
            &identity,
            &ct[..15],
        ),
        negative("ct_empty", "An empty ct.", &key, &nonce, &identity, b""),
        Case {
            pad_to: Some(MAX_SEALED_FIELDS_BYTES),
            ..negative(
                "ct_at_limit",
                "ct of exactly 65,536 bytes (alert_identity's ct padded with zeros): passes \
                 the size check, then fails to decrypt.",
                &key,
                &nonce,
                &identity,
                ct,
            )
        },
        Case {
            pad_to: Some(MAX_SEALED_FIELDS_BYTES + 1),
            expect: RejectCode::Oversized.label().into(),
            ..negative(
                "ct_oversized",
                "ct of 65,537 bytes (alert_identity's ct padded with zeros): refused before \
                 decrypting.",
                &key,
                &nonce,
                &identity,
                ct,
            )
        },
    ]);

    let good = readme_cbor(&nonce, ct);
    assert_eq!(good, sealed.to_cbor().unwrap());
    let mut reordered = vec![0xa2, 0x62, b'c', b't'];
    reordered.extend(bstr_head(ct.len()));
    reordered.extend_from_slice(ct);
    reordered.push(0x65);
    reordered.extend_from_slice(b"nonce");
    reordered.push(0x4c);
    reordered.extend_from_slice(&nonce);
    let mut unknown_key = good.clone();
    unknown_key[0] = 0xa3;
    unknown_key.extend([0x61, b'v', 0x01]);
    let mut long_length = vec![0xa2, 0x65];
    long_length.extend_from_slice(b"nonce");
    long_length.extend([0x58, 0x0c]);
    long_length.extend_from_slice(&nonce);
    long_length.extend([0x62, b'c', b't']);
    long_length.extend(bstr_head(ct.len()));
    long_length.extend_from_slice(ct);
    let mut oversized = readme_cbor(&nonce, b"");
    let head_at = oversized.len() - 1;
    oversized.truncate(head_at);
    oversized.extend(bstr_head(MAX_SEALED_FIELDS_BYTES + 1));
    let malformed = |name: &str, description: &str, cbor: &[u8]| DecodingCase {
        name: name.into(),
        description: description.into(),
        cbor: hex::encode(cbor),
        pad_to: None,
        expect: RejectCode::Malformed.label().into(),
    };
    let decoding = vec![
        malformed(
            "keys_reordered",
            "alert_identity's CBOR with `ct` before `nonce`.",
            &reordered,
        ),
        malformed(
            "unknown_key",
            "alert_identity's CBOR with a third key `v`: 1.",
            &unknown_key,
        ),
        malformed(
            "nonce_11_bytes",
            "A nonce of 11 bytes.",
            &readme_cbor(&nonce[..11], ct),
        ),
        malformed(
            "nonce_13_bytes",
            "A nonce of 13 bytes.",
            &readme_cbor(&[nonce.as_slice(), &[0]].concat(), ct),
        ),
        malformed(
            "nonce_length_long_form",
            "The nonce's length written `58 0c` instead of `4c`.",
            &long_length,
        ),
        malformed(
            "trailing_byte",
            "alert_identity's CBOR followed by one byte `00`.",
            &[good.as_slice(), &[0]].concat(),
        ),
        malformed(
            "indefinite_map",
            "alert_identity's CBOR as an indefinite-length map (`bf` ... `ff`).",
            &[&[0xbf], &good[1..], &[0xff]].concat(),
        ),
        DecodingCase {
            name: "encoding_oversized".into(),
            description: "A ct of 65,537 bytes, the encoding 65,565 bytes: above 65,564 \
                          (28 + 65,536), refused before decoding."
                .into(),
            cbor: hex::encode(&oversized),
            pad_to: Some(oversized.len() + MAX_SEALED_FIELDS_BYTES + 1),
            expect: RejectCode::Oversized.label().into(),
        },
    ];
    FieldsFile {
        description: "imi-protocol v1 sealed fields (protocol/vectors/README.md, \"Sealed \
                      fields\"): ChaCha20-Poly1305 (RFC 8439) with aad = \"imi/1 sealed \
                      fields\" || context. cases: expect \"ok\" means seal_fields(key, nonce, \
                      context, plaintext) gives ct, the CBOR of SealedFields is cbor, and \
                      opening gives plaintext; any other expect is the reject code of opening \
                      {nonce, ct} (ct followed by zero bytes up to pad_to, when present) with \
                      key and context. decoding: CBOR (padded likewise) that must be refused \
                      with the code expect."
            .into(),
        aad_prefix: hex::encode(FIELDS_AAD_PREFIX),
        max_ct_bytes: MAX_SEALED_FIELDS_BYTES,
        cases,
        decoding,
    }
}

#[test]
#[ignore = "writes protocol/vectors/fields.json; run with --ignored (or IMI_REGEN_VECTORS=1) to regenerate"]
fn regenerate_fields_vectors() {
    std::fs::write(FIELDS_PATH, crate::common::vectors_json(&generate())).unwrap();
}

#[test]
fn fields_vectors_file_is_up_to_date() {
    crate::common::check_generated(
        FIELDS_PATH,
        "fields.json",
        &crate::common::vectors_json(&generate()),
        "fields",
    );
}

// ---------------------------------------------------------------------------------------
// Checker.

#[test]
fn fields_vectors_match() {
    let text = std::fs::read_to_string(FIELDS_PATH).unwrap();
    let f: FieldsFile = serde_json::from_str(&text).unwrap();
    assert_eq!(unhex(&f.aad_prefix), b"imi/1 sealed fields");
    assert_eq!(FIELDS_AAD_PREFIX, b"imi/1 sealed fields");
    assert_eq!(f.max_ct_bytes, 65_536);
    assert_eq!(MAX_SEALED_FIELDS_BYTES, 65_536);
    let (mut positives, mut decrypt_failed) = (0, 0);
    for case in &f.cases {
        let name = &case.name;
        let key: [u8; 32] = unhex(&case.key).try_into().unwrap();
        let nonce: [u8; 12] = unhex(&case.nonce).try_into().unwrap();
        let context = unhex(&case.context);
        let ct = padded(&unhex(&case.ct), case.pad_to);
        let opened = open_fields(
            &key,
            &context,
            &SealedFields {
                nonce,
                ct: ct.clone(),
            },
        );
        if case.expect == "ok" {
            positives += 1;
            let plaintext = unhex(case.plaintext.as_deref().unwrap());
            let cbor = unhex(case.cbor.as_deref().unwrap());
            let sealed = seal_fields(&key, nonce, &context, &plaintext);
            assert_eq!(sealed.nonce, nonce, "{name}");
            assert_eq!(sealed.ct, ct, "{name}: ct");
            assert_eq!(ct.len(), plaintext.len() + 16, "{name}");
            assert_eq!(sealed.to_cbor().unwrap(), cbor, "{name}: cbor");
            assert_eq!(
                readme_cbor(&nonce, &ct),
                cbor,
                "{name}: cbor as the README says"
            );
            assert_eq!(SealedFields::from_cbor(&cbor), Ok(sealed), "{name}");
            assert_eq!(opened, Ok(plaintext), "{name}: open");
        } else {
            decrypt_failed += usize::from(case.expect == "decrypt_failed");
            assert_eq!(
                opened.map_err(|e| e.label().to_owned()),
                Err(case.expect.clone()),
                "{name}"
            );
        }
    }
    assert!(positives >= 4);
    assert!(decrypt_failed >= 4);
    for name in [
        "wrong_key",
        "wrong_context_group",
        "wrong_context_alert",
        "flipped_ct_bit",
        "truncated_ct",
        "ct_oversized",
    ] {
        assert!(f.cases.iter().any(|c| c.name == name), "{name}");
    }
    // The identity case uses the alert context: 16-byte id || "identity".
    let identity = f.cases.iter().find(|c| c.name == "alert_identity").unwrap();
    assert_eq!(unhex(&identity.context)[16..], *b"identity");
    // The RFC 8439 case: the keystream part of ct is the RFC's ciphertext.
    let rfc = f.cases.iter().find(|c| c.name == "rfc8439_inputs").unwrap();
    let ct = unhex(&rfc.ct);
    assert_eq!(ct[..ct.len() - 16], unhex(RFC_CIPHERTEXT));
    assert_ne!(ct[ct.len() - 16..], unhex(RFC_TAG));

    assert!(f.decoding.len() >= 4);
    for case in &f.decoding {
        let cbor = padded(&unhex(&case.cbor), case.pad_to);
        assert_eq!(
            SealedFields::from_cbor(&cbor).map_err(|e| e.label().to_owned()),
            Err(case.expect.clone()),
            "{}",
            case.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// The construction against its parts.

/// ChaCha20-Poly1305 as the RFC gives it, directly from the `chacha20poly1305` crate.
fn direct_encrypt(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    chacha20poly1305::ChaCha20Poly1305::new(key.into())
        .encrypt(nonce.into(), Payload { msg, aad })
        .unwrap()
}

#[test]
fn seal_fields_is_chacha20poly1305_with_prefixed_aad() {
    for i in 0..32usize {
        let key = random_field_key();
        let nonce = random_nonce();
        let context: Vec<u8> = (0..i).map(|b| b as u8).collect();
        let plaintext: Vec<u8> = (0..i * 7).map(|b| (b * 31) as u8).collect();
        let aad = [FIELDS_AAD_PREFIX, &context].concat();
        let direct = direct_encrypt(&key, &nonce, &aad, &plaintext);
        let sealed = seal_fields(&key, nonce, &context, &plaintext);
        assert_eq!(sealed, SealedFields { nonce, ct: direct });
        assert_eq!(open_fields(&key, &context, &sealed), Ok(plaintext.clone()));
        // Without the prefix, the AAD is not the one of sealed fields.
        let unprefixed = direct_encrypt(&key, &nonce, &context, &plaintext);
        assert_eq!(
            open_fields(
                &key,
                &context,
                &SealedFields {
                    nonce,
                    ct: unprefixed
                }
            ),
            Err(RejectCode::DecryptFailed)
        );
    }
    assert_ne!(random_field_key(), random_field_key());
    assert_ne!(random_nonce(), random_nonce());
}

/// RFC 8439 §2.8.2 through ChaCha20-Poly1305 directly (ciphertext and tag), and through
/// `seal_fields` (same ciphertext, as the keystream does not depend on the AAD).
#[test]
fn rfc8439_keystream_and_tag() {
    let key: [u8; 32] = unhex(RFC_KEY).try_into().unwrap();
    let nonce: [u8; 12] = unhex(RFC_NONCE).try_into().unwrap();
    let direct = direct_encrypt(&key, &nonce, &unhex(RFC_AAD), RFC_PLAINTEXT);
    assert_eq!(direct, [unhex(RFC_CIPHERTEXT), unhex(RFC_TAG)].concat());
    let sealed = seal_fields(&key, nonce, &unhex(RFC_AAD), RFC_PLAINTEXT);
    assert_eq!(sealed.ct[..RFC_PLAINTEXT.len()], unhex(RFC_CIPHERTEXT));
    assert_eq!(
        sealed.ct[RFC_PLAINTEXT.len()..],
        direct_encrypt(
            &key,
            &nonce,
            &[FIELDS_AAD_PREFIX, &unhex(RFC_AAD)].concat(),
            RFC_PLAINTEXT
        )[RFC_PLAINTEXT.len()..]
    );
}

/// The size limit: the largest plaintext seals to a `ct` of exactly the limit, which opens
/// and round-trips through CBOR; one byte more is `oversized`.
#[test]
fn sealed_fields_size_limit() {
    let key = seed("fields limit");
    let nonce = random_nonce();
    let max = vec![0x5a; MAX_SEALED_FIELDS_BYTES - 16];
    let sealed = seal_fields(&key, nonce, b"ctx", &max);
    assert_eq!(sealed.ct.len(), MAX_SEALED_FIELDS_BYTES);
    assert_eq!(open_fields(&key, b"ctx", &sealed), Ok(max));
    let cbor = sealed.to_cbor().unwrap();
    assert_eq!(cbor.len(), MAX_SEALED_FIELDS_CBOR_BYTES);
    assert_eq!(SealedFields::from_cbor(&cbor), Ok(sealed));

    let over = seal_fields(&key, nonce, b"ctx", &[0x5a; MAX_SEALED_FIELDS_BYTES - 15]);
    assert_eq!(over.ct.len(), MAX_SEALED_FIELDS_BYTES + 1);
    assert_eq!(open_fields(&key, b"ctx", &over), Err(RejectCode::Oversized));
    assert_eq!(
        SealedFields::from_cbor(&over.to_cbor().unwrap()),
        Err(RejectCode::Oversized)
    );
}

/// Opening never panics, whatever the ct.
#[test]
fn open_fields_never_panics_on_short_or_garbage_ct() {
    let key = seed("fields garbage");
    for len in 0..64 {
        let sealed = SealedFields {
            nonce: [7; 12],
            ct: vec![0xff; len],
        };
        assert_eq!(
            open_fields(&key, b"", &sealed),
            Err(RejectCode::DecryptFailed)
        );
    }
}

/// The README documents the construction with the crate's constants.
#[test]
fn readme_documents_sealed_fields() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/README.md")).unwrap();
    let section = readme
        .split("\n## Sealed fields\n")
        .nth(1)
        .expect("README has a \"## Sealed fields\" section");
    let receipt = readme.find("\n## Receipt\n").unwrap();
    let fields = readme.find("\n## Sealed fields\n").unwrap();
    assert!(
        receipt < fields,
        "\"Sealed fields\" comes after \"Receipt\""
    );
    for what in [
        "`imi/1 sealed fields`",
        "65,536 bytes",
        "`fields.json`",
        "`decrypt_failed`",
        "`oversized`",
    ] {
        assert!(section.contains(what), "README, Sealed fields: {what}");
    }
}
