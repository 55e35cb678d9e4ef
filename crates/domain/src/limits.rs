//! Size limits and well-formedness checks shared by the model.
//!
//! Everything in a transition may come from another node, so every string and list is
//! bounded before it is stored in a case.

/// Longest code (area, procedure, question, choice): bytes.
pub const MAX_CODE_BYTES: usize = 64;
/// Longest authority name, user id or attachment name: bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Longest free text (request, answer, information, reason): bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest subject reference: bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;
/// Most questions in one request (and coded answers in one answer).
pub const MAX_QUESTIONS: usize = 256;
/// Most attachments in one step.
pub const MAX_ATTACHMENTS: usize = 32;
/// Most choices in one multiple-choice answer.
pub const MAX_CHOICES: usize = 64;
/// Most transitions in one case's history.
pub const MAX_HISTORY: usize = 1024;

/// A code: 1..=64 bytes of `[A-Za-z0-9._-]`.
pub fn valid_code(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CODE_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A language key: 2 or 3 lowercase ASCII letters (ISO 639-1 / 639-2).
pub fn valid_language(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase())
}
