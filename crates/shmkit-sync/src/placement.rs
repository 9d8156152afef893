//! How a shared object of this crate ([`RobustMutex`](crate::RobustMutex),
//! [`RwLock`](crate::RwLock)) is placed in a byte range and published: the creator checks the
//! range, initialises the object in place and publishes its [`Header`] with a release store of
//! the `state` futex word; an opener checks the range, waits with a timeout for that state, then
//! checks the header. Each object implements [`Placed`]; [`init_at`], [`open_at`] and [`boxed`]
//! are the steps they share.

use core::pin::Pin;
use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::futex::Futex;
use crate::primitive::{AtomicU32, Ordering};

/// Values of a header's `state` word.
const UNPUBLISHED: u32 = 0;
const INITIALISING: u32 = 1;
const PUBLISHED: u32 = 2;

/// The first 12 bytes of every shared object that [`Placed`] covers: magic, layout version and
/// publication state (a futex openers sleep on).
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU32,
    version: AtomicU32,
    state: Futex,
}

static_assertions::assert_eq_size!(Header, [u8; 12]);
static_assertions::const_assert_eq!(align_of::<Header>(), 4);

impl Header {
    /// A header with nothing published yet.
    pub(crate) const fn unpublished() -> Self {
        Self {
            magic: AtomicU32::new(0),
            version: AtomicU32::new(0),
            state: Futex::new(UNPUBLISHED),
        }
    }

    /// The publication state (a relaxed load, for `Debug`).
    pub(crate) fn state(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }

    /// (Re-)initialises the object this header starts: marks it initialising, runs `fill` (which
    /// initialises the rest of the object), then publishes `magic` and `version` with a release
    /// store of the state that wakes every opener waiting for it. If `fill` fails, the object
    /// stays unpublished (openers keep waiting, then time out).
    pub(crate) fn initialise(
        &self,
        magic: u32,
        version: u32,
        fill: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        // Openers that find `INITIALISING` keep waiting; a stale magic must not be trusted.
        self.state.word().store(INITIALISING, Ordering::Relaxed);
        self.magic.store(0, Ordering::Relaxed);
        fill()?;
        self.version.store(version, Ordering::Relaxed);
        self.magic.store(magic, Ordering::Relaxed);
        // Pairs with the acquire load in `wait_published`: an opener that sees `PUBLISHED` sees
        // the initialised object and header.
        self.state.word().store(PUBLISHED, Ordering::Release);
        self.state.wake(u32::MAX);
        Ok(())
    }

    /// Waits until the state says published (acquire), up to `timeout`.
    fn wait_published(&self, timeout: Duration, what: &'static str) -> Result<()> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let value = self.state.load(Ordering::Acquire);
            match value {
                PUBLISHED => return Ok(()),
                UNPUBLISHED | INITIALISING => {}
                other => {
                    return Err(Error::Corrupted {
                        what,
                        detail: format!("publication state {other}"),
                    });
                }
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Err(Error::NotPublished { what, waited: timeout });
            }
            // A bounded sleep: a creator that dies before publishing never wakes us.
            self.state.wait(value, Some(left.min(Duration::from_millis(100))));
        }
    }

    /// Checks that the state says published (acquire): for an object embedded in another, whose
    /// opener waited only for the outer one.
    pub(crate) fn check_published(&self, what: &'static str) -> Result<()> {
        let state = self.state.load(Ordering::Acquire);
        if state != PUBLISHED {
            return Err(Error::Corrupted {
                what,
                detail: format!("publication state {state} inside a published object"),
            });
        }
        Ok(())
    }

    /// Checks the magic and layout version of a published object.
    pub(crate) fn check(&self, what: &'static str, magic: u32, version: u32) -> Result<()> {
        let corrupted = |detail: String| Err(Error::Corrupted { what, detail });
        let found = self.magic.load(Ordering::Relaxed);
        if found != magic {
            return corrupted(format!("magic {found:#010x}, expected {magic:#010x}"));
        }
        let found = self.version.load(Ordering::Relaxed);
        if found != version {
            return corrupted(format!("layout version {found}, this build reads {version}"));
        }
        Ok(())
    }
}

/// A shared object that starts with a [`Header`] and is placed with [`init_at`] and
/// [`open_at`].
///
/// # Safety
///
/// Every bit pattern is a valid `Self`, and every byte of it is an atomic or inside a cell (or
/// never accessed), so that a `&Self` over bytes other processes write is sound.
pub(crate) unsafe trait Placed: Sized {
    /// What the object is, for errors ("robust mutex").
    const WHAT: &'static str;

    /// The header at the start of the object.
    fn header(&self) -> &Header;

    /// Initialises the object in place and publishes its header ([`Header::initialise`]).
    ///
    /// # Safety
    ///
    /// No thread of any process holds, waits for, locks or opens this object while this runs.
    unsafe fn initialise(&self) -> Result<()>;

    /// Checks the header of a published object (and whatever else the object records about the
    /// build that initialised it).
    fn validate(&self) -> Result<()>;
}

/// Initialises a `T` in place at `ptr` and publishes it.
///
/// Fails with [`Error::Placement`] if `len` is smaller than `T` or `ptr` is not aligned for it.
///
/// # Safety
///
/// - `ptr..ptr + len` is mapped readable and writable for all of `'a`.
/// - While this runs, no thread of any process holds, waits for, locks or opens a `T` in these
///   bytes.
/// - For `'a`, the bytes are used only as this `T`, never through other Rust references.
pub(crate) unsafe fn init_at<'a, T: Placed>(ptr: NonNull<u8>, len: usize) -> Result<&'a T> {
    // SAFETY: the caller's first and third points are `place`'s preconditions.
    let object: &'a T = unsafe { place(ptr, len) }?;
    // SAFETY: the caller's second point: nobody uses these bytes as a `T` while we do.
    unsafe { object.initialise() }?;
    Ok(object)
}

/// Opens the `T` another process initialised at `ptr`, waiting up to `timeout` for it to be
/// published.
///
/// Fails with [`Error::Placement`] for a short or misaligned range, [`Error::NotPublished`] if
/// it is not published in time, and [`Error::Corrupted`] if [`Placed::validate`] refuses it.
///
/// # Safety
///
/// - `ptr..ptr + len` is mapped readable and writable for all of `'a`.
/// - For `'a`, the bytes are used only as this `T`, never through other Rust references.
pub(crate) unsafe fn open_at<'a, T: Placed>(
    ptr: NonNull<u8>,
    len: usize,
    timeout: Duration,
) -> Result<&'a T> {
    // SAFETY: the caller's two points are `place`'s preconditions.
    let object: &'a T = unsafe { place(ptr, len) }?;
    object.header().wait_published(timeout, T::WHAT)?;
    object.validate()?;
    Ok(object)
}

/// `unpublished` moved to the heap, pinned (it must never move) and initialised.
pub(crate) fn boxed<T: Placed>(unpublished: T) -> Result<Pin<Box<T>>> {
    let object = Box::pin(unpublished);
    // SAFETY: fresh heap memory that no one else can see yet; pinned, so it never moves.
    unsafe { object.initialise() }?;
    Ok(object)
}

/// A `&T` over `len` bytes at `ptr`, after checking size and alignment.
///
/// # Safety
///
/// - `ptr..ptr + len` is mapped readable and writable for all of `'a`.
/// - For `'a`, the bytes are accessed only through `T`'s atomics and cells, never through other
///   Rust references. (That every bit pattern is a valid `T` is [`Placed`]'s contract.)
unsafe fn place<'a, T: Placed>(ptr: NonNull<u8>, len: usize) -> Result<&'a T> {
    let placement = |detail: String| Err(Error::Placement { what: T::WHAT, detail });
    if !ptr.cast::<T>().is_aligned() {
        return placement(format!("{ptr:p} is not {}-byte aligned", align_of::<T>()));
    }
    if len < size_of::<T>() {
        return placement(format!("{len} bytes given, {} needed", size_of::<T>()));
    }
    // SAFETY: aligned and in bounds (checked above), mapped for `'a` and accessed only as a `T`
    // (the caller's contract), and any bit pattern is a valid `T` (`Placed`'s contract).
    Ok(unsafe { ptr.cast::<T>().as_ref() })
}
