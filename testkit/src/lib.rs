//! Test helpers shared by the crates' integration tests (a dev-dependency only, never published):
//! unique region names, cleanup guards, shared regions that clean up after themselves, and child
//! processes (the test binary re-executed in a role) that talk to their parent over stdin/stdout.

#![allow(
    clippy::missing_panics_doc,
    reason = "test helpers panic to fail the test that called them; that is their contract"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};

/// The environment variable that makes a re-executed test binary play a child's role.
pub const ROLE_ENV: &str = "SHMKIT_TEST_ROLE";
/// How long a parent waits for a line from its child before failing the test.
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// `PREFIX-PID-N`, unique per process and call, valid as a region [`Name`].
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A unique region name.
pub fn unique_name(prefix: &str) -> Name {
    Name::new(&unique(prefix)).expect("test names are valid")
}

/// A unique path in the temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempPath(pub PathBuf);

impl TempPath {
    /// A path named after `prefix` that no other test uses.
    pub fn new(prefix: &str) -> Self {
        Self(std::env::temp_dir().join(unique(&format!("shmkit-{prefix}"))))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes a System V segment on drop (if still there).
#[derive(Debug)]
pub struct SysvGuard(pub i32);

impl Drop for SysvGuard {
    fn drop(&mut self) {
        let _ = shmkit_os::sysv::remove_id(self.0);
    }
}

/// Unlinks a named region in every page size on drop.
#[derive(Debug)]
pub struct RegionGuard(pub Name);

impl Drop for RegionGuard {
    fn drop(&mut self) {
        for page_size in PageSize::ALL {
            let _ = shmkit_os::unlink(&self.0, page_size);
        }
    }
}

/// The environment variable that names a [`SharedRegion`] to a child
/// ([`SharedRegion::env`], [`SharedRegion::from_env`]).
pub const REGION_ENV: &str = "SHMKIT_TEST_REGION";

/// One page of POSIX shared memory (`/dev/shm`), mapped read-write. The region that
/// [`SharedRegion::create`] makes has a unique name and is unlinked on drop (after the unmap),
/// also when the test panics; one [`SharedRegion::open`]ed by name (in a child, say) is only
/// unmapped.
#[derive(Debug)]
pub struct SharedRegion {
    name: Name,
    mapping: Mapping,
    /// Declared after `mapping`, so dropped after it: unmap, then unlink.
    _guard: Option<RegionGuard>,
}

impl SharedRegion {
    /// Creates a region of one normal page under a unique name (`PREFIX-PID-N`) and maps it.
    pub fn create(prefix: &str) -> Self {
        let name = unique_name(prefix);
        // Made before the region: a failure from here on still unlinks it.
        let guard = RegionGuard(name);
        RegionOptions::new().create(&name, 1).expect("create the test region");
        Self::map(name, Some(guard))
    }

    /// Maps the existing region `name` read-write; dropping it leaves the region in place.
    pub fn open(name: &Name) -> Self {
        Self::map(*name, None)
    }

    fn map(name: Name, guard: Option<RegionGuard>) -> Self {
        let mapping = Region::open(&name, None, Access::ReadWrite)
            .and_then(|region| region.map(&MapOptions::new()))
            .expect("map the test region");
        Self { name, mapping, _guard: guard }
    }

    /// In a child: [`SharedRegion::open`] of the region its parent named with
    /// [`SharedRegion::env`].
    pub fn from_env() -> Self {
        Self::open(&Name::new(&child_env(REGION_ENV)).expect("valid name"))
    }

    /// The environment entry that names this region to a child ([`ChildProcess::spawn`]'s
    /// `env`), for [`SharedRegion::from_env`].
    pub fn env(&self) -> (&'static str, String) {
        (REGION_ENV, self.name.as_str().to_owned())
    }

    /// The region's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The mapping.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The first byte of the mapping.
    pub fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.mapping.as_ptr()).expect("a mapping is never null")
    }

    /// The length of the mapping in bytes.
    #[allow(clippy::len_without_is_empty, reason = "a mapped region is never empty")]
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// The byte `offset` bytes into the mapping, and how many bytes follow it (itself included):
    /// the range to place an object at `offset` in.
    pub fn range_at(&self, offset: usize) -> (NonNull<u8>, usize) {
        assert!(offset < self.len(), "offset {offset} outside the {} mapped bytes", self.len());
        (
            NonNull::new(self.mapping.as_ptr().wrapping_add(offset)).expect("mapped"),
            self.len() - offset,
        )
    }

    /// The atomic word at `offset` (8-aligned, inside the mapping).
    pub fn atomic_u64(&self, offset: usize) -> &AtomicU64 {
        self.mapping.atomic_u64(offset).expect("the word fits")
    }
}

/// The role this process plays, when it is a child started by [`ChildProcess::spawn`].
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// An environment variable the parent set for the child.
pub fn child_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("the parent sets {key}"))
}

/// A child's message to its parent: one line on stdout, with a marker the harness's own output
/// never has.
pub fn tell_parent(message: &str) {
    println!("@@ {message}");
}

/// Blocks the child until the parent sends a line (or closes stdin).
pub fn wait_for_parent() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_owned()
}

/// This test binary running one test (`test_name`) in a child role, with piped stdin/stdout to
/// talk to it; killed on drop if still running.
#[derive(Debug)]
pub struct ChildProcess {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    role: String,
}

impl ChildProcess {
    /// Starts `test_name` of this binary in `role`, with `env` set.
    pub fn spawn(test_name: &str, role: &str, env: &[(&str, String)]) -> Self {
        Self::spawn_with(test_name, role, env, |_| {})
    }

    /// As [`ChildProcess::spawn`], letting `adjust` change the command first.
    pub fn spawn_with(
        test_name: &str,
        role: &str,
        env: &[(&str, String)],
        adjust: impl FnOnce(&mut Command),
    ) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("test binary path"));
        command
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        adjust(&mut command);
        let mut child = command.spawn().expect("spawn the child");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness writes `test NAME ... ` without a newline before the test runs.
                if let Some((_, message)) = line.split_once("@@ ")
                    && sender.send(message.to_owned()).is_err()
                {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self { child, stdin, lines, role: role.to_owned() }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9` the child. It stays a zombie (its pid still taken, `kill(pid, 0)` still finds
    /// it) until it is dropped.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9 the child");
    }

    /// `kill -9` the child, then reap it.
    pub fn kill_and_reap(mut self) {
        self.kill();
        self.child.wait().expect("reap the child");
    }

    /// The next message of the child, which must start with `prefix`; returns the rest.
    pub fn expect(&mut self, prefix: &str) -> String {
        match self.lines.recv_timeout(CHILD_TIMEOUT) {
            Ok(message) => match message.strip_prefix(prefix) {
                Some(rest) => rest.trim().to_owned(),
                None => panic!("child {} said {message:?}, expected {prefix:?}", self.role),
            },
            Err(RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing for {CHILD_TIMEOUT:?}", self.role)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!(
                    "child {} exited before saying {prefix:?}: {:?}",
                    self.role,
                    self.child.wait()
                )
            }
        }
    }

    /// Sends a line to the child.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to the child");
        stdin.flush().expect("flush to the child");
    }

    /// Waits for the child to exit and checks that its test passed.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the child");
        assert!(status.success(), "child {} failed: {status}", self.role);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Free pages in the kernel's pool of `page_size` (0 for normal pages, which have no pool).
pub fn free_huge_pages(page_size: PageSize) -> u64 {
    let kib = page_size.bytes() / 1024;
    std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-{kib}kB/free_hugepages"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether `pages` free pages of `page_size` are in the pool. If not: a failure with
/// `SHMKIT_REQUIRE_HUGEPAGES=1`, else a printed reason to skip.
pub fn huge_pages_ready(page_size: PageSize, pages: u64) -> bool {
    let free = free_huge_pages(page_size);
    if free >= pages {
        return true;
    }
    let reason = format!(
        "{pages} free {page_size} pages needed, {free} in the pool: run `cargo xtask setup-hugepages`"
    );
    assert!(
        std::env::var("SHMKIT_REQUIRE_HUGEPAGES").as_deref() != Ok("1"),
        "SHMKIT_REQUIRE_HUGEPAGES=1 but {reason}"
    );
    eprintln!("skipped: {reason}");
    false
}

/// Whether shmkit's hugetlbfs mount for `page_size` is there; as [`huge_pages_ready`] if not.
pub fn hugetlbfs_ready(page_size: PageSize) -> bool {
    match shmkit_os::mounts::region_dir(page_size) {
        Ok(_) => true,
        Err(error) => {
            assert!(
                std::env::var("SHMKIT_REQUIRE_HUGEPAGES").as_deref() != Ok("1"),
                "SHMKIT_REQUIRE_HUGEPAGES=1 but {error}"
            );
            eprintln!("skipped: {error}");
            false
        }
    }
}

/// xorshift64*: a small deterministic generator, so that a randomized test names a seed that
/// reproduces its failure. Not for anything but tests.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 pseudo-random bits. (The state must not be 0, which stays 0.)
    #[allow(
        clippy::should_implement_trait,
        reason = "an endless generator, not an iterator: `next` reads better in tests"
    )]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// A zero-filled, 128-byte aligned heap buffer standing in for a shared mapping, for tests of
/// primitives placed in caller-given bytes.
#[derive(Debug)]
pub struct HeapBuffer(Vec<HeapBlock>);

/// One 128-byte aligned block of a [`HeapBuffer`].
#[repr(C, align(128))]
#[derive(Clone, Copy, Debug)]
pub struct HeapBlock([u8; 128]);

impl HeapBuffer {
    /// At least `len` bytes, rounded up to whole blocks.
    pub fn new(len: usize) -> Self {
        Self(vec![HeapBlock([0; 128]); len.div_ceil(128)])
    }

    /// The start and length of the bytes.
    pub fn range(&mut self) -> (NonNull<u8>, usize) {
        let ptr = NonNull::new(self.0.as_mut_ptr().cast::<u8>()).expect("a vector is never null");
        (ptr, self.0.len() * 128)
    }

    /// The 8-byte word at `offset`, to write as a peer would (the primitive must access those
    /// bytes only atomically, or through raw copies, never through references).
    ///
    /// # Panics
    ///
    /// If the word is not inside the buffer or not 8-aligned.
    pub fn word(&mut self, offset: usize) -> &AtomicU64 {
        let (ptr, len) = self.range();
        assert!(offset + 8 <= len && offset.is_multiple_of(8), "word at {offset} of {len}");
        // SAFETY: inside the buffer and 8-aligned (checked), borrowed from it.
        unsafe { ptr.add(offset).cast::<AtomicU64>().as_ref() }
    }
}
