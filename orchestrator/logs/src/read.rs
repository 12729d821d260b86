//! Reading a log set as kubelet serves `pods/log`: lines rather than records, with the
//! options `kubectl logs` sends (tail, since, timestamps, limit, follow).

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::Stream;
use jiff::Timestamp;

use crate::Error;
use crate::files::log_set;
use crate::format::{self, parse_record};

/// What to read, as `pods/log` asks for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Only the last this many lines (`tailLines`), counted before `since` applies, as
    /// kubelet does.
    pub tail_lines: Option<u64>,
    /// Only lines logged at or after this moment (`sinceSeconds` or `sinceTime`).
    pub since: Option<SystemTime>,
    /// Each line starts with its timestamp (RFC 3339, nine fraction digits) and a space.
    pub timestamps: bool,
    /// Stop after this many bytes, even within a line (`limitBytes`).
    pub limit_bytes: Option<u64>,
    /// Keep waiting for more until the container has stopped (`follow`).
    pub follow: bool,
}

/// How often a follower looks for more.
const POLL: Duration = Duration::from_millis(100);
/// How long a follower keeps looking once the container has stopped: the logger may still
/// be writing what the container wrote last.
const GRACE: Duration = Duration::from_millis(250);
/// Roughly how many bytes one item of the stream carries at most.
const BATCH: usize = 256 * 1024;
/// How much is read from a file at once.
const CHUNK: usize = 64 * 1024;
/// The longest line joined from partial records before its text is sent in pieces.
const MAX_JOINED: usize = 1024 * 1024;
/// Bytes without a line break beyond this are not a record of ours and are dropped.
const MAX_RECORD: usize = 1024 * 1024;
/// Enough of a record to parse its timestamp, stream and tag.
const HEADER: usize = 96;

/// Reads the log set at `path` (see [`crate::log_set`]) as `kubectl logs` shows it: each
/// line's text (its partial records joined), stdout and stderr in the order their lines
/// were completed, oldest rotation first.
///
/// Without `follow` the stream ends at the end of the current file. With it, the stream
/// waits for more, following the file through rotations, until `stopped` resolves and
/// the file is drained; `stopped` should resolve once the container has exited (a line
/// still unterminated then is sent as it is). Dropping the stream stops reading.
///
/// The files are opened before this returns: a set with no file is [`Error::NotFound`].
pub async fn read(
    path: &Path,
    options: ReadOptions,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<impl Stream<Item = Result<Bytes, Error>> + Send + 'static, Error> {
    let follow = options.follow;
    let owned = path.to_owned();
    let cursor = blocking(path, move || Cursor::open(owned, &options)).await??;
    let state = State {
        cursor: Some(cursor),
        stopped: Box::pin(stopped),
        stop_seen: false,
        follow,
    };
    Ok(futures::stream::unfold(state, next))
}

struct State {
    /// `None` once the stream has ended.
    cursor: Option<Cursor>,
    stopped: Pin<Box<dyn Future<Output = ()> + Send>>,
    stop_seen: bool,
    follow: bool,
}

async fn next(mut state: State) -> Option<(Result<Bytes, Error>, State)> {
    loop {
        let mut cursor = state.cursor.take()?;
        let finishing = !state.follow || state.stop_seen;
        let path = cursor.path.clone();
        let drained = blocking(&path, move || {
            let drained = cursor.drain(finishing);
            (cursor, drained)
        })
        .await;
        let (cursor, drained) = match drained {
            Ok((cursor, Ok(drained))) => (cursor, drained),
            Ok((_, Err(e))) | Err(e) => return Some((Err(e), state)),
        };
        let ended = drained.exhausted || (drained.idle && finishing);
        if !ended {
            state.cursor = Some(cursor);
        }
        if !drained.bytes.is_empty() {
            return Some((Ok(drained.bytes), state));
        }
        if ended {
            return None;
        }
        if drained.idle {
            tokio::select! {
                () = &mut state.stopped => {
                    state.stop_seen = true;
                    tokio::time::sleep(GRACE).await;
                }
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Runs file IO off the async threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io {
            path: path.to_owned(),
            source: io::Error::other(e),
        })
}

/// What one call of [`Cursor::drain`] found.
struct Drained {
    bytes: Bytes,
    /// Everything written so far has been read.
    idle: bool,
    /// `limit_bytes` has been reached.
    exhausted: bool,
}

/// One open file of the set, and the start of a record not yet complete in it.
struct Source {
    file: File,
    /// Device and inode: what tells a rotated file from the new one at the same path.
    id: (u64, u64),
    carry: Vec<u8>,
}

impl Source {
    /// `None` if the file is gone, as a rotation may have just dropped it.
    fn open(path: &Path) -> Result<Option<Source>, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        Ok(Some(Source {
            file,
            id: (meta.dev(), meta.ino()),
            carry: Vec::new(),
        }))
    }
}

/// Where reading stands: the files still to read, the lines being joined, the output.
struct Cursor {
    path: PathBuf,
    follow: bool,
    /// The front is the file being read; the rest are newer. Never empty.
    sources: VecDeque<Source>,
    lines: Lines,
    out: Output,
    chunk: Vec<u8>,
}

impl Cursor {
    fn open(path: PathBuf, options: &ReadOptions) -> Result<Cursor, Error> {
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut sources: VecDeque<Source> = VecDeque::new();
        for file in log_set(&path).map_err(io)? {
            if let Some(source) = Source::open(&file)? {
                // A rotation between listing and opening can show one file twice.
                if !sources.iter().any(|s| s.id == source.id) {
                    sources.push_back(source);
                }
            }
        }
        if sources.is_empty() {
            return Err(Error::NotFound(path));
        }
        let mut ring = None;
        if let Some(lines) = options.tail_lines {
            let (skip, offset) = tail_start(sources.make_contiguous(), lines).map_err(io)?;
            sources.drain(..skip);
            if let Some(first) = sources.front_mut() {
                first.file.seek(SeekFrom::Start(offset)).map_err(io)?;
            }
            ring = Some(Ring {
                keep: lines,
                lines: 0,
                pieces: VecDeque::new(),
            });
        }
        let mut cursor = Cursor {
            follow: options.follow,
            sources,
            lines: Lines {
                since: options.since.and_then(|s| Timestamp::try_from(s).ok()),
                open: [None, None],
            },
            out: Output {
                buf: Vec::new(),
                ring,
                remaining: options.limit_bytes,
                timestamps: options.timestamps,
            },
            chunk: vec![0; CHUNK],
            path,
        };
        if cursor.out.ring.is_some() {
            cursor.find_tail()?;
        }
        Ok(cursor)
    }

    /// Reads what is there now into the ring, which keeps the tail, and sends that: so the
    /// tail is the one of the moment the log was opened, and later lines all follow it.
    fn find_tail(&mut self) -> Result<(), Error> {
        loop {
            if self.read_chunk()? {
                continue;
            }
            if self.sources.len() > 1 {
                self.end_front();
                continue;
            }
            break;
        }
        if !self.follow {
            self.end_front();
            self.lines.finish(&mut self.out);
        }
        self.out.release_ring();
        Ok(())
    }

    /// Reads on until a batch is full, the limit is reached or everything written so far
    /// has been read; `finishing` says nothing more will come, so open lines are sent.
    fn drain(&mut self, finishing: bool) -> Result<Drained, Error> {
        loop {
            if self.out.exhausted() || self.out.buf.len() >= BATCH {
                return Ok(self.drained(false));
            }
            if self.read_chunk()? {
                continue;
            }
            // The front file is at its end, for now.
            if self.sources.len() > 1 {
                self.end_front();
                continue;
            }
            if self.follow && self.find_rotated()? {
                continue;
            }
            if finishing {
                self.end_front();
                self.lines.finish(&mut self.out);
            }
            return Ok(self.drained(true));
        }
    }

    fn drained(&mut self, idle: bool) -> Drained {
        Drained {
            bytes: Bytes::from(std::mem::take(&mut self.out.buf)),
            idle,
            exhausted: self.out.exhausted(),
        }
    }

    /// Reads from the front file and passes on the records completed; `false` at its end.
    fn read_chunk(&mut self) -> Result<bool, Error> {
        let Cursor {
            path,
            sources,
            lines,
            out,
            chunk,
            ..
        } = self;
        let Some(source) = sources.front_mut() else {
            return Ok(false);
        };
        let n = loop {
            match source.file.read(chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: path.clone(),
                        source,
                    });
                }
            }
        };
        if n == 0 {
            return Ok(false);
        }
        source.carry.extend_from_slice(&chunk[..n]);
        if let Some(last) = source.carry.iter().rposition(|&b| b == b'\n') {
            for record in source.carry[..=last].split_inclusive(|&b| b == b'\n') {
                lines.record(record, out);
            }
            source.carry.drain(..=last);
        } else if source.carry.len() > MAX_RECORD {
            source.carry.clear();
        }
        Ok(true)
    }

    /// Done with the front file: a record it left unterminated (the logger was killed
    /// mid-write) counts as it is; the next file, if any, becomes the front.
    fn end_front(&mut self) {
        let last = self.sources.len() == 1;
        let Some(front) = self.sources.front_mut() else {
            return;
        };
        let carry = std::mem::take(&mut front.carry);
        if !carry.is_empty() {
            self.lines.record(&carry, &mut self.out);
        }
        if !last {
            self.sources.pop_front();
        }
    }

    /// Whether the file at the path is no longer the one being read, and if so queues the
    /// files written since (the rotations newer than the one being read, then the path).
    fn find_rotated(&mut self) -> Result<bool, Error> {
        let Some(front) = self.sources.front() else {
            return Ok(false);
        };
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) != front.id => {}
            // Between a rotation's rename and the next write there is no file at the path.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(e)),
            Ok(_) => return Ok(false),
        }
        let mut newer = Vec::new();
        for file in log_set(&self.path).map_err(io)? {
            if let Some(source) = Source::open(&file)? {
                if source.id == front.id {
                    // What came before is older; if the front is not found at all, it
                    // was rotated out of the set and everything there is newer.
                    newer.clear();
                } else {
                    newer.push(source);
                }
            }
        }
        let found = !newer.is_empty();
        // The front is read to its end once more before moving on: the logger may have
        // written to it after it was last read and before it was renamed.
        self.sources.extend(newer);
        Ok(found)
    }
}

/// Joins partial records into lines, one open line per stream, and applies `since`.
struct Lines {
    since: Option<Timestamp>,
    open: [Option<OpenLine>; 2],
}

struct OpenLine {
    /// The timestamp of its first record: the line's.
    stamp: Timestamp,
    text: Vec<u8>,
    /// A piece of it has been sent already (it grew past `MAX_JOINED`).
    started: bool,
    /// Older than `since`.
    skip: bool,
}

impl OpenLine {
    fn stamp(&self) -> Option<Timestamp> {
        (!self.started).then_some(self.stamp)
    }
}

impl Lines {
    fn record(&mut self, line: &[u8], out: &mut Output) {
        // Kubelet skips what it cannot parse; so do we.
        let Ok(record) = parse_record(line) else {
            return;
        };
        let since = self.since;
        let slot = &mut self.open[match record.stream {
            format::Stream::Stdout => 0,
            format::Stream::Stderr => 1,
        }];
        let open = slot.get_or_insert_with(|| OpenLine {
            stamp: record.timestamp,
            text: Vec::new(),
            started: false,
            skip: since.is_some_and(|since| record.timestamp < since),
        });
        if !open.skip {
            if record.partial {
                open.text.extend_from_slice(record.text);
                if open.text.len() >= MAX_JOINED {
                    out.piece(open.stamp(), &open.text, false, false);
                    open.started = true;
                    open.text.clear();
                }
            } else if open.text.is_empty() {
                out.piece(open.stamp(), record.text, true, true);
            } else {
                open.text.extend_from_slice(record.text);
                out.piece(open.stamp(), &open.text, true, true);
            }
        }
        if !record.partial {
            if open.skip {
                out.skipped_line();
            }
            *slot = None;
        }
    }

    /// Nothing more will come: open lines are sent as they are, without a line break.
    fn finish(&mut self, out: &mut Output) {
        let mut open: Vec<OpenLine> = self.open.iter_mut().filter_map(Option::take).collect();
        open.sort_by_key(|line| line.stamp);
        for line in open {
            if line.skip {
                out.skipped_line();
            } else {
                out.piece(line.stamp(), &line.text, false, true);
            }
        }
    }
}

/// Where lines go: the batch being filled, or while the tail is being found, a ring of
/// the last lines (only while the log is opened).
struct Output {
    buf: Vec<u8>,
    ring: Option<Ring>,
    remaining: Option<u64>,
    timestamps: bool,
}

struct Ring {
    keep: u64,
    /// Pieces in `pieces` that end a line.
    lines: u64,
    pieces: VecDeque<(Vec<u8>, bool)>,
}

impl Ring {
    fn push(&mut self, piece: Vec<u8>, ends_line: bool) {
        self.pieces.push_back((piece, ends_line));
        self.lines += u64::from(ends_line);
        while self.lines > self.keep {
            match self.pieces.pop_front() {
                Some((_, ended)) => self.lines -= u64::from(ended),
                None => break,
            }
        }
    }
}

impl Output {
    /// A line or a piece of one: `stamp` if it starts a line, `ends_line` if it ends one.
    fn piece(&mut self, stamp: Option<Timestamp>, text: &[u8], newline: bool, ends_line: bool) {
        let mut head = Vec::new();
        if let Some(stamp) = stamp.filter(|_| self.timestamps) {
            format::write_timestamp(&mut head, stamp);
            head.push(b' ');
        }
        match &mut self.ring {
            Some(ring) => {
                head.extend_from_slice(text);
                if newline {
                    head.push(b'\n');
                }
                ring.push(head, ends_line);
            }
            None => {
                self.emit(&head);
                self.emit(text);
                if newline {
                    self.emit(b"\n");
                }
            }
        }
    }

    /// A line `since` leaves out: while the tail is being found it still counts, as
    /// kubelet takes the tail first and then applies `since`.
    fn skipped_line(&mut self) {
        if let Some(ring) = &mut self.ring {
            ring.push(Vec::new(), true);
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        let take = match &mut self.remaining {
            Some(remaining) => {
                let take = usize::try_from(*remaining).map_or(bytes.len(), |r| r.min(bytes.len()));
                *remaining -= take as u64;
                take
            }
            None => bytes.len(),
        };
        self.buf.extend_from_slice(&bytes[..take]);
    }

    /// The tail has been found: the ring's lines are sent, and later lines go straight out.
    fn release_ring(&mut self) {
        if let Some(ring) = self.ring.take() {
            for (piece, _) in ring.pieces {
                self.emit(&piece);
            }
        }
    }

    fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }
}

/// Where reading must start for the last `lines` lines, as (index of the file, offset):
/// after the `lines + 1`-th last `F` record, or earlier if the other stream has a line
/// open there, at the start of that line. Reading from there yields those lines whole,
/// and perhaps a few more, which the ring drops.
fn tail_start(sources: &[Source], lines: u64) -> io::Result<(usize, u64)> {
    let mut scan = TailScan {
        want: lines.saturating_add(1),
        fulls: 0,
        cut: None,
        straddles: false,
    };
    for (index, source) in sources.iter().enumerate().rev() {
        let len = source.file.metadata()?.len();
        let flow = scan_backward(&source.file, len, &mut |after, stream, partial| {
            scan.visit((index, after), stream, partial)
        })?;
        if let ControlFlow::Break(start) = flow {
            return Ok(start);
        }
    }
    Ok(match scan.cut {
        Some((cut, _)) if !scan.straddles => cut,
        _ => (0, 0),
    })
}

struct TailScan {
    want: u64,
    fulls: u64,
    /// The position after the `want`-th last `F` record, and that record's stream.
    cut: Option<((usize, u64), format::Stream)>,
    /// The other stream's last record before the cut is partial.
    straddles: bool,
}

impl TailScan {
    /// Takes the records from the last to the first.
    fn visit(
        &mut self,
        after: (usize, u64),
        stream: format::Stream,
        partial: bool,
    ) -> ControlFlow<(usize, u64)> {
        match self.cut {
            None => {
                if !partial {
                    self.fulls += 1;
                    if self.fulls == self.want {
                        self.cut = Some((after, stream));
                    }
                }
                ControlFlow::Continue(())
            }
            Some((_, cut_stream)) if stream == cut_stream => ControlFlow::Continue(()),
            Some((_, _)) if partial => {
                self.straddles = true;
                ControlFlow::Continue(())
            }
            Some((_, _)) if self.straddles => ControlFlow::Break(after),
            Some((cut, _)) => ControlFlow::Break(cut),
        }
    }
}

/// Calls `visit(offset after the record, stream, partial)` for the complete records of
/// the first `len` bytes of `file`, last first, reading only their headers.
fn scan_backward<T>(
    file: &File,
    len: u64,
    visit: &mut impl FnMut(u64, format::Stream, bool) -> ControlFlow<T>,
) -> io::Result<ControlFlow<T>> {
    let mut block = vec![0; CHUNK];
    let mut end = len;
    // The line break that ends the record whose start is still to be found; bytes after
    // the last line break are a record still being written, which is not counted.
    let mut higher: Option<u64> = None;
    while end > 0 {
        let start = end.saturating_sub(CHUNK as u64);
        let buf = &mut block[..(end - start) as usize];
        file.read_exact_at(buf, start)?;
        for (i, &byte) in buf.iter().enumerate().rev() {
            if byte == b'\n' {
                let at = start + i as u64;
                if let Some(higher) = higher
                    && let flow @ ControlFlow::Break(_) = visit_record(file, at + 1, higher, visit)?
                {
                    return Ok(flow);
                }
                higher = Some(at);
            }
        }
        end = start;
    }
    match higher {
        Some(higher) => visit_record(file, 0, higher, visit),
        None => Ok(ControlFlow::Continue(())),
    }
}

fn visit_record<T>(
    file: &File,
    start: u64,
    newline: u64,
    visit: &mut impl FnMut(u64, format::Stream, bool) -> ControlFlow<T>,
) -> io::Result<ControlFlow<T>> {
    let mut head = [0; HEADER];
    let len = usize::try_from(newline - start + 1).map_or(HEADER, |len| len.min(HEADER));
    let head = &mut head[..len];
    file.read_exact_at(head, start)?;
    Ok(match parse_record(head) {
        Ok(record) => visit(newline + 1, record.stream, record.partial),
        Err(_) => ControlFlow::Continue(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::rotation;
    use crate::format::{Stream, write_record};
    use crate::logger::{RotatingFile, Sink, write_streams};
    use futures::StreamExt as _;
    use std::io::Write as _;

    /// Long enough for any wait in these tests; reached only when something is broken.
    const BOUND: Duration = Duration::from_secs(30);

    /// `(seconds after a fixed moment, stream, partial, text)`.
    type Rec = (i64, Stream, bool, &'static str);

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).expect("test time")
    }

    fn records(list: &[Rec]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(seconds, stream, partial, text) in list {
            write_record(&mut out, at(seconds), stream, partial, text.as_bytes());
        }
        out
    }

    const O: Stream = Stream::Stdout;
    const E: Stream = Stream::Stderr;

    /// A set of three files: `.2`, `.1` and the current one.
    fn rotated_set(dir: &Path) -> PathBuf {
        let path = dir.join("0.log");
        std::fs::write(
            rotation(&path, 2),
            records(&[(0, O, false, "one"), (1, E, false, "two")]),
        )
        .expect("writing");
        let mut middle = records(&[(2, O, true, "thr"), (3, E, false, "four")]);
        middle.extend_from_slice(b"not a record\n");
        std::fs::write(rotation(&path, 1), middle).expect("writing");
        std::fs::write(
            &path,
            records(&[(4, O, true, "e"), (5, O, false, "e"), (6, E, false, "five")]),
        )
        .expect("writing");
        path
    }

    async fn read_all(path: &Path, options: ReadOptions) -> String {
        let stream = tokio::time::timeout(BOUND, read(path, options, std::future::pending()))
            .await
            .expect("opening in time")
            .expect("opening");
        let chunks: Vec<Result<Bytes, Error>> = tokio::time::timeout(BOUND, stream.collect())
            .await
            .expect("reading in time");
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&chunk.expect("reading"));
        }
        String::from_utf8(out).expect("test text")
    }

    fn options() -> ReadOptions {
        ReadOptions::default()
    }

    #[tokio::test]
    async fn reads_the_whole_set_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = rotated_set(dir.path());
        // `thr` + `ee` is one stdout line, completed after stderr's `four`.
        assert_eq!(
            read_all(&path, options()).await,
            "one\ntwo\nfour\nthree\nfive\n"
        );
    }

    #[tokio::test]
    async fn tails_across_rotations() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = rotated_set(dir.path());
        let all = ["one\n", "two\n", "four\n", "three\n", "five\n"];
        for n in 0..=7 {
            let want = all[all.len().saturating_sub(n)..].concat();
            let options = ReadOptions {
                tail_lines: Some(n as u64),
                ..options()
            };
            assert_eq!(read_all(&path, options).await, want, "tail {n}");
        }
    }

    #[tokio::test]
    async fn a_tail_takes_a_line_open_across_the_cut_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let list = [
            (0, O, false, "zero"),
            (1, O, true, "a1 "),
            (2, E, false, "e1"),
            (3, O, true, "a2 "),
            (4, E, false, "e2"),
            (5, O, false, "a3"),
            (6, E, false, "e3"),
        ];
        std::fs::write(&path, records(&list)).expect("writing");
        let cases: &[(u64, &str)] = &[
            (1, "e3\n"),
            (2, "a1 a2 a3\ne3\n"),
            (3, "e2\na1 a2 a3\ne3\n"),
            (4, "e1\ne2\na1 a2 a3\ne3\n"),
            (5, "zero\ne1\ne2\na1 a2 a3\ne3\n"),
        ];
        for &(n, want) in cases {
            let options = ReadOptions {
                tail_lines: Some(n),
                ..options()
            };
            assert_eq!(read_all(&path, options).await, want, "tail {n}");
        }
    }

    #[tokio::test]
    async fn an_unterminated_last_line_is_sent_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut bytes = records(&[
            (0, O, false, "x"),
            (1, E, true, "no end"),
            (2, O, true, "y"),
        ]);
        // A record the logger did not finish: it still counts.
        bytes.extend_from_slice(b"2023-11-14T22:13:23Z stdout P z");
        std::fs::write(&path, bytes).expect("writing");
        assert_eq!(read_all(&path, options()).await, "x\nno endyz");
        let tail = ReadOptions {
            tail_lines: Some(1),
            ..options()
        };
        assert_eq!(read_all(&path, tail).await, "yz");
    }

    #[tokio::test]
    async fn since_timestamps_and_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = rotated_set(dir.path());
        let since = |seconds: i64| Some(SystemTime::from(at(seconds)));
        let cases = [
            (
                ReadOptions {
                    since: since(3),
                    ..options()
                },
                "four\nfive\n",
            ),
            (
                ReadOptions {
                    since: since(2),
                    ..options()
                },
                "four\nthree\nfive\n",
            ),
            (
                ReadOptions {
                    since: since(100),
                    ..options()
                },
                "",
            ),
            (
                ReadOptions {
                    tail_lines: Some(2),
                    since: since(3),
                    ..options()
                },
                "five\n",
            ),
            (
                ReadOptions {
                    timestamps: true,
                    tail_lines: Some(2),
                    ..options()
                },
                "2023-11-14T22:13:22.000000000Z three\n2023-11-14T22:13:26.000000000Z five\n",
            ),
            (
                ReadOptions {
                    limit_bytes: Some(10),
                    ..options()
                },
                "one\ntwo\nfo",
            ),
            (
                ReadOptions {
                    limit_bytes: Some(8),
                    ..options()
                },
                "one\ntwo\n",
            ),
            (
                ReadOptions {
                    limit_bytes: Some(35),
                    timestamps: true,
                    tail_lines: Some(1),
                    ..options()
                },
                "2023-11-14T22:13:26.000000000Z five",
            ),
            (
                ReadOptions {
                    limit_bytes: Some(1000),
                    ..options()
                },
                "one\ntwo\nfour\nthree\nfive\n",
            ),
        ];
        for (options, want) in cases {
            assert_eq!(read_all(&path, options.clone()).await, want, "{options:?}");
        }
    }

    #[tokio::test]
    async fn a_missing_log_is_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let result = read(&dir.path().join("0.log"), options(), std::future::pending()).await;
        assert!(matches!(result, Err(Error::NotFound(_))));
    }

    /// The logger's writer on a pipe, in a thread, as the shim would run it.
    struct Writer {
        stdout: Option<std::io::PipeWriter>,
        thread: Option<std::thread::JoinHandle<Result<(), Error>>>,
    }

    impl Writer {
        fn start(path: &Path, max_size: u64, max_files: u32) -> Writer {
            let (out_r, out_w) = std::io::pipe().expect("pipe");
            let (err_r, err_w) = std::io::pipe().expect("pipe");
            let mut sink = Sink::new(RotatingFile::new(path.to_owned(), max_size, max_files));
            sink.create_file();
            let thread = std::thread::spawn(move || write_streams(out_r, err_r, sink));
            drop(err_w);
            Writer {
                stdout: Some(out_w),
                thread: Some(thread),
            }
        }

        fn write(&mut self, text: &str) {
            self.stdout
                .as_mut()
                .expect("open")
                .write_all(text.as_bytes())
                .expect("writing to the logger");
        }

        /// Ends the container's output and waits for the writer to finish.
        fn close(&mut self) {
            drop(self.stdout.take());
            let thread = self.thread.take().expect("running");
            let deadline = std::time::Instant::now() + BOUND;
            while !thread.is_finished() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writer never ended"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            thread.join().expect("writer").expect("writing");
        }
    }

    /// Reads from `stream` until `want` has been seen in what it gave so far.
    async fn until(
        stream: &mut (impl futures::Stream<Item = Result<Bytes, Error>> + Unpin),
        got: &mut String,
        want: &str,
    ) {
        let deadline = tokio::time::Instant::now() + BOUND;
        while !got.contains(want) {
            let chunk = tokio::time::timeout_at(deadline, stream.next())
                .await
                .unwrap_or_else(|_| panic!("{want:?} never came; got {got:?}"))
                .unwrap_or_else(|| panic!("the stream ended before {want:?}; got {got:?}"))
                .expect("reading");
            got.push_str(std::str::from_utf8(&chunk).expect("test text"));
        }
    }

    #[tokio::test]
    async fn follows_through_rotations_until_stopped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        // Two records a file: the follower sees many rotations; none is dropped.
        let mut writer = Writer::start(&path, 100, 1000);
        writer.write("line 0\n");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let follow = ReadOptions {
            follow: true,
            ..options()
        };
        let mut stream = Box::pin(
            read(&path, follow, async {
                let _ = stopped.await;
            })
            .await
            .expect("opening"),
        );
        let mut got = String::new();
        until(&mut stream, &mut got, "line 0\n").await;
        let mut want = String::from("line 0\n");
        for batch in 0..10 {
            for i in 1..=5 {
                let line = format!("line {}\n", batch * 5 + i);
                writer.write(&line);
                want.push_str(&line);
            }
            until(&mut stream, &mut got, &format!("line {}\n", batch * 5 + 5)).await;
        }
        writer.write("last, unterminated");
        writer.close();
        assert!(log_set(&path).expect("listing").len() > 10, "rotated");
        let _ = stop.send(());
        let rest: Vec<Result<Bytes, Error>> = tokio::time::timeout(BOUND, stream.collect())
            .await
            .expect("the stream ends once stopped");
        for chunk in rest {
            got.push_str(std::str::from_utf8(&chunk.expect("reading")).expect("text"));
        }
        want.push_str("last, unterminated");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_follower_with_no_tail_sees_only_new_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut writer = Writer::start(&path, 1 << 20, 2);
        writer.write("old\n");
        // Written by the time the file holds it: wait for that before opening.
        let deadline = std::time::Instant::now() + BOUND;
        while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer wrote nothing"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let follow = ReadOptions {
            follow: true,
            tail_lines: Some(0),
            timestamps: true,
            ..options()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stream = read(&path, follow, async {
            let _ = stopped.await;
        })
        .await
        .expect("opening");
        let mut stream = Box::pin(stream);
        writer.write("new\n");
        let mut got = String::new();
        until(&mut stream, &mut got, "new\n").await;
        writer.close();
        let _ = stop.send(());
        let rest: Vec<Result<Bytes, Error>> = tokio::time::timeout(BOUND, stream.collect())
            .await
            .expect("the stream ends once stopped");
        assert!(rest.is_empty(), "{rest:?}");
        assert!(!got.contains("old"), "{got:?}");
        let stamp = got.strip_suffix(" new\n").expect("one stamped line");
        assert!(stamp.parse::<Timestamp>().is_ok(), "{stamp:?}");
    }

    #[tokio::test]
    async fn a_stopped_container_is_read_to_the_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = rotated_set(dir.path());
        let follow = ReadOptions {
            follow: true,
            ..options()
        };
        let stream = read(&path, follow, async {}).await.expect("opening");
        let chunks: Vec<Result<Bytes, Error>> = tokio::time::timeout(BOUND, stream.collect())
            .await
            .expect("ends");
        let text: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("reading").to_vec())
            .collect();
        assert_eq!(text, b"one\ntwo\nfour\nthree\nfive\n");
    }
}
