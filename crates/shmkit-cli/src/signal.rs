//! Ctrl-C for `bench`: `SIGINT`, `SIGTERM` and `SIGHUP` set a flag that the bench's loops poll,
//! so that it stops at the next check and its guards remove the region and stop the consumer
//! (killed by a signal, the process would leave both behind).
//!
//! `sigaction` is the one call of this crate that needs `unsafe` and libc: rustix has no signal
//! handler call, and the handler runs in signal context, where it may only touch an atomic.
#![allow(
    unsafe_code,
    reason = "sigaction has no safe wrapper in std or rustix; see the module docs"
)]

use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal that arrived, 0 while none has.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signals that stop a bench.
const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Records the signal; async-signal-safe (one atomic store).
extern "C" fn on_signal(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::Relaxed);
}

/// Installs the handler for `SIGINT`, `SIGTERM` and `SIGHUP` in this process.
pub fn install() -> io::Result<()> {
    for signal in SIGNALS {
        // SAFETY: `sigaction` is plain data, all-zero is a valid value (no flags, empty mask)
        // before the fields we set.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // Restart interrupted calls: the loops poll the flag, nothing needs EINTR.
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a valid sigset_t owned by us.
        unsafe { libc::sigemptyset(&raw mut action.sa_mask) };
        // SAFETY: `action` is a fully initialised sigaction whose handler only stores an atomic
        // (async-signal-safe); a null old-action pointer is allowed.
        let result = unsafe { libc::sigaction(signal, &raw const action, std::ptr::null_mut()) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal received since [`install`], if any (its name for messages).
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        libc::SIGHUP => Some("SIGHUP"),
        _ => Some("a signal"),
    }
}
