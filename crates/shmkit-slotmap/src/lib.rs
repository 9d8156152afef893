//! A fixed-capacity map with no pointers and no allocation: usable in a `static`, and inside
//! shared memory that each process maps at its own address.
//!
//! [`SlotMap<K, V, N>`](SlotMap) holds at most `N` entries (`N` a power of two) in an inline
//! array of slots. Keys implement [`SlotKey`]: a `Copy` value with a reserved
//! [`NULL`](SlotKey::NULL) that marks an empty slot, and a hash every process computes alike.
//! `SlotKey` is implemented for `u64` and `u32` (0 is null) and, with the default `name`
//! feature, for `shmkit_name::Key` (all zeros is null).
//!
//! ```
//! use shmkit_slotmap::{InsertError, SlotMap};
//!
//! let mut refcounts: SlotMap<u64, u32, 4> = SlotMap::new();
//! refcounts.insert(7, 1)?;
//! if let Some(count) = refcounts.get_mut(&7) {
//!     *count += 1;
//! }
//! assert_eq!(refcounts.get(&7), Some(&2));
//! assert_eq!(refcounts.insert_or_replace(7, 5)?, Some(2));
//!
//! // A failed insertion hands the value back.
//! for key in 8..11 {
//!     refcounts.insert(key, 1)?;
//! }
//! let error = refcounts.insert(11, 42).unwrap_err();
//! assert!(matches!(error, InsertError::Full(42)));
//!
//! assert_eq!(refcounts.remove(&7), Some(5));
//! assert_eq!(refcounts.len(), 3);
//! # Ok::<(), InsertError<u32>>(())
//! ```
//!
//! # Design
//!
//! - **Open addressing, linear probing.** A key's home slot is `hash64 & (N - 1)`; a lookup walks
//!   forward (wrapping at the end) until it finds the key or an empty slot. Neighbouring slots
//!   share cache lines, so a hit at moderate load usually touches one or two lines.
//! - **Deletion by backward shift, no tombstones.** Removing a key moves the later entries of its
//!   cluster back into the gap when that keeps them at or after their home. The table is then
//!   exactly as if the key had never been inserted: probe lengths depend only on the current
//!   entries, a long-lived map with churn does not silt up with tombstones, and no periodic
//!   rehash (which would need a second table) is ever required.
//! - **No pointers, `#[repr(C)]`.** The map is a `u64` length followed by `N` slots of
//!   `(K, MaybeUninit<V>)`; a slot is occupied iff its key is not null, so there is no separate
//!   occupancy array. Nothing in it is an address, so it is position-independent: its bytes may
//!   be copied or mapped anywhere and the copy is a working map.
//! - **No panics, bounded work, whatever the bytes.** Every probe stops after `N` slots and every
//!   index is masked with `N - 1`, so a full table, or a copy whose length or keys another
//!   process corrupted, gives wrong answers at worst, never a panic, an out-of-bounds access or
//!   an endless loop.
//! - **Capacity checked at compile time.** `N` must be a power of two no larger than
//!   `u32::MAX`; [`SlotMap::new`] fails to compile otherwise. All `N` slots may be used.
//!
//! # Using it in shared memory
//!
//! Position independence only makes the *map's* bytes meaningful elsewhere. For the entries to
//! be meaningful in another process, `K` and `V` must themselves be plain `#[repr(C)]` data with
//! no pointers, references, file descriptors or other per-process values (`shmkit_name::Key`
//! and fixed-width integers are; `String` and `Box` are not), and every bit pattern a peer can
//! write must be valid for them.
//!
//! The map is not synchronised: it is an ordinary value that needs `&mut` to change. Processes
//! sharing one must serialise access themselves, e.g. with a process-shared lock held for every
//! call, and must not keep references into it across the lock's release.
//!
//! # Complexity
//!
//! With load factor `α = len / N`, linear probing inspects on average about
//! `(1 + 1 / (1 - α)) / 2` slots for a hit and `(1 + 1 / (1 - α)²) / 2` for a miss or an insert
//! (1.5 and 2.5 at `α = 0.5`; 5.5 and 50.5 at `α = 0.9`); removal adds a scan to the end of the
//! cluster. The worst case of each is `N` slots. [`SlotMap::iter`], [`SlotMap::clear`] and
//! [`SlotMap::retain`] visit all `N` slots whatever the length. Memory is 8 bytes plus `N` slots
//! of a `K` followed by a `V` (with C padding), inline: the map never allocates.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod iter;
mod key;
mod map;

pub use error::InsertError;
pub use iter::{Iter, IterMut};
pub use key::SlotKey;
pub use map::SlotMap;
