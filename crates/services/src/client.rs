//! Who a request comes from, as the per-address budgets key it. Shared by the HTTP API
//! and the WebSocket handshake, so one client has one budget key on both.

use std::net::IpAddr;

/// Whether to believe `X-Forwarded-For` (only behind a trusted proxy; otherwise any
/// client could pick its own address and dodge per-address limits).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyPolicy {
    /// Trust the proxy headers.
    pub trust_forwarded_headers: bool,
}

impl ProxyPolicy {
    /// The budget key of a client: the TCP peer's address, or — when proxy headers are
    /// trusted — the last entry of `forwarded_for` (the last `X-Forwarded-For` header as
    /// received), which our proxy appended; entries to its left were sent by the client
    /// and prove nothing. IPv6 addresses are keyed by their /64.
    pub fn client_key(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> String {
        let forwarded = self
            .trust_forwarded_headers
            .then(|| forwarded_for?.rsplit(',').next()?.trim().parse().ok())
            .flatten();
        forwarded
            .or(peer)
            .map_or_else(|| "unknown".to_owned(), address_key)
    }
}

/// IPv4 addresses as they are; IPv6 by /64 — one host usually owns a whole /64,
/// so keying single v6 addresses would hand it 2^64 budgets.
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(raw: &str) -> Option<IpAddr> {
        raw.parse().ok()
    }

    #[test]
    fn the_peer_counts_unless_the_proxy_is_trusted() {
        let direct = ProxyPolicy::default();
        let proxied = ProxyPolicy {
            trust_forwarded_headers: true,
        };
        let peer = ip("10.0.0.1");
        assert_eq!(direct.client_key(peer, Some("1.2.3.4")), "10.0.0.1");
        assert_eq!(
            proxied.client_key(peer, Some("6.6.6.6, 1.2.3.4")),
            "1.2.3.4",
            "only the entry our proxy appended"
        );
        assert_eq!(proxied.client_key(peer, Some("garbage")), "10.0.0.1");
        assert_eq!(direct.client_key(None, None), "unknown");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let direct = ProxyPolicy::default();
        assert_eq!(
            direct.client_key(ip("2001:db8:1:2:aaaa::1"), None),
            direct.client_key(ip("2001:db8:1:2:bbbb::9"), None)
        );
        assert_eq!(
            direct.client_key(ip("2001:db8:1:2::1"), None),
            "2001:db8:1:2::/64"
        );
    }
}
