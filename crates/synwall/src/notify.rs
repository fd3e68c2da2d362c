//! systemd's service protocol for `synwall run` (`Type=notify`), through the sd-notify crate:
//! `READY=1` once the node's links are in place, `STATUS=` saying the epoch and the salt in use,
//! `RELOADING=1` ... `READY=1` around a reload, `STOPPING=1`, and `WATCHDOG=1` from the rotation
//! loop at half the `WatchdogSec=` interval, so a loop that stops rotating salts gets the service
//! restarted (the restart adopts the pinned programs: nothing is dropped).
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing. A failed send is
//! logged once and otherwise ignored: the node runs the same with or without a service manager.

use sd_notify::NotifyState;
use std::time::{Duration, Instant};
use tracing::warn;

/// The daemon's side of the protocol.
pub struct Notifier {
    /// How often to send `WATCHDOG=1` (half of `WatchdogSec=`), if the watchdog is on.
    every: Option<Duration>,
    last: Instant,
    failed: bool,
}

impl Notifier {
    /// From the environment systemd gives the service (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
    /// `WATCHDOG_PID`).
    pub fn from_env() -> Notifier {
        Notifier {
            every: sd_notify::watchdog_enabled().map(|d| d / 2),
            last: Instant::now(),
            failed: false,
        }
    }

    /// The watchdog interval systemd asked for, if any.
    pub fn watchdog(&self) -> Option<Duration> {
        self.every.map(|d| d * 2)
    }

    fn send(&mut self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            if !self.failed {
                warn!("cannot notify the service manager ($NOTIFY_SOCKET): {e}");
                self.failed = true;
            }
        }
    }

    /// The node is up: its links are attached (or adopted) and pinned.
    pub fn ready(&mut self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last = Instant::now();
    }

    /// What the node is doing, for `systemctl status`.
    pub fn status(&mut self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// A reload (SIGHUP) starts. systemd 253 and later want the monotonic clock with it.
    pub fn reloading(&mut self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// The node is going down.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// Called from the rotation loop on every tick: `WATCHDOG=1` when one is due.
    pub fn tick(&mut self) {
        if let Some(every) = self.every {
            if self.last.elapsed() >= every {
                self.send(&[NotifyState::Watchdog]);
                self.last = Instant::now();
            }
        }
    }
}
