//! The CRI log format, as containerd's CRI plugin writes it and kubelet reads it: one record
//! a line, `<timestamp> <stdout|stderr> <F|P> <text>`, where `P` marks a piece of a line.

use std::io::Write as _;

use jiff::Timestamp;
use jiff::tz::Offset;

/// The longest text one record carries (containerd's `max_container_log_line_size`); a
/// longer line is cut into `P` records of this size and a final `F` record.
pub const MAX_LINE: usize = 16 * 1024;

/// Which of the container's output streams a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's stdout (fd 3 of the logger).
    Stdout,
    /// The container's stderr (fd 4 of the logger).
    Stderr,
}

impl Stream {
    /// The name the format uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed record; `text` borrows from the line it was parsed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When the logger received the text.
    pub timestamp: Timestamp,
    /// The stream it came from.
    pub stream: Stream,
    /// `P`: the line goes on in the next record of the same stream.
    pub partial: bool,
    /// The text, without the line break.
    pub text: &'a [u8],
}

/// Why a line is not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a CRI log record: {0}")]
pub struct ParseError(&'static str);

/// Parses one line of a log file, with or without its `\n`.
///
/// As kubelet does, the timestamp may carry any RFC 3339 offset and any number of fraction
/// digits, and only the first of several `:`-separated tags counts: anything but `P` is a
/// full line.
pub fn parse_record(line: &[u8]) -> Result<Record<'_>, ParseError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (timestamp, rest) = split_field(line).ok_or(ParseError("no timestamp"))?;
    let timestamp = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or(ParseError("bad timestamp"))?;
    let (stream, rest) = split_field(rest).ok_or(ParseError("no stream"))?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(ParseError("unknown stream")),
    };
    // A record of an empty line may have lost the space after its tag; the text is empty.
    let (tags, text) = split_field(rest).unwrap_or((rest, &[]));
    let partial = tags.split(|&b| b == b':').next() == Some(b"P");
    Ok(Record {
        timestamp,
        stream,
        partial,
        text,
    })
}

/// The field before the first space and what follows that space.
fn split_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..space], &bytes[space + 1..]))
}

/// Appends one record, with its `\n`, to `out`.
pub fn write_record(
    out: &mut Vec<u8>,
    timestamp: Timestamp,
    stream: Stream,
    partial: bool,
    text: &[u8],
) {
    write_timestamp(out, timestamp);
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Appends `timestamp` in UTC with all nine fraction digits (Go's `RFC3339NanoFixed`, what
/// kubelet prefixes lines with for `timestamps=true`): fixed width, so records sort as text.
pub fn write_timestamp(out: &mut Vec<u8>, timestamp: Timestamp) {
    let t = Offset::UTC.to_datetime(timestamp);
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.subsec_nanosecond()
    );
}

/// Cuts one stream's bytes into record texts the way containerd's CRI logger does: a line
/// break (`\n` or `\r\n`) ends an `F` record, a line longer than the limit is cut into `P`
/// records of exactly the limit, and text still unterminated at the end is a `P` record.
#[derive(Debug)]
pub struct Splitter {
    max_line: usize,
    pending: Vec<u8>,
}

impl Splitter {
    /// A splitter that cuts lines longer than `max_line` bytes (at least 1).
    pub fn new(max_line: usize) -> Self {
        Splitter {
            max_line: max_line.max(1),
            pending: Vec::new(),
        }
    }

    /// Takes the next bytes of the stream and calls `emit(text, partial)` for every record
    /// they complete.
    pub fn push(&mut self, bytes: &[u8], emit: &mut impl FnMut(&[u8], bool)) {
        self.pending.extend_from_slice(bytes);
        let max = self.max_line;
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            if let Some(end) = rest.iter().position(|&b| b == b'\n') {
                let mut line = &rest[..end];
                line = line.strip_suffix(b"\r").unwrap_or(line);
                while line.len() > max {
                    emit(&line[..max], true);
                    line = &line[max..];
                }
                emit(line, false);
                start += end + 1;
            } else {
                // A `\r` just past the limit may be the start of a `\r\n` still to come,
                // which ends the line right there: wait for the next byte before cutting.
                let mut rest = rest;
                while rest.len() > max + 1 || (rest.len() == max + 1 && rest[max] != b'\r') {
                    emit(&rest[..max], true);
                    rest = &rest[max..];
                    start += max;
                }
                break;
            }
        }
        self.pending.drain(..start);
    }

    /// The stream has ended: what is left unterminated becomes a `P` record.
    pub fn finish(&mut self, emit: &mut impl FnMut(&[u8], bool)) {
        for piece in self.pending.chunks(self.max_line) {
            emit(piece, true);
        }
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("test timestamp")
    }

    /// A line and the record it holds: timestamp, stream, partial, text.
    type ParseCase = (&'static [u8], Timestamp, Stream, bool, &'static [u8]);

    #[test]
    fn parses_records() {
        let cases: &[ParseCase] = &[
            (
                b"2016-10-06T00:17:09.669794202Z stdout P log content 1",
                ts("2016-10-06T00:17:09.669794202Z"),
                Stream::Stdout,
                true,
                b"log content 1",
            ),
            (
                b"2016-10-06T00:17:09.669794203Z stderr F log content 2\n",
                ts("2016-10-06T00:17:09.669794203Z"),
                Stream::Stderr,
                false,
                b"log content 2",
            ),
            // containerd before 1.6 wrote local time with an offset and trimmed zeros.
            (
                b"2016-10-06T02:17:09.5+02:00 stdout F x",
                ts("2016-10-06T00:17:09.5Z"),
                Stream::Stdout,
                false,
                b"x",
            ),
            (
                b"2016-10-06T00:17:09Z stdout F:extra  two spaces ",
                ts("2016-10-06T00:17:09Z"),
                Stream::Stdout,
                false,
                b" two spaces ",
            ),
            (
                b"2016-10-06T00:17:09Z stdout P:x ",
                ts("2016-10-06T00:17:09Z"),
                Stream::Stdout,
                true,
                b"",
            ),
            (
                b"2016-10-06T00:17:09Z stdout F",
                ts("2016-10-06T00:17:09Z"),
                Stream::Stdout,
                false,
                b"",
            ),
            (
                b"2016-10-06T00:17:09Z stderr F \xff\xfe not utf-8",
                ts("2016-10-06T00:17:09Z"),
                Stream::Stderr,
                false,
                b"\xff\xfe not utf-8",
            ),
        ];
        for &(line, timestamp, stream, partial, text) in cases {
            let record = parse_record(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(
                record,
                Record {
                    timestamp,
                    stream,
                    partial,
                    text
                },
                "{line:?}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_record() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "no timestamp"),
            (b"hello world", "bad timestamp"),
            (b"2016-10-06T00:17:09 stdout F x", "bad timestamp"),
            (b"2016-10-06T00:17:09Z", "no timestamp"),
            (b"2016-10-06T00:17:09Z stdout", "no stream"),
            (b"2016-10-06T00:17:09Z stdin F x", "unknown stream"),
            (b"\xff\xff stdout F x", "bad timestamp"),
        ];
        for &(line, why) in cases {
            assert_eq!(parse_record(line), Err(ParseError(why)), "{line:?}");
        }
    }

    #[test]
    fn writes_what_it_parses() {
        let cases: &[(&str, Stream, bool, &[u8], &str)] = &[
            (
                "2024-01-02T03:04:05.000000006Z",
                Stream::Stdout,
                false,
                b"hello",
                "2024-01-02T03:04:05.000000006Z stdout F hello\n",
            ),
            (
                "2024-01-02T03:04:05Z",
                Stream::Stderr,
                true,
                b"",
                "2024-01-02T03:04:05.000000000Z stderr P \n",
            ),
            (
                "1999-12-31T23:59:59.999999999+00:00",
                Stream::Stdout,
                false,
                b"a b",
                "1999-12-31T23:59:59.999999999Z stdout F a b\n",
            ),
        ];
        for &(at, stream, partial, text, want) in cases {
            let mut out = Vec::new();
            write_record(&mut out, ts(at), stream, partial, text);
            assert_eq!(String::from_utf8_lossy(&out), want);
            let record = parse_record(&out).expect("parsing what was written");
            assert_eq!(
                record,
                Record {
                    timestamp: ts(at),
                    stream,
                    partial,
                    text
                }
            );
        }
    }

    /// Feeds `chunks` one by one and returns `(text, partial)` for every record.
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
        let mut splitter = Splitter::new(max);
        let mut out = Vec::new();
        let mut emit = |text: &[u8], partial: bool| {
            out.push((String::from_utf8_lossy(text).into_owned(), partial));
        };
        for chunk in chunks {
            splitter.push(chunk, &mut emit);
        }
        splitter.finish(&mut emit);
        out
    }

    fn records(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|&(t, p)| (t.to_owned(), p)).collect()
    }

    /// The line limit, the chunks fed, and the records they give: text, partial.
    type SplitCase = (
        usize,
        &'static [&'static [u8]],
        &'static [(&'static str, bool)],
    );

    #[test]
    fn splits_lines_as_containerd_does() {
        let cases: &[SplitCase] = &[
            (8, &[b"a\nb\n"], &[("a", false), ("b", false)]),
            (8, &[b"a", b"b\n", b"\n"], &[("ab", false), ("", false)]),
            (
                8,
                &[b"crlf\r\n", b"lone\rcr\n"],
                &[("crlf", false), ("lone\rcr", false)],
            ),
            (8, &[b"split\r", b"\n"], &[("split", false)]),
            (4, &[b"abcd\n"], &[("abcd", false)]),
            (4, &[b"abcde\n"], &[("abcd", true), ("e", false)]),
            (4, &[b"abcdefgh\n"], &[("abcd", true), ("efgh", false)]),
            (4, &[b"abc\r", b"\n"], &[("abc", false)]),
            (4, &[b"abcd\r", b"\n"], &[("abcd", false)]),
            (4, &[b"abcd\r"], &[("abcd", true), ("\r", true)]),
            (4, &[b"abcd\rx"], &[("abcd", true), ("\rx", true)]),
            (
                4,
                &[b"ab", b"cdefghij"],
                &[("abcd", true), ("efgh", true), ("ij", true)],
            ),
            (8, &[b"no newline"], &[("no newli", true), ("ne", true)]),
            (8, &[b"tail"], &[("tail", true)]),
            (8, &[b""], &[]),
            (1, &[b"ab\n"], &[("a", true), ("b", false)]),
            (0, &[b"ab\n"], &[("a", true), ("b", false)]),
        ];
        for &(max, chunks, want) in cases {
            assert_eq!(split(max, chunks), records(want), "{max} {chunks:?}");
        }
    }

    #[test]
    fn passes_bytes_through_unchanged() {
        let mut splitter = Splitter::new(MAX_LINE);
        let mut out = Vec::new();
        splitter.push(b"\xff\x00\xfe\n", &mut |text, partial| {
            out.push((text.to_vec(), partial));
        });
        assert_eq!(out, vec![(b"\xff\x00\xfe".to_vec(), false)]);
    }
}
