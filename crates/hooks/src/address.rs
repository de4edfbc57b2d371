//! Which addresses a hook may reach: the public internet only, unless the
//! operator allows private ones. A hook's URL is a tenant's to choose, so
//! without this check any token that may change things could make the server
//! call into its own network (a cloud's metadata service, a database's admin
//! port) and read the answers back in the delivery's attempts.

use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `address` is on the public internet: not loopback, private,
/// link-local, shared (carrier-grade NAT), unspecified, broadcast,
/// documentation, benchmarking, multicast or reserved, nor an IPv6 form of
/// one of those.
///
/// ```
/// use roomkit_graph_hooks::is_public;
/// for private in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
///                 "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "224.0.0.1"] {
///     assert!(!is_public(private.parse().unwrap()), "{private}");
/// }
/// for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
///     assert!(is_public(public.parse().unwrap()), "{public}");
/// }
/// ```
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// Resolves names as the system does, keeping only public addresses: a
/// name with none is refused, so a hook cannot reach a private address
/// through DNS (nor by a name whose address changes between a check and
/// the connection: this is the resolution the connection uses).
pub(crate) struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> =
                found.iter().copied().filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                let refused = format!(
                    "{host} resolves to no public address ({}): hooks reach private addresses only when the \
                     server allows them (--hooks-to-private-addresses)",
                    if found.is_empty() {
                        "none at all".to_owned()
                    } else {
                        format!("{} private", found.len())
                    }
                );
                return Err(refused.into());
            }
            let addresses: Addrs = Box::new(public.into_iter());
            Ok(addresses)
        })
    }
}
