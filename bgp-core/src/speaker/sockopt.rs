//! Socket options that neither the standard library, tokio nor socket2 0.5
//! (nor nix 0.30) offer: TCP-MD5 signature keys (RFC 2385, Linux
//! `TCP_MD5SIG` and `TCP_MD5SIG_EXT`) and the minimum TTL / hop count of
//! received packets (`IP_MINTTL`, `IPV6_MINHOPCOUNT`, for GTSM, RFC 5082).
//!
//! The crate's only unsafe code is [`setsockopt`] below: one call of
//! `libc::setsockopt` with a value whose type is plain data without padding.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

/// The longest TCP-MD5 key Linux takes (`TCP_MD5SIG_MAXKEYLEN`).
pub(crate) const MAX_KEY_LEN: usize = libc::TCP_MD5SIG_MAXKEYLEN;

/// `TCP_MD5SIG_FLAG_PREFIX`: `prefixlen` is meaningful (linux/tcp.h).
const TCP_MD5SIG_FLAG_PREFIX: u8 = 0x1;

/// `struct __kernel_sockaddr_storage`: 128 octets, aligned like a pointer.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct SockaddrStorage([u8; 128]);

/// `struct tcp_md5sig` of linux/tcp.h:
///
/// ```text
/// struct tcp_md5sig {
///     struct __kernel_sockaddr_storage tcpm_addr;  /* 128 octets */
///     __u8  tcpm_flags;                            /* TCP_MD5SIG_FLAG_* */
///     __u8  tcpm_prefixlen;
///     __u16 tcpm_keylen;
///     int   tcpm_ifindex;
///     __u8  tcpm_key[TCP_MD5SIG_MAXKEYLEN];        /* 80 octets */
/// };
/// ```
///
/// 216 octets without padding (checked by the tests).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct TcpMd5Sig {
    addr: SockaddrStorage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; MAX_KEY_LEN],
}

impl TcpMd5Sig {
    /// The key `key` (empty: remove the key) for peers at `peer`, or for the
    /// `prefix_len` first bits of it, as a socket of family IPv6 (`socket_v6`)
    /// or IPv4 expects it: an IPv6 socket takes IPv4 peers as v4-mapped
    /// addresses, with an IPv4 prefix length.
    pub(crate) fn new(
        socket_v6: bool,
        peer: IpAddr,
        prefix_len: Option<u8>,
        key: &[u8],
    ) -> io::Result<Self> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        if key.len() > MAX_KEY_LEN {
            return Err(invalid(format!(
                "a TCP-MD5 key is at most {MAX_KEY_LEN} octets, this one {}",
                key.len()
            )));
        }
        let mut addr = [0u8; 128];
        match (socket_v6, peer) {
            (false, IpAddr::V4(a)) => {
                // struct sockaddr_in: family (host order), port, address.
                addr[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                addr[4..8].copy_from_slice(&a.octets());
            }
            (true, ip) => {
                // struct sockaddr_in6: family, port, flow info, address.
                let v6 = match ip {
                    IpAddr::V4(a) => a.to_ipv6_mapped(),
                    IpAddr::V6(a) => a,
                };
                addr[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
                addr[8..24].copy_from_slice(&v6.octets());
            }
            (false, IpAddr::V6(a)) => {
                return Err(invalid(format!(
                    "an IPv4 socket cannot hold a key for the IPv6 peer {a}"
                )));
            }
        }
        let max = if peer.is_ipv4() { 32 } else { 128 };
        if let Some(p) = prefix_len
            && p > max
        {
            return Err(invalid(format!("prefix length {p} for {peer}")));
        }
        let mut k = [0u8; MAX_KEY_LEN];
        k[..key.len()].copy_from_slice(key);
        Ok(Self {
            addr: SockaddrStorage(addr),
            flags: if prefix_len.is_some() {
                TCP_MD5SIG_FLAG_PREFIX
            } else {
                0
            },
            prefixlen: prefix_len.unwrap_or(0),
            keylen: key.len() as u16,
            ifindex: 0,
            key: k,
        })
    }
}

/// Values [`setsockopt`] may pass: `repr(C)` plain data without padding, so
/// every octet the kernel reads is initialized.
trait PlainData {}
impl PlainData for libc::c_int {}
impl PlainData for TcpMd5Sig {}

/// `setsockopt(fd, level, name, &value, sizeof value)`.
#[allow(unsafe_code)]
fn setsockopt<T: PlainData>(
    fd: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let fd = fd.as_fd();
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "option value too large"))?;
    // SAFETY: `fd` is a file descriptor borrowed for the duration of the call,
    // so it stays open; `value` points to an initialized `T` of exactly `len`
    // octets with no padding (the `PlainData` bound), live for the call; the
    // kernel only reads from it and keeps no pointer after returning.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast::<libc::c_void>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Installs (or, with an empty `key`, removes) the TCP-MD5 key for `peer` on a
/// socket, a listening one or one about to connect: for that address alone
/// (`TCP_MD5SIG`), or with `prefix_len` for every address in the prefix
/// (`TCP_MD5SIG_EXT` with `TCP_MD5SIG_FLAG_PREFIX`).
pub(crate) fn set_md5_key(
    fd: &impl AsFd,
    socket_v6: bool,
    peer: IpAddr,
    prefix_len: Option<u8>,
    key: &[u8],
) -> io::Result<()> {
    let sig = TcpMd5Sig::new(socket_v6, peer, prefix_len, key)?;
    let name = if prefix_len.is_some() {
        libc::TCP_MD5SIG_EXT
    } else {
        libc::TCP_MD5SIG
    };
    setsockopt(fd, libc::IPPROTO_TCP, name, &sig)
}

/// The lowest TTL (IPv4) or hop limit (IPv6) of the packets a socket accepts;
/// on an IPv6 socket both, for peers reached as v4-mapped addresses.
pub(crate) fn set_min_ttl(fd: &impl AsFd, socket_v6: bool, min: u8) -> io::Result<()> {
    let v = libc::c_int::from(min);
    setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &v)?;
    if socket_v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::mem::{align_of, offset_of, size_of};
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn tcp_md5sig_has_the_kernel_layout() {
        assert_eq!(size_of::<TcpMd5Sig>(), 216);
        assert_eq!(align_of::<TcpMd5Sig>(), 8);
        assert_eq!(offset_of!(TcpMd5Sig, addr), 0);
        assert_eq!(offset_of!(TcpMd5Sig, flags), 128);
        assert_eq!(offset_of!(TcpMd5Sig, prefixlen), 129);
        assert_eq!(offset_of!(TcpMd5Sig, keylen), 130);
        assert_eq!(offset_of!(TcpMd5Sig, ifindex), 132);
        assert_eq!(offset_of!(TcpMd5Sig, key), 136);
        // No padding anywhere: the fields add up to the size.
        assert_eq!(128 + 1 + 1 + 2 + 4 + MAX_KEY_LEN, size_of::<TcpMd5Sig>());
        assert_eq!(size_of::<SockaddrStorage>(), 128);
        assert_eq!(MAX_KEY_LEN, 80);
    }

    #[test]
    fn addresses_are_encoded_as_the_socket_family_expects() {
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let s = TcpMd5Sig::new(false, v4, None, b"secret").unwrap();
        assert_eq!(
            u16::from_ne_bytes([s.addr.0[0], s.addr.0[1]]),
            libc::AF_INET as u16
        );
        assert_eq!(&s.addr.0[2..4], &[0, 0], "port unused");
        assert_eq!(&s.addr.0[4..8], &[192, 0, 2, 7]);
        assert!(s.addr.0[8..].iter().all(|&b| b == 0));
        assert_eq!((s.flags, s.prefixlen, s.keylen), (0, 0, 6));
        assert_eq!(&s.key[..6], b"secret");
        assert!(s.key[6..].iter().all(|&b| b == 0));

        // An IPv4 peer on an IPv6 socket: v4-mapped, IPv4 prefix length.
        let s = TcpMd5Sig::new(true, v4, Some(24), b"k").unwrap();
        assert_eq!(
            u16::from_ne_bytes([s.addr.0[0], s.addr.0[1]]),
            libc::AF_INET6 as u16
        );
        assert_eq!(&s.addr.0[4..8], &[0; 4], "flow info");
        assert_eq!(
            &s.addr.0[8..24],
            &Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets()
        );
        assert_eq!((s.flags, s.prefixlen), (TCP_MD5SIG_FLAG_PREFIX, 24));

        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let s = TcpMd5Sig::new(true, v6, Some(64), &[]).unwrap();
        assert_eq!(
            &s.addr.0[8..24],
            &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!((s.prefixlen, s.keylen), (64, 0));
    }

    #[test]
    fn bad_keys_and_prefixes_are_refused() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(TcpMd5Sig::new(false, v4, None, &[b'x'; 80]).is_ok());
        let e = TcpMd5Sig::new(false, v4, None, &[b'x'; 81]).err().unwrap();
        assert!(e.to_string().contains("at most 80 octets"), "{e}");
        assert!(TcpMd5Sig::new(false, v4, Some(33), b"k").is_err());
        assert!(TcpMd5Sig::new(true, v4, Some(33), b"k").is_err());
        assert!(TcpMd5Sig::new(false, IpAddr::V6(Ipv6Addr::LOCALHOST), None, b"k").is_err());
    }

    #[test]
    fn the_kernel_takes_keys_and_min_ttl() {
        // Unprivileged options on unconnected sockets: no root, no network.
        let v4 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_md5_key(&v4, false, "192.0.2.1".parse().unwrap(), None, b"pw").unwrap();
        set_md5_key(&v4, false, "192.0.2.0".parse().unwrap(), Some(24), b"pw").unwrap();
        set_md5_key(&v4, false, "192.0.2.1".parse().unwrap(), None, b"").unwrap();
        set_min_ttl(&v4, false, 254).unwrap();
        let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None).unwrap();
        set_md5_key(&v6, true, "2001:db8::1".parse().unwrap(), None, b"pw").unwrap();
        set_md5_key(&v6, true, "192.0.2.0".parse().unwrap(), Some(24), b"pw").unwrap();
        set_min_ttl(&v6, true, 255).unwrap();
        // Removing a key that is not there says so.
        let e = set_md5_key(&v6, true, "2001:db8::9".parse().unwrap(), None, b"").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }
}
