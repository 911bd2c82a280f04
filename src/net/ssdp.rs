//! Net layer: the SSDP socket of one interface.
//!
//! Bound to 0.0.0.0:1900 with SO_REUSEADDR and SO_REUSEPORT so that several xenplug processes
//! and other UPnP stacks share the port; joined to 239.255.255.250 on this interface only,
//! IP_MULTICAST_ALL off (no datagrams of groups joined elsewhere), IP_MULTICAST_IF and TTL 2
//! for sending, IP_PKTINFO to learn which interface a datagram arrived on, SO_BINDTODEVICE so
//! that only that interface's datagrams reach it.

use super::iface::LocalInterface;
use crate::consts::{SSDP_MAX_DATAGRAM, SSDP_PORT, SSDP_V4_GROUP};
use crate::error::{Error, Result};
use smol::Async;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

/// Multicast TTL: UDA 1.1 recommends 2 hops.
const SSDP_MULTICAST_TTL: u32 = 2;

/// Pause after a failed receive, so a persistent error does not spin.
const RECEIVE_ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// One interface's SSDP socket.
pub struct SsdpSocket {
    socket: Async<Socket>,
    /// The interface it serves.
    pub interface: LocalInterface,
    /// Datagrams the kernel dropped on this socket since it was opened, as the latest
    /// datagram reported it (SO_RXQ_OVFL; 0 until [`SsdpSocket::count_drops`]).
    dropped: core::cell::Cell<u32>,
}

/// A received datagram.
pub struct Received {
    /// Bytes received (a datagram longer than the buffer is reported with `truncated`).
    pub length: usize,
    /// Whether the datagram did not fit the buffer.
    pub truncated: bool,
    /// Sender.
    pub source: SocketAddrV4,
    /// LocalInterface index it arrived on (IP_PKTINFO).
    pub arrival: u32,
    /// Datagrams dropped on the socket since it was opened (SO_RXQ_OVFL), if counted.
    pub dropped: Option<u32>,
}

fn set_int_option(socket: &Socket, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            core::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl SsdpSocket {
    /// Opens the SSDP socket of `interface`: port 1900, joined to the group there.
    pub fn open(interface: &LocalInterface) -> Result<SsdpSocket> {
        SsdpSocket::open_kind(interface, true)
    }

    /// Opens a control point's search socket on `interface`: an ephemeral port on the
    /// interface's address, so search responses come back to this socket alone rather than
    /// to whichever process shares port 1900. It joins no group.
    pub fn open_search(interface: &LocalInterface) -> Result<SsdpSocket> {
        SsdpSocket::open_kind(interface, false)
    }

    fn open_kind(interface: &LocalInterface, listen: bool) -> Result<SsdpSocket> {
        let context = |what: &str| format!("SSDP socket on {}: {what}", interface.name);
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))
            .map_err(|e| Error::io(context("socket"), e))?;
        set_int_option(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)
            .map_err(|e| Error::io(context("IP_PKTINFO"), e))?;
        // Bound to the interface: sockets of several interfaces sharing 0.0.0.0:1900 with
        // SO_REUSEPORT would otherwise form one reuseport group, and the kernel hands each
        // source's datagrams to one socket of the group chosen by hash, whatever interface
        // they arrived on (measured: the eth0 socket got another network's NOTIFYs, the
        // right socket never did).
        socket
            .bind_device(Some(interface.name.as_bytes()))
            .map_err(|e| Error::io(context("SO_BINDTODEVICE"), e))?;
        socket
            .set_multicast_all_v4(false)
            .map_err(|e| Error::io(context("IP_MULTICAST_ALL"), e))?;
        if listen {
            socket
                .set_reuse_address(true)
                .map_err(|e| Error::io(context("SO_REUSEADDR"), e))?;
            socket
                .set_reuse_port(true)
                .map_err(|e| Error::io(context("SO_REUSEPORT"), e))?;
            let bind = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, SSDP_PORT);
            socket
                .bind(&SockAddr::from(bind))
                .map_err(|e| Error::io(context("bind 0.0.0.0:1900"), e))?;
            socket
                .join_multicast_v4_n(
                    &SSDP_V4_GROUP,
                    &socket2::InterfaceIndexOrAddress::Index(interface.index),
                )
                .map_err(|e| Error::io(context("joining 239.255.255.250"), e))?;
        } else {
            let bind = SocketAddrV4::new(interface.address, 0);
            socket
                .bind(&SockAddr::from(bind))
                .map_err(|e| Error::io(context("bind for searching"), e))?;
        }
        socket
            .set_multicast_if_v4(&interface.address)
            .map_err(|e| Error::io(context("IP_MULTICAST_IF"), e))?;
        socket
            .set_multicast_ttl_v4(SSDP_MULTICAST_TTL)
            .map_err(|e| Error::io(context("IP_MULTICAST_TTL"), e))?;
        socket
            .set_multicast_loop_v4(true)
            .map_err(|e| Error::io(context("IP_MULTICAST_LOOP"), e))?;
        let socket = Async::new(socket).map_err(|e| Error::io(context("registering"), e))?;
        Ok(SsdpSocket {
            socket,
            interface: interface.clone(),
            dropped: core::cell::Cell::new(0),
        })
    }

    /// Asks for a receive buffer of `bytes` (SO_RCVBUFFORCE, which needs CAP_NET_ADMIN, else
    /// SO_RCVBUF, which the kernel caps at net.core.rmem_max) and answers what the kernel
    /// granted: the value it counts queued datagrams against, twice what was asked (socket(7)).
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<usize> {
        let socket = self.socket.get_ref();
        let asked = i32::try_from(bytes).unwrap_or(i32::MAX);
        if set_int_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, asked).is_err() {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.recv_buffer_size()
    }

    /// Has every datagram report how many the kernel dropped on this socket so far
    /// (SO_RXQ_OVFL): a full receive buffer loses a burst silently otherwise. Read the count
    /// with [`SsdpSocket::dropped`].
    pub fn count_drops(&self) -> io::Result<()> {
        set_int_option(
            self.socket.get_ref(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            1,
        )
    }

    /// Datagrams dropped on this socket since it was opened, as the latest datagram received
    /// reported it (0 unless [`SsdpSocket::count_drops`] was called).
    pub fn dropped(&self) -> u32 {
        self.dropped.get()
    }

    /// Receives datagrams until the task is dropped, handing `deliver` each one that arrived
    /// on this socket's interface (another interface's socket, or another process, answers
    /// the rest) and fits [`SSDP_MAX_DATAGRAM`]; oversized ones are dropped and logged.
    pub async fn each_datagram(&self, mut deliver: impl FnMut(SocketAddrV4, &[u8])) {
        let mut buffer = [0u8; SSDP_MAX_DATAGRAM + 1];
        loop {
            let received = match self.receive(&mut buffer).await {
                Ok(received) => received,
                Err(error) => {
                    log::warn!("ssdp: receive on {} failed: {error}", self.interface.name);
                    smol::Timer::after(RECEIVE_ERROR_PAUSE).await;
                    continue;
                }
            };
            if received.truncated || received.length > SSDP_MAX_DATAGRAM {
                log::debug!("ssdp: dropping oversized datagram from {}", received.source);
                continue;
            }
            if received.arrival != self.interface.index {
                continue;
            }
            deliver(
                received.source,
                buffer.get(..received.length).unwrap_or_default(),
            );
        }
    }

    /// Waits for the next datagram.
    pub async fn receive(&self, buffer: &mut [u8; SSDP_MAX_DATAGRAM + 1]) -> io::Result<Received> {
        let received = self
            .socket
            .read_with(|socket| receive_with_pktinfo(socket, buffer))
            .await?;
        if let Some(dropped) = received.dropped {
            self.dropped.set(dropped);
        }
        Ok(received)
    }

    /// Sends `bytes` to `destination` without waiting (multicast leaves through this
    /// interface). A full socket buffer is an error for the caller to log: SSDP is best effort
    /// and repeats itself.
    pub fn try_send(&self, destination: SocketAddrV4, bytes: &[u8]) -> io::Result<()> {
        self.socket
            .get_ref()
            .send_to(bytes, &SockAddr::from(destination))
            .map(|_| ())
    }
}

/// One recvmsg with an IP_PKTINFO control message.
fn receive_with_pktinfo(socket: &Socket, buffer: &mut [u8]) -> io::Result<Received> {
    // SAFETY: every pointer handed to recvmsg points into live locals of the right size, and
    // the control messages are walked with the CMSG_* macros within msg_controllen.
    unsafe {
        let mut source: libc::sockaddr_in = core::mem::zeroed();
        let mut vector = libc::iovec {
            iov_base: buffer.as_mut_ptr().cast(),
            iov_len: buffer.len(),
        };
        let mut control = [0u64; 16];
        let mut message: libc::msghdr = core::mem::zeroed();
        message.msg_name = (&mut source as *mut libc::sockaddr_in).cast();
        message.msg_namelen = core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        message.msg_iov = &mut vector;
        message.msg_iovlen = 1;
        message.msg_control = control.as_mut_ptr().cast();
        message.msg_controllen = core::mem::size_of_val(&control) as _;
        let length = libc::recvmsg(socket.as_raw_fd(), &mut message, 0);
        if length < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut arrival = 0;
        let mut dropped = None;
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::IPPROTO_IP && (*header).cmsg_type == libc::IP_PKTINFO {
                let info = libc::CMSG_DATA(header) as *const libc::in_pktinfo;
                arrival = core::ptr::read_unaligned(info).ipi_ifindex as u32;
            }
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SO_RXQ_OVFL
            {
                let count = libc::CMSG_DATA(header) as *const u32;
                dropped = Some(core::ptr::read_unaligned(count));
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
        let source = SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(source.sin_addr.s_addr)),
            u16::from_be(source.sin_port),
        );
        Ok(Received {
            length: length as usize,
            truncated: message.msg_flags & libc::MSG_TRUNC != 0,
            source,
            arrival,
            dropped,
        })
    }
}
