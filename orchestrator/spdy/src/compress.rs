//! SPDY/3 header blocks: their layout and the zlib contexts that compress them.
//!
//! Each direction of a session is one zlib stream with the SPDY dictionary preset; every
//! header block is compressed with a sync flush, so it ends on a byte boundary and the
//! receiver can inflate it alone, but the window carries over from block to block. The
//! contexts therefore live as long as the session and see the blocks in wire order.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::dictionary::DICTIONARY;
use crate::frame::FrameError;

/// The largest inflated header block accepted: kubectl's blocks are a few dozen bytes, so
/// this only stops a compressed bomb.
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// Compresses the header blocks one end of a session sends: one per session, fed every
/// block in wire order.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    /// A zlib stream with the SPDY/3 dictionary preset.
    pub fn new() -> Result<HeaderCompressor, FrameError> {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(&DICTIONARY)
            .map_err(|err| FrameError::Compression(err.to_string()))?;
        Ok(HeaderCompressor { zlib })
    }

    /// Serializes and compresses `headers`, appending the bytes to `out`.
    pub fn compress(&mut self, headers: &HeaderMap, out: &mut Vec<u8>) -> Result<(), FrameError> {
        let block = encode_block(headers)?;
        let start = self.zlib.total_in();
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(block.len() / 2 + 64);
            }
            let consumed = usize::try_from(self.zlib.total_in() - start).unwrap_or(usize::MAX);
            let rest = block.get(consumed..).unwrap_or_default();
            self.zlib
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|err| FrameError::Compression(err.to_string()))?;
            let consumed = usize::try_from(self.zlib.total_in() - start).unwrap_or(usize::MAX);
            // zlib has emitted the whole flush once it stops short of the space it had.
            if consumed >= block.len() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// Inflates the header blocks the peer of a session sends: one per session, fed every
/// block in wire order.
pub struct HeaderDecompressor {
    zlib: Decompress,
}

impl Default for HeaderDecompressor {
    fn default() -> HeaderDecompressor {
        HeaderDecompressor::new()
    }
}

impl HeaderDecompressor {
    /// A zlib stream that sets the SPDY/3 dictionary when the first block asks for it.
    pub fn new() -> HeaderDecompressor {
        HeaderDecompressor {
            zlib: Decompress::new(true),
        }
    }

    /// Inflates one compressed header block and parses it.
    pub fn decompress(&mut self, compressed: &[u8]) -> Result<HeaderMap, FrameError> {
        let mut block = Vec::with_capacity(256);
        let start = self.zlib.total_in();
        loop {
            if block.len() == block.capacity() {
                if block.len() >= MAX_HEADER_BLOCK {
                    return Err(FrameError::HeaderBlockTooLarge);
                }
                block.reserve(block.len());
            }
            let consumed = usize::try_from(self.zlib.total_in() - start).unwrap_or(usize::MAX);
            let rest = compressed.get(consumed..).unwrap_or_default();
            match self
                .zlib
                .decompress_vec(rest, &mut block, FlushDecompress::Sync)
            {
                Ok(Status::StreamEnd) => {
                    return Err(FrameError::Compression("the header stream ended".into()));
                }
                Ok(Status::Ok | Status::BufError) => {}
                Err(err) if err.needs_dictionary().is_some() => {
                    // The first block announces the dictionary; zlib checks its checksum.
                    self.zlib
                        .set_dictionary(&DICTIONARY)
                        .map_err(|err| FrameError::Compression(err.to_string()))?;
                    continue;
                }
                Err(err) => return Err(FrameError::Compression(err.to_string())),
            }
            let consumed = usize::try_from(self.zlib.total_in() - start).unwrap_or(usize::MAX);
            if consumed >= compressed.len() && block.len() < block.capacity() {
                return decode_block(&block);
            }
        }
    }
}

/// Lays out a header block: a count, then each name with its values joined by NUL, every
/// length a big-endian u32. Names go out lowercase, as SPDY requires.
fn encode_block(headers: &HeaderMap) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(64);
    let count = u32::try_from(headers.keys_len()).map_err(|_| FrameError::HeaderBlockTooLarge)?;
    out.extend_from_slice(&count.to_be_bytes());
    for name in headers.keys() {
        let mut value = Vec::new();
        for (i, part) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push(0);
            }
            value.extend_from_slice(part.as_bytes());
        }
        for field in [name.as_str().as_bytes(), &value] {
            let len = u32::try_from(field.len()).map_err(|_| FrameError::HeaderBlockTooLarge)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(field);
        }
    }
    Ok(out)
}

/// Parses an inflated header block. Names must be lowercase and appear once, as spdystream
/// insists; each NUL-separated part of a value becomes one value.
fn decode_block(block: &[u8]) -> Result<HeaderMap, FrameError> {
    let mut cursor = Cursor { rest: block };
    let count = cursor.u32()?;
    let mut headers = HeaderMap::new();
    for _ in 0..count {
        let name = cursor.field()?;
        if name.is_empty() || name.iter().any(u8::is_ascii_uppercase) {
            return Err(FrameError::HeaderName(
                String::from_utf8_lossy(name).into_owned(),
            ));
        }
        let name = HeaderName::from_bytes(name)
            .map_err(|_| FrameError::HeaderName(String::from_utf8_lossy(name).into_owned()))?;
        if headers.contains_key(&name) {
            return Err(FrameError::DuplicateHeader(name.as_str().to_owned()));
        }
        let value = cursor.field()?;
        for part in value.split(|byte| *byte == 0) {
            let part = HeaderValue::from_bytes(part)
                .map_err(|_| FrameError::HeaderValue(name.as_str().to_owned()))?;
            headers.append(name.clone(), part);
        }
    }
    if !cursor.rest.is_empty() {
        return Err(FrameError::HeaderBlockTrailing(cursor.rest.len()));
    }
    Ok(headers)
}

struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> Result<u32, FrameError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(FrameError::HeaderBlockTruncated)?;
        self.rest = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn field(&mut self) -> Result<&'a [u8], FrameError> {
        let len = usize::try_from(self.u32()?).map_err(|_| FrameError::HeaderBlockTruncated)?;
        if len > self.rest.len() {
            return Err(FrameError::HeaderBlockTruncated);
        }
        let (field, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn blocks_round_trip_through_one_context_per_direction() {
        let mut compressor = HeaderCompressor::new().unwrap();
        let mut decompressor = HeaderDecompressor::new();
        let blocks = [
            headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            HeaderMap::new(),
            headers(&[("x-multi", "a"), ("x-multi", "b")]),
        ];
        for block in &blocks {
            let mut wire = Vec::new();
            compressor.compress(block, &mut wire).unwrap();
            assert_eq!(&decompressor.decompress(&wire).unwrap(), block);
        }
    }

    #[test]
    fn the_stream_announces_the_spdy_dictionary() {
        let mut wire = Vec::new();
        HeaderCompressor::new()
            .unwrap()
            .compress(&HeaderMap::new(), &mut wire)
            .unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32, which is the one every
        // SPDY/3 implementation (Go's spdystream included) expects.
        assert_eq!(wire[1] & 0x20, 0x20, "{wire:02x?}");
        assert_eq!(&wire[2..6], &0xe3c6_a7c2_u32.to_be_bytes());
    }

    #[test]
    fn only_the_spdy_dictionary_or_none_is_accepted() {
        let mut plain = Compress::new(Compression::default(), true);
        let block = encode_block(&headers(&[("port", "80")])).unwrap();
        let mut wire = Vec::with_capacity(256);
        plain
            .compress_vec(&block, &mut wire, FlushCompress::Sync)
            .unwrap();
        let mut decompressor = HeaderDecompressor::new();
        // A stream without a preset dictionary inflates fine: the dictionary is the
        // compressor's choice. What matters is that a wrong dictionary is refused.
        assert_eq!(
            decompressor.decompress(&wire).unwrap(),
            headers(&[("port", "80")])
        );

        let mut other = Compress::new(Compression::default(), true);
        other.set_dictionary(b"not the spdy dictionary").unwrap();
        let mut wire = Vec::with_capacity(256);
        other
            .compress_vec(&block, &mut wire, FlushCompress::Sync)
            .unwrap();
        let err = HeaderDecompressor::new().decompress(&wire).unwrap_err();
        assert!(matches!(err, FrameError::Compression(_)), "{err:?}");
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let cases: [(&[u8], &str); 5] = [
            (&[0, 0, 0], "truncated count"),
            (
                &[0, 0, 0, 1, 0, 0, 0, 9, b'a'],
                "name longer than the block",
            ),
            (
                &[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0],
                "uppercase name",
            ),
            (&[0, 0, 0, 0, 7], "trailing bytes"),
            (
                &[
                    0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 0, 0,
                ],
                "duplicate name",
            ),
        ];
        for (block, why) in cases {
            assert!(decode_block(block).is_err(), "{why}");
        }
        assert!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "empty name"
        );
        assert!(
            decode_block(&[0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, b'\n']).is_err(),
            "control byte"
        );
    }

    #[test]
    fn garbage_never_panics_the_decompressor() {
        let mut decompressor = HeaderDecompressor::new();
        for seed in 0u32..200 {
            let bytes: Vec<u8> = (0..(seed % 64))
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
                .collect();
            let _ = decompressor.decompress(&bytes);
        }
    }

    #[test]
    fn a_compressed_bomb_is_refused() {
        let mut compressor = HeaderCompressor::new().unwrap();
        let big = "x".repeat(MAX_HEADER_BLOCK);
        let mut wire = Vec::new();
        compressor
            .compress(&headers(&[("x-big", &big)]), &mut wire)
            .unwrap();
        assert!(wire.len() < 4096, "a run of one byte compresses well");
        assert!(matches!(
            HeaderDecompressor::new().decompress(&wire),
            Err(FrameError::HeaderBlockTooLarge)
        ));
    }
}
