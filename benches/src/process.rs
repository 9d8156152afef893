//! A cross-process benchmark harness: a peer (a child process of the bench binary, or a thread
//! for in-process rivals) pinned to its own CPU, a shared memory area both sides map, and a
//! command handshake through that memory.
//!
//! A bench binary that uses process peers starts its `main` with [`child_main`], before criterion
//! parses the arguments: the child is the same binary re-executed with [`ROLE_ENV`] naming a role,
//! and `child_main` runs that role instead of the benchmarks.
//!
//! ```text
//! parent (CPU 0)                                   child (CPU 1)
//! Peer::process("role", len, init)
//!   memfd of 128 * 3 + len bytes, init(data) ---->  child_main(&[("role", run)])
//!   spawn, wait until ready                <-----   ready; run(PeerContext)
//! peer.post(argument) --- command line ---------->  ctx.next_command() == Some(argument)
//! ... the measured exchange through data ...        ... its side of the exchange ...
//! peer.wait() == result  <----- done line --------  ctx.done(result)
//! drop(peer): stop --------------------------------> next_command() == None: the role returns
//! ```
//!
//! The shared area is a memfd the child inherits (its number is passed in [`FD_ENV`]), so nothing
//! is ever left in `/dev/shm`, whatever happens to either process; the child also gets `SIGKILL`
//! when its parent dies. Both sides spin (with the CPU's pause hint) on the handshake: it costs
//! one cache-line hand-off each way, negligible beside a measured batch of thousands of messages.
//!
//! Every peer is pinned to [`CHILD_CPU`], so a bench can keep several alive and measure them in
//! turn: a peer that waited 200 µs for a command sleeps on a futex (an `Event`) until the next
//! post, leaving the CPU to the peer being measured. Wake a peer before timing it, with an untimed
//! [`Peer::call`] (a no-op command of the role), so the sleep is not in the figure; then time
//! only the exchange (see [`paired_timed`], where each side times itself).
//!
//! [`Peer::thread`] runs the same protocol with a pinned thread, so an in-process rival (rtrb,
//! crossbeam) is measured with exactly the same harness as a cross-process primitive.
//!
//! ```no_run
//! use shmkit_benches::process::{Peer, PeerContext, child_main};
//!
//! fn echo(mut ctx: PeerContext) {
//!     while let Some(argument) = ctx.next_command() {
//!         ctx.done(argument + 1);
//!     }
//! }
//!
//! fn main() {
//!     if child_main(&[("echo", echo)]) {
//!         return;
//!     }
//!     let mut peer = Peer::process("echo", 4096, |_data, _len| {});
//!     assert_eq!(peer.call(41), 42);
//! }
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::fs::MemfdFlags;
use rustix::mm::{MapFlags, ProtFlags};

/// Set in a child: the role it plays (a name given to [`child_main`]).
pub const ROLE_ENV: &str = "SHMKIT_BENCH_PROCESS_ROLE";
/// Set in a child: the number of the inherited memfd holding the shared area.
pub const FD_ENV: &str = "SHMKIT_BENCH_PROCESS_FD";
/// Set in a child: the size of the shared area in bytes.
const LEN_ENV: &str = "SHMKIT_BENCH_PROCESS_LEN";
/// Set in a child: the CPU to pin itself to.
const CPU_ENV: &str = "SHMKIT_BENCH_PROCESS_CPU";

/// The CPU the measuring (parent) thread is pinned to.
pub const PARENT_CPU: usize = 0;
/// The CPU a peer (child process or thread) is pinned to.
pub const CHILD_CPU: usize = 1;

/// How long the parent waits for a peer to start or to finish a command before failing the
/// bench (a peer that hangs must not hang the run).
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// The command word that tells the peer to return.
const STOP: u64 = u64::MAX;
/// How long an idle peer spins for the next command before it sleeps between checks.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);
/// The longest an idle peer sleeps before it checks that its parent is alive.
const IDLE_SLEEP: Duration = Duration::from_millis(100);

/// Pins the calling thread to `cpu`; `false` (and nothing changed) if this machine has no such
/// CPU or the call is refused, so a bench still runs (unpinned) on a one-core machine.
pub fn pin_current_thread(cpu: usize) -> bool {
    // Not `available_parallelism`: it counts the CPUs of the current affinity mask, which a child
    // inherits from its already pinned parent (one CPU), so the child could never move to its
    // own. The kernel refuses a CPU that is not there (`EINVAL`).
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        return false;
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// A `MAP_SHARED` mapping of a memfd: the handshake lines, then the data area.
#[derive(Debug)]
struct SharedArea {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the area is plain shared memory, accessed only through atomics (the control lines) and
// by the bench code's own shared-memory primitives (the data area); the handle owns the mapping.
unsafe impl Send for SharedArea {}
// SAFETY: as above; `&SharedArea` hands out only raw pointers and atomics.
unsafe impl Sync for SharedArea {}

/// The handshake at the start of the area, each word on a 128-byte line of its own.
#[repr(C, align(128))]
#[derive(Debug)]
struct Line(AtomicU64);

#[repr(C)]
#[derive(Debug)]
struct Control {
    /// Child → parent: 1 once the child is set up.
    ready: Line,
    /// Parent → child: the sequence number of the latest command ([`STOP`] to stop).
    command: Line,
    /// Parent → child: the latest command's argument (written before `command`).
    argument: Line,
    /// Child → parent: the sequence number of the latest finished command.
    done: Line,
    /// Child → parent: its result (written before `done`).
    result: Line,
    /// A `shmkit_sync::Event` (zero bytes are a fresh one) an idle peer sleeps on; `post`
    /// notifies it (no system call while the peer is awake).
    wake: Line,
}

const CONTROL_SIZE: usize = size_of::<Control>();

impl SharedArea {
    /// A fresh zero-filled area with `data_len` bytes of data after the control lines.
    fn create(data_len: usize) -> Self {
        // Not close-on-exec: the child inherits it.
        let fd = rustix::fs::memfd_create("shmkit-bench", MemfdFlags::empty()).expect("memfd");
        let len = CONTROL_SIZE + data_len.max(1).next_multiple_of(4096);
        rustix::fs::ftruncate(&fd, len as u64).expect("size the memfd");
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> Self {
        // SAFETY: a fresh mapping at an address the kernel picks; it aliases nothing of ours.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .expect("map the memfd");
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null");
        Self { fd, ptr, len }
    }

    fn control(&self) -> &Control {
        // SAFETY: the mapping is page-aligned, at least CONTROL_SIZE long, lives as long as
        // `self`, and the control lines are only ever accessed atomically.
        unsafe { self.ptr.cast::<Control>().as_ref() }
    }

    fn wake(&self) -> &shmkit_sync::Event {
        let line = NonNull::from(&self.control().wake).cast::<u8>();
        // SAFETY: a line of the control block, inside the mapping for as long as `self`, used
        // only as this event.
        unsafe { shmkit_sync::Event::open_at(line, size_of::<Line>()) }
            .expect("an event fits a line")
    }

    fn data(&self) -> (NonNull<u8>, usize) {
        // SAFETY: CONTROL_SIZE < len, so the result is inside the mapping.
        (unsafe { self.ptr.add(CONTROL_SIZE) }, self.len - CONTROL_SIZE)
    }
}

impl Drop for SharedArea {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; every user (`Peer`, `PeerContext`) is gone or joined.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The peer's side of the harness: the shared data area and the command handshake.
#[derive(Debug)]
pub struct PeerContext {
    area: std::sync::Arc<SharedArea>,
    last_command: u64,
    parent: Option<u32>,
}

impl PeerContext {
    /// The data area (128-byte aligned, as long as asked for in [`Peer::process`] or more), as
    /// the parent's `init` left it.
    pub fn data(&self) -> (NonNull<u8>, usize) {
        self.area.data()
    }

    /// Waits (spinning) for the parent's next command and returns its argument; `None` when the
    /// parent asked to stop (or died): the role should then return.
    pub fn next_command(&mut self) -> Option<u64> {
        let control = self.area.control();
        let idle_since = Instant::now();
        let mut spins = 0_u32;
        loop {
            let command = control.command.0.load(Ordering::Acquire);
            if command == STOP {
                return None;
            }
            if command > self.last_command {
                self.last_command = command;
                return Some(control.argument.0.load(Ordering::Relaxed));
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(256) && idle_since.elapsed() > SPIN_BEFORE_SLEEP {
                // Idle: sleep until the next post, leaving the CPU to the peer being measured
                // (peers share CHILD_CPU); wake now and then to see whether the parent is gone.
                if self.parent_gone() {
                    return None;
                }
                let last = self.last_command;
                let posted = || control.command.0.load(Ordering::Acquire) != last;
                self.area.wake().wait_until(posted, Some(IDLE_SLEEP));
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Whether the parent asked to stop: for a role that runs a loop of its own between
    /// commands (an echo) and checks now and then.
    pub fn stop_requested(&self) -> bool {
        self.area.control().command.0.load(Ordering::Relaxed) == STOP || self.parent_gone()
    }

    /// Reports the latest command finished, with `result` (what [`Peer::wait`] returns).
    pub fn done(&mut self, result: u64) {
        let control = self.area.control();
        control.result.0.store(result, Ordering::Relaxed);
        control.done.0.store(self.last_command, Ordering::Release);
    }

    fn parent_gone(&self) -> bool {
        self.parent.is_some_and(|parent| std::os::unix::process::parent_id() != parent)
    }
}

/// A role a child process can play: what [`child_main`] runs for a [`ROLE_ENV`] value.
pub type Role = fn(PeerContext);

/// Call first in a bench's `main`: in a child started by [`Peer::process`], runs the role named
/// by [`ROLE_ENV`] (pinned to [`CHILD_CPU`]) and returns `true` (then `main` must return without
/// running criterion); in the parent, returns `false` at once.
///
/// # Panics
///
/// In a child, if the role is unknown or the shared area cannot be mapped.
pub fn child_main(roles: &[(&str, Role)]) -> bool {
    let Ok(role) = std::env::var(ROLE_ENV) else { return false };
    let parent = std::os::unix::process::parent_id();
    // Die with the parent, however it dies; checked against a parent that died before this.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if std::os::unix::process::parent_id() != parent {
        return true;
    }
    let env = |key: &str| -> usize {
        std::env::var(key)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("the parent sets {key}"))
    };
    let cpu = env(CPU_ENV);
    pin_current_thread(cpu);
    let raw_fd = i32::try_from(env(FD_ENV)).expect("an fd number");
    // SAFETY: the parent passed the number of the memfd it left open for this child; nothing
    // else in this fresh process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
    let area = std::sync::Arc::new(SharedArea::map(fd, env(LEN_ENV)));
    let run = roles
        .iter()
        .find_map(|(name, run)| (*name == role).then_some(*run))
        .unwrap_or_else(|| panic!("unknown bench role {role}"));
    area.control().ready.0.store(1, Ordering::Release);
    run(PeerContext { area, last_command: 0, parent: Some(parent) });
    true
}

/// What runs the peer's side.
#[derive(Debug)]
enum Runner {
    Process(std::process::Child),
    Thread(Option<JoinHandle<()>>),
}

/// The parent's handle on a peer: posts commands, waits for their results; on drop stops the peer
/// and waits for it (a child process that does not stop within a minute is killed).
#[derive(Debug)]
pub struct Peer {
    area: std::sync::Arc<SharedArea>,
    runner: Runner,
    sequence: u64,
}

impl Peer {
    /// Starts this bench binary again as a child playing `role` (see [`child_main`]), pinned to
    /// [`CHILD_CPU`], sharing a fresh zero-filled data area of at least `data_len` bytes that
    /// `init(ptr, len)` prepares before the child starts. Pins the calling thread to
    /// [`PARENT_CPU`]. Returns once the child is running its role.
    ///
    /// # Panics
    ///
    /// If the child cannot be started or does not start within a minute.
    pub fn process(role: &str, data_len: usize, init: impl FnOnce(NonNull<u8>, usize)) -> Self {
        pin_current_thread(PARENT_CPU);
        let area = SharedArea::create(data_len);
        let (data, len) = area.data();
        init(data, len);
        let child = Command::new(std::env::current_exe().expect("bench binary path"))
            .env(ROLE_ENV, role)
            .env(FD_ENV, area.fd.as_raw_fd().to_string())
            .env(LEN_ENV, area.len.to_string())
            .env(CPU_ENV, CHILD_CPU.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the bench child");
        let mut peer =
            Self { area: std::sync::Arc::new(area), runner: Runner::Process(child), sequence: 0 };
        peer.spin_until(|control| control.ready.0.load(Ordering::Acquire) == 1, "start");
        peer
    }

    /// As [`Peer::process`], with `body` on a thread of this process pinned to [`CHILD_CPU`]
    /// instead of a child process: for in-process rivals, measured through the same handshake.
    pub fn thread(
        data_len: usize,
        init: impl FnOnce(NonNull<u8>, usize),
        body: impl FnOnce(PeerContext) + Send + 'static,
    ) -> Self {
        pin_current_thread(PARENT_CPU);
        let area = std::sync::Arc::new(SharedArea::create(data_len));
        let (data, len) = area.data();
        init(data, len);
        let context =
            PeerContext { area: std::sync::Arc::clone(&area), last_command: 0, parent: None };
        let handle = std::thread::spawn(move || {
            pin_current_thread(CHILD_CPU);
            context.area.control().ready.0.store(1, Ordering::Release);
            body(context);
        });
        let mut peer = Self { area, runner: Runner::Thread(Some(handle)), sequence: 0 };
        peer.spin_until(|control| control.ready.0.load(Ordering::Acquire) == 1, "start");
        peer
    }

    /// The data area, as the peer sees it.
    pub fn data(&self) -> (NonNull<u8>, usize) {
        self.area.data()
    }

    /// Posts a command with `argument` (the peer's [`PeerContext::next_command`] returns it) and
    /// returns at once.
    pub fn post(&mut self, argument: u64) {
        self.sequence += 1;
        let control = self.area.control();
        control.argument.0.store(argument, Ordering::Relaxed);
        control.command.0.store(self.sequence, Ordering::Release);
        self.area.wake().notify_all();
    }

    /// Waits (spinning) until the peer finished the latest posted command; returns its result.
    ///
    /// # Panics
    ///
    /// If the peer died or takes more than a minute.
    pub fn wait(&mut self) -> u64 {
        let sequence = self.sequence;
        self.spin_until(|control| control.done.0.load(Ordering::Acquire) >= sequence, "finish");
        self.area.control().result.0.load(Ordering::Relaxed)
    }

    /// [`Peer::post`] then [`Peer::wait`].
    pub fn call(&mut self, argument: u64) -> u64 {
        self.post(argument);
        self.wait()
    }

    fn spin_until(&mut self, mut ready: impl FnMut(&Control) -> bool, what: &str) {
        let start = Instant::now();
        let mut spins = 0_u32;
        while !ready(self.area.control()) {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 16) {
                assert!(self.alive(), "the bench peer died before it could {what}");
                assert!(
                    start.elapsed() < PEER_TIMEOUT,
                    "the bench peer did not {what} within {PEER_TIMEOUT:?}"
                );
            }
        }
    }

    fn alive(&mut self) -> bool {
        match &mut self.runner {
            Runner::Process(child) => matches!(child.try_wait(), Ok(None)),
            Runner::Thread(handle) => handle.as_ref().is_some_and(|handle| !handle.is_finished()),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.area.control().command.0.store(STOP, Ordering::Release);
        self.area.wake().notify_all();
        match &mut self.runner {
            Runner::Process(child) => {
                let start = Instant::now();
                while matches!(child.try_wait(), Ok(None)) {
                    if start.elapsed() > PEER_TIMEOUT {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Runner::Thread(handle) => {
                if let Some(handle) = handle.take()
                    && handle.join().is_err()
                    && !std::thread::panicking()
                {
                    panic!("the bench peer thread panicked");
                }
            }
        }
    }
}

pub use crate::Paired;

/// As [`crate::paired`], for sides that time themselves: each call of `a` or `b` returns the
/// duration of what it measured (leaving out, say, waking an idle peer). `rounds` rounds of one
/// call each, alternating which goes first; the medians of each side and of the per-round ratios
/// `a / b`, after one discarded warm-up round.
pub fn paired_timed(
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) -> Paired {
    a();
    b();
    let mut a_times = Vec::with_capacity(rounds);
    let mut b_times = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (ta, tb) = if round % 2 == 0 {
            let ta = a();
            (ta, b())
        } else {
            let tb = b();
            (a(), tb)
        };
        a_times.push(ta);
        b_times.push(tb);
        ratios.push(ta.as_secs_f64() / tb.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    a_times.sort();
    b_times.sort();
    ratios.sort_by(f64::total_cmp);
    let middle = rounds / 2;
    Paired {
        a: a_times.get(middle).copied().unwrap_or_default(),
        b: b_times.get(middle).copied().unwrap_or_default(),
        ratio: ratios.get(middle).copied().unwrap_or(f64::NAN),
    }
}
