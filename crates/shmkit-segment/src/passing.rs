//! Passing a segment over a connected Unix socket: the encoded descriptor as the message's
//! bytes, and for a memfd segment its file descriptor as `SCM_RIGHTS` ancillary data on the
//! first byte.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::segment::Segment;

const SOCKET: &str = "the peer's Unix socket";

impl Segment {
    /// `sendmsg`—Sends this segment to the peer at the other end of a connected Unix stream
    /// socket: the encoded descriptor, and for a memfd segment the memfd itself (`SCM_RIGHTS`;
    /// it is sealed against resizing since creation). The peer opens it with
    /// [`Segment::receive`].
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use shmkit_segment::{Implementation, Segment};
    ///
    /// let (server_end, client_end) = UnixStream::pair()?;
    /// let segment = Segment::create(8192, None, Implementation::Memfd)?;
    /// segment.send(&server_end)?;
    /// let received = Segment::receive(&client_end, 8192)?;
    /// assert_eq!(received.name(), segment.name());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "SCM_RIGHTS")]
    pub fn send(&self, socket: impl AsFd) -> Result<()> {
        let socket = socket.as_fd();
        let bytes = self.encode();
        let memfd = self.memfd();
        let fds: Vec<BorrowedFd<'_>> = memfd.into_iter().collect();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut sent = 0;
        while sent < bytes.len() {
            let mut control = SendAncillaryBuffer::new(&mut space);
            // The descriptor rides on the first byte only.
            if sent == 0 && !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds))
            {
                return Err(Error::invalid("ancillary buffer", "no room for one descriptor"));
            }
            match rustix::net::sendmsg(
                socket,
                &[IoSlice::new(&bytes[sent..])],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(count) => sent += count,
                Err(rustix::io::Errno::INTR) => {}
                Err(errno) => return Err(Error::os("sendmsg", SOCKET)(errno)),
            }
        }
        Ok(())
    }
}

/// `recvmsg` until a whole descriptor has arrived: its bytes, and the file descriptor that came
/// with them, if any (received close-on-exec; any beyond the first are closed).
pub(crate) fn receive(socket: BorrowedFd<'_>) -> Result<([u8; Descriptor::LEN], Option<OwnedFd>)> {
    let mut bytes = [0; Descriptor::LEN];
    let mut received = 0;
    let mut fd = None;
    while received < bytes.len() {
        // Room for a few descriptors, so that a peer sending more than one is noticed (and the
        // extra ones closed), not a truncated message.
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let message = match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut bytes[received..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(message) => message,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(Error::os("recvmsg", SOCKET)(errno)),
        };
        for ancillary in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = ancillary {
                for received_fd in fds {
                    if fd.is_none() {
                        fd = Some(received_fd);
                    }
                    // Any other is dropped, which closes it.
                }
            }
        }
        if message.flags.contains(ReturnFlags::CTRUNC) {
            return Err(Error::BadDescriptor {
                reason: "the peer sent more file descriptors than a segment has".to_owned(),
            });
        }
        if message.bytes == 0 {
            return Err(Error::Disconnected {
                target: SOCKET.to_owned(),
                received,
                expected: Descriptor::LEN,
            });
        }
        received += message.bytes;
    }
    Ok((bytes, fd))
}
