//! The consumer process as the bench sees it: this same binary re-executed with the hidden
//! `__bench-consumer` command, talking back in lines on stdout (its errors on stderr). Killed and
//! reaped on drop, whatever happened.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{CliError, Result};
use crate::signal;

/// How long the bench waits for a word from its consumer before giving up on it.
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// A running consumer process.
#[derive(Debug)]
pub struct ConsumerProcess {
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    what: String,
}

impl ConsumerProcess {
    /// Starts `shmkit __bench-consumer ARGS` with `stdin` (a socket, or nothing).
    pub fn spawn(what: &str, args: &[String], stdin: Stdio) -> Result<Self> {
        let exe = std::env::current_exe().map_err(|error| {
            CliError::runtime(format!("cannot find this program to start the consumer: {error}"))
        })?;
        let mut child = Command::new(&exe)
            .arg("__bench-consumer")
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                CliError::runtime(format!(
                    "cannot start the {what} consumer ({}): {error}",
                    exe.display()
                ))
            })?;
        let (sender, lines) = channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        Ok(Self { child, lines, stderr, what: what.to_owned() })
    }

    /// Fails if a signal arrived or the consumer exited.
    pub fn check(&mut self) -> Result<()> {
        if let Some(signal) = signal::received() {
            return Err(interrupted(signal));
        }
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.failed(&format!("exited early ({status})"))),
            Err(error) => {
                Err(CliError::runtime(format!("cannot watch the {} consumer: {error}", self.what)))
            }
        }
    }

    /// The consumer's next line, waiting at most [`CHILD_TIMEOUT`] (and stopping for a signal).
    pub fn next_line(&mut self) -> Result<String> {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            if let Some(signal) = signal::received() {
                return Err(interrupted(signal));
            }
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => return Ok(line),
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(CliError::runtime(format!(
                        "the {} consumer said nothing for {} s: is the machine overloaded?",
                        self.what,
                        CHILD_TIMEOUT.as_secs()
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status =
                        self.child.wait().map(|status| status.to_string()).unwrap_or_default();
                    return Err(self.failed(&format!("exited ({status})")));
                }
            }
        }
    }

    /// Waits for the consumer to exit, and checks it succeeded.
    pub fn finish(mut self) -> Result<()> {
        let status = self.child.wait().map_err(|error| {
            CliError::runtime(format!("cannot wait for the {} consumer: {error}", self.what))
        })?;
        if status.success() { Ok(()) } else { Err(self.failed(&format!("failed ({status})"))) }
    }

    /// The error for a consumer that stopped: its own message (its stderr), else `how`.
    fn failed(&mut self, how: &str) -> CliError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let said = self.stderr.take().and_then(|thread| thread.join().ok()).unwrap_or_default();
        let said = said
            .lines()
            .find_map(|line| line.strip_prefix("shmkit: error: "))
            .unwrap_or(said.trim());
        if said.is_empty() {
            CliError::runtime(format!("the {} consumer {how}", self.what))
        } else {
            CliError::runtime(format!("the {} consumer {how}: {said}", self.what))
        }
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The error for a bench stopped by `signal`.
pub fn interrupted(signal: &str) -> CliError {
    CliError::runtime(format!(
        "interrupted by {signal}: the bench region is removed and the consumer stopped"
    ))
}

/// Polls for signals and a dead consumer every so many calls, for the producer's spin loops:
/// cheap enough to call on every spin.
#[derive(Debug)]
pub struct Watch<'c> {
    child: &'c mut ConsumerProcess,
    polls: u32,
    stalled_since: Option<Instant>,
}

impl<'c> Watch<'c> {
    /// Watches `child`.
    pub fn new(child: &'c mut ConsumerProcess) -> Self {
        Self { child, polls: 0, stalled_since: None }
    }

    /// Called on each spin while waiting for the consumer.
    #[inline]
    pub fn spin(&mut self) -> Result<()> {
        std::hint::spin_loop();
        self.polls = self.polls.wrapping_add(1);
        if self.polls.is_multiple_of(4096) { self.check_slow() } else { Ok(()) }
    }

    /// Called after progress: the consumer is alive and moving.
    #[inline]
    pub fn moved(&mut self) {
        self.stalled_since = None;
    }

    #[cold]
    fn check_slow(&mut self) -> Result<()> {
        self.child.check()?;
        let since = *self.stalled_since.get_or_insert_with(Instant::now);
        if since.elapsed() > CHILD_TIMEOUT {
            return Err(CliError::runtime(format!(
                "the {} consumer took nothing for {} s: is the machine overloaded?",
                self.child.what,
                CHILD_TIMEOUT.as_secs()
            )));
        }
        // Give the CPU away now and then: on a busy machine (or with one CPU for both processes)
        // the consumer may be waiting for it; on an idle one this returns at once.
        std::thread::yield_now();
        Ok(())
    }

    /// The consumer being watched.
    pub fn child(&mut self) -> &mut ConsumerProcess {
        self.child
    }
}
