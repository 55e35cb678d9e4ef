//! Length-prefixed byte frames for the `/imi/envelope/1` request-response protocol.
//!
//! Every frame is a `u32` big-endian length followed by exactly that many body bytes. One
//! request frame and one response frame travel on each stream.
//!
//! Limits (`max` is [`NetworkConfig::max_message_bytes`](crate::NetworkConfig)):
//!
//! * writing a body longer than `max` fails with [`io::ErrorKind::InvalidInput`];
//! * reading a request whose declared length is above `max` but at most
//!   [`DRAIN_FACTOR`]` * max` drains the body in [`DRAIN_CHUNK`]-byte chunks without keeping it and
//!   yields [`Frame::Oversized`], so the receiver can still answer (and the engine can log who
//!   sent what);
//! * reading a request declared above `DRAIN_FACTOR * max` fails with
//!   [`io::ErrorKind::InvalidData`] and the stream is dropped;
//! * reading a response declared above `max` fails with [`io::ErrorKind::InvalidData`].
//!
//! Errors about sizes carry a [`FrameTooLarge`] so the swarm task can turn them into
//! [`NetworkError::TooLarge`](crate::NetworkError::TooLarge).
//!
//! The module is public so that the framing can be exercised on its own, over any
//! `AsyncRead` (the `frame` fuzz target in `fuzz/` reads hostile bytes with it); the engine
//! never uses it directly, only through [`NetworkClient`](crate::NetworkClient).

use std::{fmt, io};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// Oversized requests up to this multiple of the limit are drained instead of refused outright.
pub const DRAIN_FACTOR: u64 = 4;
/// Size of the scratch buffer used to drain oversized request bodies.
pub const DRAIN_CHUNK: usize = 64 * 1024;
/// Bytes of the length prefix.
const LENGTH_PREFIX_BYTES: usize = 4;

/// A request frame as read from (or written to) a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A body within the limit.
    Bytes(Vec<u8>),
    /// A body within the limit, read on [`LEGACY_BATCH_PROTOCOL`](crate::LEGACY_BATCH_PROTOCOL),
    /// whose answers must be single receipts. Only produced when reading; written as
    /// [`Frame::Bytes`].
    Legacy(Vec<u8>),
    /// The declared body length exceeded the limit; the body was drained, not kept.
    /// Only produced when reading; writing it is refused.
    Oversized(u64),
}

/// The size error carried inside [`io::Error`]s produced by the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTooLarge {
    /// What was too large ("request", "response").
    pub what: &'static str,
    /// The body length, declared or actual.
    pub size: u64,
    /// The configured limit.
    pub limit: usize,
}

impl fmt::Display for FrameTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} bytes exceeds the {}-byte limit",
            self.what, self.size, self.limit
        )
    }
}

impl std::error::Error for FrameTooLarge {}

impl FrameTooLarge {
    fn into_io(self, kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, self)
    }

    /// Finds a `FrameTooLarge` inside an I/O error, if the codec put one there.
    pub fn find(error: &io::Error) -> Option<Self> {
        error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Self>())
            .copied()
    }
}

/// The request-response codec: raw byte frames, size-checked both ways.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max: usize,
}

impl FrameCodec {
    /// A codec whose frames, in both directions, carry at most `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max: max_message_bytes,
        }
    }

    fn max_u64(&self) -> u64 {
        u64::try_from(self.max).unwrap_or(u64::MAX)
    }

    fn too_large(&self, what: &'static str, size: u64) -> FrameTooLarge {
        FrameTooLarge {
            what,
            size,
            limit: self.max,
        }
    }
}

async fn read_length<T>(io: &mut T) -> io::Result<u64>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    Ok(u64::from(u32::from_be_bytes(prefix)))
}

/// Reads exactly `len` bytes. Memory grows with the bytes actually received, not with the
/// declared length.
async fn read_body<T>(io: &mut T, len: u64) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let initial = usize::try_from(len).unwrap_or(usize::MAX).min(DRAIN_CHUNK);
    let mut body = Vec::with_capacity(initial);
    let read = (&mut *io).take(len).read_to_end(&mut body).await?;
    if u64::try_from(read).unwrap_or(u64::MAX) != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame declared {len} bytes but the stream ended after {read}"),
        ));
    }
    Ok(body)
}

/// Reads and discards exactly `len` bytes, [`DRAIN_CHUNK`] at a time.
async fn drain<T>(io: &mut T, len: u64) -> io::Result<()>
where
    T: AsyncRead + Unpin + Send,
{
    let mut scratch = vec![0u8; DRAIN_CHUNK];
    let mut remaining = len;
    while remaining > 0 {
        let step = usize::try_from(remaining)
            .unwrap_or(DRAIN_CHUNK)
            .min(DRAIN_CHUNK);
        let chunk = scratch.get_mut(..step).ok_or_else(|| {
            io::Error::other("drain chunk out of range (this is a bug in imi-network)")
        })?;
        io.read_exact(chunk).await?;
        remaining = remaining.saturating_sub(u64::try_from(step).unwrap_or(remaining));
    }
    Ok(())
}

impl FrameCodec {
    async fn write_frame<T>(&self, what: &'static str, io: &mut T, body: &[u8]) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let size = u64::try_from(body.len()).unwrap_or(u64::MAX);
        if body.len() > self.max {
            return Err(self
                .too_large(what, size)
                .into_io(io::ErrorKind::InvalidInput));
        }
        let prefix = u32::try_from(body.len()).map_err(|_| {
            self.too_large(what, size)
                .into_io(io::ErrorKind::InvalidInput)
        })?;
        // One write, so one Yamux frame: the prefix alone would be a frame of its own.
        let mut frame = Vec::with_capacity(body.len().saturating_add(4));
        frame.extend_from_slice(&prefix.to_be_bytes());
        frame.extend_from_slice(body);
        io.write_all(&frame).await?;
        io.flush().await
    }
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Frame;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, protocol: &StreamProtocol, io: &mut T) -> io::Result<Frame>
    where
        T: AsyncRead + Unpin + Send,
    {
        let declared = read_length(io).await?;
        if declared <= self.max_u64() {
            let body = read_body(io, declared).await?;
            return Ok(if protocol.as_ref() == crate::LEGACY_BATCH_PROTOCOL {
                Frame::Legacy(body)
            } else {
                Frame::Bytes(body)
            });
        }
        if declared > self.max_u64().saturating_mul(DRAIN_FACTOR) {
            return Err(self
                .too_large("request", declared)
                .into_io(io::ErrorKind::InvalidData));
        }
        drain(io, declared).await?;
        Ok(Frame::Oversized(declared))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let declared = read_length(io).await?;
        if declared > self.max_u64() {
            return Err(self
                .too_large("response", declared)
                .into_io(io::ErrorKind::InvalidData));
        }
        read_body(io, declared).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Frame,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Frame::Bytes(body) | Frame::Legacy(body) => {
                self.write_frame("request", io, &body).await
            }
            Frame::Oversized(declared) => Err(self
                .too_large("request", declared)
                .into_io(io::ErrorKind::InvalidInput)),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame("response", io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec as _;

    use super::*;

    fn protocol() -> StreamProtocol {
        StreamProtocol::new(crate::PROTOCOL)
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn request_round_trip() {
        let mut codec = FrameCodec::new(1024);
        let mut wire = Cursor::new(Vec::new());
        block_on(codec.write_request(&protocol(), &mut wire, Frame::Bytes(b"hello".to_vec())))
            .unwrap();
        assert_eq!(wire.get_ref(), &framed(b"hello"));
        let mut reader = Cursor::new(wire.into_inner());
        let frame = block_on(codec.read_request(&protocol(), &mut reader)).unwrap();
        assert_eq!(frame, Frame::Bytes(b"hello".to_vec()));
    }

    #[test]
    fn a_request_on_the_first_batch_protocol_is_marked_legacy() {
        let mut codec = FrameCodec::new(1024);
        for (name, legacy) in [
            (crate::LEGACY_BATCH_PROTOCOL, true),
            (crate::BATCH_PROTOCOL, false),
            (crate::PROTOCOL, false),
        ] {
            let mut reader = Cursor::new(framed(b"batch"));
            let frame =
                block_on(codec.read_request(&StreamProtocol::new(name), &mut reader)).unwrap();
            let expected = if legacy {
                Frame::Legacy(b"batch".to_vec())
            } else {
                Frame::Bytes(b"batch".to_vec())
            };
            assert_eq!(frame, expected, "{name}");
        }
    }

    #[test]
    fn empty_frames_are_fine() {
        let mut codec = FrameCodec::new(16);
        let mut reader = Cursor::new(framed(b""));
        let frame = block_on(codec.read_request(&protocol(), &mut reader)).unwrap();
        assert_eq!(frame, Frame::Bytes(Vec::new()));
    }

    #[test]
    fn oversized_request_is_drained_and_reported() {
        let mut codec = FrameCodec::new(100_000);
        let body = vec![7u8; 250_000];
        let mut wire = framed(&body);
        wire.extend_from_slice(b"next");
        let mut reader = Cursor::new(wire);
        let frame = block_on(codec.read_request(&protocol(), &mut reader)).unwrap();
        assert_eq!(frame, Frame::Oversized(250_000));
        // The whole body was consumed, nothing more.
        assert_eq!(reader.position(), 4 + 250_000);
    }

    #[test]
    fn request_beyond_drain_limit_is_an_error() {
        let mut codec = FrameCodec::new(10);
        let mut reader = Cursor::new(framed(&[0u8; 41]));
        let err = block_on(codec.read_request(&protocol(), &mut reader)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let too_large = FrameTooLarge::find(&err).unwrap();
        assert_eq!((too_large.size, too_large.limit), (41, 10));
        // Nothing beyond the prefix was read.
        assert_eq!(reader.position(), 4);
    }

    #[test]
    fn truncated_body_is_an_error() {
        let mut codec = FrameCodec::new(100);
        let mut wire = framed(&[1u8; 50]);
        wire.truncate(20);
        let err = block_on(codec.read_request(&protocol(), &mut Cursor::new(wire))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn oversized_response_is_an_error() {
        let mut codec = FrameCodec::new(10);
        let mut reader = Cursor::new(framed(&[0u8; 11]));
        let err = block_on(codec.read_response(&protocol(), &mut reader)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("response of 11 bytes exceeds the 10-byte limit")
        );
    }

    #[test]
    fn writing_oversized_bodies_is_refused() {
        let mut codec = FrameCodec::new(10);
        let mut wire = Cursor::new(Vec::new());
        let err = block_on(codec.write_request(&protocol(), &mut wire, Frame::Bytes(vec![0; 11])))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = block_on(codec.write_response(&protocol(), &mut wire, vec![0; 11])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err =
            block_on(codec.write_request(&protocol(), &mut wire, Frame::Oversized(5))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(wire.get_ref().is_empty());
    }
}
