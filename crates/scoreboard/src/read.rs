//! Reading facts as JSON Lines: the reader hands blocks of whole lines to worker threads,
//! each folds its lines into its own [`Board`]; the boards are merged at the end. Memory is
//! the blocks in flight plus the accumulators, whatever the number of facts.
use crate::{Board, Period, record};
use serde::Deserialize;
use std::borrow::Cow;
use std::io::Read;
use std::sync::mpsc;

/// Size of the blocks handed to the workers.
const BLOCK: usize = 2 * 1024 * 1024;
/// Longest line accepted (a fact is a few hundred bytes).
pub const MAX_LINE: usize = 64 * 1024;

/// Why facts could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading failed.
    #[error("reading facts: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not a valid fact.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFact<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    case: Cow<'a, str>,
    #[serde(borrow)]
    area: Cow<'a, str>,
    #[serde(borrow)]
    requester: Cow<'a, str>,
    #[serde(borrow)]
    responder: Cow<'a, str>,
    #[serde(borrow)]
    sent_at: Cow<'a, str>,
    #[serde(borrow, default)]
    accepted_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    withdrawn_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    answered_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    deadline: Option<Cow<'a, str>>,
    #[serde(default)]
    timeliness: Option<u8>,
    #[serde(default)]
    efforts: Option<u8>,
}

/// What a worker found wrong: block number, line within the block, message.
type LineError = (usize, usize, String);

fn parse_block(board: &mut Board, block: &[u8]) -> Result<usize, (usize, String)> {
    let mut lines = 0;
    for (i, line) in block.split(|b| *b == b'\n').enumerate() {
        lines = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() > MAX_LINE {
            return Err((i, format!("longer than {MAX_LINE} bytes")));
        }
        let raw: RawFact<'_> = serde_json::from_slice(line).map_err(|e| (i, e.to_string()))?;
        let r = record(
            &raw.area,
            &raw.requester,
            &raw.responder,
            &raw.sent_at,
            raw.accepted_at.as_deref(),
            raw.withdrawn_at.as_deref(),
            raw.answered_at.as_deref(),
            raw.deadline.as_deref(),
            raw.timeliness,
            raw.efforts,
        )
        .map_err(|e| (i, e.to_string()))?;
        board.add(&r);
    }
    // A block ends with '\n' (the split yields a last empty piece) except at the end.
    if block.last() == Some(&b'\n') {
        lines -= 1;
    }
    Ok(lines)
}

/// Reads JSON Lines facts from `reader` on `threads` worker threads and returns the
/// accumulators of `period`. A malformed line stops the read with its line number.
pub fn read_facts<R: Read>(
    mut reader: R,
    period: Period,
    threads: usize,
) -> Result<Board, ReadError> {
    let threads = threads.max(1);
    let (tx, rx) = mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let rx = rx.clone();
        workers.push(std::thread::spawn(move || {
            let mut board = Board::new(period);
            let mut counts: Vec<(usize, usize)> = Vec::new();
            let mut error: Option<LineError> = None;
            loop {
                let next = match rx.lock() {
                    Ok(guard) => guard.recv(),
                    Err(_) => break,
                };
                let Ok((n, block)) = next else { break };
                if error.is_some() {
                    continue;
                }
                match parse_block(&mut board, &block) {
                    Ok(lines) => counts.push((n, lines)),
                    Err((line, msg)) => error = Some((n, line, msg)),
                }
            }
            (board, counts, error)
        }));
    }
    let mut carry: Vec<u8> = Vec::new();
    let mut n = 0usize;
    let mut io_error = None;
    loop {
        let mut block = std::mem::take(&mut carry);
        let start = block.len();
        block.resize(start + BLOCK, 0);
        let got = match read_full(&mut reader, block.get_mut(start..).unwrap_or_default()) {
            Ok(g) => g,
            Err(e) => {
                io_error = Some(e);
                break;
            }
        };
        block.truncate(start + got);
        if got == 0 {
            if !block.is_empty() && tx.send((n, block)).is_err() {
                break;
            }
            break;
        }
        // Hand over whole lines; keep the partial last one for the next block.
        match block.iter().rposition(|b| *b == b'\n') {
            Some(pos) => {
                carry = block.split_off(pos + 1);
                if tx.send((n, block)).is_err() {
                    break;
                }
                n += 1;
            }
            None if block.len() > MAX_LINE => {
                carry = block;
                break;
            }
            None => carry = block,
        }
    }
    drop(tx);
    let mut board = Board::new(period);
    let mut counts = Vec::new();
    let mut first_error: Option<LineError> = None;
    for w in workers {
        let (b, c, e) = w
            .join()
            .map_err(|_| ReadError::Io(std::io::Error::other("a facts worker panicked")))?;
        board.merge(&b);
        counts.extend(c);
        if let Some(e) = e
            && first_error.as_ref().is_none_or(|f| (e.0, e.1) < (f.0, f.1))
        {
            first_error = Some(e);
        }
    }
    if let Some(e) = io_error {
        return Err(e.into());
    }
    if carry.len() > MAX_LINE {
        let before: usize = counts.iter().map(|(_, l)| l).sum();
        return Err(ReadError::Line {
            line: before as u64 + 1,
            message: format!("longer than {MAX_LINE} bytes"),
        });
    }
    if let Some((block, line, message)) = first_error {
        let before: usize = counts
            .iter()
            .filter(|(b, _)| *b < block)
            .map(|(_, l)| l)
            .sum();
        return Err(ReadError::Line {
            line: (before + line + 1) as u64,
            message,
        });
    }
    Ok(board)
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
