//! [`NodeMask`]: the node bit mask of `set_mempolicy`, `get_mempolicy` and `mbind`, and the
//! `maxnode` value that goes with it.
//!
//! The kernel takes a mask as an array of `unsigned long` plus `maxnode`, and in both directions
//! uses one bit fewer than `maxnode` says (mm/mempolicy.c):
//!
//! - `get_nodes()`, which reads our mask for `set_mempolicy` and `mbind`, starts with
//!   `--maxnode` and reads `maxnode - 1` bits: the last bit is ignored. This is the long-standing
//!   quirk libnuma works around by passing `nbits + 1` (`numactl --membind=0,1` calls
//!   `set_mempolicy(MPOL_BIND, mask, 1025)` with its 1024-bit mask). Bits beyond the kernel's own
//!   `MAX_NUMNODES` must be zero, or the call fails with `EINVAL`.
//! - `copy_nodes_to_user()`, which writes the mask for `get_mempolicy`, writes
//!   `ALIGN(maxnode - 1, 64) / 8` bytes (zero-filled past the kernel's `nr_node_ids`), and
//!   `get_mempolicy` refuses a `maxnode` below `nr_node_ids` with `EINVAL`.
//!
//! So a mask of [`MAX_NODES`] bits always goes with `maxnode = MAX_NODES + 1`: the kernel reads or
//! writes exactly `MAX_NODES` bits (128 bytes), never past the array, and never misses the top
//! node. `MAX_NODES` is 1024, the largest `MAX_NUMNODES` of mainstream kernels
//! (`CONFIG_NODES_SHIFT` is at most 10 on x86-64 and arm64).

use libc::c_ulong;

use crate::error::{Error, Result};

/// The number of NUMA node ids shmkit can name: nodes `0..MAX_NODES`.
///
/// # Examples
///
/// ```
/// assert_eq!(shmkit_os::numa::MAX_NODES, 1024);
/// ```
pub const MAX_NODES: u32 = 1024;

const WORD_BITS: u32 = c_ulong::BITS;
const WORDS: usize = (MAX_NODES / WORD_BITS) as usize;

// The kernel copies whole words and, for get_mempolicy, whole 64-bit units.
const _: () = assert!(MAX_NODES.is_multiple_of(64));

/// A set of node ids below [`MAX_NODES`], laid out as the kernel's `unsigned long` bitmap.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct NodeMask {
    words: [c_ulong; WORDS],
}

impl NodeMask {
    /// The `maxnode` argument for a mask of this type (see the module docs for the `+ 1`).
    pub(super) const MAXNODE: c_ulong = MAX_NODES as c_ulong + 1;

    pub(super) const fn empty() -> Self {
        Self { words: [0; WORDS] }
    }

    /// A mask with the given nodes set; `InvalidInput` for a node id at or above [`MAX_NODES`].
    pub(super) fn from_nodes(nodes: impl IntoIterator<Item = u32>) -> Result<Self> {
        let mut mask = Self::empty();
        for node in nodes {
            if node >= MAX_NODES {
                return Err(Error::invalid(
                    "NUMA node",
                    format!("node {node} is not below {MAX_NODES}, the most shmkit supports"),
                ));
            }
            mask.words[(node / WORD_BITS) as usize] |= 1 << (node % WORD_BITS);
        }
        Ok(mask)
    }

    /// The nodes set, ascending.
    pub(super) fn nodes(&self) -> Vec<u32> {
        (0..MAX_NODES).filter(|&node| self.contains(node)).collect()
    }

    pub(super) fn contains(&self, node: u32) -> bool {
        node < MAX_NODES && self.words[(node / WORD_BITS) as usize] & (1 << (node % WORD_BITS)) != 0
    }

    pub(super) fn is_empty(&self) -> bool {
        self.words.iter().all(|&word| word == 0)
    }

    pub(super) fn as_ptr(&self) -> *const c_ulong {
        self.words.as_ptr()
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut c_ulong {
        self.words.as_mut_ptr()
    }
}

impl std::fmt::Debug for NodeMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeMask({})", super::format_ids(self.nodes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_exactly_max_nodes_bits() {
        assert_eq!(size_of::<NodeMask>() * 8, MAX_NODES as usize);
        // get_mempolicy writes ALIGN(maxnode - 1, 64) / 8 bytes: must be the whole mask.
        let written = (NodeMask::MAXNODE - 1).next_multiple_of(64) / 8;
        assert_eq!(written as usize, size_of::<NodeMask>());
    }

    #[test]
    fn sets_bits_in_kernel_order() {
        let mask = NodeMask::from_nodes([0, 2]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(mask.words[0], 0b101);
        assert!(mask.words[1..].iter().all(|&word| word == 0));

        let last = NodeMask::from_nodes([MAX_NODES - 1]).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(last.words[WORDS - 1], 1 << (WORD_BITS - 1));
        assert_eq!(last.nodes(), [MAX_NODES - 1]);
    }

    #[test]
    fn round_trips_and_reports_membership() {
        let nodes = [0, 1, 63, 64, 65, 500, 1023];
        let mask = NodeMask::from_nodes(nodes).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(mask.nodes(), nodes);
        assert!(mask.contains(64));
        assert!(!mask.contains(2));
        assert!(!mask.contains(MAX_NODES));
        assert!(!mask.is_empty());
        assert!(NodeMask::empty().is_empty());
        assert_eq!(format!("{mask:?}"), "NodeMask(0-1,63-65,500,1023)");
    }

    #[test]
    fn refuses_nodes_past_the_mask() {
        let error = NodeMask::from_nodes([1024]).err().map(|error| error.to_string());
        assert_eq!(
            error.as_deref(),
            Some("invalid NUMA node: node 1024 is not below 1024, the most shmkit supports")
        );
    }
}
