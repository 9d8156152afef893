//! The descriptor of a segment: the bytes a peer needs to open it; the format is on
//! [`Descriptor`].

use shmkit_name::{Key, Name};
use shmkit_os::sysv::SysvKey;

use crate::backing::Implementation;
use crate::error::{Error, Result};

const MAGIC: [u8; 4] = *b"SKsd";
const FORMAT: u16 = 1;

/// What a peer needs to open a segment: implementation, name, System V id, size, layout
/// version. Encoded in a fixed little-endian format that a peer built at another time can still
/// read, and refuse:
///
/// ```text
/// offset  bytes  field
/// 0       4      magic b"SKsd"
/// 4       2      format version (1)
/// 6       2      implementation: 1 POSIX, 2 System V, 3 memfd
/// 8       4      layout version of the segment header
/// 12      4      System V shmid (i32), -1 for the others
/// 16      8      size in bytes
/// 24      4      System V key (i32), 0 for the others
/// 28      4      zero
/// 32      40     name, zero-padded
/// ```
///
/// A memfd's descriptor travels with the file descriptor itself (`SCM_RIGHTS`): the bytes alone
/// do not open it.
///
/// ```
/// use shmkit_segment::{Descriptor, Implementation};
///
/// let name = shmkit_name::Name::new("shmkit-seg-1-0-abcd")?;
/// let descriptor = Descriptor {
///     implementation: Implementation::Posix,
///     name,
///     sysv_id: None,
///     size: 8192,
///     layout_version: shmkit_segment::LAYOUT_VERSION,
/// };
/// let bytes = descriptor.encode();
/// assert_eq!(Descriptor::decode(&bytes)?, descriptor);
/// assert!(Descriptor::decode(&bytes[..10]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// How the segment is made (never [`Implementation::Auto`]).
    pub implementation: Implementation,
    /// Its name: the file in `/dev/shm`, the name its System V key derives from, or the memfd's
    /// label.
    pub name: Name,
    /// The System V segment id (`shmid`), for System V segments.
    pub sysv_id: Option<i32>,
    /// Its size in bytes.
    pub size: u64,
    /// The layout version of its header.
    pub layout_version: u32,
}

impl Descriptor {
    /// Bytes of an encoded descriptor.
    pub const LEN: usize = 72;

    /// The descriptor's bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0; Self::LEN];
        out[0..4].copy_from_slice(&MAGIC);
        out[4..6].copy_from_slice(&FORMAT.to_le_bytes());
        out[6..8].copy_from_slice(&(self.implementation.code() as u16).to_le_bytes());
        out[8..12].copy_from_slice(&self.layout_version.to_le_bytes());
        out[12..16].copy_from_slice(&self.sysv_id.unwrap_or(-1).to_le_bytes());
        out[16..24].copy_from_slice(&self.size.to_le_bytes());
        let key = match self.implementation {
            Implementation::SysV => SysvKey::of(&self.name).get(),
            _ => 0,
        };
        out[24..28].copy_from_slice(&key.to_le_bytes());
        out[32..72].copy_from_slice(self.name.key().as_bytes());
        out
    }

    /// Reads a descriptor, checking every field: these bytes come from the peer.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |reason: String| Error::BadDescriptor { reason };
        let bytes: &[u8; Self::LEN] = bytes
            .try_into()
            .map_err(|_| bad(format!("{} bytes, a descriptor has {}", bytes.len(), Self::LEN)))?;
        if bytes[0..4] != MAGIC {
            return Err(bad(format!("magic {:02x?}, expected {MAGIC:02x?}", &bytes[0..4])));
        }
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let format = u16_at(4);
        if format != FORMAT {
            return Err(bad(format!(
                "format version {format}, this build reads {FORMAT}: build both peers from the \
                 same shmkit version"
            )));
        }
        let code = u32::from(u16_at(6));
        let implementation = Implementation::from_code(code)
            .ok_or_else(|| bad(format!("implementation code {code}")))?;
        let layout_version = u32_at(8);
        let sysv_id = u32_at(12).cast_signed();
        let mut size = [0; 8];
        size.copy_from_slice(&bytes[16..24]);
        let size = u64::from_le_bytes(size);
        let key = u32_at(24).cast_signed();
        if u32_at(28) != 0 {
            return Err(bad("reserved bytes 28..32 are not zero".to_owned()));
        }
        let mut name = [0; Key::LEN];
        name.copy_from_slice(&bytes[32..72]);
        let name = Key::from_bytes(name)
            .to_name()
            .map_err(|error| bad(format!("the name is not a valid name: {error}")))?;
        let page = rustix::param::page_size() as u64;
        if size == 0 || !size.is_multiple_of(page) {
            return Err(bad(format!("size {size} is not a non-zero multiple of the page size")));
        }
        let sysv_id = if implementation == Implementation::SysV {
            if sysv_id < 0 {
                return Err(bad(format!("System V id {sysv_id}")));
            }
            if key != SysvKey::of(&name).get() {
                return Err(bad(format!("System V key {key:#x} is not the key of {name}")));
            }
            Some(sysv_id)
        } else {
            if sysv_id != -1 || key != 0 {
                return Err(bad(format!(
                    "a {implementation} segment with System V id {sysv_id} and key {key:#x}"
                )));
            }
            None
        };
        Ok(Self { implementation, name, sysv_id, size, layout_version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(implementation: Implementation) -> Descriptor {
        Descriptor {
            implementation,
            name: Name::new("shmkit-seg-2a-3-0badcafe").expect("name"),
            sysv_id: (implementation == Implementation::SysV).then_some(17),
            size: 4096 * 3,
            layout_version: 1,
        }
    }

    #[test]
    fn round_trips_every_implementation() {
        for implementation in [Implementation::Posix, Implementation::SysV, Implementation::Memfd] {
            let descriptor = sample(implementation);
            assert_eq!(Descriptor::decode(&descriptor.encode()).ok(), Some(descriptor));
        }
    }

    #[test]
    fn refuses_every_bad_field() {
        let good = sample(Implementation::SysV).encode();
        // Each flips bits of one byte.
        let mutations: [(usize, u8); 9] = [
            (0, 1),     // magic
            (4, 8),     // format 9
            (6, 2),     // implementation 0
            (6, 5),     // implementation 7
            (15, 0x80), // negative shmid
            (16, 1),    // size not whole pages
            (24, 1),    // key of another name
            (29, 1),    // reserved
            (32, 0x80), // a name byte that is not ASCII
        ];
        for (at, flip) in mutations {
            let mut bytes = good;
            bytes[at] ^= flip;
            assert!(
                matches!(Descriptor::decode(&bytes), Err(Error::BadDescriptor { .. })),
                "byte {at} ^ {flip:#x}"
            );
        }
        let mut posix = sample(Implementation::Posix).encode();
        posix[12..16].copy_from_slice(&5i32.to_le_bytes());
        assert!(Descriptor::decode(&posix).is_err(), "a POSIX descriptor with a shmid");
        assert!(Descriptor::decode(&good[..71]).is_err());
        assert!(Descriptor::decode(&[good.as_slice(), &[0]].concat()).is_err());
    }
}
