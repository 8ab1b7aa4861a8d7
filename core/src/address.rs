//! Server addresses as the APIs accept them: IPv4 `a.b.c.d[:port]`, IPv6
//! `[addr][:port]` and `unix:/path`. Host names are refused: resolving one
//! would block the nginx worker.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::ApiError;

/// Port used when an address names none, as nginx does for `server`.
pub const DEFAULT_PORT: u16 = 80;

/// Longest unix socket path (`sizeof(sun_path) - 1` on Linux).
pub const MAX_UNIX_PATH: usize = 107;

/// A validated peer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    Inet(SocketAddr),
    /// The absolute socket path, without the `unix:` prefix.
    Unix(String),
}

impl Address {
    /// Parses an address the way the APIs accept it.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.is_empty() {
            return Err(invalid(text, "is empty"));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            return parse_unix(text, path);
        }
        if let Some(rest) = text.strip_prefix('[') {
            return parse_ipv6(text, rest);
        }
        parse_ipv4(text)
    }
}

/// The canonical form: the peer name nginx derives from the socket address
/// (`ngx_sock_ntop` with the port) for every address but IPv6 ones nginx
/// writes with a dotted IPv4 tail and Rust does not (IPv4-compatible
/// ones: nginx's `[::1.2.3.4]:80` is `[::102:304]:80` here). Compare
/// addresses as values, or by nginx's name of the socket address, never
/// this text against a peer's name.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(SocketAddr::V4(a)) => write!(f, "{}:{}", a.ip(), a.port()),
            Address::Inet(SocketAddr::V6(a)) => write!(f, "[{}]:{}", a.ip(), a.port()),
            Address::Unix(path) => write!(f, "unix:{path}"),
        }
    }
}

fn invalid(text: &str, why: &str) -> ApiError {
    ApiError::bad_request("invalid_address", format!("server address \"{}\" {why}", shown(text)))
}

/// Addresses are echoed in error messages; keep them short and printable.
pub(crate) fn shown(text: &str) -> String {
    let mut out: String = text.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

fn parse_unix(text: &str, path: &str) -> Result<Address, ApiError> {
    if !path.starts_with('/') {
        return Err(invalid(text, "must be an absolute unix socket path"));
    }
    if path.len() > MAX_UNIX_PATH {
        return Err(invalid(text, "is too long for a unix socket path"));
    }
    // Characters that would need quoting in nginx's config syntax (state
    // files are written in it) or that no sane socket path has.
    if path.chars().any(|c| c.is_control() || c.is_whitespace() || ";{}\"'#\\$".contains(c)) {
        return Err(invalid(text, "has characters not allowed in a unix socket path"));
    }
    Ok(Address::Unix(path.to_string()))
}

fn parse_ipv6(text: &str, rest: &str) -> Result<Address, ApiError> {
    let (ip, after) = rest.split_once(']').ok_or_else(|| invalid(text, "lacks the closing ']'"))?;
    let ip: Ipv6Addr = ip.parse().map_err(|_| invalid(text, "is not a valid IPv6 address"))?;
    let port = match after {
        "" => DEFAULT_PORT,
        _ => match after.strip_prefix(':') {
            Some(port) => parse_port(text, port)?,
            None => return Err(invalid(text, "has text after the IPv6 address")),
        },
    };
    Ok(Address::Inet(SocketAddr::new(IpAddr::V6(ip), port)))
}

fn parse_ipv4(text: &str) -> Result<Address, ApiError> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(text, port)?),
        None => (text, DEFAULT_PORT),
    };
    if host.contains(':') {
        return Err(invalid(text, "is an IPv6 address without brackets ([addr]:port)"));
    }
    match host.parse::<Ipv4Addr>() {
        Ok(ip) => Ok(Address::Inet(SocketAddr::new(IpAddr::V4(ip), port))),
        Err(_) if looks_like_host_name(host) => Err(ApiError::bad_request(
            "host_name",
            format!(
                "server \"{}\" is a host name; only IP addresses and unix sockets are accepted \
                 (names are not resolved at run time)",
                shown(text)
            ),
        )),
        Err(_) => Err(invalid(text, "is not a valid IPv4 address")),
    }
}

fn looks_like_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.chars().any(|c| c.is_ascii_alphabetic())
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

fn parse_port(text: &str, port: &str) -> Result<u16, ApiError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(text, "has an invalid port"));
    }
    match port.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        _ => Err(invalid(text, "has a port outside 1-65535")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> String {
        Address::parse(text).unwrap().to_string()
    }

    fn err(text: &str) -> ApiError {
        Address::parse(text).unwrap_err()
    }

    #[test]
    fn ipv4_with_and_without_port() {
        assert_eq!(ok("127.0.0.1:6001"), "127.0.0.1:6001");
        assert_eq!(ok("10.0.0.1"), "10.0.0.1:80");
    }

    #[test]
    fn ipv6_forms_are_canonical() {
        assert_eq!(ok("[::1]:8080"), "[::1]:8080");
        assert_eq!(ok("[::1]"), "[::1]:80");
        assert_eq!(ok("[2001:db8:0:0:0:0:0:1]:1"), "[2001:db8::1]:1");
        assert_eq!(err("::1").code, "invalid_address");
        assert_eq!(err("[::1").code, "invalid_address");
        assert_eq!(err("[::1]x").code, "invalid_address");
        assert_eq!(err("[fe80::1%eth0]:80").code, "invalid_address");
    }

    #[test]
    fn unix_sockets() {
        assert_eq!(ok("unix:/tmp/app.sock"), "unix:/tmp/app.sock");
        assert_eq!(err("unix:relative.sock").code, "invalid_address");
        assert_eq!(err("unix:/tmp/a;b").code, "invalid_address");
        assert_eq!(err(&format!("unix:/{}", "a".repeat(107))).code, "invalid_address");
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(err("127.0.0.1:0").code, "invalid_address");
        assert_eq!(err("127.0.0.1:65536").code, "invalid_address");
        assert_eq!(err("127.0.0.1:").code, "invalid_address");
        assert_eq!(err("127.0.0.1:+80").code, "invalid_address");
        assert_eq!(ok("127.0.0.1:65535"), "127.0.0.1:65535");
    }

    #[test]
    fn host_names_are_refused_with_their_own_reason() {
        let e = err("localhost:8080");
        assert_eq!((e.status, e.code), (400, "host_name"));
        assert!(e.text.contains("only IP addresses"));
        assert_eq!(err("1.2.3").code, "invalid_address");
        assert_eq!(err("").code, "invalid_address");
        assert_eq!(err("127.0.0.1 ;").code, "invalid_address");
    }

    #[test]
    fn error_text_is_bounded_and_printable() {
        let e = err(&format!("{}\n", "x".repeat(1000)));
        assert!(e.text.len() < 200);
        assert!(!e.text.contains('\n'));
    }
}
