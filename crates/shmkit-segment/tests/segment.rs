//! One process: creation and opening of every implementation, the handshake's refusals, size
//! checks, the data allocator and its bounds, the lock within a process, reference counting and
//! removal. The tests with real peer processes are in `processes.rs`.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use shmkit_name::PageSize;
use shmkit_os::Memfd;
use shmkit_segment::{
    Descriptor, Error, HEADER_SIZE, Implementation, LAYOUT_VERSION, OpenOptions, PeerCredentials,
    Segment, SegmentOptions,
};

const ALL: [Implementation; 3] =
    [Implementation::Posix, Implementation::SysV, Implementation::Memfd];

/// Opens `segment` as a peer would, in this process: over a socket pair (so a memfd travels as
/// a descriptor).
fn open_as_peer(segment: &Segment, size: usize) -> Result<Segment, Error> {
    let (ours, theirs) = UnixStream::pair().expect("socket pair");
    segment.send(&ours)?;
    Segment::receive(&theirs, size)
}

/// Writes `value` to the header word at `offset` (8-aligned), as a misbehaving peer would.
fn poke_u64(segment: &Segment, offset: usize, value: u64) {
    assert!(offset + 8 <= HEADER_SIZE && offset.is_multiple_of(8));
    // SAFETY: inside the mapped header (checked above), 8-aligned (the mapping is page-aligned);
    // the header is made of atomics, so an atomic store is how its bytes are written.
    unsafe { AtomicU64::from_ptr(segment.as_ptr().add(offset).cast()) }
        .store(value, Ordering::Release);
}

/// Reads the header word at `offset` (8-aligned).
fn peek_u64(segment: &Segment, offset: usize) -> u64 {
    assert!(offset + 8 <= HEADER_SIZE && offset.is_multiple_of(8));
    // SAFETY: as in `poke_u64`: an aligned word of the header, read atomically.
    unsafe { AtomicU64::from_ptr(segment.as_ptr().add(offset).cast()) }.load(Ordering::Acquire)
}

/// As [`poke_u64`], for a 4-byte word.
fn poke_u32(segment: &Segment, offset: usize, value: u32) -> u32 {
    assert!(offset + 4 <= HEADER_SIZE && offset.is_multiple_of(4));
    // SAFETY: as in `poke_u64`, for an aligned 4-byte word of the header.
    unsafe { AtomicU32::from_ptr(segment.as_ptr().add(offset).cast()) }
        .swap(value, Ordering::AcqRel)
}

fn posix_path(segment: &Segment) -> PathBuf {
    PathBuf::from("/dev/shm").join(segment.name().as_str())
}

/// Whether a semaphore set with the key of `segment`'s name exists (what `ipcs -s` lists).
fn semaphore_exists(segment_name: &shmkit_name::Name) -> bool {
    // SAFETY: semget only reads its integer arguments.
    unsafe { libc::semget(segment_name.sysv_key(), 0, 0) >= 0 }
}

#[test]
fn every_implementation_shares_data_ring_and_lock_with_a_peer() {
    for implementation in ALL {
        let size = 64 * 1024;
        let server = Segment::create(size, None, implementation).expect("create");
        assert_eq!(server.implementation(), implementation);
        assert_eq!(server.size(), size as u64);
        assert!(server.is_master());
        let client = open_as_peer(&server, size).expect("open as the peer");
        assert!(!client.is_master() && !client.same_mapping(&server));
        assert_eq!(client.descriptor(), server.descriptor());
        assert_eq!(client.creator_pid(), std::process::id());

        let block = server.data_alloc(100, 64).expect("alloc");
        assert_eq!(block % 64, 0);
        server.write_at(block, b"common data").expect("write");
        let mut back = [0; 11];
        client.read_at(block, &mut back).expect("read");
        assert_eq!(&back, b"common data");
        let other = client.data_alloc(8, 8).expect("the peer allocates too");
        assert!(other >= block + 100, "allocations never overlap");

        let mut producer = client.ring_producer().expect("producer");
        let mut consumer = server.ring_consumer().expect("consumer");
        assert!(matches!(server.ring_producer(), Err(Error::Ring { .. })), "one producer");
        for index in 0u32..1000 {
            let record = index.to_le_bytes();
            assert!(producer.append(&record[..(index % 5) as usize]).expect("append"));
            let mut buffer = [0; 8];
            let length = consumer.read(&mut buffer).expect("read").expect("a record");
            assert_eq!(&buffer[..length], &record[..(index % 5) as usize]);
        }
        assert!(producer.append(b"skipped").expect("append"));
        assert_eq!(consumer.len().expect("len"), 16);
        assert_eq!(consumer.skip().expect("skip"), Some(7));
        assert_eq!(producer.avail().expect("avail"), producer.capacity());

        let guard = client.lock().expect("lock");
        assert!(!guard.owner_died());
        assert!(matches!(server.try_lock(), Err(Error::WouldBlock { .. })), "{implementation}");
        guard.unlock();
        drop(server.try_lock().expect("free again"));
    }
}

#[test]
fn sizes_are_whole_pages_and_the_os_size_must_match_the_size_asked() {
    let page = rustix::param::page_size();
    for implementation in ALL {
        let segment = Segment::create(page + 1, None, implementation).expect("create");
        assert_eq!(segment.size(), 2 * page as u64);
        open_as_peer(&segment, 2 * page - 5).expect("the same whole pages");
        let error = open_as_peer(&segment, page).expect_err("one page asked");
        assert!(
            matches!(error, Error::SizeMismatch { os, .. } if os == 2 * page as u64),
            "{error}"
        );
        assert!(matches!(open_as_peer(&segment, 0), Err(Error::InvalidInput { .. })));
    }
    assert!(matches!(
        Segment::create(0, None, Implementation::Posix),
        Err(Error::InvalidInput { .. })
    ));
    let bad_ring = SegmentOptions::new(8192).ring_capacity(100).create();
    assert!(matches!(bad_ring, Err(Error::InvalidInput { .. })));
    let too_big = SegmentOptions::new(8192).ring_capacity(8192).create();
    assert!(matches!(too_big, Err(Error::InvalidInput { .. })));
}

#[test]
fn an_opener_refuses_a_wrong_magic_version_or_state_and_waits_for_publication() {
    for implementation in ALL {
        let segment = Segment::create(8192, None, implementation).expect("create");
        let saved = peek_u64(&segment, 0);
        poke_u64(&segment, 0, u64::from_le_bytes(*b"NOTASEGM"));
        assert!(matches!(open_as_peer(&segment, 8192), Err(Error::BadMagic { .. })));
        poke_u64(&segment, 0, saved);

        let version = poke_u32(&segment, 8, LAYOUT_VERSION + 1);
        let error = open_as_peer(&segment, 8192).expect_err("another layout version");
        assert!(matches!(error, Error::LayoutVersion { found, .. } if found == LAYOUT_VERSION + 1));
        poke_u32(&segment, 8, version);

        // Unpublished: the opener waits, then gives up.
        let state = poke_u32(&segment, 12, 1);
        let (ours, theirs) = UnixStream::pair().expect("pair");
        segment.send(&ours).expect("send");
        let options = OpenOptions::new().timeout(Duration::from_millis(30));
        assert!(matches!(options.receive(&theirs, 8192), Err(Error::NotPublished { .. })));
        poke_u32(&segment, 12, 9);
        assert!(matches!(open_as_peer(&segment, 8192), Err(Error::Corrupted { .. })));
        poke_u32(&segment, 12, state);

        let implementation_code = poke_u32(&segment, 16, 7);
        assert!(matches!(open_as_peer(&segment, 8192), Err(Error::Corrupted { .. })));
        poke_u32(&segment, 16, implementation_code);

        // The name (from offset 80) must be the descriptor's.
        let name = peek_u64(&segment, 80);
        poke_u64(&segment, 80, name ^ 1);
        assert!(matches!(open_as_peer(&segment, 8192), Err(Error::Corrupted { .. })));
        poke_u64(&segment, 80, name);
        open_as_peer(&segment, 8192).expect("repaired");
    }
}

#[test]
fn a_peer_rewriting_sizes_or_bounds_gets_errors_not_memory_outside() {
    let segment = Segment::create(16 * 1024, None, Implementation::Posix).expect("create");
    let data = segment.data_range();
    // Header offsets: total size 32, data begin 40, data end 48, ring begin 56, ring end 64.
    for (offset, value) in [(32, 1 << 40), (40, 0), (48, 1 << 40), (56, 8), (64, u64::MAX)] {
        let saved = peek_u64(&segment, offset);
        poke_u64(&segment, offset, value);
        assert!(
            matches!(open_as_peer(&segment, 16 * 1024), Err(Error::Corrupted { .. })),
            "an opener refuses field {offset} = {value:#x}"
        );
        assert!(
            matches!(segment.data_alloc(8, 8), Err(Error::Corrupted { .. })),
            "allocation refuses field {offset} = {value:#x}"
        );
        // Bounds come from the private copy, never from the header.
        assert!(segment.addr(data.start, 8).is_ok());
        assert!(matches!(segment.addr(data.end, 1), Err(Error::OutOfBounds { .. })));
        poke_u64(&segment, offset, saved);
    }
    // The bump pointer (128) is checked on every allocation.
    for bump in [0, data.end + 8, u64::MAX] {
        poke_u64(&segment, 128, bump);
        assert!(matches!(segment.data_alloc(8, 8), Err(Error::Corrupted { .. })));
        assert!(matches!(segment.data_free(), Err(Error::Corrupted { .. })));
    }
    poke_u64(&segment, 128, data.start);
    assert_eq!(segment.data_alloc(8, 8).expect("repaired"), data.start);
}

#[test]
fn data_alloc_aligns_checks_and_runs_out() {
    let segment = SegmentOptions::new(8192)
        .implementation(Implementation::Memfd)
        .ring_capacity(4096)
        .create()
        .expect("create");
    let data = segment.data_range();
    assert_eq!(data.start, HEADER_SIZE as u64);
    assert_eq!(segment.data_free().expect("free"), data.end - data.start);
    let first = segment.data_alloc(1, 1).expect("alloc");
    let second = segment.data_alloc(1, 256).expect("aligned");
    assert_eq!((first, second % 256), (data.start, 0));
    assert!(matches!(segment.data_alloc(0, 8), Err(Error::InvalidInput { .. })));
    assert!(matches!(segment.data_alloc(8, 3), Err(Error::InvalidInput { .. })));
    assert!(matches!(segment.data_alloc(8, 1 << 20), Err(Error::InvalidInput { .. })));
    let free = segment.data_free().expect("free");
    let error = segment.data_alloc(free as usize + 1, 1).expect_err("too much");
    assert!(matches!(error, Error::DataExhausted { free: left, .. } if left == free), "{error}");
    let last = segment.data_alloc(free as usize, 1).expect("exactly what is left");
    assert_eq!(last + free, data.end);
    assert!(matches!(segment.data_alloc(1, 1), Err(Error::DataExhausted { .. })));

    assert!(segment.addr(last, free as usize).is_ok());
    for (offset, len) in [(data.start - 1, 1), (data.end - 4, 8), (u64::MAX, 2), (0, 8)] {
        assert!(matches!(segment.addr(offset, len), Err(Error::OutOfBounds { .. })));
        assert!(segment.read_at(offset, &mut vec![0; len]).is_err());
        assert!(segment.write_at(offset, &vec![0; len]).is_err());
    }
    let word = segment.atomic_u64(second.next_multiple_of(8)).expect("atomic view");
    word.store(5, Ordering::Relaxed);
    assert!(segment.atomic_u64(second + 1).is_err(), "misaligned");
}

#[test]
fn clones_share_one_mapping_and_the_creators_last_drop_removes_the_segment() {
    for implementation in ALL {
        let segment = Segment::create(8192, None, implementation).expect("create");
        let clone = segment.clone();
        assert!(clone.same_mapping(&segment));
        assert_eq!(segment.handle_count(), 2);
        let producer = clone.ring_producer().expect("producer");
        assert_eq!(segment.handle_count(), 3, "a ring side keeps the mapping");
        let peer = open_as_peer(&segment, 8192).expect("peer");
        drop(peer); // an opener's drop removes nothing
        open_as_peer(&segment, 8192).expect("still there");
        let name = segment.name();
        let sysv_id = segment.sysv_id();
        drop((segment, clone));
        match implementation {
            Implementation::Posix => {
                assert!(PathBuf::from("/dev/shm").join(name.as_str()).exists(), "still mapped");
            }
            Implementation::SysV => {
                let id = sysv_id.expect("id");
                assert!(shmkit_os::sysv::stat_id(id).is_ok(), "still attached");
                assert!(semaphore_exists(&name));
            }
            _ => {}
        }
        drop(producer);
        match implementation {
            Implementation::Posix => {
                assert!(!PathBuf::from("/dev/shm").join(name.as_str()).exists(), "removed");
            }
            Implementation::SysV => {
                let id = sysv_id.expect("id");
                assert!(matches!(
                    shmkit_os::sysv::stat_id(id),
                    Err(shmkit_os::Error::NotFound { .. })
                ));
                assert!(!semaphore_exists(&name), "the semaphore goes with it");
            }
            _ => {}
        }
    }
}

#[test]
fn a_removed_segment_cannot_be_opened() {
    for implementation in [Implementation::Posix, Implementation::SysV] {
        let segment = Segment::create(8192, None, implementation).expect("create");
        let encoded = segment.encode();
        drop(segment);
        let error = Segment::decode(&encoded, 8192).expect_err("removed");
        assert!(matches!(error, Error::NotFound { .. }), "{implementation}: {error}");
    }
}

#[test]
fn a_memfd_travels_sealed_with_its_descriptor() {
    let segment = Segment::create(8192, None, Implementation::Memfd).expect("create");
    let encoded = segment.encode();
    assert!(matches!(Segment::decode(&encoded, 8192), Err(Error::BadDescriptor { .. })));
    // A memfd that is not sealed is refused: its size could change under the mapping.
    let unsealed = Memfd::create("unsealed", 8192, PageSize::Normal, true).expect("memfd");
    let error =
        OpenOptions::new().decode_fd(&encoded, unsealed.into_fd(), 8192).expect_err("unsealed");
    assert!(matches!(error, Error::Unsealed { .. }), "{error}");
    let fd = segment.memfd().expect("a memfd").try_clone_to_owned().expect("dup");
    let opened = OpenOptions::new().decode_fd(&encoded, fd, 8192).expect("sealed");
    // The opener has its own open file description: the lock tells the two apart.
    let guard = opened.lock().expect("lock");
    assert!(matches!(segment.try_lock(), Err(Error::WouldBlock { .. })));
    drop(guard);
}

#[test]
fn the_lock_refuses_a_relock_and_excludes_threads() {
    for implementation in ALL {
        let segment = Segment::create(8192, None, implementation).expect("create");
        let guard = segment.lock().expect("lock");
        assert!(matches!(segment.lock(), Err(Error::Deadlock { .. })));
        assert!(matches!(segment.try_lock(), Err(Error::Deadlock { .. })));
        drop(guard);
        let counter = segment.data_alloc(16, 8).expect("alloc");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let segment = segment.clone();
                scope.spawn(move || {
                    for _ in 0..200 {
                        let _guard = segment.lock().expect("lock");
                        // A non-atomic read-modify-write that only the lock keeps whole.
                        let mut bytes = [0; 8];
                        segment.read_at(counter, &mut bytes).expect("read");
                        let value = u64::from_le_bytes(bytes) + 1;
                        std::thread::yield_now();
                        segment.write_at(counter, &value.to_le_bytes()).expect("write");
                    }
                });
            }
        });
        let mut bytes = [0; 8];
        segment.read_at(counter, &mut bytes).expect("read");
        assert_eq!(u64::from_le_bytes(bytes), 800, "{implementation}");
    }
}

#[test]
fn descriptors_and_credentials() {
    let segment = Segment::create(4096, None, Implementation::SysV).expect("create");
    let descriptor = segment.descriptor();
    assert_eq!(descriptor.sysv_id, segment.sysv_id());
    assert_eq!(Descriptor::decode(&segment.encode()).expect("decode"), descriptor);
    assert!(matches!(Segment::decode(&[0; 10], 4096), Err(Error::BadDescriptor { .. })));
    let (ours, theirs) = UnixStream::pair().expect("pair");
    assert_eq!(PeerCredentials::of_socket(&ours).expect("creds"), PeerCredentials::current());
    drop(ours);
    assert!(matches!(Segment::receive(&theirs, 4096), Err(Error::Disconnected { .. })));
    // A segment for a peer of this same user needs no change of owner.
    let peer = PeerCredentials::current();
    for implementation in ALL {
        let segment = Segment::create(4096, Some(&peer), implementation).expect("for myself");
        open_as_peer(&segment, 4096).expect("open");
    }
    // Auto is POSIX where /dev/shm exists and the peer is of this user.
    let auto = Segment::create(4096, Some(&peer), Implementation::Auto).expect("auto");
    assert_eq!(auto.implementation(), Implementation::Posix);
}

#[test]
fn stale_never_lists_live_or_foreign_segments() {
    let live = Segment::create(4096, None, Implementation::Posix).expect("live");
    let live_sysv = Segment::create(4096, None, Implementation::SysV).expect("live");
    // A file with the prefix but no segment header is not a segment.
    let foreign = PathBuf::from("/dev/shm").join(format!(
        "{}foreign-{}",
        shmkit_segment::NAME_PREFIX,
        std::process::id()
    ));
    std::fs::write(&foreign, vec![0x5a; 4096]).expect("write a foreign file");
    let stale = shmkit_segment::stale().expect("stale");
    let removed = shmkit_segment::remove_stale().expect("remove stale");
    assert!(foreign.exists(), "a foreign file is never touched");
    std::fs::remove_file(&foreign).expect("clean up");
    for listed in stale.iter().chain(&removed) {
        assert_ne!(listed.name, live.name());
        assert_ne!(listed.name, live_sysv.name());
        assert_ne!(listed.path.as_deref(), Some(foreign.as_path()));
    }
    assert!(posix_path(&live).exists());
}
