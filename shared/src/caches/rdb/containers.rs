//! The encoded containers inside RDB values, checked as deeply as Redis checks them when it loads a file with
//! `sanitize-dump-payload yes` (and as `redis-check-rdb` does): listpacks, ziplists, intsets, zipmaps, and the
//! layout of a stream's listpacks. Each check is a pure function over the container's bytes (already read and,
//! if compressed, decompressed by the caller) and gives the entries, so the caller can count and compare them.
//!
//! Owns: the container rules, written from the formats themselves (`listpack.md`, the headers of `ziplist.c`,
//! `intset.c` and `zipmap.c`) and the loader's checks: header lengths against the blob, every entry's encoding,
//! back-lengths and `prevlen`s, terminators, entry counts, intset ordering and uniqueness, duplicate fields.
//!
//! Never: reads outside the slice it is given (every offset is checked arithmetic against the slice's length),
//! panics on any bytes, or allocates more than a vector of references into the slice.

use std::collections::HashSet;

/// One entry of a listpack or ziplist: a string, or an integer stored as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Entry<'_> {
    /// The value as the server compares it: an integer by its decimal digits (5 and "5" are the same member).
    fn text(&self) -> Vec<u8> {
        match self {
            Entry::Str(s) => s.to_vec(),
            Entry::Int(n) => n.to_string().into_bytes(),
        }
    }

    /// The integer an entry holds, stored as one or as decimal text (how a stream's listpack is read).
    pub fn integer(&self) -> Option<i64> {
        match self {
            Entry::Int(n) => Some(*n),
            Entry::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        }
    }
}

fn u16_le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

/// A little-endian signed integer of `n` bytes (1 to 8), sign-extended.
fn int_le(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let bytes = b.get(at..at.checked_add(n)?)?;
    let mut v: u64 = 0;
    for (i, byte) in bytes.iter().enumerate() {
        v |= u64::from(*byte) << (8 * i);
    }
    let shift = 64 - 8 * n as u32;
    Some(((v << shift) as i64) >> shift)
}

/// The listpack header's "number of elements unknown" value (too many to count in 16 bits).
const LP_COUNT_UNKNOWN: u16 = u16::MAX;
const LP_EOF: u8 = 0xFF;

/// The bytes a listpack entry's back-length takes for an entry of `len` bytes (encoding and data).
fn backlen_size(len: u64) -> u64 {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Reads a back-length backwards from its last byte at `end` (7 bits a byte, the high bit says "more").
fn decode_backlen(lp: &[u8], end: usize) -> Option<u64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    let mut at = end;
    loop {
        let b = *lp.get(at)?;
        value |= u64::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        at = at.checked_sub(1)?;
    }
}

/// One listpack entry at `p`: its value and its encoded size (header and data, without the back-length).
fn lp_entry(lp: &[u8], p: usize) -> Result<(Entry<'_>, u64), String> {
    let first = lp[p];
    let str_at = |header: usize, len: u64| -> Result<(Entry<'_>, u64), String> {
        let start = p + header;
        let end = u64::try_from(start)
            .ok()
            .and_then(|s| s.checked_add(len))
            .filter(|e| *e < lp.len() as u64)
            .ok_or_else(|| format!("listpack entry at {p}: a string of {len} bytes runs past the end"))?;
        Ok((Entry::Str(&lp[start..end as usize]), header as u64 + len))
    };
    let int_at = |n: usize| -> Result<(Entry<'_>, u64), String> {
        int_le(lp, p + 1, n)
            .map(|v| (Entry::Int(v), 1 + n as u64))
            .ok_or_else(|| format!("listpack entry at {p}: an integer runs past the end"))
    };
    match first {
        0x00..=0x7F => Ok((Entry::Int(i64::from(first)), 1)),
        0x80..=0xBF => str_at(1, u64::from(first & 0x3F)),
        0xC0..=0xDF => {
            let low = *lp
                .get(p + 1)
                .ok_or_else(|| format!("listpack entry at {p}: cut short"))?;
            let v = (i64::from(first & 0x1F) << 8) | i64::from(low);
            Ok((Entry::Int(if v >= 1 << 12 { v - (1 << 13) } else { v }), 2))
        }
        0xE0..=0xEF => {
            let low = *lp
                .get(p + 1)
                .ok_or_else(|| format!("listpack entry at {p}: cut short"))?;
            str_at(2, (u64::from(first & 0x0F) << 8) | u64::from(low))
        }
        0xF0 => {
            let len = u32_le(lp, p + 1).ok_or_else(|| format!("listpack entry at {p}: cut short"))?;
            str_at(5, u64::from(len))
        }
        0xF1 => int_at(2),
        0xF2 => int_at(3),
        0xF3 => int_at(4),
        0xF4 => int_at(8),
        other => Err(format!("listpack entry at {p}: encoding byte {other:#04x}")),
    }
}

/// A listpack's entries, checked as `lpValidateIntegrity` does with deep sanitisation: the header's total bytes
/// is the blob's length, the last byte is the end mark and no end mark comes earlier, each entry's encoding is
/// valid and lies inside the blob, each back-length decodes to its entry's size, and the header's count (unless
/// "unknown") is the number of entries.
pub fn listpack(lp: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    const HEADER: usize = 6;
    if lp.len() < HEADER + 1 {
        return Err(format!(
            "a listpack of {} bytes is shorter than its header and end mark",
            lp.len()
        ));
    }
    let total = u32_le(lp, 0).unwrap_or_default();
    if u64::from(total) != lp.len() as u64 {
        return Err(format!(
            "a listpack's header says {total} bytes but it has {}",
            lp.len()
        ));
    }
    if lp[lp.len() - 1] != LP_EOF {
        return Err("a listpack does not end with its end mark (0xff)".into());
    }
    let declared = u16_le(lp, 4).unwrap_or_default();
    let last = (lp.len() - 1) as u64;
    let mut entries = Vec::new();
    let mut p = HEADER;
    while lp[p] != LP_EOF {
        let (entry, size) = lp_entry(lp, p)?;
        let next = (p as u64)
            .checked_add(size)
            .and_then(|n| n.checked_add(backlen_size(size)))
            .filter(|n| *n <= last)
            .ok_or_else(|| format!("listpack entry at {p} runs past the end mark"))?;
        let back = decode_backlen(lp, next as usize - 1);
        if back != Some(size) {
            return Err(format!(
                "listpack entry at {p}: its back-length says {} but the entry has {size} bytes",
                back.map_or_else(|| "nothing".into(), |b| b.to_string())
            ));
        }
        entries.push(entry);
        p = next as usize;
    }
    if p as u64 != last {
        return Err(format!("a listpack has an end mark at {p}, before its last byte"));
    }
    if declared != LP_COUNT_UNKNOWN && usize::from(declared) != entries.len() {
        return Err(format!(
            "a listpack's header says {declared} entries but it holds {}",
            entries.len()
        ));
    }
    Ok(entries)
}

const ZIP_END: u8 = 0xFF;
const ZIP_BIG_PREVLEN: u8 = 254;

/// A ziplist's entries, checked as `ziplistValidateIntegrity` does with deep sanitisation: header bytes and
/// tail offset against the blob, the end mark, every entry's `prevlen` equal to the previous entry's size and
/// its encoding valid and inside the blob, the tail offset pointing at the last entry, and the header's count
/// (unless 65535, "unknown") the number of entries.
pub fn ziplist(zl: &[u8]) -> Result<Vec<Entry<'_>>, String> {
    const HEADER: usize = 10;
    if zl.len() < HEADER + 1 {
        return Err(format!(
            "a ziplist of {} bytes is shorter than its header and end mark",
            zl.len()
        ));
    }
    let total = u32_le(zl, 0).unwrap_or_default();
    if u64::from(total) != zl.len() as u64 {
        return Err(format!("a ziplist's header says {total} bytes but it has {}", zl.len()));
    }
    let last = zl.len() - 1;
    if zl[last] != ZIP_END {
        return Err("a ziplist does not end with its end mark (0xff)".into());
    }
    let tail = u32_le(zl, 4).unwrap_or_default();
    if u64::from(tail) > last as u64 {
        return Err(format!("a ziplist's tail offset {tail} is past its end"));
    }
    let declared = u16_le(zl, 8).unwrap_or_default();
    let mut entries = Vec::new();
    let mut p = HEADER;
    let mut prev_size: u64 = 0;
    let mut prev_at = None;
    while zl[p] != ZIP_END {
        let cut = || format!("ziplist entry at {p}: its header runs past the end mark");
        let (prevlen, prevlen_size) = if zl[p] < ZIP_BIG_PREVLEN {
            (u64::from(zl[p]), 1)
        } else {
            let v = u32_le(zl, p + 1).filter(|_| p + 5 <= last).ok_or_else(cut)?;
            (u64::from(v), 5)
        };
        let e = p + prevlen_size;
        let enc = *zl.get(e).filter(|_| e <= last).ok_or_else(cut)?;
        let header_end = |n: usize| Some(e + n).filter(|end| *end <= last).ok_or_else(cut);
        let (entry_header, data_len, value): (usize, u64, Option<Entry<'_>>) = match enc {
            0x00..=0x3F => (1, u64::from(enc & 0x3F), None),
            0x40..=0x7F => {
                let low = zl[header_end(1)?];
                (2, (u64::from(enc & 0x3F) << 8) | u64::from(low), None)
            }
            0x80..=0xBF => {
                header_end(4)?;
                let len = u32::from_be_bytes([zl[e + 1], zl[e + 2], zl[e + 3], zl[e + 4]]);
                (5, u64::from(len), None)
            }
            0xC0 => (1, 2, None),
            0xD0 => (1, 4, None),
            0xE0 => (1, 8, None),
            0xF0 => (1, 3, None),
            0xFE => (1, 1, None),
            0xF1..=0xFD => (1, 0, Some(Entry::Int(i64::from(enc & 0x0F) - 1))),
            other => return Err(format!("ziplist entry at {p}: encoding byte {other:#04x}")),
        };
        let data_at = e + entry_header;
        let end = (data_at as u64)
            .checked_add(data_len)
            .filter(|end| *end <= last as u64)
            .ok_or_else(|| format!("ziplist entry at {p} runs past the end mark"))?;
        if prevlen > p as u64 - HEADER as u64 {
            return Err(format!(
                "ziplist entry at {p}: its prevlen {prevlen} points before the first entry"
            ));
        }
        if prevlen != prev_size {
            return Err(format!(
                "ziplist entry at {p}: its prevlen says {prevlen} but the entry before has {prev_size} bytes"
            ));
        }
        let data = &zl[data_at..end as usize];
        let value = value.unwrap_or(match enc {
            0xC0 | 0xD0 | 0xE0 | 0xF0 | 0xFE => Entry::Int(int_le(data, 0, data.len()).unwrap_or_default()),
            _ => Entry::Str(data),
        });
        entries.push(value);
        prev_size = end - p as u64;
        prev_at = Some(p);
        p = end as usize;
    }
    if p != last {
        return Err(format!("a ziplist has an end mark at {p}, before its last byte"));
    }
    if let Some(at) = prev_at.filter(|at| *at as u64 != u64::from(tail)) {
        return Err(format!(
            "a ziplist's tail offset is {tail} but its last entry is at {at}"
        ));
    }
    if declared != u16::MAX && usize::from(declared) != entries.len() {
        return Err(format!(
            "a ziplist's header says {declared} entries but it holds {}",
            entries.len()
        ));
    }
    Ok(entries)
}

/// An intset's size, checked as `intsetValidateIntegrity` does with deep sanitisation: an encoding of 2, 4 or 8
/// bytes, exactly the header's count of integers in the blob, not empty, and strictly ascending (sorted, no
/// duplicates).
pub fn intset(is: &[u8]) -> Result<u64, String> {
    let (Some(width), Some(count)) = (u32_le(is, 0), u32_le(is, 4)) else {
        return Err(format!("an intset of {} bytes is shorter than its header", is.len()));
    };
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!(
            "an intset's encoding is {width} bytes an integer (2, 4 or 8 are valid)"
        ));
    }
    let width = width as usize;
    if u64::from(count) * width as u64 + 8 != is.len() as u64 {
        return Err(format!(
            "an intset's header says {count} integers of {width} bytes but it has {} bytes",
            is.len()
        ));
    }
    if count == 0 {
        return Err("an empty intset".into());
    }
    let mut prev = None;
    for at in (8..is.len()).step_by(width) {
        let v = int_le(is, at, width).unwrap_or_default();
        if prev.is_some_and(|p| v <= p) {
            return Err(format!("an intset is not strictly ascending at byte {at}"));
        }
        prev = Some(v);
    }
    Ok(u64::from(count))
}

/// A zipmap's field and value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

const ZIPMAP_BIGLEN: u8 = 254;
const ZIPMAP_END: u8 = 0xFF;

/// A zipmap's field and value pairs, checked as `zipmapValidateIntegrity` does with deep sanitisation (each
/// length's encoding and every field, value and free space inside the blob, not empty, the header's count
/// unless "big") and, as the loader does after it, no field twice.
pub fn zipmap(zm: &[u8]) -> Result<Vec<Pair<'_>>, String> {
    if zm.len() < 2 {
        return Err(format!(
            "a zipmap of {} bytes is shorter than its header and end mark",
            zm.len()
        ));
    }
    let last = (zm.len() - 1) as u64;
    if zm[zm.len() - 1] != ZIPMAP_END {
        return Err("a zipmap does not end with its end mark (0xff)".into());
    }
    let in_range = |p: u64| (2..=last).contains(&p);
    let outside = |p: u64| format!("a zipmap entry runs past the end mark (byte {p})");
    // A length: one byte below 254, else 4 little-endian bytes after the marker.
    let length = |p: u64| -> (u64, u64) {
        let first = zm[p as usize];
        if first < ZIPMAP_BIGLEN {
            (u64::from(first), 1)
        } else {
            (u64::from(u32_le(zm, p as usize + 1).unwrap_or_default()), 5)
        }
    };
    let mut pairs = Vec::new();
    let mut p: u64 = 1;
    while zm[p as usize] != ZIPMAP_END {
        let size = if zm[p as usize] < ZIPMAP_BIGLEN { 1 } else { 5 };
        if !in_range(p + size) {
            return Err(outside(p + size));
        }
        let (field_len, size) = length(p);
        let field_at = p + size;
        p = field_at + field_len;
        if !in_range(p) {
            return Err(outside(p));
        }
        let size = if zm[p as usize] < ZIPMAP_BIGLEN { 1 } else { 5 };
        if !in_range(p + size) {
            return Err(outside(p + size));
        }
        let (value_len, size) = length(p);
        p += size;
        let free = u64::from(zm[p as usize]);
        let value_at = p + 1;
        p = value_at + value_len + free;
        if !in_range(p) {
            return Err(outside(p));
        }
        pairs.push((
            &zm[field_at as usize..(field_at + field_len) as usize],
            &zm[value_at as usize..(value_at + value_len) as usize],
        ));
    }
    if pairs.is_empty() {
        return Err("an empty zipmap".into());
    }
    if zm[0] != ZIPMAP_BIGLEN && usize::from(zm[0]) != pairs.len() {
        return Err(format!(
            "a zipmap's header says {} entries but it holds {}",
            zm[0],
            pairs.len()
        ));
    }
    distinct(pairs.iter().map(|(f, _)| f.to_vec()), "a zipmap")?;
    Ok(pairs)
}

/// No member (or field) twice, as the loader's duplicate check refuses.
fn distinct(members: impl Iterator<Item = Vec<u8>>, what: &str) -> Result<(), String> {
    let mut seen = HashSet::new();
    for m in members {
        if !seen.insert(m) {
            return Err(format!("{what} holds the same member twice"));
        }
    }
    Ok(())
}

/// Entries taken as field/value pairs (a hash) or member/score pairs (a sorted set): an even count and no field
/// twice. Returns the number of pairs.
pub fn pairs(entries: &[Entry<'_>], what: &str) -> Result<u64, String> {
    if !entries.len().is_multiple_of(2) {
        return Err(format!("{what} has {} entries, not pairs", entries.len()));
    }
    distinct(entries.iter().step_by(2).map(Entry::text), what)?;
    Ok(entries.len() as u64 / 2)
}

/// Entries taken as a set's members: none twice.
pub fn members(entries: &[Entry<'_>], what: &str) -> Result<u64, String> {
    distinct(entries.iter().map(Entry::text), what)?;
    Ok(entries.len() as u64)
}

/// The stream item flag saying an entry has the master entry's fields.
const STREAM_SAMEFIELDS: i64 = 2;

/// A stream node's listpack entries laid out as a stream's are, as `streamValidateListpackIntegrity` checks
/// them: the master entry (count, deleted, its fields, a zero), then count + deleted entries each of flags, id
/// deltas, its fields unless it has the master's, the values, and its own entry count; nothing after the last.
pub fn stream_node(entries: &[Entry<'_>]) -> Result<(), String> {
    if entries.is_empty() {
        return Err("an empty listpack inside a stream".into());
    }
    let read = |pos: &mut usize, what: &str| -> Result<i64, String> {
        let e = entries
            .get(*pos)
            .ok_or_else(|| format!("a stream listpack ends where its {what} belongs (entry {pos})"))?;
        let v = e
            .integer()
            .ok_or_else(|| format!("a stream listpack's {what} (entry {pos}) is not an integer"))?;
        *pos += 1;
        Ok(v)
    };
    let skip = |pos: &mut usize, n: i64, what: &str| -> Result<(), String> {
        let n = usize::try_from(n).map_err(|_| format!("a stream listpack's {what} count is {n}"))?;
        *pos = pos
            .checked_add(n)
            .filter(|end| *end <= entries.len())
            .ok_or_else(|| format!("a stream listpack ends inside its {what}"))?;
        Ok(())
    };
    let mut pos = 0usize;
    let count = read(&mut pos, "entry count")?;
    let deleted = read(&mut pos, "deleted count")?;
    let master_fields = read(&mut pos, "master field count")?;
    skip(&mut pos, master_fields, "master fields")?;
    if read(&mut pos, "master terminator")? != 0 {
        return Err("a stream listpack's master entry does not end with 0".into());
    }
    let items = count
        .checked_add(deleted)
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("a stream listpack counts {count} entries and {deleted} deleted"))?;
    for _ in 0..items {
        let flags = read(&mut pos, "entry flags")?;
        read(&mut pos, "entry id")?;
        read(&mut pos, "entry id")?;
        let (fields, extra) = if flags & STREAM_SAMEFIELDS != 0 {
            (master_fields, 3)
        } else {
            let fields = read(&mut pos, "entry field count")?;
            skip(&mut pos, fields, "entry fields")?;
            (fields, fields.saturating_add(4))
        };
        skip(&mut pos, fields, "entry values")?;
        let own = read(&mut pos, "entry's own count")?;
        if Some(own) != fields.checked_add(extra) {
            return Err(format!(
                "a stream entry's own count is {own} but it has {fields} values and {extra} more entries"
            ));
        }
    }
    if pos != entries.len() {
        return Err(format!(
            "a stream listpack has {} entries after its last item",
            entries.len() - pos
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// A listpack of the given raw entries (encoding and data), each followed by its one-byte back-length.
    fn lp(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in entries {
            body.extend_from_slice(e);
            body.push(e.len() as u8);
        }
        let mut v = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        v.extend(body);
        v.push(0xFF);
        v
    }

    /// A ziplist of the given raw entries (encoding and data), each preceded by its prevlen.
    fn zl(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = 0u8;
        let mut tail = 10u32;
        for e in entries {
            tail = 10 + body.len() as u32;
            body.push(prev);
            body.extend_from_slice(e);
            prev = 1 + e.len() as u8;
        }
        let mut v = ((body.len() + 11) as u32).to_le_bytes().to_vec();
        v.extend_from_slice(&tail.to_le_bytes());
        v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        v.extend(body);
        v.push(0xFF);
        v
    }

    #[test]
    fn listpack_entries_of_every_encoding_are_read() {
        let entries: [&[u8]; 7] = [
            &[0x05],
            &[0x82, b'h', b'i'],
            &[0xDF, 0xFF],
            &[0xF1, 0x34, 0x12],
            &[0xF2, 0xFF, 0xFF, 0xFF],
            &[0xF3, 1, 0, 0, 0],
            &[0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80],
        ];
        let bytes = lp(&entries);
        let got = listpack(&bytes).unwrap();
        assert_eq!(
            got,
            [
                Entry::Int(5),
                Entry::Str(b"hi"),
                Entry::Int(-1),
                Entry::Int(0x1234),
                Entry::Int(-1),
                Entry::Int(1),
                Entry::Int(i64::MIN)
            ]
        );
    }

    #[test]
    fn listpack_damage_is_named() {
        let good = lp(&[&[0x82, b'h', b'i'], &[0x01]]);
        assert!(listpack(&good).is_ok());
        let err = |bytes: &[u8]| listpack(bytes).unwrap_err();
        let mut total = good.clone();
        total[0] += 1;
        assert!(err(&total).contains("header says"), "{}", err(&total));
        let mut count = good.clone();
        count[4] = 3;
        assert!(err(&count).contains("says 3 entries but it holds 2"));
        let mut unknown = good.clone();
        unknown[4] = 0xFF;
        unknown[5] = 0xFF;
        assert!(listpack(&unknown).is_ok(), "65535 entries is \"unknown\"");
        // The entry length byte says 3 bytes where 2 follow: the back-length no longer matches.
        let mut length = good.clone();
        length[6] = 0x83;
        assert!(
            err(&length).contains("back-length") || err(&length).contains("past"),
            "{}",
            err(&length)
        );
        let mut back = good.clone();
        back[9] = 4;
        assert!(err(&back).contains("back-length says 4"), "{}", err(&back));
        let mut encoding = good.clone();
        encoding[10] = 0xF5;
        assert!(err(&encoding).contains("encoding byte 0xf5"), "{}", err(&encoding));
        let mut end = good.clone();
        *end.last_mut().unwrap() = 0;
        assert!(err(&end).contains("end mark"));
        let early_end = lp(&[&[0x01]]);
        let mut early = early_end.clone();
        early.insert(6, 0xFF);
        early[0] += 1;
        assert!(err(&early).contains("before its last byte"), "{}", err(&early));
        assert!(err(&[1, 0, 0, 0]).contains("shorter"));
    }

    #[test]
    fn ziplist_entries_prevlens_and_tail_are_checked() {
        let good = zl(&[&[0x02, b'h', b'i'], &[0xF3], &[0xFE, 0xFF], &[0xC0, 0x34, 0x12]]);
        assert_eq!(
            ziplist(&good).unwrap(),
            [Entry::Str(b"hi"), Entry::Int(2), Entry::Int(-1), Entry::Int(0x1234)]
        );
        let err = |bytes: &[u8]| ziplist(bytes).unwrap_err();
        let mut prevlen = good.clone();
        prevlen[14] = 9;
        assert!(err(&prevlen).contains("prevlen"), "{}", err(&prevlen));
        let mut tail = good.clone();
        tail[4] = 10;
        assert!(err(&tail).contains("tail offset"), "{}", err(&tail));
        let mut count = good.clone();
        count[8] = 5;
        assert!(err(&count).contains("says 5 entries"), "{}", err(&count));
        let mut encoding = good.clone();
        encoding[15] = 0xFF;
        assert!(ziplist(&encoding).is_err());
        let mut length = good.clone();
        length[11] = 0x30;
        assert!(err(&length).contains("past the end"), "{}", err(&length));
        assert!(ziplist(&zl(&[])).unwrap().is_empty());
    }

    #[test]
    fn intsets_are_sized_sorted_and_unique() {
        let set = |width: u32, values: &[i64]| {
            let mut v = width.to_le_bytes().to_vec();
            v.extend_from_slice(&(values.len() as u32).to_le_bytes());
            for x in values {
                v.extend_from_slice(&x.to_le_bytes()[..width as usize]);
            }
            v
        };
        assert_eq!(intset(&set(2, &[-3, 1, 2])).unwrap(), 3);
        assert_eq!(intset(&set(8, &[i64::MIN, i64::MAX])).unwrap(), 2);
        assert!(intset(&set(2, &[1, 1])).unwrap_err().contains("ascending"));
        assert!(intset(&set(4, &[2, 1])).unwrap_err().contains("ascending"));
        assert!(intset(&set(2, &[])).unwrap_err().contains("empty"));
        assert!(intset(&set(3, &[1])).unwrap_err().contains("encoding"));
        let mut short = set(2, &[1, 2]);
        short.pop();
        assert!(intset(&short).unwrap_err().contains("header says 2"));
        let mut huge = set(8, &[1]);
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(intset(&huge).is_err());
    }

    #[test]
    fn zipmaps_are_walked_and_refused_empty_or_with_a_field_twice() {
        // 2 entries: "a" -> "1" (no free), "b" -> "22" (1 free byte)
        let good = [2, 1, b'a', 1, 0, b'1', 1, b'b', 2, 1, b'2', b'2', 0, 0xFF];
        assert_eq!(
            zipmap(&good).unwrap(),
            [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"22"[..])]
        );
        let mut count = good;
        count[0] = 3;
        assert!(zipmap(&count).unwrap_err().contains("says 3 entries"));
        let mut twice = good;
        twice[7] = b'a';
        assert!(zipmap(&twice).unwrap_err().contains("twice"));
        assert!(zipmap(&[0, 0xFF]).unwrap_err().contains("empty"));
        let mut long = good;
        long[1] = 200;
        assert!(zipmap(&long).unwrap_err().contains("past the end"));
        let mut big = good;
        big[1] = 254;
        assert!(zipmap(&big).is_err());
    }

    #[test]
    fn pairs_and_members_refuse_duplicates_as_the_server_compares_them() {
        let five = [Entry::Int(5), Entry::Str(b"x"), Entry::Str(b"5"), Entry::Str(b"y")];
        assert!(
            pairs(&five, "a hash").unwrap_err().contains("twice"),
            "5 and \"5\" are one field"
        );
        assert_eq!(pairs(&five[..2], "a hash").unwrap(), 1);
        assert!(pairs(&five[..3], "a hash").unwrap_err().contains("not pairs"));
        assert!(members(&[Entry::Str(b"a"), Entry::Str(b"a")], "a set").is_err());
        assert_eq!(members(&[Entry::Int(1), Entry::Str(b"a")], "a set").unwrap(), 2);
    }

    #[test]
    fn stream_listpacks_are_laid_out_as_streams_write_them() {
        let s = |b: &'static [u8]| Entry::Str(b);
        let i = Entry::Int;
        // master: 1 entry, 0 deleted, fields [f], 0; then a same-fields entry and a different-fields one.
        let good = [
            i(2),
            i(0),
            i(1),
            s(b"f"),
            i(0),
            i(2),
            i(0),
            i(0),
            s(b"v"),
            i(4),
            i(0),
            i(0),
            i(1),
            i(2),
            s(b"a"),
            s(b"1"),
            s(b"b"),
            s(b"2"),
            i(8),
        ];
        stream_node(&good).unwrap();
        let mut own = good;
        own[9] = i(5);
        assert!(stream_node(&own).unwrap_err().contains("own count"));
        let mut terminator = good;
        terminator[4] = i(1);
        assert!(stream_node(&terminator).unwrap_err().contains("does not end with 0"));
        assert!(stream_node(&good[..18]).is_err());
        let mut extra = good.to_vec();
        extra.push(i(0));
        assert!(stream_node(&extra).unwrap_err().contains("after its last item"));
        let mut not_int = good;
        not_int[0] = s(b"x");
        assert!(stream_node(&not_int).unwrap_err().contains("not an integer"));
        assert!(stream_node(&[]).unwrap_err().contains("empty"));
        let mut negative = good;
        negative[1] = i(-5);
        assert!(stream_node(&negative).is_err());
    }

    proptest! {
        #[test]
        fn any_bytes_are_an_answer_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = listpack(&bytes);
            let _ = ziplist(&bytes);
            let _ = intset(&bytes);
            let _ = zipmap(&bytes);
        }

        #[test]
        fn damaged_headers_of_real_shapes_never_panic(at in 0usize..40, byte in any::<u8>()) {
            let mut l = lp(&[&[0x82, b'h', b'i'], &[0x01], &[0xF1, 1, 2]]);
            let i = at % l.len();
            l[i] = byte;
            let _ = listpack(&l);
            let mut z = zl(&[&[0x02, b'h', b'i'], &[0xF3], &[0xC0, 1, 2]]);
            let i = at % z.len();
            z[i] = byte;
            let _ = ziplist(&z);
        }
    }
}
