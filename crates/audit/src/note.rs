//! Checkpoints as C2SP signed notes (`tlog-checkpoint`, `signed-note`) with Ed25519
//! signatures, and witness cosignatures (`tlog-cosignature`, `cosignature/v1`).
//!
//! A checkpoint's body is three lines: the origin (which log), the tree size in decimal and
//! the root hash in standard base64, each ending in a newline. A signed note is the body, an
//! empty line and one line per signature: `— <name> <base64(key id ‖ signature)>`. The key
//! id of an Ed25519 key is the first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`;
//! the signature is over the body. A cosignature line has the same shape; its key id uses
//! the type byte 0x04, and its bytes are `key id ‖ timestamp (8 bytes, big-endian seconds)
//! ‖ signature` over `"cosignature/v1\ntime <timestamp>\n" ‖ body`.
use crate::merkle::Hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, VerifyingKey};
use imi_protocol::NodeSigner;
use sha2::{Digest, Sha256};

/// Why a note could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not the shape of a signed note or a checkpoint.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
}

/// A checkpoint: the state of one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, e.g. `imi-federation.invalid/log/DE`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note body.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a note body (extension lines after the third are allowed and ignored).
    pub fn parse(body: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::Malformed("origin"))?;
        let size = lines
            .next()
            .filter(|s| {
                !s.is_empty()
                    && s.bytes().all(|b| b.is_ascii_digit())
                    && (s.len() == 1 || !s.starts_with('0'))
            })
            .and_then(|s| s.parse().ok())
            .ok_or(NoteError::Malformed("tree size"))?;
        let root: Hash = lines
            .next()
            .and_then(|r| B64.decode(r).ok())
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError::Malformed("root hash"))?;
        if !body.ends_with('\n') {
            return Err(NoteError::Malformed("body must end with a newline"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// The origin line of a node's log.
pub fn origin_of(node: &str) -> String {
    format!("imi-federation.invalid/log/{node}")
}

/// The key name (and first line) of a node's case-head statements.
pub fn head_origin_of(node: &str) -> String {
    format!("imi-federation.invalid/case-head/{node}")
}

/// A case-head statement: the node says which leaf was the case's latest in its log of a
/// given size. Signed as a note by the node (key name [`head_origin_of`]), it is what makes a
/// case's evidence bundle checkably complete: the case's leaves are chained by `prev`, and
/// the chain from this head must be in the bundle.
///
/// ```text
/// imi-federation.invalid/case-head/DE
/// case 0123456789abcdef0123456789abcdef
/// size 42
/// head 40                 (or `head -`: no leaf of the case below that size)
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseHead {
    /// [`head_origin_of`] the node.
    pub origin: String,
    /// The case id, 32 lowercase hex digits.
    pub case: String,
    /// The log size the statement is about (the bundle's last checkpoint's).
    pub size: u64,
    /// The index of the case's latest leaf below `size`.
    pub head: Option<u64>,
}

/// A decimal without leading zeros.
fn decimal(s: &str) -> Option<u64> {
    (!s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s.len() == 1 || !s.starts_with('0')))
    .then(|| s.parse().ok())
    .flatten()
}

impl CaseHead {
    /// The note body.
    pub fn body(&self) -> String {
        format!(
            "{}\ncase {}\nsize {}\nhead {}\n",
            self.origin,
            self.case,
            self.size,
            self.head.map_or_else(|| "-".to_owned(), |h| h.to_string())
        )
    }

    /// Parses a note body: exactly the four lines, in the one encoding [`CaseHead::body`]
    /// writes.
    pub fn parse(body: &str) -> Result<CaseHead, NoteError> {
        let bad = NoteError::Malformed("case head");
        let mut lines = body.strip_suffix('\n').ok_or(bad.clone())?.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(bad.clone())?;
        let case = lines
            .next()
            .and_then(|l| l.strip_prefix("case "))
            .filter(|c| {
                c.len() == 32
                    && c.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .ok_or(bad.clone())?;
        let size = lines
            .next()
            .and_then(|l| l.strip_prefix("size "))
            .and_then(decimal)
            .ok_or(bad.clone())?;
        let head = match lines.next().and_then(|l| l.strip_prefix("head ")) {
            Some("-") => None,
            Some(h) => Some(decimal(h).ok_or(bad.clone())?),
            None => return Err(bad),
        };
        if lines.next().is_some() {
            return Err(bad);
        }
        let parsed = CaseHead {
            origin: origin.to_owned(),
            case: case.to_owned(),
            size,
            head,
        };
        if parsed.body() != body {
            return Err(bad);
        }
        Ok(parsed)
    }
}

fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([kind]);
    h.update(public);
    let d: [u8; 32] = h.finalize().into();
    [d[0], d[1], d[2], d[3]]
}

/// The key id of an Ed25519 note signer.
pub fn signer_key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    key_id(name, 0x01, public)
}

/// The key id of an Ed25519 cosigner (`cosignature/v1`).
pub fn cosigner_key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    key_id(name, 0x04, public)
}

/// One signature line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// The decoded bytes: key id (4) ‖ ...
    pub bytes: Vec<u8>,
}

impl NoteSignature {
    /// The key id.
    pub fn key_id(&self) -> Option<[u8; 4]> {
        self.bytes.get(..4)?.try_into().ok()
    }

    fn line(&self) -> String {
        format!("— {} {}\n", self.name, B64.encode(&self.bytes))
    }
}

/// A signed note: its body and signature lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text (ends with a newline).
    pub body: String,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
}

impl SignedNote {
    /// Parses a signed note (C2SP `signed-note`): the text may contain empty lines, the
    /// signatures follow the last one; no control character but newline anywhere; key names
    /// without spaces or `+`.
    pub fn parse(text: &str) -> Result<SignedNote, NoteError> {
        if text.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed("control character in the note"));
        }
        let (body, sigs) = text
            .rsplit_once("\n\n")
            .ok_or(NoteError::Malformed("no empty line before the signatures"))?;
        let body = format!("{body}\n");
        let mut signatures = Vec::new();
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed("signatures must end with a newline"));
        }
        for line in sigs.strip_suffix('\n').unwrap_or(sigs).split('\n') {
            let rest = line.strip_prefix("— ").ok_or(NoteError::Malformed(
                "a signature line must start with an em dash",
            ))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or(NoteError::Malformed("signature line"))?;
            let bytes = B64
                .decode(b64)
                .map_err(|_| NoteError::Malformed("signature base64"))?;
            if name.is_empty()
                || name.contains('+')
                || name.chars().any(char::is_whitespace)
                || bytes.len() < 5
            {
                return Err(NoteError::Malformed("signature line"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                bytes,
            });
        }
        if signatures.is_empty() {
            return Err(NoteError::Malformed("no signature"));
        }
        Ok(SignedNote { body, signatures })
    }

    /// The note's text.
    pub fn text(&self) -> String {
        let mut s = self.body.clone();
        s.push('\n');
        for sig in &self.signatures {
            s.push_str(&sig.line());
        }
        s
    }

    /// Signs `body` as `name`.
    pub fn sign(body: &str, name: &str, signer: &NodeSigner) -> SignedNote {
        let mut bytes = signer_key_id(name, &signer.public()).to_vec();
        bytes.extend_from_slice(&signer.sign(body.as_bytes()));
        SignedNote {
            body: body.to_owned(),
            signatures: vec![NoteSignature {
                name: name.to_owned(),
                bytes,
            }],
        }
    }

    /// Whether a signature by `name` with `public` is present and valid.
    pub fn verify(&self, name: &str, public: &[u8; 32]) -> bool {
        let id = signer_key_id(name, public);
        let Ok(key) = VerifyingKey::from_bytes(public) else {
            return false;
        };
        self.signatures.iter().any(|s| {
            s.name == name
                && s.key_id() == Some(id)
                && s.bytes.len() == 68
                && s.bytes
                    .get(4..)
                    .and_then(|b| Signature::from_slice(b).ok())
                    .is_some_and(|sig| key.verify_strict(self.body.as_bytes(), &sig).is_ok())
        })
    }

    /// Adds a witness cosignature by `name` at `timestamp` (seconds).
    pub fn cosign(&mut self, name: &str, signer: &NodeSigner, timestamp: u64) {
        let msg = cosigned_message(&self.body, timestamp);
        let mut bytes = cosigner_key_id(name, &signer.public()).to_vec();
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signer.sign(msg.as_bytes()));
        self.signatures.push(NoteSignature {
            name: name.to_owned(),
            bytes,
        });
    }

    /// The timestamp of a valid cosignature by `name` with `public`, if there is one.
    pub fn verify_cosignature(&self, name: &str, public: &[u8; 32]) -> Option<u64> {
        let id = cosigner_key_id(name, public);
        let key = VerifyingKey::from_bytes(public).ok()?;
        self.signatures.iter().find_map(|s| {
            if s.name != name || s.key_id() != Some(id) || s.bytes.len() != 76 {
                return None;
            }
            let ts = u64::from_be_bytes(s.bytes.get(4..12)?.try_into().ok()?);
            let sig = Signature::from_slice(s.bytes.get(12..)?).ok()?;
            key.verify_strict(cosigned_message(&self.body, ts).as_bytes(), &sig)
                .is_ok()
                .then_some(ts)
        })
    }
}

fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}
