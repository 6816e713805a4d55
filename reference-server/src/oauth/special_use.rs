//! Addresses a metadata-document fetch must never reach: the IANA IPv4 and
//! IPv6 Special-Purpose Address Registries (RFC 6890 and its updates), plus
//! multicast, which the registries list elsewhere.
//!
//! CIMD draft-01 §6.5: the server MUST NOT fetch a URL that resolves to a
//! special-use address. The whole registry is refused, including the few
//! blocks marked globally reachable (AS112, for example): a client's metadata
//! document has no business there. IPv6 forms that carry an IPv4 address
//! (mapped, translated, compatible, NAT64, 6to4, Teredo) are refused as
//! blocks of their own, whatever IPv4 address they embed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 special-purpose blocks: (network, prefix length, what it is).
const V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" (RFC 791)"),
    ([10, 0, 0, 0], 8, "private use (RFC 1918)"),
    ([100, 64, 0, 0], 10, "shared address space (RFC 6598)"),
    ([127, 0, 0, 0], 8, "loopback (RFC 1122)"),
    ([169, 254, 0, 0], 16, "link local (RFC 3927)"),
    ([172, 16, 0, 0], 12, "private use (RFC 1918)"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments (RFC 6890)"),
    ([192, 0, 2, 0], 24, "documentation TEST-NET-1 (RFC 5737)"),
    ([192, 31, 196, 0], 24, "AS112-v4 (RFC 7535)"),
    ([192, 52, 193, 0], 24, "AMT (RFC 7450)"),
    (
        [192, 88, 99, 0],
        24,
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    ([192, 168, 0, 0], 16, "private use (RFC 1918)"),
    (
        [192, 175, 48, 0],
        24,
        "direct delegation AS112 service (RFC 7534)",
    ),
    ([198, 18, 0, 0], 15, "benchmarking (RFC 2544)"),
    ([198, 51, 100, 0], 24, "documentation TEST-NET-2 (RFC 5737)"),
    ([203, 0, 113, 0], 24, "documentation TEST-NET-3 (RFC 5737)"),
    ([224, 0, 0, 0], 4, "multicast (RFC 5771)"),
    ([240, 0, 0, 0], 4, "reserved (RFC 1112)"),
    ([255, 255, 255, 255], 32, "limited broadcast (RFC 919)"),
];

/// IPv6 special-purpose blocks: (network, prefix length, what it is).
const V6: &[([u16; 8], u8, &str)] = &[
    ([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified (RFC 4291)"),
    ([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback (RFC 4291)"),
    (
        [0, 0, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4-compatible, deprecated (RFC 4291)",
    ),
    ([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped (RFC 4291)"),
    (
        [0, 0, 0, 0, 0xffff, 0, 0, 0],
        96,
        "IPv4-translated (RFC 2765)",
    ),
    (
        [0x64, 0xff9b, 0, 0, 0, 0, 0, 0],
        96,
        "IPv4/IPv6 translation (RFC 6052)",
    ),
    (
        [0x64, 0xff9b, 1, 0, 0, 0, 0, 0],
        48,
        "local-use IPv4/IPv6 translation (RFC 8215)",
    ),
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only (RFC 6666)"),
    (
        [0x100, 0, 0, 1, 0, 0, 0, 0],
        64,
        "dummy IPv6 prefix (RFC 9780)",
    ),
    (
        [0x2001, 0, 0, 0, 0, 0, 0, 0],
        23,
        "IETF protocol assignments, incl. Teredo (RFC 2928, RFC 4380)",
    ),
    (
        [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
        32,
        "documentation (RFC 3849)",
    ),
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4 (RFC 3056)"),
    (
        [0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0],
        48,
        "direct delegation AS112 service (RFC 7534)",
    ),
    (
        [0x3fff, 0, 0, 0, 0, 0, 0, 0],
        20,
        "documentation (RFC 9637)",
    ),
    (
        [0x5f00, 0, 0, 0, 0, 0, 0, 0],
        16,
        "segment routing SIDs (RFC 9602)",
    ),
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "unique local (RFC 4193)"),
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link local (RFC 4291)"),
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast (RFC 4291)"),
];

fn in_v4(ip: Ipv4Addr, (net, len, _): &([u8; 4], u8, &str)) -> bool {
    let mask = if *len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(*len))
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(*net)) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len, _): &([u16; 8], u8, &str)) -> bool {
    let mask = if *len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(*len))
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(*net)) & mask
}

/// The registry entry `ip` falls in, if any.
pub fn block_of(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => V4.iter().find(|b| in_v4(v4, b)).map(|b| b.2),
        IpAddr::V6(v6) => V6.iter().find(|b| in_v6(v6, b)).map(|b| b.2),
    }
}

/// Whether a fetch must never reach `ip`.
pub fn is_special_use(ip: IpAddr) -> bool {
    block_of(ip).is_some()
}

/// A DNS name as the checks and the trust list compare it: lowercase, and
/// without the one trailing dot that makes it fully qualified
/// (`Example.COM.` and `example.com` are the same host).
pub fn normalized_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_range(net: [u8; 4], len: u8) -> (Ipv4Addr, Ipv4Addr) {
        let base = u32::from(Ipv4Addr::from(net));
        let size = if len == 0 {
            u32::MAX
        } else {
            (1u64 << (32 - u32::from(len))) as u32 - 1
        };
        (Ipv4Addr::from(base), Ipv4Addr::from(base | size))
    }

    fn v6_range(net: [u16; 8], len: u8) -> (Ipv6Addr, Ipv6Addr) {
        let base = u128::from(Ipv6Addr::from(net));
        let size = if len == 128 {
            0
        } else {
            u128::MAX >> u32::from(len)
        };
        (Ipv6Addr::from(base), Ipv6Addr::from(base | size))
    }

    #[test]
    fn every_registry_block_is_refused_from_its_first_to_its_last_address() {
        for (net, len, name) in V4 {
            let (first, last) = v4_range(*net, *len);
            assert!(is_special_use(first.into()), "{first} ({name})");
            assert!(is_special_use(last.into()), "{last} ({name})");
        }
        for (net, len, name) in V6 {
            let (first, last) = v6_range(*net, *len);
            assert!(is_special_use(first.into()), "{first} ({name})");
            assert!(is_special_use(last.into()), "{last} ({name})");
        }
    }

    #[test]
    fn ipv6_forms_that_embed_an_ipv4_address_are_refused_whatever_it_is() {
        for form in [
            "::ffff:127.0.0.2",                     // mapped, loopback
            "::ffff:93.184.216.34",                 // mapped, public: still a mapped form
            "::ffff:0:127.0.0.2",                   // translated
            "::127.0.0.2",                          // compatible
            "64:ff9b::7f00:2",                      // NAT64 of 127.0.0.2
            "64:ff9b:1::a00:1",                     // local NAT64
            "2002:7f00:2::1",                       // 6to4 of 127.0.0.2
            "2001:0:4136:e378:8000:63bf:3fff:fdd2", // Teredo
        ] {
            assert!(is_special_use(form.parse().unwrap()), "{form}");
        }
    }

    #[test]
    fn public_addresses_and_the_neighbours_of_blocks_are_allowed() {
        for ip in [
            "93.184.216.34",
            "9.255.255.255",   // just below 10/8
            "11.0.0.0",        // just above 10/8
            "100.63.255.255",  // below 100.64/10
            "100.128.0.0",     // above 100.64/10
            "172.32.0.0",      // above 172.16/12
            "198.20.0.0",      // above 198.18/15
            "223.255.255.255", // below multicast
            "2606:2800:220:1:248:1893:25c8:1946",
            "2001:200::1",  // just above 2001::/23
            "2003::1",      // above 2002::/16
            "fbff:ffff::1", // below fc00::/7
        ] {
            assert!(!is_special_use(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn domains_compare_without_case_or_the_trailing_dot() {
        assert_eq!(normalized_domain("Example.COM."), "example.com");
        assert_eq!(normalized_domain("localhost"), "localhost");
        assert_eq!(normalized_domain("a.b."), "a.b");
    }
}
