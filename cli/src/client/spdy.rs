//! The client side of SPDY/3.1 as `port-forward` needs it (the node agent serves
//! `portforward.k8s.io` on SPDY only, and kube-rs's forwarder speaks the WebSocket
//! channel protocol instead): the frames, and the header blocks compressed with zlib. The
//! header dictionary is left out: a zlib stream that does not announce one needs none, and
//! the server inflates what it is given.

use flate2::{Compress, Compression, FlushCompress};

/// The frame flag that ends the sender's side of a stream.
pub(super) const FIN: u8 = 0x01;

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;

/// A frame the server sent, as far as a port-forward client cares.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Incoming {
    /// The server accepted a stream.
    Reply(u32),
    /// Bytes on a stream, and whether the server's side of it ended.
    Data {
        stream: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// The stream ended abruptly.
    Reset(u32),
    /// A ping to echo.
    Ping(u32),
    /// The session ends.
    GoAway,
    /// Anything else (settings, window updates, headers): nothing to do.
    Other,
}

/// The 8 bytes that start every frame: whether it is a control frame, its type or stream,
/// its flags, and how long its payload is.
pub(super) struct Head {
    word: u32,
    control: bool,
    flags: u8,
    pub(super) length: usize,
}

impl Head {
    pub(super) fn parse(bytes: [u8; 8]) -> Head {
        let word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Head {
            word,
            control: bytes[0] & 0x80 != 0,
            flags: bytes[4],
            length: usize::from(bytes[5]) << 16
                | usize::from(bytes[6]) << 8
                | usize::from(bytes[7]),
        }
    }

    /// What the frame with this head and `payload` says.
    pub(super) fn frame(&self, payload: Vec<u8>) -> Incoming {
        let id = |at: usize| -> u32 {
            payload.get(at..at + 4).map_or(0, |b| {
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
            })
        };
        if !self.control {
            return Incoming::Data {
                stream: self.word & 0x7fff_ffff,
                fin: self.flags & FIN != 0,
                data: payload,
            };
        }
        // The low half of the first word is the control frame's type.
        match (self.word & 0xffff) as u16 {
            SYN_REPLY => Incoming::Reply(id(0)),
            RST_STREAM => Incoming::Reset(id(0)),
            PING => Incoming::Ping(id(0)),
            GOAWAY => Incoming::GoAway,
            _ => Incoming::Other,
        }
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(0).to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

/// Opens stream `stream` with a compressed header block.
pub(super) fn syn_stream(stream: u32, headers: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(10 + headers.len());
    payload.extend_from_slice(&stream.to_be_bytes());
    payload.extend_from_slice(&0u32.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(headers);
    control(SYN_STREAM, 0, &payload)
}

/// Echoes a ping.
pub(super) fn ping(id: u32) -> Vec<u8> {
    control(PING, 0, &id.to_be_bytes())
}

/// Bytes on a stream (less than 16 MiB), `FIN` to end this side of it.
pub(super) fn data(stream: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + data.len());
    frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    frame.push(flags);
    frame.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes()[1..]);
    frame.extend_from_slice(data);
    frame
}

/// The one zlib stream a session's header blocks are compressed in, in order.
pub(super) struct Headers {
    zlib: Compress,
}

impl Headers {
    pub(super) fn new() -> Headers {
        Headers {
            zlib: Compress::new(Compression::default(), true),
        }
    }

    /// A header block (a count, then each lowercase name and value with big-endian u32
    /// lengths), compressed and flushed so the server can inflate it at once.
    pub(super) fn block(&mut self, headers: &[(&str, &str)]) -> Result<Vec<u8>, String> {
        let mut block = Vec::new();
        block.extend_from_slice(&u32::try_from(headers.len()).unwrap_or(0).to_be_bytes());
        for (name, value) in headers {
            for field in [name, value] {
                block.extend_from_slice(&u32::try_from(field.len()).unwrap_or(0).to_be_bytes());
                block.extend_from_slice(field.as_bytes());
            }
        }
        // Deflate grows incompressible input by a few bytes per block; with this much room
        // one call consumes the block and completes the flush.
        let mut out = Vec::with_capacity(2 * block.len() + 128);
        let start = self.zlib.total_in();
        self.zlib
            .compress_vec(&block, &mut out, FlushCompress::Sync)
            .map_err(|e| format!("cannot compress the stream headers: {e}"))?;
        let consumed = self.zlib.total_in() - start;
        if usize::try_from(consumed).ok() != Some(block.len()) || out.len() == out.capacity() {
            return Err("cannot compress the stream headers in one go".to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_laid_out_as_spdy_3() {
        let frame = data(3, FIN, b"hi");
        assert_eq!(frame, [0, 0, 0, 3, 1, 0, 0, 2, b'h', b'i']);
        let head = Head::parse(frame[..8].try_into().unwrap());
        assert_eq!(
            head.frame(frame[8..].to_vec()),
            Incoming::Data {
                stream: 3,
                fin: true,
                data: b"hi".to_vec()
            }
        );
        let frame = ping(7);
        assert_eq!(frame[..8], [0x80, 3, 0, 6, 0, 0, 0, 4]);
        let head = Head::parse(frame[..8].try_into().unwrap());
        assert_eq!(head.frame(frame[8..].to_vec()), Incoming::Ping(7));
        let reply = control(SYN_REPLY, 0, &[0, 0, 0, 5]);
        let head = Head::parse(reply[..8].try_into().unwrap());
        assert_eq!(head.frame(reply[8..].to_vec()), Incoming::Reply(5));
    }

    #[test]
    fn header_blocks_inflate_back() {
        let mut headers = Headers::new();
        let mut inflate = flate2::Decompress::new(true);
        for port in ["80", "8080"] {
            let block = headers
                .block(&[("streamtype", "data"), ("port", port)])
                .unwrap();
            let mut out = Vec::with_capacity(256);
            inflate
                .decompress_vec(&block, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            let mut expected = 2u32.to_be_bytes().to_vec();
            for field in ["streamtype", "data", "port", port] {
                expected.extend_from_slice(&u32::try_from(field.len()).unwrap().to_be_bytes());
                expected.extend_from_slice(field.as_bytes());
            }
            assert_eq!(out, expected);
        }
    }
}
