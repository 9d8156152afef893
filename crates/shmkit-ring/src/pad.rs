//! Cache-line padding for shared positions.

/// `T` alone on its own 128 bytes.
///
/// 128, not 64: on x86-64 the L2 prefetcher pulls cache lines in adjacent pairs, so two positions
/// 64 bytes apart written by different cores still ping-pong (the "adjacent-line prefetch"
/// effect; crossbeam's `CachePadded` uses 128 on x86-64 for the same reason). The shared layouts
/// here are fixed across architectures, so every target uses 128.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(CachePadded<u64>, [u8; 128]);
#[cfg(not(loom))]
static_assertions::const_assert_eq!(align_of::<CachePadded<u8>>(), 128);
