//! systemd's notification protocol (`sd_notify`), without libsystemd: under a unit with
//! `Type=notify` the node says `READY=1` once it serves, `WATCHDOG=1` at half the unit's
//! `WatchdogSec` while its runtime and store answer, and `STOPPING=1` when it shuts down.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (newline-separated `KEY=value` lines) to `$NOTIFY_SOCKET`; false when
/// there is no socket or the send failed (logged at debug: systemd is optional).
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sent = (|| -> std::io::Result<()> {
        let sock = UnixDatagram::unbound()?;
        let bytes = path.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            // An abstract socket (Linux).
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            sock.send_to(state.as_bytes(), &path)?;
        }
        Ok(())
    })();
    if let Err(e) = &sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
    sent.is_ok()
}

/// The watchdog ping interval: half of `$WATCHDOG_USEC`, if systemd asks this process
/// (`$WATCHDOG_PID` unset or ours) for pings.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
