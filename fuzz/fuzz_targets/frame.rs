//! The length-prefixed frames of `/imi/envelope/1` (`imi_network::codec`), read by the
//! libp2p codec itself from an in-memory stream that hands out the bytes in chunks.
//!
//! Input: two bytes choose the limit (1 to 65536), one byte the chunk size, the rest is the
//! stream. Asserts, against a model of `crates/network/src/codec.rs`'s documented rules:
//! a request within the limit is exactly the declared bytes; one above it but within four
//! times is drained (exactly the declared bytes consumed) and reported `Oversized`; one
//! beyond is refused after reading only the prefix; a response above the limit is refused;
//! a short stream is `UnexpectedEof`; and a frame written then read comes back unchanged.
#![no_main]

use futures::AsyncRead;
use futures::executor::block_on;
use futures::io::{AsyncWriteExt as _, Cursor};
use imi_network::codec::{DRAIN_FACTOR, Frame, FrameCodec, FrameTooLarge};
use libfuzzer_sys::fuzz_target;
use libp2p::StreamProtocol;
use libp2p::request_response::Codec as _;
use std::io::ErrorKind;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A stream that returns at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let rest = &self.data[self.pos..];
        let n = rest.len().min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

const PROTOCOL: StreamProtocol = StreamProtocol::new(imi_network::PROTOCOL);

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max = usize::from(u16::from_be_bytes([data[0], data[1]])) + 1;
    let chunk = usize::from(data[2]) + 1;
    let stream = &data[3..];
    let mut codec = FrameCodec::new(max);
    let max64 = max as u64;
    let declared = stream
        .get(..4)
        .map(|p| u64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]])));
    let available = stream.len().saturating_sub(4) as u64;

    // Requests.
    let mut reader = Chunked {
        data: stream,
        pos: 0,
        chunk,
    };
    let got = block_on(codec.read_request(&PROTOCOL, &mut reader));
    match (declared, got) {
        (None, Err(e)) => assert_eq!(e.kind(), ErrorKind::UnexpectedEof),
        (None, Ok(f)) => panic!("a frame without a length prefix: {f:?}"),
        (Some(n), Ok(Frame::Bytes(body))) => {
            assert!(n <= max64, "a body above the limit was kept");
            assert_eq!(body, stream[4..4 + n as usize], "not the declared bytes");
            assert_eq!(reader.pos, 4 + n as usize, "read beyond the frame");
        }
        (Some(n), Ok(Frame::Oversized(d))) => {
            assert_eq!(d, n);
            assert!(
                n > max64 && n <= max64 * DRAIN_FACTOR,
                "drained {n} with limit {max}"
            );
            assert!(available >= n);
            assert_eq!(reader.pos as u64, 4 + n, "drained other than the frame");
        }
        (Some(n), Err(e)) if n > max64 * DRAIN_FACTOR => {
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            let too_large = FrameTooLarge::find(&e).expect("a size error names the sizes");
            assert_eq!((too_large.size, too_large.limit), (n, max));
            assert_eq!(reader.pos, 4, "read beyond the prefix of a refused frame");
        }
        (Some(n), Err(e)) => {
            assert!(available < n, "{n} bytes were there: {e}");
            assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        }
    }

    // Responses.
    let mut reader = Chunked {
        data: stream,
        pos: 0,
        chunk,
    };
    let got = block_on(codec.read_response(&PROTOCOL, &mut reader));
    match (declared, got) {
        (Some(n), Ok(body)) => {
            assert!(n <= max64);
            assert_eq!(body, stream[4..4 + n as usize]);
        }
        (Some(n), Err(e)) if n > max64 => {
            assert_eq!(e.kind(), ErrorKind::InvalidData);
            assert_eq!(reader.pos, 4);
        }
        (Some(n), Err(e)) => {
            assert!(available < n, "{n} bytes were there: {e}");
            assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        }
        (None, got) => assert!(got.is_err()),
    }

    // Writing then reading gives the body back; above the limit writing is refused.
    let body = &stream[..stream.len().min(max + 1)];
    let mut wire = Cursor::new(Vec::new());
    let written = block_on(codec.write_request(&PROTOCOL, &mut wire, Frame::Bytes(body.to_vec())));
    if body.len() > max {
        assert_eq!(written.unwrap_err().kind(), ErrorKind::InvalidInput);
        assert!(wire.get_ref().is_empty());
    } else {
        written.expect("a body within the limit is written");
        block_on(wire.close()).expect("closes");
        let wire = wire.into_inner();
        let mut reader = Chunked {
            data: &wire,
            pos: 0,
            chunk,
        };
        let back = block_on(codec.read_request(&PROTOCOL, &mut reader)).expect("reads back");
        assert_eq!(back, Frame::Bytes(body.to_vec()));
    }
});
