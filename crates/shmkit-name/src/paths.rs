//! What a [`Name`] is called by each OS backing: a POSIX shared memory name, a System V IPC key,
//! and a file path on a hugetlbfs mount.

use core::ffi::CStr;
use core::fmt;

use crate::name::Name;
use crate::page_size::PageSize;

/// Where the hugetlbfs mounts live unless [`HUGETLBFS_BASE_ENV`] says otherwise: a hugetlbfs
/// with 2 MiB pages at `/mnt/.shmkit/.huge` and one with 1 GiB pages at `/mnt/.shmkit/.gigantic`
/// (`cargo xtask setup-hugepages` makes them).
pub const DEFAULT_HUGETLBFS_BASE: &str = "/mnt/.shmkit";

/// The environment variable that replaces [`DEFAULT_HUGETLBFS_BASE`].
pub const HUGETLBFS_BASE_ENV: &str = "SHMKIT_PATH";

/// What [`Name::sysv_key`] returns when the hash folds to `IPC_PRIVATE` (0): `"shmk"` in ASCII.
const SYSV_KEY_INSTEAD_OF_PRIVATE: i32 = 0x7368_6D6B;

/// Room for `/`, the longest name and the terminating NUL.
const POSIX_NAME_CAPACITY: usize = 1 + Name::MAX_LEN + 1;

/// A POSIX shared memory name, `/NAME`, held inline with its terminating NUL, ready for
/// `shm_open`. Made by [`Name::posix_name`].
///
/// # Examples
///
/// ```
/// use shmkit_name::Name;
///
/// let posix = Name::new("orders.v1")?.posix_name();
/// assert_eq!(posix.as_str(), "/orders.v1");
/// assert_eq!(posix.as_c_str(), c"/orders.v1");
/// assert_eq!(posix.to_string(), "/orders.v1");
/// # Ok::<(), shmkit_name::NameError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PosixName {
    /// `/`, the name, then zeros.
    bytes: [u8; POSIX_NAME_CAPACITY],
    /// The length of `/NAME`, without the NUL.
    len: u8,
}

/// A file path on a hugetlbfs mount, `BASE/.huge/NAME` or `BASE/.gigantic/NAME`, shown through
/// [`Display`](fmt::Display). Made by [`Name::hugetlbfs_path`].
///
/// # Examples
///
/// ```
/// use shmkit_name::{Name, PageSize};
///
/// let name = Name::new("orders.v1")?;
/// let path = name.hugetlbfs_path("/mnt/.shmkit/", PageSize::Huge).unwrap();
/// assert_eq!(path.to_string(), "/mnt/.shmkit/.huge/orders.v1");
/// assert_eq!((path.base(), path.dir(), path.name()), ("/mnt/.shmkit", ".huge", &name));
/// # Ok::<(), shmkit_name::NameError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HugetlbfsPath<'a> {
    base: &'a str,
    dir: &'static str,
    name: &'a Name,
}

impl Name {
    /// The POSIX shared memory name: `/` then the name, as `shm_open` wants it (the object
    /// appears as `/dev/shm/NAME`).
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::Name;
    ///
    /// assert_eq!(Name::new("ticks")?.posix_name().as_str(), "/ticks");
    /// # Ok::<(), shmkit_name::NameError>(())
    /// ```
    #[doc(alias = "shm_open")]
    pub const fn posix_name(&self) -> PosixName {
        let name = self.as_bytes();
        let mut bytes = [0; POSIX_NAME_CAPACITY];
        bytes[0] = b'/';
        let mut index = 0;
        while index < name.len() {
            bytes[1 + index] = name[index];
            index += 1;
        }
        PosixName { bytes, len: 1 + name.len() as u8 }
    }

    /// The System V IPC key (`key_t`) for `shmget`: the [`Key::hash64`](crate::Key::hash64) of
    /// the name folded to 32 bits, `(h ^ (h >> 32))` truncated to `u32` and reinterpreted as
    /// `i32`. Never `IPC_PRIVATE` (0): a hash that folds to 0 gives `0x73686D6B` instead.
    ///
    /// The same in every process and version. Distinct names can share a key (32 bits), and keys
    /// made by other programs (`ftok`) can collide with it, so create with `IPC_CREAT | IPC_EXCL`
    /// and treat `EEXIST` as "taken".
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::Name;
    ///
    /// assert_eq!(Name::new("orders.v1")?.sysv_key(), 0x04F5_3E89);
    /// # Ok::<(), shmkit_name::NameError>(())
    /// ```
    #[doc(alias = "shmget")]
    #[doc(alias = "key_t")]
    pub const fn sysv_key(&self) -> i32 {
        sysv_key_of_hash(self.key().hash64())
    }

    /// The file for this name on the hugetlbfs mount for `page_size` under `base` (usually
    /// [`DEFAULT_HUGETLBFS_BASE`] or the value of [`HUGETLBFS_BASE_ENV`]); one trailing `/` of
    /// `base` is ignored. `None` for [`PageSize::Normal`], which does not use hugetlbfs.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::{DEFAULT_HUGETLBFS_BASE, Name, PageSize};
    ///
    /// let name = Name::new("orders.v1")?;
    /// let path = name.hugetlbfs_path(DEFAULT_HUGETLBFS_BASE, PageSize::Gigantic);
    /// assert_eq!(path.map(|path| path.to_string()).as_deref(), Some("/mnt/.shmkit/.gigantic/orders.v1"));
    /// assert!(name.hugetlbfs_path(DEFAULT_HUGETLBFS_BASE, PageSize::Normal).is_none());
    /// # Ok::<(), shmkit_name::NameError>(())
    /// ```
    pub fn hugetlbfs_path<'a>(
        &'a self,
        base: &'a str,
        page_size: PageSize,
    ) -> Option<HugetlbfsPath<'a>> {
        let dir = page_size.hugetlbfs_dir()?;
        let base = base.strip_suffix('/').unwrap_or(base);
        Some(HugetlbfsPath { base, dir, name: self })
    }
}

/// [`Name::sysv_key`] from the name's hash.
const fn sysv_key_of_hash(hash: u64) -> i32 {
    match ((hash ^ (hash >> 32)) as u32).cast_signed() {
        0 => SYSV_KEY_INSTEAD_OF_PRIVATE,
        key => key,
    }
}

impl PosixName {
    /// `/NAME`.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.bytes.split_at(self.len as usize).0) {
            Ok(text) => text,
            // Unreachable: built from a valid (ASCII) name. Not a panic, to keep every path
            // panic-free.
            Err(_) => "",
        }
    }

    /// `/NAME` with its terminating NUL, for the `shm_open` and `shm_unlink` system calls.
    pub const fn as_c_str(&self) -> &CStr {
        match CStr::from_bytes_with_nul(self.bytes.split_at(self.len as usize + 1).0) {
            Ok(text) => text,
            // Unreachable: a name has no NUL and is followed by one. An empty name would make
            // the system call fail rather than name another object.
            Err(_) => c"",
        }
    }
}

impl fmt::Display for PosixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for PosixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PosixName").field(&self.as_str()).finish()
    }
}

impl<'a> HugetlbfsPath<'a> {
    /// The base folder, without a trailing `/`.
    pub const fn base(&self) -> &'a str {
        self.base
    }

    /// The mount folder under the base: `.huge` or `.gigantic`.
    pub const fn dir(&self) -> &'static str {
        self.dir
    }

    /// The region name, the file name on the mount.
    pub const fn name(&self) -> &'a Name {
        self.name
    }
}

impl fmt::Display for HugetlbfsPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.base, self.dir, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        match Name::new(text) {
            Ok(name) => name,
            Err(error) => panic!("{text:?} should be valid: {error}"),
        }
    }

    #[test]
    fn posix_names() {
        let short = name("a").posix_name();
        assert_eq!(short.as_str(), "/a");
        assert_eq!(short.as_c_str().to_bytes_with_nul(), b"/a\0");
        let longest = "x".repeat(Name::MAX_LEN);
        let long = name(&longest).posix_name();
        assert_eq!(long.as_str(), format!("/{longest}"));
        assert_eq!(long.as_c_str().to_bytes(), format!("/{longest}").as_bytes());
        assert_eq!(format!("{long}"), format!("/{longest}"));
        assert_eq!(format!("{short:?}"), "PosixName(\"/a\")");
        assert_eq!(format!("[{short:>3}]"), "[ /a]");
    }

    #[test]
    fn sysv_keys_are_fixed_and_never_private() {
        assert_eq!(name("a").sysv_key(), 0x9981_414Bu32.cast_signed());
        assert_eq!(name("orders.v1").sysv_key(), 0x04F5_3E89);
        assert_eq!(sysv_key_of_hash(0), 0x7368_6D6B);
        assert_eq!(sysv_key_of_hash(0x89AB_CDEF_89AB_CDEF), 0x7368_6D6B);
        assert_eq!(sysv_key_of_hash(0x0000_0000_8000_0000), i32::MIN);
        assert_eq!(sysv_key_of_hash(0xFFFF_FFFF_0000_0000), -1);
        for index in 0..10_000 {
            assert_ne!(name(&format!("r{index}")).sysv_key(), 0);
        }
    }

    #[test]
    fn hugetlbfs_paths() {
        let orders = name("orders");
        let path = |base, size| orders.hugetlbfs_path(base, size).map(|path| path.to_string());
        assert_eq!(
            path("/mnt/.shmkit", PageSize::Huge).as_deref(),
            Some("/mnt/.shmkit/.huge/orders")
        );
        assert_eq!(
            path("/mnt/.shmkit/", PageSize::Huge).as_deref(),
            Some("/mnt/.shmkit/.huge/orders")
        );
        assert_eq!(
            path("/mnt/.shmkit//", PageSize::Huge).as_deref(),
            Some("/mnt/.shmkit//.huge/orders")
        );
        assert_eq!(path("/", PageSize::Gigantic).as_deref(), Some("/.gigantic/orders"));
        assert_eq!(
            path("relative", PageSize::Gigantic).as_deref(),
            Some("relative/.gigantic/orders")
        );
        assert_eq!(path("/mnt/.shmkit", PageSize::Normal), None);
        let Some(huge) = orders.hugetlbfs_path("/b/", PageSize::Huge) else {
            panic!("huge has a path")
        };
        assert_eq!((huge.base(), huge.dir(), huge.name()), ("/b", ".huge", &orders));
        assert_eq!(DEFAULT_HUGETLBFS_BASE, "/mnt/.shmkit");
        assert_eq!(HUGETLBFS_BASE_ENV, "SHMKIT_PATH");
    }
}
