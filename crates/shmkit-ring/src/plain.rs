//! [`Plain`]: the element types a ring may carry between processes.

/// A type made of plain bytes: `Copy`, no pointers, no padding bytes, and valid for every bit
/// pattern, so that a value read from memory a peer wrote is always a valid value.
///
/// # Safety
///
/// Implement it only for types that:
/// - are valid for every bit pattern of their size (no `bool`, `char`, enums, references,
///   `NonZero*`);
/// - have no padding bytes (`#[repr(C)]` structs whose fields leave no gaps, or
///   `#[repr(transparent)]`);
/// - hold no pointers or handles that mean something only in one process.
pub unsafe trait Plain: Copy + 'static {}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: primitive integers and floats are valid for every bit pattern and have no
        // padding.
        unsafe impl Plain for $t {}
    )* };
}

plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of plain values has no padding between elements (size is a multiple of
// alignment) and is valid for every bit pattern when its elements are.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}
