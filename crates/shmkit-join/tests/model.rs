//! A randomized model test of the process's join registry against real regions (five on normal
//! pages, one on 2 MiB huge pages when the pool has them) and anonymous memory: 131,072 steps of
//! joins (`join`, `join_with` whose hook picks the handle or refuses, read-only and read-write,
//! with `AccessUpgrade` exactly when the model says so), leaves (`leave()`, drop, `leave_with`
//! whose hook must run at the last leave only, while the region is still mapped), anonymous joins
//! and leaves, named joins of anonymous names and collision probes. After every step every query
//! (by name, by handle, by range inside, at the last byte and past the end of every entry) and
//! the whole snapshot are compared with the model; every join writes a word through its mapping
//! and reads it back through another join, and the words must survive unmapping and mapping again
//! at another address. At the end, a region whose mapping lands on anonymously registered
//! addresses must be refused.
//!
//! This binary holds exactly one test, so the registry holds nothing but the model's joins and
//! the snapshot can be compared whole. The seed is printed; set `SHMKIT_MODEL_SEED` (decimal or
//! `0x` hex) to replay another one.

mod common;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::{
    TestRegion, huge_pages_ready, hugetlbfs_ready, load, maps_file_named, options, store,
    unique_name,
};
use shmkit_join::{
    Error, Join, JoinInfo, join, join_anonymous, join_with, joins, leave_anonymous,
    query_by_handle, query_by_name, query_by_range,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, AnonHugePages};

/// The default seed.
const SEED: u64 = 0x5348_4D4B_4A4F_494E;
/// How many steps the model takes.
const STEPS: u64 = 1 << 17;
/// A region joined this often is left rather than joined again, so that counts keep falling
/// back to zero and first joins (new mappings) keep happening.
const MAX_JOINS: usize = 4;
/// Words per region the model remembers (at `slot * stride`), to check contents survive an unmap
/// and a new mapping at another address.
const SLOTS: usize = 64;
/// How many past steps a failure prints.
const HISTORY: usize = 24;
/// An address range no join uses (page 16): where collision probes put what must not collide.
const FREE_ADDR: usize = 16 * 4096;

/// The steps' generator, with the choices the model makes.
struct Rng(shmkit_testkit::Rng);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next()
    }

    /// Uniform enough in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        self.0.below(n as u64) as usize
    }

    fn coin(&mut self) -> bool {
        self.0.coin()
    }

    fn access(&mut self) -> Access {
        if self.coin() { Access::ReadWrite } else { Access::ReadOnly }
    }
}

/// A real region and what the model knows of its joins.
struct Named {
    region: TestRegion,
    /// The live joins; empty when not joined.
    joins: Vec<Join>,
    /// The access of the first join (valid while joined).
    access: Access,
    /// Where it is mapped while joined; where it was last mapped after (0 if never).
    addr: usize,
    /// Its handle less `addr`: what the join hook of its first join chose (0 without a hook).
    handle_offset: usize,
    /// The words written through its joins, which outlive every mapping (the region does).
    words: [Option<u64>; SLOTS],
}

impl Named {
    fn expected(&self) -> Option<JoinInfo> {
        (!self.joins.is_empty()).then(|| JoinInfo {
            name: self.region.name,
            page_size: self.region.page_size,
            page_count: self.region.page_count,
            access: self.access,
            addr: self.addr,
            len: self.region.len(),
            handle: self.addr + self.handle_offset,
            count: self.joins.len() as u32,
            anonymous: false,
        })
    }

    /// Bytes between remembered words (a multiple of 8).
    fn stride(&self) -> usize {
        self.region.len() / SLOTS / 8 * 8
    }
}

/// Memory the test owns, registered with `join_anonymous` now and then.
struct Anon {
    name: Name,
    memory: AnonHugePages,
    registered: bool,
    access: Access,
    handle: usize,
    /// Named joins of its name (count hits on the anonymous record).
    joins: Vec<Join>,
}

impl Anon {
    fn expected(&self) -> Option<JoinInfo> {
        self.registered.then(|| JoinInfo {
            name: self.name,
            page_size: self.memory.page_size(),
            page_count: self.memory.page_count() as u64,
            access: self.access,
            addr: self.memory.as_ptr() as usize,
            len: self.memory.len(),
            handle: self.handle,
            count: 1 + self.joins.len() as u32,
            anonymous: true,
        })
    }
}

struct Model {
    seed: u64,
    rng: Rng,
    step: u64,
    named: Vec<Named>,
    anons: Vec<Anon>,
    /// A name never created nor registered, for collision probes.
    probe: Name,
    history: VecDeque<String>,
    /// What happened so far, for the summary.
    stats: Stats,
}

/// How a join is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// `join`.
    Plain,
    /// `join_with`, whose hook hands back a handle inside the region.
    Handle,
    /// `join_with`, whose hook refuses.
    Refuse,
}

#[derive(Debug, Default)]
struct Stats {
    first_joins: u64,
    count_hits: u64,
    upgrades_refused: u64,
    hooks_refused: u64,
    last_leaves: u64,
    leaves: u64,
    anon_joins: u64,
    anon_leaves: u64,
    refusals_checked: u64,
}

/// `a` as `NonNull` (the tests never pass 0).
fn non_null(address: usize) -> NonNull<u8> {
    NonNull::new(address as *mut u8).expect("not null")
}

impl Model {
    fn new(seed: u64) -> Self {
        let huge = hugetlbfs_ready(PageSize::Huge) && huge_pages_ready(PageSize::Huge, 2);
        let mut named: Vec<Named> = [1, 2, 3, 5, 16]
            .into_iter()
            .map(|pages| Named {
                region: TestRegion::normal("model", pages),
                joins: Vec::new(),
                access: Access::ReadOnly,
                addr: 0,
                handle_offset: 0,
                words: [None; SLOTS],
            })
            .collect();
        let extra = if huge {
            TestRegion::new("model-huge", PageSize::Huge, 1)
        } else {
            eprintln!("the model runs without a huge-page region");
            TestRegion::normal("model", 7)
        };
        named.push(Named {
            region: extra,
            joins: Vec::new(),
            access: Access::ReadOnly,
            addr: 0,
            handle_offset: 0,
            words: [None; SLOTS],
        });
        let anon = |page_size: PageSize, pages: usize| Anon {
            name: unique_name("j-model-anon"),
            memory: AnonHugePages::acquire(page_size, pages, None)
                .unwrap_or_else(|error| panic!("{pages} anonymous {page_size} pages: {error}")),
            registered: false,
            access: Access::ReadWrite,
            handle: 0,
            joins: Vec::new(),
        };
        let mut anons = vec![anon(PageSize::Normal, 3)];
        anons.push(if huge { anon(PageSize::Huge, 1) } else { anon(PageSize::Normal, 5) });
        Self {
            seed,
            rng: Rng(shmkit_testkit::Rng(seed)),
            step: 0,
            named,
            anons,
            probe: unique_name("j-model-probe"),
            history: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// Seed, step, the last steps and the model's state: what a failure prints.
    fn context(&self) -> String {
        let mut text = format!(
            "\nseed {:#x} (replay with SHMKIT_MODEL_SEED={:#x}), step {}\nlast steps:\n",
            self.seed, self.seed, self.step
        );
        for line in &self.history {
            let _ = writeln!(text, "  {line}");
        }
        text.push_str("model:\n");
        for named in &self.named {
            let _ = writeln!(
                text,
                "  {} ({} {} pages, {} bytes): {} joins, {}, addr {:#x}",
                named.region.name,
                named.region.page_count,
                named.region.page_size,
                named.region.len(),
                named.joins.len(),
                named.access,
                named.addr
            );
        }
        for anon in &self.anons {
            let _ = writeln!(
                text,
                "  {} (anonymous, {} bytes at {:p}): registered {}, {}, handle {:#x}, {} named joins",
                anon.name,
                anon.memory.len(),
                anon.memory.as_ptr(),
                anon.registered,
                anon.access,
                anon.handle,
                anon.joins.len()
            );
        }
        text
    }

    fn log(&mut self, line: &str) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(format!("step {}: {line}", self.step));
    }

    /// Every join the registry must hold.
    fn expected(&self) -> Vec<JoinInfo> {
        let named = self.named.iter().filter_map(Named::expected);
        let anons = self.anons.iter().filter_map(Anon::expected);
        named.chain(anons).collect()
    }

    fn step(&mut self) {
        self.step += 1;
        match self.rng.below(100) {
            0..80 => {
                let index = self.rng.below(self.named.len());
                let joined = self.named[index].joins.len();
                if joined == 0 || (joined < MAX_JOINS && self.rng.coin()) {
                    self.join_named(index);
                } else {
                    self.leave_named(index);
                }
            }
            80..92 => {
                let index = self.rng.below(self.anons.len());
                self.anon_step(index);
            }
            _ => self.probe_collisions(),
        }
    }

    fn join_named(&mut self, index: usize) {
        let access = self.rng.access();
        let how = match self.rng.below(10) {
            0..6 => How::Plain,
            6..9 => How::Handle,
            _ => How::Refuse,
        };
        let named = &self.named[index];
        let name = named.region.name;
        let len = named.region.len();
        let offset = 8 * self.rng.below(len / 8);
        let was_joined = !named.joins.is_empty();
        let refused = was_joined && named.access == Access::ReadOnly && access == Access::ReadWrite;
        self.log(&format!(
            "join {name} {access} {how:?} {offset:#x} (count {})",
            named.joins.len()
        ));
        let mut seen: Vec<JoinInfo> = Vec::new();
        let result = match how {
            How::Plain => join(&name, access, &options()),
            How::Handle => join_with(&name, access, &options(), |info| {
                seen.push(*info);
                Ok(non_null(info.addr + offset))
            }),
            How::Refuse => join_with(&name, access, &options(), |info| {
                seen.push(*info);
                Err("refused by the model".into())
            }),
        };
        if was_joined || refused {
            assert!(seen.is_empty(), "a count hit runs no hook: {seen:?}{}", self.context());
        }
        if refused {
            let error = result.err();
            assert!(
                matches!(&error, Some(Error::AccessUpgrade { name: refused }) if *refused == name),
                "a {access} join of read-only {name} gave {error:?}, not AccessUpgrade{}",
                self.context()
            );
            self.stats.upgrades_refused += 1;
            return;
        }
        if !was_joined && how != How::Plain {
            assert_eq!(seen.len(), 1, "the hook of a first join runs once{}", self.context());
            let hooked = seen[0];
            let expected = JoinInfo {
                name,
                page_size: self.named[index].region.page_size,
                page_count: self.named[index].region.page_count,
                access,
                addr: hooked.addr,
                len,
                handle: hooked.addr,
                count: 1,
                anonymous: false,
            };
            assert_eq!(hooked, expected, "what the join hook is shown{}", self.context());
        }
        if !was_joined && how == How::Refuse {
            let error = result.err();
            assert!(
                matches!(&error, Some(Error::HookRefused { name: refused, source })
                    if *refused == name && source.to_string() == "refused by the model"),
                "a refused first join of {name} gave {error:?}{}",
                self.context()
            );
            self.stats.hooks_refused += 1;
            return;
        }
        let joined = result
            .unwrap_or_else(|error| panic!("join {name} {access}: {error}{}", self.context()));
        let addr = joined.region_ptr() as usize;
        if was_joined {
            assert_eq!(addr, self.named[index].addr, "a count hit maps nothing{}", self.context());
            self.stats.count_hits += 1;
        } else {
            let page = self.named[index].region.page_size.bytes();
            assert!(addr.is_multiple_of(page), "{addr:#x} is not aligned to {page}");
            let overlapping: Vec<_> =
                self.expected().into_iter().filter(|info| overlaps(info, addr, len)).collect();
            assert!(
                overlapping.is_empty(),
                "{name} mapped at {addr:#x}..{:#x} overlaps {overlapping:?}{}",
                addr + len,
                self.context()
            );
            let named = &mut self.named[index];
            named.access = access;
            named.addr = addr;
            named.handle_offset = if how == How::Handle { offset } else { 0 };
            self.stats.first_joins += 1;
        }
        let handle = addr + self.named[index].handle_offset;
        assert_eq!(joined.as_ptr() as usize, handle, "the join's handle{}", self.context());
        assert_eq!(joined.len(), len);
        assert_eq!(*joined.name(), name);
        self.check_contents(index, &joined, access);
        self.named[index].joins.push(joined);
    }

    /// Reads a remembered word through a new join; if it is read-write, writes one through it and
    /// reads it back through another join of the region (or itself, if it is the only one).
    fn check_contents(&mut self, index: usize, joined: &Join, access: Access) {
        let remembered: Vec<usize> =
            (0..SLOTS).filter(|slot| self.named[index].words[*slot].is_some()).collect();
        let stride = self.named[index].stride();
        if !remembered.is_empty() {
            let slot = remembered[self.rng.below(remembered.len())];
            let expected = self.named[index].words[slot];
            let found = load(joined, slot * stride);
            assert_eq!(
                Some(found),
                expected,
                "word {slot} of {} read through a new join{}",
                joined.name(),
                self.context()
            );
        }
        if access == Access::ReadWrite {
            let slot = self.rng.below(SLOTS);
            let value = self.rng.next();
            store(joined, slot * stride, value);
            self.named[index].words[slot] = Some(value);
            let others = &self.named[index].joins;
            let reader =
                if others.is_empty() { joined } else { &others[self.rng.below(others.len())] };
            assert_eq!(
                load(reader, slot * stride),
                value,
                "word {slot} of {} read back through another join{}",
                joined.name(),
                self.context()
            );
        }
    }

    fn leave_named(&mut self, index: usize) {
        let count = self.named[index].joins.len();
        let which = self.rng.below(count);
        let how = self.rng.below(3);
        let name = self.named[index].region.name;
        let expected = self.named[index].expected();
        self.log(&format!(
            "leave {name} (count {count}) by {}",
            ["leave()", "drop", "leave_with"][how]
        ));
        let joined = self.named[index].joins.swap_remove(which);
        let mut seen = Vec::new();
        let result = match how {
            0 => joined.leave(),
            1 => {
                drop(joined);
                Ok(())
            }
            _ => joined.leave_with(|info| {
                // The region is still mapped while the last leave's hook runs: read its first word.
                let first = info.addr as *mut u64;
                // SAFETY: `leave_with` promises the region stays mapped while its hook runs;
                // `info.addr` is its first byte, page aligned; a relaxed atomic load of a word is
                // allowed on read-only memory.
                let word = unsafe { AtomicU64::from_ptr(first) }.load(Ordering::Relaxed);
                seen.push((*info, word));
            }),
        };
        if let Err(error) = result {
            panic!("leave {name}: {error}{}", self.context());
        }
        if how == 2 {
            let calls: Vec<JoinInfo> = seen.iter().map(|(info, _)| *info).collect();
            let want: Vec<JoinInfo> = expected.into_iter().filter(|_| count == 1).collect();
            assert_eq!(calls, want, "the leave hook runs at the last leave only{}", self.context());
            if let (Some((_, word)), Some(remembered)) = (seen.first(), self.named[index].words[0])
            {
                assert_eq!(*word, remembered, "word 0 read in the leave hook{}", self.context());
            }
        }
        self.stats.leaves += 1;
        if count == 1 {
            self.stats.last_leaves += 1;
        }
    }

    fn anon_step(&mut self, index: usize) {
        let roll = self.rng.below(100);
        let anon = &self.anons[index];
        let name = anon.name;
        match (anon.registered, roll) {
            (false, 0..70) | (true, 0..10) => self.anon_register(index),
            (false, 70..85) | (true, 10..45) => {
                let handle =
                    if anon.registered { anon.handle } else { anon.memory.as_ptr() as usize };
                self.anon_leave(index, handle);
            }
            (false, _) => {
                // No region of that name exists: the named join fails and leaves no trace.
                self.log(&format!("join {name} by name while not registered"));
                let result = join(&name, Access::ReadOnly, &options());
                assert!(
                    matches!(result, Err(Error::Os(_))),
                    "a join of {name}, which exists nowhere, gave {result:?}{}",
                    self.context()
                );
                self.stats.refusals_checked += 1;
            }
            (true, _) => {
                if anon.joins.is_empty() || (anon.joins.len() < MAX_JOINS && self.rng.coin()) {
                    self.anon_named_join(index);
                } else {
                    let which = self.rng.below(anon.joins.len());
                    let how = self.rng.below(3);
                    self.log(&format!("leave a named join of anonymous {name} (how {how})"));
                    let joined = self.anons[index].joins.swap_remove(which);
                    let mut hooked = false;
                    let result = match how {
                        0 => joined.leave(),
                        1 => {
                            drop(joined);
                            Ok(())
                        }
                        _ => joined.leave_with(|_| hooked = true),
                    };
                    if let Err(error) = result {
                        panic!("leave named join of {name}: {error}{}", self.context());
                    }
                    assert!(!hooked, "not the last leave: no hook{}", self.context());
                }
            }
        }
    }

    fn anon_register(&mut self, index: usize) {
        let access = self.rng.access();
        let anon = &self.anons[index];
        let addr = anon.memory.as_ptr() as usize;
        let handle = addr + 64 * self.rng.below(anon.memory.len() / 64);
        let (name, registered) = (anon.name, anon.registered);
        let (page_size, pages) = (anon.memory.page_size(), anon.memory.page_count() as u64);
        self.log(&format!(
            "join_anonymous {name} {access} handle {handle:#x} (registered {registered})"
        ));
        let result =
            join_anonymous(&name, access, non_null(handle), non_null(addr), page_size, pages);
        if registered {
            assert!(
                matches!(result, Err(Error::Collision { .. })),
                "a second anonymous join of {name} gave {result:?}{}",
                self.context()
            );
            self.stats.refusals_checked += 1;
            return;
        }
        let info = result
            .unwrap_or_else(|error| panic!("join_anonymous {name}: {error}{}", self.context()));
        let anon = &mut self.anons[index];
        anon.registered = true;
        anon.access = access;
        anon.handle = handle;
        let expected = anon.expected();
        assert_eq!(Some(info), expected, "join_anonymous returns the record{}", self.context());
        self.stats.anon_joins += 1;
    }

    fn anon_leave(&mut self, index: usize, handle: usize) {
        let anon = &self.anons[index];
        let (name, registered, named_joins) = (anon.name, anon.registered, anon.joins.len());
        let expected = anon.expected();
        self.log(&format!("leave_anonymous {name} handle {handle:#x} ({named_joins} named joins)"));
        let result = leave_anonymous(non_null(handle));
        match (registered, named_joins) {
            (false, _) => {
                assert!(
                    matches!(result, Err(Error::NotJoined { .. })),
                    "leave_anonymous of unregistered {name} gave {result:?}{}",
                    self.context()
                );
                self.stats.refusals_checked += 1;
            }
            (true, 0) => {
                let info = result.unwrap_or_else(|error| {
                    panic!("leave_anonymous {name}: {error}{}", self.context())
                });
                assert_eq!(Some(info), expected, "leave_anonymous hands back the record");
                self.anons[index].registered = false;
                self.stats.anon_leaves += 1;
            }
            (true, _) => {
                assert!(
                    matches!(&result, Err(Error::WrongLeave { name: refused, .. }) if *refused == name),
                    "leave_anonymous of {name} joined {} times gave {result:?}{}",
                    named_joins + 1,
                    self.context()
                );
                self.stats.refusals_checked += 1;
            }
        }
    }

    fn anon_named_join(&mut self, index: usize) {
        let access = self.rng.access();
        let anon = &self.anons[index];
        let (name, record_access) = (anon.name, anon.access);
        let (addr, handle, len) = (anon.memory.as_ptr() as usize, anon.handle, anon.memory.len());
        self.log(&format!("join anonymous {name} by name {access} (record {record_access})"));
        let result = join(&name, access, &options());
        if record_access == Access::ReadOnly && access == Access::ReadWrite {
            assert!(
                matches!(result, Err(Error::AccessUpgrade { .. })),
                "a read-write join of read-only anonymous {name} gave {result:?}{}",
                self.context()
            );
            self.stats.upgrades_refused += 1;
            return;
        }
        let joined = result.unwrap_or_else(|error| {
            panic!("a named join of anonymous {name} is a count hit, not {error}{}", self.context())
        });
        assert_eq!(
            (joined.region_ptr() as usize, joined.as_ptr() as usize, joined.len()),
            (addr, handle, len),
            "a named join of anonymous {name} gives its memory and handle{}",
            self.context()
        );
        self.anons[index].joins.push(joined);
        self.stats.count_hits += 1;
    }

    /// Anonymous joins that must be refused, each leaving the registry as it was (the check after
    /// the step compares the whole snapshot); and one that must succeed where nothing is joined.
    fn probe_collisions(&mut self) {
        let expected = self.expected();
        let probe = self.probe;
        assert!(
            !expected.iter().any(|info| overlaps(info, FREE_ADDR, 4096)),
            "page {FREE_ADDR:#x} is joined{}",
            self.context()
        );
        let Some(target) = (!expected.is_empty()).then(|| expected[self.rng.below(expected.len())])
        else {
            self.log(&format!("join_anonymous {probe} at a free page and leave it"));
            let free = non_null(FREE_ADDR);
            let info = join_anonymous(&probe, Access::ReadOnly, free, free, PageSize::Normal, 1)
                .unwrap_or_else(|error| panic!("free page: {error}{}", self.context()));
            let left = leave_anonymous(free)
                .unwrap_or_else(|error| panic!("leave free page: {error}{}", self.context()));
            assert_eq!(info, left, "leave_anonymous hands back what was registered");
            return;
        };
        let page = target.page_size.bytes();
        let (start, pages) = match self.rng.below(4) {
            // Over the first byte, over the last byte, around it, inside it.
            0 => (target.addr - page, 2),
            1 => (target.addr + target.len - page, 2),
            2 => (target.addr - page, target.page_count + 2),
            _ => (target.addr, 1),
        };
        let how = self.rng.below(5);
        self.log(&format!(
            "probe {how} against {} at {:#x}..{:#x}: {pages} pages at {start:#x}",
            target.name,
            target.addr,
            target.addr + target.len
        ));
        let free = non_null(FREE_ADDR);
        let result = match how {
            0 => join_anonymous(
                &probe,
                Access::ReadWrite,
                free,
                non_null(start),
                target.page_size,
                pages,
            ),
            1 => join_anonymous(
                &probe,
                Access::ReadWrite,
                non_null(target.handle),
                free,
                PageSize::Normal,
                1,
            ),
            2 => join_anonymous(&target.name, Access::ReadWrite, free, free, PageSize::Normal, 1),
            3 => {
                self.probe_handle_inside(&target);
                return;
            }
            _ => {
                let result = leave_anonymous(non_null(target.handle));
                let fine = if target.anonymous && target.count == 1 {
                    // The one case where it is allowed: undo it at once.
                    let info = result.as_ref().ok().copied();
                    let restored = info.map(|info| {
                        join_anonymous(
                            &info.name,
                            info.access,
                            non_null(info.handle),
                            non_null(info.addr),
                            info.page_size,
                            info.page_count,
                        )
                    });
                    info == Some(target) && matches!(restored, Some(Ok(_)))
                } else {
                    matches!(&result, Err(Error::WrongLeave { name, .. }) if *name == target.name)
                };
                assert!(fine, "leave_anonymous of {target:?} gave {result:?}{}", self.context());
                self.stats.refusals_checked += 1;
                return;
            }
        };
        assert!(
            matches!(&result, Err(Error::Collision { name, .. }) if *name == probe || *name == target.name),
            "probe {how} against {target:?} ({pages} pages at {start:#x}) gave {result:?}{}",
            self.context()
        );
        self.stats.refusals_checked += 1;
    }

    /// A handle may point anywhere but at another join's handle, even into another join's
    /// range: the handle and range queries keep the two apart.
    fn probe_handle_inside(&mut self, target: &JoinInfo) {
        let probe = self.probe;
        let handle = target.addr + (target.handle - target.addr + 8) % target.len;
        let free = non_null(FREE_ADDR);
        let info =
            join_anonymous(&probe, Access::ReadOnly, non_null(handle), free, PageSize::Normal, 1)
                .unwrap_or_else(|error| {
                    panic!("a handle {handle:#x} inside {target:?}: {error}{}", self.context())
                });
        assert_eq!(query_by_handle(handle as *const u8), Some(info), "{}", self.context());
        assert_eq!(
            query_by_handle(target.handle as *const u8),
            Some(*target),
            "{}",
            self.context()
        );
        let by_range = query_by_range(handle as *const u8, 1).expect("query");
        assert_eq!(by_range, Some(*target), "bytes are found by range{}", self.context());
        let by_range = query_by_range(FREE_ADDR as *const u8, 1).expect("query");
        assert_eq!(by_range, Some(info), "bytes are found by range{}", self.context());
        let left = leave_anonymous(non_null(handle))
            .unwrap_or_else(|error| panic!("leave the probe: {error}{}", self.context()));
        assert_eq!(left, info, "{}", self.context());
        self.stats.refusals_checked += 1;
    }

    /// Every query and the snapshot against the model.
    fn check(&mut self) {
        let expected = self.expected();
        let mut snapshot: Vec<JoinInfo> = joins().iter().copied().collect();
        snapshot.sort_by_key(|info| info.name);
        let mut sorted = expected.clone();
        sorted.sort_by_key(|info| info.name);
        assert_eq!(snapshot.len(), joins().len(), "Snapshot::len counts what iter yields");
        assert_eq!(snapshot, sorted, "joins() is the model{}", self.context());
        assert!(query_by_name(&self.probe).is_none(), "probe joined{}", self.context());
        for index in 0..self.named.len() {
            let named = &self.named[index];
            let (name, len, addr) = (named.region.name, named.region.len(), named.addr);
            let handle = addr + named.handle_offset;
            let info = named.expected();
            for joined in &named.joins {
                assert_eq!(
                    (joined.region_ptr() as usize, joined.as_ptr() as usize, joined.len()),
                    (addr, handle, len),
                    "a live join of {name} points at its mapping{}",
                    self.context()
                );
            }
            self.check_entry(name, info, addr, handle, len);
        }
        for index in 0..self.anons.len() {
            let anon = &self.anons[index];
            let (name, addr, len) = (anon.name, anon.memory.as_ptr() as usize, anon.memory.len());
            let handle = if anon.registered { anon.handle } else { addr };
            let info = anon.expected();
            self.check_entry(name, info, addr, handle, len);
        }
    }

    /// The queries of one entry: by name, by handle, by range inside, at the last byte and just
    /// past the end; `addr` and `handle` are where it is (or was last) joined.
    fn check_entry(
        &mut self,
        name: Name,
        info: Option<JoinInfo>,
        addr: usize,
        handle: usize,
        len: usize,
    ) {
        assert_eq!(query_by_name(&name), info, "query_by_name({name}){}", self.context());
        if addr == 0 {
            return;
        }
        for handle in [handle, addr] {
            let by_handle = query_by_handle(handle as *const u8);
            assert_eq!(
                by_handle,
                self.model_handle(handle),
                "query_by_handle({handle:#x}) of {name}{}",
                self.context()
            );
        }
        let offset = self.rng.below(len);
        let sub = 1 + self.rng.below(len - offset);
        for (start, sub_len, inside) in
            [(addr + offset, sub, true), (addr + len - 1, 1, true), (addr + len, 1, false)]
        {
            let found = query_by_range(start as *const u8, sub_len).unwrap_or_else(|error| {
                panic!("query_by_range({start:#x}, {sub_len}): {error}{}", self.context())
            });
            let candidates = self.model_range(start, sub_len);
            let fine = match found {
                None => candidates.is_empty(),
                Some(found) => candidates.contains(&found),
            };
            assert!(
                fine,
                "query_by_range({start:#x}, {sub_len}) near {name} gave {found:?}, the model has \
                 {candidates:?}{}",
                self.context()
            );
            if inside && info.is_some() {
                assert_eq!(found, info, "a range inside {name} finds it{}", self.context());
            }
            if !inside {
                assert!(
                    found.is_none_or(|found| found.name != name),
                    "the byte past the end of {name} is not in it{}",
                    self.context()
                );
            }
        }
    }

    fn model_handle(&self, handle: usize) -> Option<JoinInfo> {
        self.expected().into_iter().find(|info| info.handle == handle)
    }

    fn model_range(&self, start: usize, len: usize) -> Vec<JoinInfo> {
        self.expected().into_iter().filter(|info| overlaps(info, start, len)).collect()
    }

    /// Leaves everything, checking the registry ends empty.
    fn finish(mut self) {
        for named in &mut self.named {
            named.joins.clear();
        }
        for anon in &mut self.anons {
            anon.joins.clear();
            if anon.registered {
                let handle = non_null(anon.handle);
                leave_anonymous(handle).expect("final leave_anonymous");
                anon.registered = false;
            }
        }
        self.check();
        assert!(joins().is_empty(), "nothing is joined at the end");
        self.blanket();
    }

    /// Memory registered with `join_anonymous` but never mapped may lie where the kernel maps a
    /// region: that named join is refused (a collision) and its mapping undone.
    fn blanket(&mut self) {
        self.step += 1;
        let blanket = unique_name("j-model-blanket");
        let (start, end) = (1_usize << 16, (1_usize << 47) - (1 << 16));
        let pages = ((end - start) / 4096) as u64;
        let at = non_null(start);
        let info = join_anonymous(&blanket, Access::ReadOnly, at, at, PageSize::Normal, pages)
            .unwrap_or_else(|error| panic!("register the whole user space: {error}"));
        let name = self.named[0].region.name;
        self.log(&format!("join {name} under {blanket} at {start:#x}..{end:#x}"));
        let result = join(&name, Access::ReadWrite, &options());
        assert!(
            matches!(&result, Err(Error::Collision { name: refused, reason })
                if *refused == name && reason.contains(blanket.as_str())),
            "a region mapped under an anonymous join: {result:?}{}",
            self.context()
        );
        assert!(query_by_name(&name).is_none(), "the refused join is not recorded");
        assert!(!maps_file_named(&name), "the refused join was unmapped");
        assert_eq!(leave_anonymous(at).expect("leave the blanket"), info);
        let joined = join(&name, Access::ReadWrite, &options()).expect("join after the blanket");
        assert!(maps_file_named(&name), "{name} is mapped");
        joined.leave().expect("leave");
        assert!(!maps_file_named(&name), "{name} is unmapped");
        assert!(joins().is_empty(), "nothing is joined at the end");
    }
}

fn overlaps(info: &JoinInfo, start: usize, len: usize) -> bool {
    start < info.addr + info.len && info.addr < start + len
}

fn seed() -> u64 {
    let Ok(text) = std::env::var("SHMKIT_MODEL_SEED") else { return SEED };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|error| panic!("SHMKIT_MODEL_SEED={text:?}: {error}"))
}

#[test]
fn the_registry_follows_the_model() {
    let seed = seed();
    eprintln!("model seed {seed:#x} ({STEPS} steps)");
    let started = Instant::now();
    let mut model = Model::new(seed);
    assert!(joins().is_empty(), "this binary's only test starts with an empty registry");
    model.check();
    for _ in 0..STEPS {
        model.step();
        model.check();
    }
    eprintln!("{:?} in {:.2?}", model.stats, started.elapsed());
    let stats = &model.stats;
    assert!(
        stats.first_joins > 1000 && stats.last_leaves > 1000 && stats.count_hits > 1000,
        "the model exercised too little: {stats:?}"
    );
    assert!(stats.anon_joins > 100 && stats.upgrades_refused > 100, "{stats:?}");
    model.finish();
}
