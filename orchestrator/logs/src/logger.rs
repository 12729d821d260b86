//! The logger containerd's shim runs for a container (a `binary://` log URI): it reads the
//! container's stdout and stderr, writes them as CRI records to a log file and rotates it.
//! It is the shim's child, so it outlives restarts of the agent, which it never talks to.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use jiff::Timestamp;

use crate::Error;
use crate::files::rotation;
use crate::format::{MAX_LINE, Splitter, Stream, write_record};

/// The argument key that says "run as the logger"; its value is empty.
pub const LOGGER_MARKER: &str = "slipway-logger";
/// The size past which a log file is rotated, unless `max-size` says otherwise (kubelet's
/// `containerLogMaxSize`).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// How many files a log set keeps, the current one included, unless `max-files` says
/// otherwise (kubelet's `containerLogMaxFiles`).
pub const DEFAULT_MAX_FILES: u32 = 5;

/// The shim passes the container's stdout on this descriptor, its stderr on the next, and a
/// pipe on the one after that it waits on: the container starts once the logger closes it.
const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;

/// How the logger was configured: the log file and its rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggerArgs {
    /// The log file (absolute); rotations go beside it as `path.1`, `path.2`, ….
    pub path: PathBuf,
    /// A file is rotated before a record would take it past this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
    /// The container, from the shim's `CONTAINER_ID`, for messages.
    pub container_id: String,
}

/// The `args` of a `binary` log target that runs the `slipway` binary as the logger of the
/// log at `path` (a UTF-8 path: the URI carries text).
pub fn logger_uri_args(path: &Path, max_size: u64, max_files: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LOGGER_MARKER.to_owned(), String::new()),
        ("path".to_owned(), path.to_string_lossy().into_owned()),
        ("max-size".to_owned(), max_size.to_string()),
        ("max-files".to_owned(), max_files.to_string()),
    ])
}

/// Whether the process was started as a logger, and with what: `args` are its arguments
/// without the program name, `vars` its environment (`std::env::vars_os()`, which unlike
/// `vars` cannot panic).
///
/// It is one when the shim's `CONTAINER_ID` is set and [`LOGGER_MARKER`] is among the
/// keys; the shim passes the URI's query as `key value` pairs in no particular order.
/// `None` means "not a logger"; `Some(Err)` means a logger with arguments it cannot use,
/// and the process should exit: that closes the ready pipe, so the container's start fails
/// instead of hanging.
pub fn logger_invocation(
    args: &[OsString],
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Option<Result<LoggerArgs, Error>> {
    let (_, container_id) = vars.into_iter().find(|(key, _)| key == "CONTAINER_ID")?;
    if !args.iter().step_by(2).any(|key| key == LOGGER_MARKER) {
        return None;
    }
    Some(parse_args(
        args,
        container_id.to_string_lossy().into_owned(),
    ))
}

fn parse_args(args: &[OsString], container_id: String) -> Result<LoggerArgs, Error> {
    if !args.len().is_multiple_of(2) {
        return Err(Error::Invocation(format!(
            "{} arguments are not key value pairs",
            args.len()
        )));
    }
    let mut path = None;
    let mut max_size = DEFAULT_MAX_SIZE;
    let mut max_files = DEFAULT_MAX_FILES;
    for pair in args.chunks_exact(2) {
        let value = &pair[1];
        let number = || {
            value
                .to_str()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::Invocation(format!(
                        "{}: {value:?} is not a positive number",
                        pair[0].to_string_lossy()
                    ))
                })
        };
        // Keys this version does not know are left alone: the agent may be newer.
        match pair[0].to_str() {
            Some("path") => path = Some(PathBuf::from(value)),
            Some("max-size") => max_size = number()?,
            Some("max-files") => {
                max_files = u32::try_from(number()?)
                    .map_err(|_| Error::Invocation(format!("max-files: {value:?} is too many")))?;
            }
            _ => {}
        }
    }
    let path = path
        .filter(|p| p.is_absolute())
        .ok_or_else(|| Error::Invocation("no absolute `path` for the log".to_owned()))?;
    Ok(LoggerArgs {
        path,
        max_size,
        max_files,
        container_id,
    })
}

/// Runs the logger until the container's stdout and stderr both end, which is when the
/// container has exited (and every process it left holding them).
///
/// It creates the log file and then closes the ready pipe, so the file exists by the time
/// the container runs. A failure to write (a full disk, say) does not stop it: it keeps
/// reading, because a logger that stops reading blocks the container's writes, and returns
/// the first error at the end.
pub fn run_logger(args: LoggerArgs) -> Result<(), Error> {
    let mut sink = Sink::new(RotatingFile::new(args.path, args.max_size, args.max_files));
    let stdout = sink.open_stream(STDOUT_FD);
    let stderr = sink.open_stream(STDERR_FD);
    sink.create_file();
    // Failing means the descriptor is not open (we were not run by a shim); nothing waits.
    let _ = nix::unistd::close(READY_FD);
    write_streams(stdout, stderr, sink)
}

/// Reads both streams to their end, each on its own thread so that neither waits for the
/// other, and writes their records through one sink so that records never interleave.
pub(crate) fn write_streams(
    stdout: impl Read + Send,
    stderr: impl Read + Send,
    sink: Sink,
) -> Result<(), Error> {
    let sink = Mutex::new(sink);
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("stdout".to_owned())
            .spawn_scoped(scope, || pump(stdout, Stream::Stdout, &sink));
        match spawned {
            Ok(_) => pump(stderr, Stream::Stderr, &sink),
            Err(e) => {
                // One at a time stalls a container that fills the other pipe first, but it
                // still logs everything of one that does not.
                lock(&sink).fail(Error::Io {
                    path: PathBuf::from("stdout thread"),
                    source: e,
                });
                pump(stderr, Stream::Stderr, &sink);
            }
        }
    });
    let sink = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
    sink.first_error.map_or(Ok(()), Err)
}

fn lock(sink: &Mutex<Sink>) -> MutexGuard<'_, Sink> {
    // Nothing under the lock panics; were it to, the sink is still consistent enough to
    // write to.
    sink.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pump(mut reader: impl Read, stream: Stream, sink: &Mutex<Sink>) {
    let mut splitter = Splitter::new(MAX_LINE);
    let mut buf = vec![0; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut sink = lock(sink);
                splitter.push(&buf[..n], &mut |text, partial| {
                    sink.record(stream, text, partial);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                lock(sink).fail(Error::Io {
                    path: PathBuf::from(stream.as_str()),
                    source,
                });
                break;
            }
        }
    }
    let mut sink = lock(sink);
    splitter.finish(&mut |text, partial| sink.record(stream, text, partial));
}

/// Where records go: the rotating file, and the first error met on the way.
pub(crate) struct Sink {
    file: RotatingFile,
    record: Vec<u8>,
    first_error: Option<Error>,
}

impl Sink {
    pub(crate) fn new(file: RotatingFile) -> Self {
        Sink {
            file,
            record: Vec::new(),
            first_error: None,
        }
    }

    /// The stream the shim passed on `fd`, or an empty one if there is none.
    fn open_stream(&mut self, fd: i32) -> Box<dyn Read + Send> {
        // Reopening the descriptor through /proc is how safe code gets a `File` for it; the
        // original read end stays open, which is harmless: only writers hold off the end
        // of a pipe.
        let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
        match File::open(&path) {
            Ok(file) => Box::new(file),
            Err(source) => {
                self.fail(Error::Io { path, source });
                Box::new(io::empty())
            }
        }
    }

    pub(crate) fn create_file(&mut self) {
        if let Err(e) = self.file.open() {
            let e = self.file.error(e);
            self.fail(e);
        }
    }

    fn record(&mut self, stream: Stream, text: &[u8], partial: bool) {
        // Stamped under the lock, so that the file's order is the timestamps' order.
        let now = Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp::UNIX_EPOCH);
        self.record.clear();
        write_record(&mut self.record, now, stream, partial, text);
        if let Err(e) = self.file.write(&self.record) {
            let e = self.file.error(e);
            self.fail(e);
        }
    }

    fn fail(&mut self, error: Error) {
        self.first_error.get_or_insert(error);
    }
}

/// A log file that is rotated by size: `path` → `path.1` → `path.2` …, the oldest beyond
/// `max_files` dropped. Every record is written whole with one `write` to a file opened
/// for appending, and nothing is buffered, so a follower sees each record once written.
pub(crate) struct RotatingFile {
    path: PathBuf,
    max_size: u64,
    max_files: u32,
    file: Option<File>,
    size: u64,
}

impl RotatingFile {
    pub(crate) fn new(path: PathBuf, max_size: u64, max_files: u32) -> Self {
        RotatingFile {
            path,
            max_size,
            max_files: max_files.max(1),
            file: None,
            size: 0,
        }
    }

    fn error(&self, source: io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The open file, opened (or created) first if it is not.
    fn open(&mut self) -> io::Result<&mut File> {
        match &mut self.file {
            Some(file) => Ok(file),
            slot @ None => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?;
                self.size = file.metadata()?.len();
                Ok(slot.insert(file))
            }
        }
    }

    /// Writes one record, rotating first if it would take the file past its size; a
    /// record larger than that size still goes whole into a file of its own.
    pub(crate) fn write(&mut self, record: &[u8]) -> io::Result<()> {
        self.open()?;
        let len = record.len() as u64;
        let rotated = if self.size > 0 && self.size.saturating_add(len) > self.max_size {
            self.rotate()
        } else {
            Ok(())
        };
        let file = self.open()?;
        if let Err(e) = file.write_all(record) {
            // The size is unknown after a short write; reopening reads it again.
            self.file = None;
            return Err(e);
        }
        self.size += len;
        rotated
    }

    /// Shifts the rotations up by one and moves the current file to `.1`; the next write
    /// creates a new one. If the current file cannot be moved, writing goes on into it.
    fn rotate(&mut self) -> io::Result<()> {
        let mut first_error = Ok(());
        let mut note = |result: io::Result<()>| match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                if first_error.is_ok() {
                    first_error = Err(e);
                }
                false
            }
            _ => true,
        };
        let moved = if self.max_files > 1 {
            // Renaming over the last rotation is what drops the oldest file.
            for n in (1..self.max_files - 1).rev() {
                note(std::fs::rename(
                    rotation(&self.path, n),
                    rotation(&self.path, n + 1),
                ));
            }
            note(std::fs::rename(&self.path, rotation(&self.path, 1)))
        } else {
            note(std::fs::remove_file(&self.path))
        };
        if moved {
            self.file = None;
        }
        first_error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::log_set;
    use crate::format::parse_record;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn env(container: Option<&str>) -> Vec<(OsString, OsString)> {
        let mut vars = vec![(OsString::from("PATH"), OsString::from("/bin"))];
        if let Some(id) = container {
            vars.push(("CONTAINER_ID".into(), id.into()));
            vars.push(("CONTAINER_NAMESPACE".into(), "slipway".into()));
        }
        vars
    }

    #[test]
    fn recognizes_the_invocation_in_any_order() {
        let want = LoggerArgs {
            path: PathBuf::from("/logs/0.log"),
            max_size: 4096,
            max_files: 2,
            container_id: "c1".to_owned(),
        };
        let orders: &[&[&str]] = &[
            &[
                "slipway-logger",
                "",
                "path",
                "/logs/0.log",
                "max-size",
                "4096",
                "max-files",
                "2",
            ],
            &[
                "max-files",
                "2",
                "unknown",
                "slipway-logger",
                "path",
                "/logs/0.log",
                "slipway-logger",
                "",
                "max-size",
                "4096",
            ],
        ];
        for args in orders {
            let got = logger_invocation(&os(args), env(Some("c1")))
                .expect("a logger invocation")
                .expect("valid arguments");
            assert_eq!(got, want, "{args:?}");
        }
        let defaults =
            logger_invocation(&os(&["path", "/l", "slipway-logger", ""]), env(Some("c")))
                .expect("a logger invocation")
                .expect("valid arguments");
        assert_eq!(
            (defaults.max_size, defaults.max_files),
            (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES)
        );
    }

    #[test]
    fn the_uri_args_are_an_invocation() {
        let pairs = logger_uri_args(Path::new("/logs/3.log"), 100, 3);
        let args: Vec<OsString> = pairs
            .into_iter()
            .rev()
            .flat_map(|(k, v)| [OsString::from(k), OsString::from(v)])
            .collect();
        let got = logger_invocation(&args, env(Some("c")))
            .expect("a logger invocation")
            .expect("valid arguments");
        assert_eq!(
            (got.path.as_path(), got.max_size, got.max_files),
            (Path::new("/logs/3.log"), 100, 3)
        );
    }

    #[test]
    fn other_invocations_are_not_the_logger() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["server"], Some("c")),
            (&["slipway-logger", "", "path", "/l"], None),
            (&["path", "slipway-logger"], Some("c")),
            (&[], Some("c")),
        ];
        for &(args, container) in cases {
            assert!(
                logger_invocation(&os(args), env(container)).is_none(),
                "{args:?} {container:?}"
            );
        }
    }

    #[test]
    fn bad_arguments_are_errors() {
        let cases: &[&[&str]] = &[
            &["slipway-logger", "", "path"],
            &["slipway-logger", ""],
            &["slipway-logger", "", "path", ""],
            &["slipway-logger", "", "path", "relative.log"],
            &["slipway-logger", "", "path", "/l", "max-size", "0"],
            &["slipway-logger", "", "path", "/l", "max-size", "-1"],
            &["slipway-logger", "", "path", "/l", "max-size", "10Mi"],
            &["slipway-logger", "", "path", "/l", "max-files", "0"],
            &[
                "slipway-logger",
                "",
                "path",
                "/l",
                "max-files",
                "4294967296",
            ],
        ];
        for &args in cases {
            match logger_invocation(&os(args), env(Some("c"))) {
                Some(Err(Error::Invocation(_))) => {}
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    /// Every record of the files of the set, oldest first, as `(stream, partial, text)`.
    fn records(path: &Path) -> Vec<(Stream, bool, String)> {
        let mut out = Vec::new();
        for file in log_set(path).expect("listing") {
            let bytes = std::fs::read(&file).expect("reading");
            for line in bytes.split_inclusive(|&b| b == b'\n') {
                assert!(line.ends_with(b"\n"), "{line:?} is not terminated");
                let r = parse_record(line).expect("a record");
                out.push((
                    r.stream,
                    r.partial,
                    String::from_utf8_lossy(r.text).into_owned(),
                ));
            }
        }
        out
    }

    #[test]
    fn writes_both_streams_as_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let sink = Sink::new(RotatingFile::new(path.clone(), DEFAULT_MAX_SIZE, 5));
        let long = "x".repeat(MAX_LINE + 1);
        let stdout = format!("one\n{long}\ntwo\r\nunterminated");
        write_streams(stdout.as_bytes(), &b"err\n\xff\n"[..], sink).expect("writing");
        let mut got = records(&path);
        // The two streams interleave in any order; each keeps its own.
        let stderr: Vec<_> = got
            .iter()
            .filter(|r| r.0 == Stream::Stderr)
            .cloned()
            .collect();
        got.retain(|r| r.0 == Stream::Stdout);
        let text = |list: &[(Stream, bool, String)]| -> Vec<(bool, String)> {
            list.iter().map(|(_, p, t)| (*p, t.clone())).collect()
        };
        assert_eq!(
            text(&got),
            vec![
                (false, "one".to_owned()),
                (true, "x".repeat(MAX_LINE)),
                (false, "x".to_owned()),
                (false, "two".to_owned()),
                (true, "unterminated".to_owned()),
            ]
        );
        assert_eq!(
            text(&stderr),
            vec![(false, "err".to_owned()), (false, "\u{fffd}".to_owned())]
        );
        let bytes = std::fs::read(&path).expect("reading");
        assert!(
            bytes.windows(3).any(|w| w == b" \xff\n"),
            "invalid UTF-8 is kept as bytes"
        );
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        // A record is 40 bytes of header, its text and `\n`: two fit in 100 bytes.
        let lines: Vec<String> = (0..9).map(|i| format!("line {i}")).collect();
        let mut sink = Sink::new(RotatingFile::new(path.clone(), 100, 3));
        for line in &lines {
            sink.record(Stream::Stdout, line.as_bytes(), false);
        }
        assert!(sink.first_error.is_none());
        let files = log_set(&path).expect("listing");
        assert_eq!(
            files,
            vec![rotation(&path, 2), rotation(&path, 1), path.clone()]
        );
        for f in &files {
            let size = std::fs::metadata(f).expect("stat").len();
            assert!(size <= 100, "{} has {size} bytes", f.display());
        }
        let kept: Vec<String> = records(&path).into_iter().map(|r| r.2).collect();
        assert_eq!(kept, lines[4..]);
    }

    #[test]
    fn a_record_larger_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut file = RotatingFile::new(path.clone(), 100, 3);
        let big = vec![b'y'; 300];
        for record in [&b"before\n"[..], &big, b"after\n"] {
            file.write(record).expect("writing");
        }
        assert_eq!(
            std::fs::read(rotation(&path, 2)).expect("reading"),
            b"before\n"
        );
        assert_eq!(std::fs::read(rotation(&path, 1)).expect("reading"), big);
        assert_eq!(std::fs::read(&path).expect("reading"), b"after\n");
    }

    #[test]
    fn one_file_means_starting_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut file = RotatingFile::new(path.clone(), 10, 1);
        file.write(b"aaaaaaaa\n").expect("writing");
        file.write(b"bbbbbbbb\n").expect("writing");
        assert_eq!(log_set(&path).expect("listing"), vec![path.clone()]);
        assert_eq!(std::fs::read(&path).expect("reading"), b"bbbbbbbb\n");
    }

    #[test]
    fn an_unwritable_log_is_reported_after_draining() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing").join("0.log");
        let sink = Sink::new(RotatingFile::new(path, 100, 2));
        let result = write_streams(&b"a\nb\n"[..], &b"c\n"[..], sink);
        assert!(matches!(result, Err(Error::Io { .. })), "{result:?}");
    }
}
