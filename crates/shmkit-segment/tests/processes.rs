//! Real peer processes (this test binary re-executed in a role): a server and a client exchanging
//! a million records, a peer scribbling over the header, a lock holder that dies, a peer of
//! another user, a creator killed with its segments.
//!
//! Parent and child meet on a Unix socket bound in a fresh folder (the child connects, so the
//! parent reads the child's credentials with `SO_PEERCRED`); lines on the child's stdin and
//! stdout carry the rest. Nothing is timed.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_segment::{
    Error, HEADER_SIZE, Implementation, OpenOptions, PeerCredentials, RingConsumer, RingProducer,
    Segment, SegmentOptions, SpinFutex,
};
use shmkit_testkit::{ChildProcess, child_env, child_role, tell_parent, unique, wait_for_parent};

const RECORDS: u64 = 1_000_000;
/// Long enough for a busy 2-core machine; only a hang ever reaches it.
const PATIENCE: Duration = Duration::from_secs(120);

/// A Unix socket the parent listens on, in a folder of its own (removed on drop), open to any
/// user so that a child that became `nobody` can connect.
struct Rendezvous {
    dir: PathBuf,
    path: PathBuf,
    listener: UnixListener,
}

impl Rendezvous {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("shmkit-segment-test"));
        std::fs::create_dir(&dir).expect("create the socket folder");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.join("socket");
        let listener = UnixListener::bind(&path).expect("bind");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        listener.set_nonblocking(true).expect("non-blocking listener");
        Self { dir, path, listener }
    }

    /// Starts the child in `role`, with the socket's path and the implementation in its
    /// environment.
    fn spawn(&self, role: &str, implementation: Implementation) -> ChildProcess {
        let env = [
            ("SHMKIT_TEST_SOCKET", self.path.display().to_string()),
            ("SHMKIT_TEST_IMPLEMENTATION", implementation.to_string()),
        ];
        ChildProcess::spawn("child_process_entry", role, &env)
    }

    /// The child's connection (failing the test if it never comes).
    fn accept(&self) -> UnixStream {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking stream");
                    return stream;
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the child never connected");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(error) => panic!("accept: {error}"),
            }
        }
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn child_implementation() -> Implementation {
    match child_env("SHMKIT_TEST_IMPLEMENTATION").as_str() {
        "POSIX" => Implementation::Posix,
        "SysV" => Implementation::SysV,
        "memfd" => Implementation::Memfd,
        other => panic!("unknown implementation {other}"),
    }
}

fn connect() -> UnixStream {
    UnixStream::connect(child_env("SHMKIT_TEST_SOCKET")).expect("connect to the parent")
}

/// Record `index` of the exchange: its index, then 0 to 40 bytes derived from it.
fn record(index: u64, buffer: &mut [u8; 64]) -> usize {
    let length = 8 + (index % 41) as usize;
    buffer[..8].copy_from_slice(&index.to_le_bytes());
    for (offset, byte) in buffer[8..length].iter_mut().enumerate() {
        *byte = (index as u8).wrapping_add(offset as u8);
    }
    length
}

/// A small deterministic generator (xorshift64*), so a failing seed can be replayed.
struct Random(u64);

impl Random {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The child's side of every test; a plain run (no role in the environment) does nothing.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        "client" => client(),
        "scribbler" => scribbler(),
        "locker" => locker(),
        "nobody" => nobody(),
        "creator" => creator(),
        other => panic!("unknown child role {other}"),
    }
}

// ---- A server and a client exchange a million records and agree on common data. ----

const EXCHANGE_SIZE: usize = 256 * 1024;

fn client() {
    let stream = connect();
    let segment = Segment::receive(&stream, EXCHANGE_SIZE).expect("receive the segment");
    assert_eq!(segment.implementation(), child_implementation());
    let line = wait_for_parent();
    let mut words = line.split_ascii_whitespace().map(|word| word.parse::<u64>().expect("offset"));
    let (table, answer) = (words.next().expect("table"), words.next().expect("answer"));
    for index in 0..64 {
        let word = segment.atomic_u64(table + 8 * index).expect("table word");
        assert_eq!(word.load(Ordering::Acquire), index * index, "the server's table");
    }
    let mut consumer = segment.ring_consumer().expect("consumer");
    let strategy = SpinFutex::default();
    let (mut buffer, mut expected) = ([0; 64], [0; 64]);
    let mut checksum = 0u64;
    for index in 0..RECORDS {
        let length =
            consumer.read_blocking(&mut buffer, &strategy, Some(PATIENCE)).expect("a record");
        let expected_length = record(index, &mut expected);
        assert_eq!(&buffer[..length], &expected[..expected_length], "record {index}");
        checksum = checksum.wrapping_add(index.wrapping_mul(length as u64));
    }
    segment.atomic_u64(answer).expect("answer").store(checksum, Ordering::Release);
    let block = segment.data_alloc(16, 16).expect("the client allocates too");
    segment.write_at(block, b"client was here!").expect("write");
    tell_parent(&format!("done {block} {checksum}"));
}

fn exchange(implementation: Implementation) {
    let rendezvous = Rendezvous::new();
    let mut child = rendezvous.spawn("client", implementation);
    let stream = rendezvous.accept();
    let peer = PeerCredentials::of_socket(&stream).expect("peer credentials");
    assert_eq!(peer.pid, child.pid());
    let segment = SegmentOptions::new(EXCHANGE_SIZE)
        .peer(peer)
        .implementation(implementation)
        .ring_capacity(64 * 1024)
        .create()
        .expect("create");
    let table = segment.data_alloc(64 * 8, 64).expect("table");
    for index in 0..64 {
        segment
            .atomic_u64(table + 8 * index)
            .expect("word")
            .store(index * index, Ordering::Relaxed);
    }
    let answer = segment.data_alloc(8, 8).expect("answer");
    segment.send(&stream).expect("send the segment");
    child.send(&format!("{table} {answer}"));

    let mut producer = segment.ring_producer().expect("producer");
    let strategy = SpinFutex::default();
    let mut buffer = [0; 64];
    let mut checksum = 0u64;
    for index in 0..RECORDS {
        let length = record(index, &mut buffer);
        producer.append_blocking(&buffer[..length], &strategy, Some(PATIENCE)).expect("append");
        checksum = checksum.wrapping_add(index.wrapping_mul(length as u64));
    }
    let reply = child.expect("done");
    let mut words = reply.split_ascii_whitespace().map(|word| word.parse::<u64>().expect("number"));
    let (block, child_checksum) = (words.next().expect("block"), words.next().expect("sum"));
    assert_eq!(child_checksum, checksum, "the client read every record");
    assert_eq!(segment.atomic_u64(answer).expect("answer").load(Ordering::Acquire), checksum);
    assert!(block >= answer + 8, "the client's allocation follows the server's");
    let mut note = [0; 16];
    segment.read_at(block, &mut note).expect("read");
    assert_eq!(&note, b"client was here!");
    assert!(producer.is_empty().expect("len"));
    child.finish();
}

#[test]
fn a_million_records_between_processes_posix() {
    exchange(Implementation::Posix);
}

#[test]
fn a_million_records_between_processes_sysv() {
    exchange(Implementation::SysV);
}

#[test]
fn a_million_records_between_processes_memfd() {
    exchange(Implementation::Memfd);
}

// ---- A peer scribbles over the header and the ring's control lines. ----

const SCRIBBLE_SIZE: usize = 32 * 1024;

/// Seeds per implementation: 48, or `SHMKIT_SEGMENT_SEEDS` for a longer campaign.
fn seeds() -> u64 {
    std::env::var("SHMKIT_SEGMENT_SEEDS").ok().and_then(|seeds| seeds.parse().ok()).unwrap_or(48)
}

fn scribbler() {
    let stream = connect();
    loop {
        let line = wait_for_parent();
        let Ok(seed) = line.parse::<u64>() else { break };
        let segment = Segment::receive(&stream, SCRIBBLE_SIZE).expect("receive");
        let mut random = Random::new(seed);
        let ring = segment.ring_range();
        let areas = [
            (0, HEADER_SIZE as u64),
            (ring.start, ring.start + 512),
            (ring.start + 512, ring.start + 512 + 1024),
        ];
        for write in 0..4000u64 {
            let (start, end) = areas[(random.below(10) as usize).min(7) / 3];
            let offset = start + random.below(end - start);
            if random.below(3) == 0 {
                // A whole word of a plausible kind: small, near a bound, or anything.
                let word = offset & !7;
                let value = match random.below(4) {
                    0 => random.below(64),
                    1 => segment.size() - random.below(4096),
                    2 => u64::MAX - random.below(4),
                    _ => random.next(),
                };
                // SAFETY: `word` is an 8-aligned offset inside the mapping (every area is inside
                // the segment); shared bytes are written atomically.
                unsafe { AtomicU64::from_ptr(segment.as_ptr().add(word as usize).cast()) }
                    .store(value, Ordering::Relaxed);
            } else {
                // SAFETY: `offset` is inside the mapping; one atomic byte store.
                unsafe { AtomicU8::from_ptr(segment.as_ptr().add(offset as usize)) }
                    .store(random.next() as u8, Ordering::Relaxed);
            }
            // In bursts, so that the parent works between them.
            if write % 200 == 199 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        drop(segment);
        tell_parent("scribbled");
    }
}

/// Everything a process does with a segment, driven by a generator; results are ignored, only a
/// crash or a panic would fail the test.
struct Workload<'a> {
    segment: &'a Segment,
    random: Random,
    producer: Option<RingProducer>,
    consumer: Option<RingConsumer>,
    allocations: Vec<u64>,
    errors: u64,
}

impl<'a> Workload<'a> {
    fn new(segment: &'a Segment, seed: u64) -> Self {
        Self {
            segment,
            random: Random::new(seed ^ 0xabcd),
            producer: None,
            consumer: None,
            allocations: Vec::new(),
            errors: 0,
        }
    }

    fn count<T>(&mut self, result: Result<T, Error>) -> Option<T> {
        result.map_err(|_| self.errors += 1).ok()
    }

    fn step(&mut self) {
        let segment = self.segment;
        match self.random.below(9) {
            0 => {
                let size = 1 + self.random.below(64) as usize;
                let align = 1 << self.random.below(7);
                if let Some(offset) = self.count(segment.data_alloc(size, align)) {
                    self.allocations.push(offset);
                }
            }
            1 => {
                if let Some(&offset) = self.allocations.last() {
                    let _ = self.count(segment.write_at(offset, b"x"));
                    let mut byte = [0];
                    let _ = self.count(segment.read_at(offset, &mut byte));
                }
            }
            2 => {
                if let Some(guard) = self.count(segment.lock()) {
                    let _ = guard.owner_died();
                }
                let _ = self.count(segment.try_lock());
            }
            3 => {
                if self.producer.is_none() {
                    self.producer = self.count(segment.ring_producer());
                }
                let length = self.random.below(200) as usize;
                if let Some(producer) = &mut self.producer
                    && producer.append(&vec![7; length]).is_err()
                {
                    self.errors += 1;
                    self.producer = None;
                }
            }
            4 => {
                if self.consumer.is_none() {
                    self.consumer = self.count(segment.ring_consumer());
                }
                let mut buffer = [0; 4096];
                if let Some(consumer) = &mut self.consumer
                    && (consumer.read(&mut buffer).is_err() || consumer.skip().is_err())
                {
                    self.errors += 1;
                    self.consumer = None;
                }
            }
            5 => {
                let offset = match self.random.below(3) {
                    0 => self.random.next(),
                    1 => self.random.below(segment.size() + 64),
                    _ => segment.data_range().end - self.random.below(16),
                };
                let len = self.random.below(64) as usize;
                let _ = self.count(segment.addr(offset, len));
            }
            6 => {
                let _ = self.count(segment.data_free());
                let _ = segment.creator_pid();
                if let Some(producer) = &self.producer {
                    let _ = producer.len().and_then(|_| producer.avail());
                }
                if let Some(consumer) = &self.consumer {
                    let _ = consumer.len().and_then(|_| consumer.avail());
                }
            }
            7 => {
                if let Some(&offset) = self.allocations.first() {
                    let word = offset.next_multiple_of(8);
                    if let Some(atomic) = self.count(segment.atomic_u64(word)) {
                        atomic.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {
                // An opener's whole check, on whatever the header holds now.
                let (ours, theirs) = UnixStream::pair().expect("pair");
                if segment.send(&ours).is_ok() {
                    let options = OpenOptions::new().timeout(Duration::from_millis(2));
                    let _ = self.count(options.receive(&theirs, SCRIBBLE_SIZE));
                }
            }
        }
    }
}

fn peer_corruption(implementation: Implementation) {
    let rendezvous = Rendezvous::new();
    let mut child = rendezvous.spawn("scribbler", implementation);
    let stream = rendezvous.accept();
    let mut errors = 0;
    for seed in 0..seeds() {
        let segment = SegmentOptions::new(SCRIBBLE_SIZE)
            .implementation(implementation)
            .ring_capacity(8 * 1024)
            .create()
            .expect("create");
        segment.send(&stream).expect("send");
        let stop = AtomicBool::new(false);
        let started = Barrier::new(2);
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let mut workload = Workload::new(&segment, seed);
                for _ in 0..100 {
                    workload.step();
                }
                started.wait();
                // Runs from before the first scribble until after the last.
                while !stop.load(Ordering::Relaxed) {
                    workload.step();
                }
                workload.errors
            });
            started.wait();
            child.send(&seed.to_string());
            child.expect("scribbled");
            stop.store(true, Ordering::Relaxed);
            errors += worker.join().expect("the workload never panics");
        });
        // And after the scribbling, on whatever it left.
        let mut workload = Workload::new(&segment, seed + 1000);
        for _ in 0..300 {
            workload.step();
        }
        errors += workload.errors;
    }
    child.send("stop");
    child.finish();
    assert!(errors > 0, "the scribbling was noticed");
}

#[test]
fn a_peer_scribbling_over_the_header_causes_errors_only_posix() {
    peer_corruption(Implementation::Posix);
}

#[test]
fn a_peer_scribbling_over_the_header_causes_errors_only_sysv() {
    peer_corruption(Implementation::SysV);
}

#[test]
fn a_peer_scribbling_over_the_header_causes_errors_only_memfd() {
    peer_corruption(Implementation::Memfd);
}

// ---- The lock's holder dies; the parent recovers. ----

fn locker() {
    let stream = connect();
    let segment = Segment::receive(&stream, 8192).expect("receive");
    let record: u64 = wait_for_parent().parse().expect("offset");
    let guard = segment.lock().expect("lock");
    // Half of an update the lock protects, never finished.
    segment.atomic_u64(record).expect("record").store(1, Ordering::Release);
    tell_parent("locked");
    // The parent kills this process here; if it closes stdin instead, die holding the lock all
    // the same (no destructor runs).
    let _ = wait_for_parent();
    let _ = &guard;
    std::process::exit(0);
}

fn owner_death(implementation: Implementation) {
    let rendezvous = Rendezvous::new();
    let mut child = rendezvous.spawn("locker", implementation);
    let stream = rendezvous.accept();
    let peer = PeerCredentials::of_socket(&stream).expect("credentials");
    let segment = Segment::create(8192, Some(&peer), implementation).expect("create");
    let record = segment.data_alloc(8, 8).expect("alloc");
    segment.send(&stream).expect("send");
    child.send(&record.to_string());
    child.expect("locked");
    let error = segment.try_lock().expect_err("the peer holds it");
    assert!(matches!(error, Error::WouldBlock { .. }), "{error}");
    let pid = child.pid();
    drop(child); // SIGKILL, then reaped: it dies holding the lock.
    let guard = segment.lock().expect("the kernel released the dead holder's lock");
    assert!(guard.owner_died());
    assert_eq!(guard.dead_owner_pid(), Some(pid));
    let word = segment.atomic_u64(record).expect("record");
    assert_eq!(word.load(Ordering::Acquire), 1, "the dead holder's half-done update");
    word.store(2, Ordering::Release); // repaired
    drop(guard);
    let guard = segment.lock().expect("lock again");
    assert!(!guard.owner_died(), "a normal release leaves nothing to report");
}

#[test]
fn a_lock_holder_dies_and_the_peer_recovers_posix() {
    owner_death(Implementation::Posix);
}

#[test]
fn a_lock_holder_dies_and_the_peer_recovers_sysv() {
    owner_death(Implementation::SysV);
}

#[test]
fn a_lock_holder_dies_and_the_peer_recovers_memfd() {
    owner_death(Implementation::Memfd);
}

// ---- A peer of another user opens only what was made for it. ----

/// `nobody`'s uid and gid from `/etc/passwd`.
fn nobody_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|line| line.starts_with("nobody:"))?;
    let mut fields = line.split(':').skip(2);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
}

fn nobody() {
    let (uid, gid) = nobody_ids().expect("a nobody user");
    // SAFETY: plain system calls on integers; glibc applies the change to every thread of the
    // process (the test harness has a few), which is what a whole process switching user needs.
    unsafe {
        assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
        assert_eq!(libc::setgid(gid), 0, "setgid");
        assert_eq!(libc::setuid(uid), 0, "setuid");
    }
    assert_eq!(rustix::process::geteuid().as_raw(), uid);
    let stream = connect();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(match Segment::receive(&stream, 8192) {
            Ok(segment) => {
                let slot: u64 = wait_for_parent().parse().expect("slot");
                segment.atomic_u64(slot).expect("slot").store(u64::from(uid), Ordering::Release);
                "opened"
            }
            Err(Error::PermissionDenied { .. }) => "refused",
            Err(other) => panic!("unexpected error: {other}"),
        });
    }
    tell_parent(&outcomes.join(" "));
}

fn permissions(implementation: Implementation) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: switching a child to `nobody` needs root");
        return;
    }
    let Some((nobody_uid, _)) = nobody_ids() else {
        eprintln!("skipped: no `nobody` user in /etc/passwd");
        return;
    };
    let rendezvous = Rendezvous::new();
    let mut child = rendezvous.spawn("nobody", implementation);
    let stream = rendezvous.accept();
    let peer = PeerCredentials::of_socket(&stream).expect("credentials");
    assert_eq!(peer.uid, nobody_uid, "the kernel reports the child's new user");
    let someone_else = PeerCredentials { pid: 1, uid: 1, gid: 1 };
    let for_someone_else =
        Segment::create(8192, Some(&someone_else), implementation).expect("create");
    let for_creator_only = Segment::create(8192, None, implementation).expect("create");
    let for_peer = Segment::create(8192, Some(&peer), implementation).expect("create");
    let slot = for_peer.data_alloc(8, 8).expect("alloc");
    for segment in [&for_someone_else, &for_creator_only, &for_peer] {
        segment.send(&stream).expect("send");
    }
    child.send(&slot.to_string());
    assert_eq!(child.expect(""), "refused refused opened");
    let written = for_peer.atomic_u64(slot).expect("slot").load(Ordering::Acquire);
    assert_eq!(written, u64::from(nobody_uid), "the peer wrote into its segment");
    if implementation == Implementation::Posix {
        use std::os::unix::fs::MetadataExt;
        let path = PathBuf::from("/dev/shm").join(for_peer.name().as_str());
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!((meta.uid(), meta.mode() & 0o777), (nobody_uid, 0o600));
    } else {
        let id = for_peer.sysv_id().expect("id");
        let info = shmkit_os::sysv::stat_id(id).expect("IPC_STAT");
        assert_eq!((info.uid, info.mode, info.cuid), (nobody_uid, 0o600, 0));
    }
    child.finish();
}

#[test]
fn only_the_peer_a_segment_was_made_for_opens_it_posix() {
    permissions(Implementation::Posix);
}

#[test]
fn only_the_peer_a_segment_was_made_for_opens_it_sysv() {
    permissions(Implementation::SysV);
}

// ---- A creator is killed: its segments are stale once nobody maps them. ----

fn creator() {
    let posix = Segment::create(4096, None, Implementation::Posix).expect("create");
    let sysv = Segment::create(4096, None, Implementation::SysV).expect("create");
    let mapped = Segment::create(4096, None, Implementation::Posix).expect("create");
    let encoded = mapped.encode().iter().fold(String::new(), |mut hex, byte| {
        use std::fmt::Write;
        let _ = write!(hex, "{byte:02x}");
        hex
    });
    tell_parent(&format!(
        "created {} {} {} {encoded}",
        posix.name(),
        sysv.name(),
        sysv.sysv_id().expect("id")
    ));
    // Killed here, with every handle alive.
    let _ = wait_for_parent();
    std::process::exit(1);
}

#[test]
fn a_killed_creators_segments_are_found_and_removed_and_live_ones_never_are() {
    let live = Segment::create(4096, None, Implementation::Posix).expect("live");
    let live_sysv = Segment::create(4096, None, Implementation::SysV).expect("live");
    let rendezvous = Rendezvous::new();
    let mut child = rendezvous.spawn("creator", Implementation::Posix);
    let created = child.expect("created");
    let words: Vec<&str> = created.split_ascii_whitespace().collect();
    let (posix_name, sysv_name) = (words[0].to_owned(), words[1].to_owned());
    let sysv_id: i32 = words[2].parse().expect("id");
    let encoded: Vec<u8> = (0..words[3].len() / 2)
        .map(|at| u8::from_str_radix(&words[3][2 * at..2 * at + 2], 16).expect("hex"))
        .collect();
    let mapped = Segment::decode(&encoded, 4096).expect("map the third segment");
    let creator_pid = child.pid();
    drop(child); // SIGKILL, then reaped.

    let stale = shmkit_segment::stale().expect("stale");
    let find = |name: &str| stale.iter().find(|segment| segment.name.as_str() == name);
    let posix = find(&posix_name).expect("the killed creator's POSIX segment is stale");
    assert_eq!((posix.creator_pid, posix.published), (creator_pid, true));
    assert_eq!(posix.implementation, Implementation::Posix);
    assert_eq!(posix.reason, shmkit_segment::StaleReason::CreatorDead);
    let sysv = find(&sysv_name).expect("the killed creator's SysV segment is stale");
    assert_eq!((sysv.sysv_id, sysv.creator_pid), (Some(sysv_id), creator_pid));
    assert!(find(mapped.name().as_str()).is_none(), "a mapped segment is not stale");
    assert!(find(live.name().as_str()).is_none() && find(live_sysv.name().as_str()).is_none());

    let removed = shmkit_segment::remove_stale().expect("remove");
    assert!(removed.iter().any(|segment| segment.name.as_str() == posix_name));
    assert!(removed.iter().any(|segment| segment.name.as_str() == sysv_name));
    assert!(!PathBuf::from("/dev/shm").join(&posix_name).exists());
    assert!(matches!(shmkit_os::sysv::stat_id(sysv_id), Err(shmkit_os::Error::NotFound { .. })));
    let sysv_key = shmkit_name::Name::new(&sysv_name).expect("name").sysv_key();
    // SAFETY: semget only reads its integer arguments.
    assert!(unsafe { libc::semget(sysv_key, 0, 0) } < 0, "its semaphore is gone too");

    // Unmapped, the third segment becomes stale.
    let mapped_name = mapped.name();
    drop(mapped);
    let stale = shmkit_segment::stale().expect("stale");
    let third = stale.iter().find(|segment| segment.name == mapped_name).expect("now stale");
    assert!(third.remove().expect("remove"));
    assert!(!third.remove().expect("already gone"));
    assert!(PathBuf::from("/dev/shm").join(live.name().as_str()).exists());
    assert!(shmkit_os::sysv::stat_id(live_sysv.sysv_id().expect("id")).is_ok());
}
