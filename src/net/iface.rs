//! Net layer: finding a named interface's index, IPv4 address and subnet.
//!
//! Interfaces are always named by the user (`--iface`); nothing here picks one by itself.

use crate::error::{Error, Result};
use crate::subnet::Subnet;
use smol::Async;
use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Connections waiting to be accepted, per listener.
const HTTP_LISTEN_BACKLOG: i32 = 128;

/// One of this host's interfaces, as the user named it (`--iface`): what the servers bind to
/// and whose subnet they answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInterface {
    /// Name as given (`eth0`, `lo`).
    pub name: String,
    /// Kernel interface index.
    pub index: u32,
    /// Its first IPv4 address.
    pub address: Ipv4Addr,
    /// That address's subnet (from its netmask).
    pub subnet: Subnet,
}

impl LocalInterface {
    /// Whether `peer` is inside this interface's subnet.
    pub fn contains(&self, peer: Ipv4Addr) -> bool {
        self.subnet.contains(peer)
    }
}

/// A TCP listener on `address`, bound with SO_BINDTODEVICE to `device` when given: it then
/// accepts only connections that arrived through that interface, so a peer on another
/// network cannot reach it by routing to its address through its own interface (Linux
/// answers for every local address on every interface).
pub fn listen_tcp(
    address: std::net::SocketAddr,
    device: Option<&str>,
) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if let Some(device) = device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    socket.bind(&SockAddr::from(address))?;
    socket.listen(HTTP_LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Looks up the interface called `name`.
pub fn lookup(name: &str) -> Result<LocalInterface> {
    if name.is_empty() {
        // What `--iface ${XENPLUG_IFACE}` gives when a service's defaults file names none.
        return Err(Error::config(
            "the interface name is empty: name the interface to use (there is no default)",
        ));
    }
    let c_name =
        CString::new(name).map_err(|_| Error::config(format!("bad interface name {name:?}")))?;
    // SAFETY: c_name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(Error::config(format!("no interface named {name}")));
    }
    let mut list: *mut libc::ifaddrs = core::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(Error::io(
            "listing interfaces",
            std::io::Error::last_os_error(),
        ));
    }
    let mut found = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: cursor walks the list getifaddrs returned, which stays valid until freed.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let entry_name = unsafe { CStr::from_ptr(entry.ifa_name) };
        // SAFETY: ifa_addr is non-null and points at a sockaddr of at least sa_family's size.
        let family = unsafe { (*entry.ifa_addr).sa_family };
        if entry_name.to_bytes() != name.as_bytes() || i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: for AF_INET both pointers point at sockaddr_in.
        let (address, netmask) = unsafe {
            let address = &*(entry.ifa_addr as *const libc::sockaddr_in);
            let netmask = &*(entry.ifa_netmask as *const libc::sockaddr_in);
            (
                Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)),
                Ipv4Addr::from(u32::from_be(netmask.sin_addr.s_addr)),
            )
        };
        found = Some(LocalInterface {
            name: name.to_string(),
            index,
            address,
            subnet: Subnet::of_interface(address, netmask),
        });
        break;
    }
    // SAFETY: list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found.ok_or_else(|| Error::config(format!("interface {name} has no IPv4 address")))
}

/// Tells when this network namespace's interfaces or IPv4 addresses change: a route netlink
/// socket joined to the link and IPv4 address groups (`RTMGRP_LINK`, `RTMGRP_IPV4_IFADDR`).
/// Whoever waits looks the interfaces up again; the messages themselves are not read.
pub struct InterfaceEvents {
    socket: Async<OwnedFd>,
}

impl InterfaceEvents {
    /// Opens the socket (an error when netlink is not available).
    pub fn open() -> io::Result<InterfaceEvents> {
        // SAFETY: socket(2) with constant arguments; a non-negative result is a new
        // descriptor owned by nobody else.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: just created above and not owned elsewhere.
        let socket = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl is valid; the fields are set below.
        let mut address: libc::sockaddr_nl = unsafe { core::mem::zeroed() };
        address.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        address.nl_groups = (libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR) as u32;
        // SAFETY: binds a live sockaddr_nl of the size given.
        let bound = unsafe {
            libc::bind(
                socket.as_raw_fd(),
                (&address as *const libc::sockaddr_nl).cast(),
                core::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if bound != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(InterfaceEvents {
            socket: Async::new_nonblocking(socket)?,
        })
    }

    /// Waits for the next change; the messages that came together count as one. A lost
    /// message (the socket's buffer overflowed) counts as a change too.
    pub async fn next(&self) -> io::Result<()> {
        self.socket.readable().await?;
        let mut buffer = [0u8; 4096];
        // Bounded: a flood of changes is looked at between batches rather than drained.
        for _ in 0..64 {
            // SAFETY: receives into a live buffer of the length given.
            let received = unsafe {
                libc::recv(
                    self.socket.get_ref().as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if received >= 0 {
                continue;
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => return Ok(()),
                io::ErrorKind::Interrupted => continue,
                _ if error.raw_os_error() == Some(libc::ENOBUFS) => continue,
                _ => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_and_contains_its_subnet() {
        let lo = lookup("lo").unwrap();
        assert_eq!(lo.address, Ipv4Addr::LOCALHOST);
        assert!(lo.contains(Ipv4Addr::new(127, 0, 0, 9)));
        assert!(!lo.contains(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn unknown_interface_is_a_clear_error() {
        let error = lookup("xenplug-none0").unwrap_err().to_string();
        assert_eq!(error, "no interface named xenplug-none0");
        let error = lookup("").unwrap_err().to_string();
        assert!(error.contains("empty"), "{error}");
    }
}
