//! What each masking rule makes of one non-NULL value, deterministically from the stack's masking key: the same
//! key and value give the same output in every table and every run, so joins on masked columns still match and
//! two refreshes agree. Also the keyed 64-bit digests of the leak check.
//!
//! Every output is derived from an HMAC-SHA-256 of the rule's kind and the value under the masking key (the
//! `hash` rule is the HMAC of the value itself); the leak check's digests use a key derived from the masking key
//! for that purpose alone (HMAC of a constant), so a digest never equals a piece of any output. Never keeps a
//! value past the call.
//!
//! Why the digests are SipHash-2-4 and not HMAC-SHA-256: every masked value is digested twice (its source and
//! its output), and two HMACs per value took as long as the fake itself, against the target of a masked
//! refresh at most 1.3 times an unmasked one. SipHash-2-4 is a keyed pseudorandom function with a 128-bit key
//! and 64-bit output, which is all the check needs (digests are compared in memory and never leave the process);
//! a collision only ever reports a leak that is not there, never hides one.

use std::net::{Ipv4Addr, Ipv6Addr};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::rules::FakeKind;
use super::words;

type HmacSha256 = Hmac<Sha256>;

/// What the leak check's key is derived with: never used for an output.
const LEAK_PURPOSE: &[u8] = b"lifeboat mask leak-check digest v1";

/// The keyed HMACs, keyed once (each call clones the keyed state instead of hashing the key again).
#[derive(Clone)]
pub(crate) struct Faker {
    mac: HmacSha256,
    /// The leak check's SipHash key.
    leak: (u64, u64),
}

impl Faker {
    /// `None` only if the HMAC refuses the key (HMAC-SHA-256 takes keys of every length).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        let mac = HmacSha256::new_from_slice(key).ok()?;
        let mut derive = mac.clone();
        derive.update(LEAK_PURPOSE);
        let derived: [u8; 32] = derive.finalize().into_bytes().into();
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&derived[at..at + 8]);
            u64::from_le_bytes(w)
        };
        Some(Faker {
            mac,
            leak: (word(0), word(8)),
        })
    }

    fn hmac(&self, kind: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        if !kind.is_empty() {
            mac.update(kind);
            mac.update(&[0]);
        }
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// The leak check's keyed 64-bit digest of a value.
    pub(crate) fn digest(&self, value: &[u8]) -> u64 {
        siphash24(self.leak, value)
    }

    /// `hash`: the lowercase hex HMAC-SHA-256 of the value.
    pub(crate) fn hash(&self, value: &[u8], out: &mut Vec<u8>) {
        out.clear();
        hex(&self.hmac(b"", value), out);
    }

    /// `redact`: as many `x` as the value has characters (bytes, when it is not UTF-8).
    pub(crate) fn redact(value: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.resize(chars(value), b'x');
    }

    /// `fake:<kind>`.
    pub(crate) fn fake(&self, kind: FakeKind, value: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mac = self.hmac(kind.name().as_bytes(), value);
        let mut draw = Draw::new(&mac);
        match kind {
            FakeKind::Email => {
                out.extend(draw.pick(&words::FIRST).bytes().map(|b| b.to_ascii_lowercase()));
                out.push(b'.');
                out.extend(draw.pick(&words::LAST).bytes().map(|b| b.to_ascii_lowercase()));
                out.push(b'.');
                // 48 bits of the HMAC itself: distinct sources keep distinct addresses (unique constraints).
                hex(&mac[24..30], out);
                out.extend_from_slice(b"@example.com");
            }
            FakeKind::Name => {
                out.extend_from_slice(draw.pick(&words::FIRST).as_bytes());
                out.push(b' ');
                out.extend_from_slice(draw.pick(&words::LAST).as_bytes());
            }
            FakeKind::Phone => {
                // 555-0100 to 555-0199 are reserved for fiction.
                let area = 201 + draw.below(799);
                let line = draw.below(100);
                out.extend_from_slice(format!("+1-{area:03}-555-01{line:02}").as_bytes());
            }
            FakeKind::Address => {
                let number = 1 + draw.below(9999);
                let street = draw.pick(&words::STREET);
                let suffix = draw.pick(&words::SUFFIX);
                let city = draw.pick(&words::CITY);
                out.extend_from_slice(format!("{number} {street} {suffix}, {city}").as_bytes());
            }
            FakeKind::Ip => ip(value, &mac, out),
            FakeKind::Text => {
                // At least a few words' worth: an empty or very short value must not come back as itself.
                let want = chars(value).max(words::TEXT_MIN);
                let mut made = 0;
                while made < want {
                    if made > 0 {
                        out.push(b' ');
                        made += 1;
                    }
                    let word = draw.pick(&words::TEXT);
                    let take = word.len().min(want - made);
                    out.extend_from_slice(&word.as_bytes()[..take]);
                    made += take;
                }
                // Never end on a space: a `character(n)` column would trim it and change the length.
                if let Some(last) = out.last_mut() {
                    if *last == b' ' {
                        *last = b'a';
                    }
                }
            }
        }
    }
}

/// The characters of a value: UTF-8 characters, or bytes when it is not UTF-8.
pub(crate) fn chars(value: &[u8]) -> usize {
    match std::str::from_utf8(value) {
        Ok(s) => s.chars().count(),
        Err(_) => value.len(),
    }
}

/// An address in 10.0.0.0/8 (or 2001:db8::/32 for IPv6), with the source's `/prefix` and no host bits past it
/// (so that a `cidr` value stays valid).
fn ip(value: &[u8], mac: &[u8; 32], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(value);
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, p.trim().parse::<u32>().ok()),
        None => (text.as_ref(), None),
    };
    let formatted = if address.contains(':') {
        let mut bits = u128::from_be_bytes([
            0x20, 0x01, 0x0d, 0xb8, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], mac[6], mac[7], mac[8], mac[9],
            mac[10], mac[11],
        ]);
        if let Some(p) = prefix.filter(|&p| p < 128) {
            bits &= !(u128::MAX >> p);
        }
        Ipv6Addr::from(bits).to_string()
    } else {
        let mut bits = u32::from_be_bytes([10, mac[0], mac[1], mac[2]]);
        if let Some(p) = prefix.filter(|&p| p < 32) {
            bits &= !(u32::MAX >> p);
        }
        Ipv4Addr::from(bits).to_string()
    };
    out.extend_from_slice(formatted.as_bytes());
    if let Some(p) = prefix {
        out.extend_from_slice(format!("/{p}").as_bytes());
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, 2012) of `data` under the key `(k0, k1)`.
fn siphash24((k0, k1): (u64, u64), data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    // Inlined even where the release profile optimises for size: it runs six times per value.
    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut words = data.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let rest = words.remainder();
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    round(&mut v);
    round(&mut v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// Choices drawn from an HMAC: a splitmix64 sequence seeded by its first 8 bytes (long texts need more draws
/// than 32 bytes give).
struct Draw(u64);

impl Draw {
    fn new(mac: &[u8; 32]) -> Self {
        Draw(u64::from_le_bytes([
            mac[8], mac[9], mac[10], mac[11], mac[12], mac[13], mac[14], mac[15],
        ]))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'w>(&mut self, list: &[&'w str]) -> &'w str {
        let i = self.below(list.len() as u64) as usize;
        list.get(i).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faker(key: &[u8]) -> Faker {
        Faker::new(key).unwrap()
    }

    fn fake(f: &Faker, kind: FakeKind, value: &str) -> String {
        let mut out = Vec::new();
        f.fake(kind, value.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_fake_is_deterministic_per_key_and_differs_between_keys() {
        let (a, b) = (faker(b"key one"), faker(b"key two"));
        for kind in FakeKind::ALL {
            let value = "alice@example.org";
            assert_eq!(fake(&a, kind, value), fake(&a.clone(), kind, value), "{kind:?}");
            assert_ne!(fake(&a, kind, value), fake(&b, kind, value), "{kind:?}");
            assert_ne!(fake(&a, kind, value), value, "{kind:?}");
        }
    }

    #[test]
    fn fakes_have_the_promised_shapes() {
        let f = faker(b"k");
        let email = fake(&f, FakeKind::Email, "bob@corp.example");
        let (local, domain) = email.split_once('@').unwrap();
        assert_eq!(domain, "example.com");
        let parts: Vec<_> = local.split('.').collect();
        assert_eq!(parts.len(), 3, "{email}");
        assert_eq!(parts[2].len(), 12);
        assert!(parts[2].bytes().all(|b| b.is_ascii_hexdigit()));
        let name = fake(&f, FakeKind::Name, "Robert Smith");
        let (first, last) = name.split_once(' ').unwrap();
        assert!(words::FIRST.contains(&first) && words::LAST.contains(&last), "{name}");
        let phone = fake(&f, FakeKind::Phone, "+44 20 7946 0000");
        assert!(phone.starts_with("+1-") && phone[6..].starts_with("-555-01"), "{phone}");
        assert_eq!(phone.len(), 15);
        let address = fake(&f, FakeKind::Address, "1 Real Street, Realtown");
        assert!(
            address.contains(", ") && address.len() <= words::LONGEST_ADDRESS,
            "{address}"
        );
        let text = fake(&f, FakeKind::Text, "héllo wörld, this is text");
        assert_eq!(text.chars().count(), "héllo wörld, this is text".chars().count());
        assert!(!text.ends_with(' '));
        assert_eq!(fake(&f, FakeKind::Text, "").chars().count(), words::TEXT_MIN);
        assert_ne!(fake(&f, FakeKind::Text, "ab"), "ab");
    }

    #[test]
    fn ip_fakes_stay_in_documentation_ranges_and_keep_the_prefix() {
        let f = faker(b"k");
        let v4: Ipv4Addr = fake(&f, FakeKind::Ip, "192.168.4.7").parse().unwrap();
        assert_eq!(v4.octets()[0], 10);
        let net = fake(&f, FakeKind::Ip, "192.168.0.0/16");
        let (addr, prefix) = net.split_once('/').unwrap();
        assert_eq!(prefix, "16");
        let addr: Ipv4Addr = addr.parse().unwrap();
        assert_eq!(&addr.octets()[..1], &[10]);
        assert_eq!(&addr.octets()[2..], &[0, 0], "no host bits past the prefix: {net}");
        let v6: Ipv6Addr = fake(&f, FakeKind::Ip, "2a00:1450::1").parse().unwrap();
        assert_eq!(&v6.segments()[..2], &[0x2001, 0x0db8]);
        let v6net = fake(&f, FakeKind::Ip, "2a00:1450::/48");
        assert!(v6net.starts_with("2001:db8:") && v6net.ends_with("::/48"), "{v6net}");
    }

    #[test]
    fn hash_is_the_hex_hmac_and_redact_counts_characters() {
        let f = faker(b"key");
        let mut out = Vec::new();
        f.hash(b"The quick brown fox jumps over the lazy dog", &mut out);
        // RFC 4231-style known answer: HMAC-SHA-256 with key "key" of the pangram.
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        Faker::redact("Grüße, 東京".as_bytes(), &mut out);
        assert_eq!(out, b"xxxxxxxxx");
        Faker::redact(&[0xff, 0xfe, b'a'], &mut out);
        assert_eq!(out, b"xxx");
    }

    #[test]
    fn siphash_gives_the_papers_answer() {
        // SipHash paper, appendix A: key 00..0f, message 00..0e.
        let key = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let message: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(key, &message), 0xa129_ca61_49be_45e5);
    }

    #[test]
    fn digests_are_keyed_and_never_the_hash_rules_output() {
        let (a, b) = (faker(b"one"), faker(b"two"));
        assert_eq!(a.digest(b"v"), a.digest(b"v"));
        assert_ne!(a.digest(b"v"), b.digest(b"v"));
        assert_ne!(a.digest(b"v"), a.digest(b"w"));
        let mut out = Vec::new();
        a.hash(b"v", &mut out);
        let mut first = [0u8; 8];
        first.copy_from_slice(&a.hmac(b"", b"v")[..8]);
        assert_ne!(a.digest(b"v"), u64::from_le_bytes(first));
    }
}
