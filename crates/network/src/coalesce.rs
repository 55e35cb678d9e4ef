//! One socket write per poll of a connection, not one per Yamux frame.
//!
//! Yamux's connection (`yamux::Connection::poll`, 0.14) writes each frame its streams queued
//! and flushes after every one; Noise turns each flush into a frame of its own, and each
//! Noise frame into a `send` on the TCP socket. A request and its answer are several Yamux
//! frames each way (the stream's protocol proposal, the body, the stream's close, the
//! other side's echo, answer and close), so a message cost about a dozen socket writes
//! across both nodes, and each can wake the peer's reader (BENCHMARKS.md, *One socket write
//! per poll*).
//!
//! [`Coalesce`] sits between Noise and Yamux and defers the flush: `poll_flush` answers at
//! once (Yamux does not wait for it), writes go on into Noise's buffer, and the real flush
//! happens at the connection's next read, which Yamux's loop reaches only when no stream has
//! another frame queued, just before it waits; or at close. So the frames one poll of the
//! connection writes leave in one Noise frame and one socket write. Nothing waits for a
//! timer: the bytes leave in the same poll that wrote them.
//!
//! This relies on how Yamux's connection loop is built (it reads after writing whatever is
//! queued, every time round, unless a frame it owes is blocked on a full socket, when the
//! socket's write wakes it again). A change there would show in the network tests, where
//! every exchange would then wait forever; the test `an_exchange_takes_few_socket_writes`
//! counts the socket writes of requests and their answers
//! ([`crate::NetworkClient::socket_writes`]).
use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use futures::{AsyncRead, AsyncWrite, future};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};

/// A connection whose flushes wait for its next read or its close.
#[derive(Debug)]
pub(crate) struct Coalesce<C> {
    inner: C,
    /// Bytes written since the last real flush.
    dirty: bool,
}

impl<C: AsyncWrite + Unpin> Coalesce<C> {
    fn flush_now(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dirty {
            ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
            self.dirty = false;
        }
        Poll::Ready(Ok(()))
    }
}

impl<C: AsyncRead + AsyncWrite + Unpin> AsyncRead for Coalesce<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // The deferred flush. If the socket is full, its write wakes this connection and
        // the flush is tried again at the next read; reading meanwhile is fine.
        if let Poll::Ready(Err(e)) = this.flush_now(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Coalesce<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.dirty |= n > 0;
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        this.dirty |= n > 0;
        Poll::Ready(Ok(n))
    }

    /// Deferred to the next read or the close (see the module's documentation).
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.flush_now(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

/// Yamux over [`Coalesce`]: the upgrade `multiplex_ext` is given.
#[derive(Debug, Clone)]
pub(crate) struct CoalescedYamux(pub libp2p::yamux::Config);

fn wrap<C>(inner: C) -> Coalesce<C> {
    Coalesce {
        inner,
        dirty: false,
    }
}

impl UpgradeInfo for CoalescedYamux {
    type Info = <libp2p::yamux::Config as UpgradeInfo>::Info;
    type InfoIter = <libp2p::yamux::Config as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.protocol_info()
    }
}

impl<C> InboundConnectionUpgrade<C> for CoalescedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = libp2p::yamux::Muxer<Coalesce<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_inbound(wrap(io), info)
    }
}

impl<C> OutboundConnectionUpgrade<C> for CoalescedYamux
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = libp2p::yamux::Muxer<Coalesce<C>>;
    type Error = io::Error;
    type Future = future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, io: C, info: Self::Info) -> Self::Future {
        self.0.upgrade_outbound(wrap(io), info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt, AsyncWriteExt};

    /// A socket that counts flushes and records what reached it.
    #[derive(Default)]
    struct Socket {
        written: Vec<u8>,
        flushed: usize,
        closed: bool,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(0))
        }
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().written.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().flushed += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.get_mut().closed = true;
            Poll::Ready(Ok(()))
        }
    }

    fn coalesce() -> Coalesce<Socket> {
        wrap(Socket::default())
    }

    #[tokio::test]
    async fn flushes_wait_for_the_next_read() {
        let mut c = coalesce();
        for frame in [&b"one"[..], b"two", b"three"] {
            c.write_all(frame).await.unwrap();
            c.flush().await.unwrap();
        }
        assert_eq!(c.inner.written, b"onetwothree");
        assert_eq!(c.inner.flushed, 0, "no flush before the read");
        let mut buf = [0u8; 4];
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        assert_eq!(c.inner.flushed, 1, "the three frames in one flush");
        // Nothing written since: a read does not flush again.
        assert_eq!(c.read(&mut buf).await.unwrap(), 0);
        assert_eq!(c.inner.flushed, 1);
    }

    #[tokio::test]
    async fn close_flushes_first() {
        let mut c = coalesce();
        c.write_all(b"last").await.unwrap();
        c.flush().await.unwrap();
        c.close().await.unwrap();
        assert_eq!((c.inner.flushed, c.inner.closed), (1, true));
    }
}
