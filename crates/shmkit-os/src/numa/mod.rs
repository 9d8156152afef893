//! NUMA: the machine's nodes and CPUs ([`Topology`], [`CpuList`]), memory policy for a thread or
//! a range ([`bind_thread_to_node`], [`bind_range`]) and checking where pages ended up
//! ([`page_nodes`], [`verify_placement`]).
//!
//! The topology comes from sysfs. The policy calls are the kernel's `set_mempolicy`,
//! `get_mempolicy`, `mbind` and `move_pages`, made directly (rustix has no NUMA calls and glibc
//! leaves them to libnuma); they live in one private module, `sys`, the only place here that
//! hands the kernel raw pointers. Every node argument is checked against the machine's node list before any call, so
//! a wrong node is an [`Error::UnknownNode`](crate::Error::UnknownNode) that lists the nodes
//! there are, never a bare `EINVAL`. On a kernel built without NUMA, the topology shows one node
//! 0 and the policy calls fail with `ENOSYS`.
//!
//! # Examples
//!
//! ```
//! use shmkit_os::numa::{CpuList, Topology, bind_thread_to_node};
//!
//! let topology = Topology::read()?;
//! let cpus: CpuList = "0".parse()?;
//! let node = topology.nodes_of(&cpus)?[0];
//! let _guard = bind_thread_to_node(node)?;
//! // Pages this thread touches from here on come from `node`.
//! # Ok::<(), shmkit_os::Error>(())
//! ```

mod cpulist;
mod nodemask;
mod placement;
mod policy;
mod sys;
mod topology;

pub use cpulist::{CpuList, MAX_CPU_LIST_LEN, format_ids};
pub use nodemask::MAX_NODES;
pub use placement::{page_nodes, verify_placement};
pub use policy::{
    PolicyMode, ThreadPolicy, ThreadPolicyGuard, bind_range, bind_thread_to_node, thread_policy,
};
pub use topology::{Node, PagePool, Topology};
