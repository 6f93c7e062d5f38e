//! PostgreSQL's COPY text format, one field at a time: the decoding of a field as pg_dump wrote it (backslash
//! escapes, `\N` for NULL) and the encoding of a value so that COPY FROM reads it back unchanged.
//!
//! Fields are split on literal tab bytes: COPY TO escapes every tab, newline and backslash inside a value, so
//! a raw tab only ever separates fields. Never allocates: callers hand in the buffers they reuse.

/// How COPY text writes NULL.
pub(crate) const NULL: &[u8] = b"\\N";

/// Whether a raw field is NULL.
pub(crate) fn is_null(raw: &[u8]) -> bool {
    raw == NULL
}

/// Decodes one raw (non-NULL) field into `out` (cleared first), as COPY FROM reads it: `\b \f \n \r \t \v`,
/// octal `\d`, `\dd`, `\ddd`, hex `\xh`, `\xhh`, and a backslash before any other character stands for it.
pub(crate) fn decode(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        rest = &rest[at + 1..];
        let Some(&c) = rest.first() else {
            // A lone backslash at the end: COPY keeps it.
            out.push(b'\\');
            break;
        };
        rest = &rest[1..];
        match c {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut used = 0;
                for &d in rest.iter().take(2) {
                    if !(b'0'..=b'7').contains(&d) {
                        break;
                    }
                    value = value * 8 + u32::from(d - b'0');
                    used += 1;
                }
                rest = &rest[used..];
                out.push((value & 0xff) as u8);
            }
            b'x' if rest.first().is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u32;
                let mut used = 0;
                for &d in rest.iter().take(2) {
                    let Some(v) = (d as char).to_digit(16) else {
                        break;
                    };
                    value = value * 16 + v;
                    used += 1;
                }
                rest = &rest[used..];
                out.push((value & 0xff) as u8);
            }
            other => out.push(other),
        }
    }
    out.extend_from_slice(rest);
}

/// Appends `value` to `out` as a COPY text field (never NULL: the caller writes [`NULL`] for that).
pub(crate) fn encode(value: &[u8], out: &mut Vec<u8>) {
    let mut rest = value;
    while let Some(at) = rest
        .iter()
        .position(|&b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r' | 0x08 | 0x0b | 0x0c))
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(match rest[at] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            0x08 => b"\\b",
            0x0b => b"\\v",
            _ => b"\\f",
        });
        rest = &rest[at + 1..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        decode(raw, &mut out);
        out
    }

    #[test]
    fn decodes_what_copy_to_writes_and_what_copy_from_accepts() {
        assert_eq!(dec(b"a\\tb\\nc\\\\d"), b"a\tb\nc\\d");
        assert_eq!(dec(b"\\b\\f\\r\\v"), [8, 12, b'\r', 11]);
        assert_eq!(dec(b"\\101\\x41\\x4g\\7"), b"AA\x04g\x07");
        assert_eq!(dec(b"\\q\\.\\"), b"q.\\");
        assert_eq!(dec("é\\tü".as_bytes()), "é\tü".as_bytes());
        assert!(is_null(b"\\N"));
        assert!(!is_null(b"\\\\N"));
        assert_eq!(dec(b"\\\\N"), b"\\N");
    }

    #[test]
    fn encodes_every_byte_copy_would_misread() {
        let mut out = Vec::new();
        encode(b"a\tb\nc\\d\re\x08\x0b\x0c", &mut out);
        assert_eq!(out, b"a\\tb\\nc\\\\d\\re\\b\\v\\f");
        out.clear();
        // A value that reads like the NULL marker or the end line once encoded stays a value.
        encode(b"\\N", &mut out);
        assert_eq!(out, b"\\\\N");
    }

    proptest! {
        #[test]
        fn any_value_survives_encode_then_decode(value in prop::collection::vec(any::<u8>(), 0..64), text in "\\PC*") {
            for v in [value.as_slice(), text.as_bytes()] {
                let mut encoded = Vec::new();
                encode(v, &mut encoded);
                prop_assert!(!encoded.contains(&b'\t') && !encoded.contains(&b'\n'));
                prop_assert!(!is_null(&encoded));
                prop_assert_eq!(dec(&encoded), v);
            }
        }
    }
}
