//! The registry: a fixed slot map of join records behind one lock, and the state machine that
//! lets hooks run without the lock while other threads wait for, rather than duplicate, a join
//! in progress.
//!
//! A record is `Joining(thread)` from the moment a first join claims the name until its mapping
//! and hook are done, `Ready` while it can be shared, and `Leaving(thread)` while the last leave
//! runs its hook. The lock is held only to read or change records: never while mapping (a
//! syscall) nor while a hook runs, so hooks may join and leave other regions freely. Meeting a
//! record in progress on one's own thread is a cycle (an error); on another thread it is a wait.

use shmkit_name::{Key, Name, PageSize};
use shmkit_os::{Access, Mapping};
use shmkit_slotmap::SlotMap;

use crate::error::{Error, HookError, Result};
use crate::index::SpanIndex;
use crate::primitive::{Mutex, ThreadId, current_thread, yield_now};

/// How many regions one process can have joined at once.
#[cfg(not(loom))]
pub const CAPACITY: usize = 255;
/// How many regions one process can have joined at once: a small table under loom, whose
/// coroutines have small stacks and whose models need only a few records.
#[cfg(loom)]
pub const CAPACITY: usize = 7;
/// Slots in the map: one more than the capacity, so probes always meet an empty slot.
const SLOTS: usize = CAPACITY + 1;

/// A copy of one join record: what is joined, where, and how often.
// `repr(C)` with the name first: the 40-byte, byte-aligned name then starts on an 8-byte boundary,
// so copies of a record use aligned moves (at odd offsets, their partial overlaps stall store
// forwarding, which doubled the cost of a re-join).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinInfo {
    /// The region's name.
    pub name: Name,
    /// Its page size.
    pub page_size: PageSize,
    /// How many pages it spans.
    pub page_count: u64,
    /// How it is mapped.
    pub access: Access,
    /// The first byte of the region in this process.
    pub addr: usize,
    /// The region's length in bytes.
    pub len: usize,
    /// The join handle: what the join hook returned (the object the caller wanted), or `addr`.
    pub handle: usize,
    /// How many joins of it are live in this process.
    pub count: u32,
    /// Whether it was registered with `join_anonymous` (memory obtained elsewhere).
    pub anonymous: bool,
}

/// What a join hands its caller: where the region is and its handle (a count hit copies these,
/// not the whole record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Joined {
    pub(crate) addr: usize,
    pub(crate) len: usize,
    pub(crate) handle: usize,
}

impl Joined {
    fn of(info: &JoinInfo) -> Self {
        Self { addr: info.addr, len: info.len, handle: info.handle }
    }
}

/// A join hook with its product erased to an address.
pub(crate) type JoinHook<'a> = &'a mut dyn FnMut(&JoinInfo) -> Result<usize, HookError>;

/// What a first join produced before it is recorded: the mapping (none under test models) and
/// where it lies.
pub(crate) struct Mapped {
    pub(crate) mapping: Option<Mapping>,
    pub(crate) addr: usize,
    pub(crate) len: usize,
    pub(crate) page_size: PageSize,
    pub(crate) page_count: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Joining(ThreadId),
    Ready,
    Leaving(ThreadId),
}

struct Record {
    info: JoinInfo,
    state: State,
    /// The mapping this record owns; dropping the record unmaps it. `None` for anonymous joins,
    /// whose memory the caller owns.
    mapping: Option<Mapping>,
}

/// The records, and two indexes of exactly the ready ones: their address ranges and handles.
struct Table {
    records: SlotMap<Key, Record, SLOTS>,
    by_addr: SpanIndex<CAPACITY>,
    by_handle: SpanIndex<CAPACITY>,
}

impl Table {
    #[cfg(not(loom))]
    const fn new() -> Self {
        Self { records: SlotMap::new(), by_addr: SpanIndex::new(), by_handle: SpanIndex::new() }
    }

    #[cfg(loom)]
    fn new() -> Self {
        Self { records: SlotMap::new(), by_addr: SpanIndex::new(), by_handle: SpanIndex::new() }
    }

    /// The ready record whose key is `key`.
    fn ready(&self, key: &Key) -> Option<JoinInfo> {
        self.records
            .get(key)
            .filter(|record| record.state == State::Ready)
            .map(|record| record.info)
    }

    /// Why `info` cannot be indexed: its bytes overlap, or its handle is, a joined region's.
    fn collision(&self, info: &JoinInfo) -> Option<String> {
        let name_of = |key: &Key| {
            self.records
                .get(key)
                .map_or_else(|| "?".to_owned(), |record| record.info.name.to_string())
        };
        if let Some(key) = self.by_handle.find(info.handle, info.handle) {
            return Some(format!("handle {:#x} belongs to {}", info.handle, name_of(key)));
        }
        let last = info.addr + (info.len - 1);
        self.by_addr.find(info.addr, last).map(|key| {
            format!("bytes {:#x}..={last:#x} overlap those of {}", info.addr, name_of(key))
        })
    }

    /// Indexes a record that became ready; [`Table::collision`] must have found nothing.
    fn index(&mut self, info: &JoinInfo) {
        let key = info.name.key();
        let by_addr = self.by_addr.insert(info.addr, info.addr + (info.len - 1), key);
        let by_handle = self.by_handle.insert(info.handle, info.handle, key);
        debug_assert!(by_addr.is_ok() && by_handle.is_ok(), "indexed after a collision check");
    }

    /// Removes the index entries of a record that stops being ready.
    fn unindex(&mut self, key: &Key, info: &JoinInfo) {
        self.by_addr.remove(info.addr, key);
        self.by_handle.remove(info.handle, key);
    }

    /// Removes a record and its index entries (a record being joined or left has none;
    /// `SpanIndex::remove` checks the key, so asking is harmless); the caller drops it outside
    /// the lock.
    fn remove(&mut self, key: &Key) -> Option<Record> {
        let record = self.records.remove(key)?;
        self.unindex(key, &record.info);
        Some(record)
    }
}

/// A join registry. The process has one, [`global`](crate::global); tests and loom models make
/// their own.
pub struct Registry {
    table: Mutex<Table>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// What the first phase of a join found.
enum Claim {
    /// The region was joined and ready: its count has been raised.
    Hit(Joined),
    /// The name is ours to map.
    Claimed,
}

impl Registry {
    /// An empty registry.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self { table: Mutex::new(Table::new()) }
    }

    /// An empty registry.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self { table: Mutex::new(Table::new()) }
    }

    /// Raises the count of a ready join of `name`, or claims the name for a first join; waits
    /// while another thread has a join or leave of it in progress.
    fn claim(&self, name: &Name, access: Access) -> Result<Claim> {
        let key = name.key();
        // Asked for only off the fast path: `std::thread::current` touches a reference count.
        let mut me = None;
        let mut me = || *me.get_or_insert_with(current_thread);
        loop {
            let mut table = self.table.lock();
            if let Some(record) = table.records.get_mut(&key) {
                match record.state {
                    State::Ready => {
                        if access == Access::ReadWrite && record.info.access == Access::ReadOnly {
                            return Err(Error::AccessUpgrade { name: *name });
                        }
                        record.info.count = record.info.count.saturating_add(1);
                        return Ok(Claim::Hit(Joined::of(&record.info)));
                    }
                    State::Joining(thread) | State::Leaving(thread) if thread == me() => {
                        return Err(Error::Cycle { name: *name });
                    }
                    State::Joining(_) | State::Leaving(_) => {}
                }
            } else {
                if table.records.len() >= CAPACITY {
                    return Err(Error::Full { name: *name, capacity: CAPACITY });
                }
                let placeholder = Record {
                    info: JoinInfo {
                        name: *name,
                        page_size: PageSize::Normal,
                        page_count: 0,
                        access,
                        addr: 0,
                        len: 0,
                        handle: 0,
                        count: 0,
                        anonymous: false,
                    },
                    state: State::Joining(me()),
                    mapping: None,
                };
                return match table.records.insert(key, placeholder) {
                    Ok(_) => Ok(Claim::Claimed),
                    Err(_) => Err(Error::Full { name: *name, capacity: CAPACITY }),
                };
            }
            drop(table);
            // Another thread is joining or leaving this name; let it finish.
            yield_now();
        }
    }

    /// Forgets a claim whose mapping or hook failed.
    fn abandon(&self, name: &Name) {
        let removed = self.table.lock().remove(&name.key());
        // Dropped here, outside the lock: it may unmap.
        drop(removed);
    }

    /// Joins `name`: a count hit if it is joined, else `map` produces the mapping and `hook`
    /// (if any) turns it into the join handle; a refusal undoes the join.
    pub(crate) fn join_core(
        &self,
        name: &Name,
        access: Access,
        map: impl FnOnce() -> Result<Mapped>,
        hook: Option<JoinHook<'_>>,
    ) -> Result<Joined> {
        if let Claim::Hit(joined) = self.claim(name, access)? {
            return Ok(joined);
        }
        let mapped = match map() {
            Ok(mapped) if mapped.len > 0 && mapped.addr.checked_add(mapped.len).is_some() => mapped,
            Ok(mapped) => {
                self.abandon(name);
                return Err(Error::InvalidRange { start: mapped.addr, len: mapped.len });
            }
            Err(error) => {
                self.abandon(name);
                return Err(error);
            }
        };
        let mut info = JoinInfo {
            name: *name,
            page_size: mapped.page_size,
            page_count: mapped.page_count,
            access,
            addr: mapped.addr,
            len: mapped.len,
            handle: mapped.addr,
            count: 1,
            anonymous: false,
        };
        if let Some(hook) = hook {
            match hook(&info) {
                Ok(handle) => info.handle = handle,
                Err(source) => {
                    self.abandon(name);
                    drop(mapped);
                    return Err(Error::HookRefused { name: *name, source });
                }
            }
        }
        let mut table = self.table.lock();
        // A hook may hand back another join's handle; memory registered with `join_anonymous`
        // that was not really mapped may lie where the kernel just mapped this region.
        let collision = table.collision(&info);
        let error = match (collision, table.records.get_mut(&name.key())) {
            (None, Some(record)) => {
                record.info = info;
                record.state = State::Ready;
                record.mapping = mapped.mapping;
                table.index(&info);
                return Ok(Joined::of(&info));
            }
            (Some(reason), _) => Error::Collision { name: *name, reason },
            // Only this thread moves a record out of `Joining`, so this cannot happen.
            (None, None) => Error::NotJoined { what: format!("region {name} (its join vanished)") },
        };
        let removed = table.remove(&name.key());
        drop(table);
        // Both dropped outside the lock: they may unmap.
        drop(removed);
        drop(mapped);
        Err(error)
    }

    /// Leaves the join of `name` whose handle is `handle`: the count falls; the last leave runs
    /// `hook` (without the lock) and then unmaps and forgets the region.
    pub(crate) fn leave(
        &self,
        name: &Name,
        handle: usize,
        hook: Option<&mut dyn FnMut(&JoinInfo)>,
    ) -> Result<()> {
        let key = name.key();
        let mut me = None;
        let mut me = || *me.get_or_insert_with(current_thread);
        let info = loop {
            let mut table = self.table.lock();
            let Some(record) =
                table.records.get_mut(&key).filter(|record| record.info.handle == handle)
            else {
                return Err(Error::NotJoined {
                    what: format!("region {name} with handle {handle:#x}"),
                });
            };
            match record.state {
                State::Ready => {}
                State::Joining(thread) | State::Leaving(thread) if thread == me() => {
                    return Err(Error::Cycle { name: *name });
                }
                State::Joining(_) | State::Leaving(_) => {
                    drop(table);
                    yield_now();
                    continue;
                }
            }
            if record.info.anonymous && record.info.count == 1 {
                return Err(Error::WrongLeave {
                    name: *name,
                    reason: "its last join is anonymous: use leave_anonymous, which hands the memory back",
                });
            }
            if record.info.count > 1 {
                record.info.count -= 1;
                return Ok(());
            }
            if hook.is_none() {
                let removed = table.remove(&key);
                drop(table);
                drop(removed);
                return Ok(());
            }
            record.state = State::Leaving(me());
            let info = record.info;
            // The indexes hold ready records only: a range query must not stop at this one and
            // miss a ready join below it.
            table.unindex(&key, &info);
            break info;
        };
        if let Some(hook) = hook {
            hook(&info);
        }
        let removed = self.table.lock().remove(&key);
        drop(removed);
        Ok(())
    }

    /// Registers memory obtained elsewhere under `name`, so that queries find it.
    #[cfg_attr(loom, allow(dead_code, reason = "the loom models cover named joins"))]
    pub(crate) fn join_anonymous(&self, info: JoinInfo) -> Result<JoinInfo> {
        if info.len == 0 || info.addr.checked_add(info.len).is_none() {
            return Err(Error::InvalidRange { start: info.addr, len: info.len });
        }
        let mut table = self.table.lock();
        if table.records.contains(&info.name.key()) {
            return Err(Error::Collision {
                name: info.name,
                reason: "that name is joined already".to_owned(),
            });
        }
        if let Some(reason) = table.collision(&info) {
            return Err(Error::Collision { name: info.name, reason });
        }
        if table.records.len() >= CAPACITY {
            return Err(Error::Full { name: info.name, capacity: CAPACITY });
        }
        let record = Record { info, state: State::Ready, mapping: None };
        if table.records.insert(info.name.key(), record).is_err() {
            return Err(Error::Full { name: info.name, capacity: CAPACITY });
        }
        table.index(&info);
        Ok(info)
    }

    /// Removes an anonymous join by its handle; it must be joined exactly once.
    #[cfg_attr(loom, allow(dead_code, reason = "the loom models cover named joins"))]
    pub(crate) fn leave_anonymous(&self, handle: usize) -> Result<JoinInfo> {
        let mut table = self.table.lock();
        let found = table.by_handle.find(handle, handle).copied();
        let Some((key, info)) = found.and_then(|key| Some((key, table.ready(&key)?))) else {
            return Err(Error::NotJoined { what: format!("handle {handle:#x}") });
        };
        if !info.anonymous {
            return Err(Error::WrongLeave {
                name: info.name,
                reason: "it was joined by name: leave its Join",
            });
        }
        if info.count != 1 {
            return Err(Error::WrongLeave {
                name: info.name,
                reason: "it is joined more than once: leave the other joins first",
            });
        }
        let removed = table.remove(&key);
        drop(table);
        drop(removed);
        Ok(info)
    }

    /// The ready join of `name`, O(1).
    pub fn query_by_name(&self, name: &Name) -> Option<JoinInfo> {
        self.table.lock().ready(&name.key())
    }

    /// The ready join whose handle is `handle`, O(log n).
    pub fn query_by_handle(&self, handle: usize) -> Option<JoinInfo> {
        let table = self.table.lock();
        table.by_handle.find(handle, handle).and_then(|key| table.ready(key))
    }

    /// A ready join whose region overlaps `[start, start + len)`, O(log n). An empty range
    /// overlaps nothing; a range that wraps the address space is [`Error::InvalidRange`].
    pub fn query_by_range(&self, start: usize, len: usize) -> Result<Option<JoinInfo>> {
        if start.checked_add(len).is_none() {
            return Err(Error::InvalidRange { start, len });
        }
        if len == 0 {
            return Ok(None);
        }
        let table = self.table.lock();
        Ok(table.by_addr.find(start, start + (len - 1)).and_then(|key| table.ready(key)))
    }

    /// A consistent copy of every ready join, taken under the lock, without allocating.
    #[allow(
        clippy::large_stack_arrays,
        reason = "a fixed array is how a snapshot avoids allocating (27 KiB)"
    )]
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot { joins: [None; CAPACITY], len: 0 };
        let table = self.table.lock();
        for (_, record) in &table.records {
            if record.state == State::Ready && snapshot.len < CAPACITY {
                snapshot.joins[snapshot.len] = Some(record.info);
                snapshot.len += 1;
            }
        }
        snapshot
    }
}

/// Entry points for loom models, which cannot map real memory: a first join "maps" `len` bytes
/// at the fake address `addr`.
#[cfg(loom)]
impl Registry {
    /// A join whose first join records a fake mapping; returns the address and the handle.
    pub fn model_join(
        &self,
        name: &Name,
        access: Access,
        addr: usize,
        len: usize,
    ) -> Result<(usize, usize)> {
        let map = || {
            Ok(Mapped {
                mapping: None,
                addr,
                len,
                page_size: PageSize::Normal,
                page_count: (len / 4096) as u64,
            })
        };
        self.join_core(name, access, map, None).map(|joined| (joined.addr, joined.handle))
    }

    /// A leave of a join made by [`Registry::model_join`]; a last leave runs an empty leave
    /// hook, so that the record passes through `Leaving` with the lock released.
    pub fn model_leave(&self, name: &Name, handle: usize) -> Result<()> {
        self.leave(name, handle, Some(&mut |_: &JoinInfo| {}))
    }
}

#[cfg(not(loom))]
impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Every join at one moment: a fixed array, so taking it allocates nothing.
#[derive(Clone, Debug)]
pub struct Snapshot {
    joins: [Option<JoinInfo>; CAPACITY],
    len: usize,
}

impl Snapshot {
    /// How many joins it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was joined.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The joins, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &JoinInfo> {
        self.joins[..self.len].iter().flatten()
    }
}
