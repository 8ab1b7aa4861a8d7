//! Socket addresses for new peers, built from validated [`Address`]es, with
//! the peer name nginx itself would derive (`ngx_sock_ntop`).

use core::mem::{size_of, zeroed};
use core::ptr;

use dynamic_upstream_core::Address;
use ngx::ffi::{ngx_sock_ntop, ngx_sockaddr_t, sockaddr, socklen_t};

/// `NGX_SOCKADDR_STRLEN` on Linux (a C expression macro, not in the
/// bindings): `sizeof("unix:") - 1 + sizeof(sun_path)`.
pub const SOCKADDR_STRLEN: usize = 5 + 108;

/// A peer's address in the forms nginx stores.
pub struct PeerAddress {
    pub sockaddr: ngx_sockaddr_t,
    pub socklen: socklen_t,
    name: [u8; SOCKADDR_STRLEN],
    name_len: usize,
}

impl PeerAddress {
    pub fn new(address: &Address) -> Self {
        // SAFETY: ngx_sockaddr_t is a C union of plain socket address
        // structs, for which all-zero bytes are valid.
        let mut sa: ngx_sockaddr_t = unsafe { zeroed() };
        let socklen = match address {
            Address::Inet(std::net::SocketAddr::V4(a)) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                    sin_zero: [0; 8],
                };
                write_into(&mut sa, &sin)
            }
            Address::Inet(std::net::SocketAddr::V6(a)) => {
                // SAFETY: zeroed sockaddr_in6 is valid; fields set below.
                let mut sin6: libc::sockaddr_in6 = unsafe { zeroed() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                write_into(&mut sa, &sin6)
            }
            Address::Unix(path) => {
                // SAFETY: zeroed sockaddr_un is valid; fields set below.
                let mut sun: libc::sockaddr_un = unsafe { zeroed() };
                sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
                // Address::parse bounds the path to sun_path's size less the
                // terminating NUL, which the zeroed struct provides.
                for (dst, src) in sun.sun_path.iter_mut().zip(path.bytes()) {
                    *dst = src as libc::c_char;
                }
                // nginx stores unix peers with the full struct length.
                write_into(&mut sa, &sun)
            }
        };
        let mut name = [0u8; SOCKADDR_STRLEN];
        // SAFETY: sa holds a valid socket address of socklen bytes; name has
        // SOCKADDR_STRLEN bytes, the length nginx uses for peer names.
        let name_len = unsafe {
            ngx_sock_ntop(ptr::addr_of_mut!(sa).cast::<sockaddr>(), socklen, name.as_mut_ptr(), SOCKADDR_STRLEN, 1)
        };
        Self { sockaddr: sa, socklen, name, name_len }
    }

    /// The peer name, e.g. `127.0.0.1:8080`, `[::1]:80`, `unix:/tmp/s`.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len]
    }
}

/// Copies a concrete socket address struct into the union; returns its size.
fn write_into<T>(sa: &mut ngx_sockaddr_t, value: &T) -> socklen_t {
    const { assert!(size_of::<T>() <= size_of::<ngx_sockaddr_t>()) };
    // SAFETY: the union is at least size_of::<T>() bytes (checked above) and
    // any byte pattern is valid for it.
    unsafe {
        ptr::copy_nonoverlapping(
            (value as *const T).cast::<u8>(),
            (sa as *mut ngx_sockaddr_t).cast::<u8>(),
            size_of::<T>(),
        )
    };
    size_of::<T>() as socklen_t
}
