//! Helpers shared by the multi-process tests of the locks and events: the children every test
//! binary starts (its own `child_process_entry` test, in a role), the plain words a lock under
//! test protects, and the limits the tests wait within.
#![allow(dead_code, reason = "each test binary uses a part of the helpers")]

use std::time::Duration;

use shmkit_testkit::{ChildProcess, SharedRegion, child_env, tell_parent, wait_for_parent};

/// How many rounds a counting or ping-pong child runs ([`rounds`]).
pub(crate) const ROUNDS_ENV: &str = "SHMKIT_TEST_ROUNDS";
/// How long a child waits for the object its parent initialised to be published.
pub(crate) const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Far beyond any wait that should end; only a hang (or a lost wake-up) reaches it.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// Starts this test binary's `child_process_entry` in `role`, with `env`.
pub(crate) fn spawn(role: &str, env: &[(&str, String)]) -> ChildProcess {
    ChildProcess::spawn("child_process_entry", role, env)
}

/// As [`spawn`], with `region` named in the child's environment ([`SharedRegion::from_env`])
/// besides `extra`.
pub(crate) fn spawn_on(
    region: &SharedRegion,
    role: &str,
    extra: &[(&str, String)],
) -> ChildProcess {
    let mut env = vec![region.env()];
    env.extend_from_slice(extra);
    spawn(role, &env)
}

/// Starts a child in `role` on `region`, and returns what it says after `prefix` once it has
/// exited with its test passed: for children that report one outcome.
pub(crate) fn ask(region: &SharedRegion, role: &str, prefix: &str) -> String {
    let mut child = spawn_on(region, role, &[]);
    let answer = child.expect(prefix);
    child.finish();
    answer
}

/// In a child: the rounds its parent asked for in [`ROUNDS_ENV`].
pub(crate) fn rounds() -> u64 {
    child_env(ROUNDS_ENV).parse().expect("rounds")
}

/// Waits until every child says "ready", then tells them all "go", so that they start together.
pub(crate) fn start_together(children: &mut [ChildProcess]) {
    for child in children.iter_mut() {
        child.expect("ready");
    }
    for child in children.iter_mut() {
        child.send("go");
    }
}

/// A counting child's side: says "ready", waits for the parent's "go" ([`start_together`]),
/// then [`rounds`] times takes a lock with `lock` and, under it, increments the plain word at
/// `offset` of `region`; says "counted" at the end.
pub(crate) fn count_under<G>(region: &SharedRegion, offset: usize, mut lock: impl FnMut() -> G) {
    let rounds = rounds();
    tell_parent("ready");
    wait_for_parent();
    for _ in 0..rounds {
        let guard = lock();
        region.write(offset, region.read(offset) + 1);
        drop(guard);
    }
    tell_parent("counted");
}

/// Waits for each child to say `message`, then to exit with its test passed.
pub(crate) fn finish_all(children: impl IntoIterator<Item = ChildProcess>, message: &str) {
    for mut child in children {
        child.expect(message);
        child.finish();
    }
}

/// Plain (volatile, not atomic) accesses to the `u64` words of a region that a lock under test
/// protects: the caller holds the lock, or no one else runs. Plain on purpose: a lock that let
/// two holders in would lose increments or show a half-done pair of writes.
pub(crate) trait PlainWords {
    /// Reads the word at `offset` (8-aligned, inside the region).
    fn read(&self, offset: usize) -> u64;
    /// Writes the word at `offset` (8-aligned, inside the region).
    fn write(&self, offset: usize, value: u64);
}

impl PlainWords for SharedRegion {
    fn read(&self, offset: usize) -> u64 {
        // SAFETY: inside the mapping, which lives as long as `self`, and 8-aligned (`word`
        // checks); the lock under test keeps other writers out.
        unsafe { word(self, offset).read_volatile() }
    }

    fn write(&self, offset: usize, value: u64) {
        // SAFETY: as in `read`; the caller holds the lock.
        unsafe { word(self, offset).write_volatile(value) }
    }
}

/// The word at `offset` of `region`, checked to lie inside it and be aligned.
fn word(region: &SharedRegion, offset: usize) -> *mut u64 {
    assert!(offset.is_multiple_of(8) && offset + 8 <= region.len(), "word at {offset}");
    region.ptr().as_ptr().wrapping_add(offset).cast()
}
