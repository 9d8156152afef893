//! The registry's lock, thread identity and yield, from `spin`/std normally and from loom under
//! `--cfg loom`, so that `cargo xtask loom` checks the same code the library runs.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::thread::{ThreadId, yield_now};

    /// The registry lock: a spin lock, because the registry must be usable from a `static` with a
    /// `const` constructor and allocates nothing; it is held for a few hundred nanoseconds at most
    /// and never across a syscall that maps memory or a user hook.
    pub(crate) struct Mutex<T>(spin::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(spin::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> spin::MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    pub(crate) fn current_thread() -> ThreadId {
        std::thread::current().id()
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::thread::{ThreadId, yield_now};

    /// loom's mutex in place of the spin lock: loom explores its interleavings.
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            // A poisoned lock means a model thread panicked, which fails the model anyway.
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    pub(crate) fn current_thread() -> ThreadId {
        loom::thread::current().id()
    }
}

pub(crate) use imp::*;
