//! LZF, the compression of RDB strings (`rdbcompression yes`): a decoder that checks a compressed string as
//! Redis's loader does (every back reference inside what was already produced, every run inside the input, the
//! output exactly the length the file declares), fed in pieces so a big string is checked through a fixed buffer.
//! It keeps the output only when asked (an encoded container, which is then checked entry by entry).
//!
//! Never: reads past the input it was fed, writes past the declared length, or allocates more than the declared
//! length (which the caller has bounded by the bytes left in the file and [`MAX_RATIO`]).

/// The most one input byte can expand to: a back reference of 3 bytes copies at most 7 + 255 + 2 = 264 bytes.
pub const MAX_RATIO: u64 = 88;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting an instruction byte.
    Control,
    /// Inside a literal run: so many bytes still to copy.
    Literal(u32),
    /// A long back reference, waiting for its extra length byte (the offset's high bits kept).
    LongLen { high: u32 },
    /// A back reference waiting for its offset's low byte.
    Offset { high: u32, len: u32 },
}

/// A decoder of one compressed string of `plain` bytes.
pub struct Lzf {
    plain: u64,
    produced: u64,
    consumed: u64,
    state: State,
    out: Option<Vec<u8>>,
}

/// The farthest back a reference reaches (13 bits of offset, plus one): what a streaming decoder keeps.
pub const WINDOW: usize = 8192;

impl Lzf {
    /// Checks only (nothing kept): memory stays flat whatever `plain` is.
    pub fn check(plain: u64) -> Self {
        Self {
            plain,
            produced: 0,
            consumed: 0,
            state: State::Control,
            out: None,
        }
    }

    /// Decodes into memory; the caller has bounded `plain`.
    pub fn decode(plain: usize) -> Self {
        Self {
            out: Some(Vec::with_capacity(plain)),
            ..Self::check(plain as u64)
        }
    }

    /// Decodes through a window: [`Lzf::drain`] hands out the output but the last [`WINDOW`] bytes after each piece,
    /// so memory stays bounded (a piece of `n` compressed bytes gives at most `n` x [`MAX_RATIO`]) whatever `plain`
    /// is. For a string that must be compared (hashed) without being held whole.
    pub fn stream(plain: u64) -> Self {
        Self {
            out: Some(Vec::new()),
            ..Self::check(plain)
        }
    }

    /// Hands the output decoded so far to `sink`, keeping only the window later references may reach.
    pub fn drain(&mut self, sink: &mut impl FnMut(&[u8])) {
        if let Some(out) = self.out.as_mut() {
            let done = out.len().saturating_sub(WINDOW);
            if done > 0 {
                sink(&out[..done]);
                out.drain(..done);
            }
        }
    }

    /// Feeds the next piece of the compressed input. `Err` says what is wrong, at which input byte.
    pub fn feed(&mut self, input: &[u8]) -> Result<(), String> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Control => {
                    let ctrl = u32::from(input[i]);
                    i += 1;
                    if ctrl < 32 {
                        self.state = State::Literal(ctrl + 1);
                    } else if ctrl >> 5 == 7 {
                        self.state = State::LongLen {
                            high: (ctrl & 0x1F) << 8,
                        };
                    } else {
                        self.state = State::Offset {
                            high: (ctrl & 0x1F) << 8,
                            len: ctrl >> 5,
                        };
                    }
                }
                State::Literal(left) => {
                    let take = (left as usize).min(input.len() - i);
                    self.grow(take as u64)?;
                    if let Some(out) = self.out.as_mut() {
                        out.extend_from_slice(&input[i..i + take]);
                    }
                    i += take;
                    let left = left - take as u32;
                    self.state = if left == 0 {
                        State::Control
                    } else {
                        State::Literal(left)
                    };
                }
                State::LongLen { high } => {
                    self.state = State::Offset {
                        high,
                        len: 7 + u32::from(input[i]),
                    };
                    i += 1;
                }
                State::Offset { high, len } => {
                    let back = u64::from(high | u32::from(input[i])) + 1;
                    i += 1;
                    if back > self.produced {
                        return Err(format!(
                            "LZF back reference {back} bytes back at output byte {}, before the start",
                            self.produced
                        ));
                    }
                    let n = u64::from(len) + 2;
                    self.grow(n)?;
                    if let Some(out) = self.out.as_mut() {
                        // Byte by byte: a reference may overlap what it is producing (a run).
                        let from = out.len() - back as usize;
                        for k in 0..n as usize {
                            let b = out[from + k];
                            out.push(b);
                        }
                    }
                    self.state = State::Control;
                }
            }
        }
        self.consumed += input.len() as u64;
        Ok(())
    }

    fn grow(&mut self, n: u64) -> Result<(), String> {
        match self.produced.checked_add(n) {
            Some(total) if total <= self.plain => {
                self.produced = total;
                Ok(())
            }
            _ => Err(format!("LZF output runs past the declared {} bytes", self.plain)),
        }
    }

    /// Ends the input: no instruction left half read, and exactly the declared length produced.
    pub fn finish(self) -> Result<Vec<u8>, String> {
        if self.consumed == 0 {
            return Err("an LZF string with no compressed bytes".into());
        }
        if self.state != State::Control {
            return Err("the LZF input ends inside an instruction".into());
        }
        if self.produced != self.plain {
            return Err(format!(
                "LZF gives {} bytes but {} are declared",
                self.produced, self.plain
            ));
        }
        Ok(self.out.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn decode(input: &[u8], plain: usize) -> Result<Vec<u8>, String> {
        let mut d = Lzf::decode(plain);
        d.feed(input)?;
        d.finish()
    }

    #[test]
    fn literals_and_overlapping_references_decode_in_any_pieces() {
        // "abc" literal, then a reference 3 back of length 7 (ctrl len 5): "abcabcabca"
        let input = [2, b'a', b'b', b'c', (5 << 5), 2];
        assert_eq!(decode(&input, 10).unwrap(), b"abcabcabca");
        for cut in 0..input.len() {
            let mut d = Lzf::decode(10);
            d.feed(&input[..cut]).unwrap();
            d.feed(&input[cut..]).unwrap();
            assert_eq!(d.finish().unwrap(), b"abcabcabca");
            let mut c = Lzf::check(10);
            c.feed(&input[..cut]).unwrap();
            c.feed(&input[cut..]).unwrap();
            assert!(c.finish().unwrap().is_empty());
        }
        // Streamed: what is drained and what finishing leaves make the whole output.
        let mut s = Lzf::stream(10);
        let mut got = Vec::new();
        s.feed(&input).unwrap();
        s.drain(&mut |piece| got.extend_from_slice(piece));
        got.extend(s.finish().unwrap());
        assert_eq!(got, b"abcabcabca");
        // A long reference: 7 + 1 + 2 = 10 bytes of "a".
        assert_eq!(decode(&[0, b'a', 7 << 5, 1, 0], 11).unwrap(), [b'a'; 11]);
    }

    /// A long run streamed in small pieces: references reach back across what was drained, into the window.
    #[test]
    fn a_streamed_decode_keeps_only_the_window() {
        // 2000 literal runs of 32 distinct-ish bytes, then references 8192 back (the farthest) of 264 bytes.
        let mut input = Vec::new();
        let mut plain = Vec::new();
        for i in 0..2000u32 {
            input.push(31);
            for k in 0..32u32 {
                let b = (i * 7 + k * 13) as u8;
                input.push(b);
                plain.push(b);
            }
        }
        for _ in 0..100 {
            input.extend_from_slice(&[0xFF, 255, 0xFF]);
            let from = plain.len() - WINDOW;
            for k in 0..264 {
                let b = plain[from + k];
                plain.push(b);
            }
        }
        let mut s = Lzf::stream(plain.len() as u64);
        let mut got = Vec::new();
        for piece in input.chunks(1000) {
            s.feed(piece).unwrap();
            s.drain(&mut |p| got.extend_from_slice(p));
            assert!(s.out.as_ref().unwrap().len() <= WINDOW + 1000 * MAX_RATIO as usize);
        }
        got.extend(s.finish().unwrap());
        assert_eq!(got, plain);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(decode(&[2, b'a', b'b', b'c', 5 << 5, 9], 10)
            .unwrap_err()
            .contains("before the start"));
        assert!(decode(&[2, b'a', b'b', b'c'], 2)
            .unwrap_err()
            .contains("past the declared"));
        assert!(decode(&[2, b'a', b'b', b'c'], 4)
            .unwrap_err()
            .contains("4 are declared"));
        assert!(decode(&[2, b'a'], 3).unwrap_err().contains("inside an instruction"));
        assert!(decode(&[0, b'a', 1 << 5], 4)
            .unwrap_err()
            .contains("inside an instruction"));
        assert!(decode(&[], 0).unwrap_err().contains("no compressed bytes"));
    }
}
