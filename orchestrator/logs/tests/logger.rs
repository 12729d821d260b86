//! The logger as containerd's shim runs it: a child process with the container's stdout on
//! fd 3, its stderr on fd 4 and the ready pipe on fd 5, configured by `key value` pairs.
//!
//! The child is this test binary run again for the one test `logger_child`, which acts as
//! the `slipway` binary's `main` would; `sh` puts the pipes on fds 3, 4 and 5 with
//! redirections, as safe Rust cannot arrange descriptors above 2 for a child.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slipway_logs::format::{Stream, parse_record};

/// The child's `key value` arguments, one a line.
const CHILD_ARGS: &str = "SLIPWAY_LOGS_TEST_LOGGER_ARGS";
/// Long enough for any wait here; reached only when the logger is broken.
const BOUND: Duration = Duration::from_secs(60);

#[test]
#[ignore = "the child process of `logger_runs_as_the_shim_runs_it`, not a test of its own"]
fn logger_child() {
    let Some(args) = std::env::var(CHILD_ARGS).ok() else {
        return;
    };
    let args: Vec<OsString> = args.split('\n').map(OsString::from).collect();
    let invocation = slipway_logs::logger_invocation(&args, std::env::vars_os())
        .expect("recognized as a logger")
        .expect("valid arguments");
    slipway_logs::run_logger(invocation).expect("logging");
}

/// Kills the child if the test fails before it exits.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stderr_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until a file of the log set at `log` holds `needle`.
fn wait_for(log: &Path, needle: &[u8], logger_stderr: &Path) {
    let deadline = Instant::now() + BOUND;
    loop {
        let files = slipway_logs::log_set(log).expect("listing");
        let found = files.iter().any(|file| {
            std::fs::read(file)
                .unwrap_or_default()
                .windows(needle.len())
                .any(|w| w == needle)
        });
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} was never logged: {}",
            stderr_of(logger_stderr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn logger_runs_as_the_shim_runs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    let logger_stderr = dir.path().join("logger.stderr");
    let (out_r, mut out_w) = std::io::pipe().expect("pipe");
    let (err_r, mut err_w) = std::io::pipe().expect("pipe");
    let (mut ready_r, ready_w) = std::io::pipe().expect("pipe");

    // In no particular order, with an empty value and a key this logger does not know.
    let log_arg = log.to_str().expect("a UTF-8 path");
    let args = [
        "max-size",
        "300",
        "other",
        "x",
        "path",
        log_arg,
        "slipway-logger",
        "",
        "max-files",
        "3",
    ];
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 4<&2 5>&1 0</dev/null 1>/dev/null 2>"$LOGGER_STDERR""#)
        .arg(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "logger_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ARGS, args.join("\n"))
        .env("CONTAINER_ID", "c1")
        .env("CONTAINER_NAMESPACE", "test")
        .env("LOGGER_STDERR", &logger_stderr)
        .stdin(Stdio::from(out_r))
        .stdout(Stdio::from(ready_w))
        .stderr(Stdio::from(err_r));
    let mut child = Reaped(command.spawn().expect("starting the logger"));
    // The command holds this side's copies of the child's pipe ends; the ready pipe ends
    // only once no copy of its write end is left.
    drop(command);

    // Ready before the container has written or closed anything.
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = ready_tx.send(ready_r.read_to_end(&mut bytes).map(|_| bytes));
    });
    let ready = ready_rx.recv_timeout(BOUND).unwrap_or_else(|_| {
        panic!(
            "the logger never closed fd 5: {}",
            stderr_of(&logger_stderr)
        )
    });
    assert_eq!(ready.expect("reading the ready pipe"), b"");
    assert!(log.exists(), "the log exists once the logger is ready");

    let mut written_out = Vec::new();
    let mut written_err = Vec::new();
    // Each line is logged before the next is written, so the file's order is known and
    // rotation drops the oldest of both streams.
    for i in 0..20 {
        for (pipe, text, written) in [
            (&mut out_w, format!("out {i}"), &mut written_out),
            (&mut err_w, format!("err {i}"), &mut written_err),
        ] {
            writeln!(pipe, "{text}").expect("writing to the logger");
            wait_for(&log, format!(" F {text}\n").as_bytes(), &logger_stderr);
            written.push(text);
        }
    }
    err_w.write_all(b"\xff\xfe\n").expect("writing stderr");
    wait_for(&log, b"\xff\xfe\n", &logger_stderr);
    drop(err_w);
    out_w.write_all(b"no newline").expect("writing stdout");
    drop(out_w);

    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("waiting for the logger") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the logger did not exit when its streams ended: {}",
            stderr_of(&logger_stderr)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "the logger failed ({status}): {}",
        stderr_of(&logger_stderr)
    );

    // Rotated by size, three files kept.
    let files = slipway_logs::log_set(&log).expect("listing");
    let rotation = |n: u32| PathBuf::from(format!("{}.{n}", log.display()));
    assert_eq!(files, vec![rotation(2), rotation(1), log.clone()]);
    assert!(!rotation(3).exists());

    let mut stamps = Vec::new();
    let mut kept_out = Vec::new();
    let mut kept_err = Vec::new();
    let mut last_out = None;
    for file in &files {
        let bytes = std::fs::read(file).expect("reading the log");
        assert!(
            bytes.len() <= 300,
            "{} has {} bytes",
            file.display(),
            bytes.len()
        );
        for line in bytes.split_inclusive(|&b| b == b'\n') {
            let record = parse_record(line).expect("every line is a record");
            stamps.push(record.timestamp);
            match record.stream {
                Stream::Stdout if record.partial => {
                    last_out = Some(record.text.to_vec());
                }
                Stream::Stdout => {
                    kept_out.push(String::from_utf8(record.text.to_vec()).expect("text"));
                }
                Stream::Stderr => kept_err.push(record.text.to_vec()),
            }
        }
    }
    assert!(stamps.is_sorted(), "one writer stamps in file order");
    // Each stream keeps its order, and what rotation dropped is its oldest.
    assert!(written_out.ends_with(&kept_out), "{kept_out:?}");
    assert_eq!(last_out.as_deref(), Some(&b"no newline"[..]));
    assert_eq!(kept_err.last().map(Vec::as_slice), Some(&b"\xff\xfe"[..]));
    let kept_err: Vec<String> = kept_err[..kept_err.len() - 1]
        .iter()
        .map(|t| String::from_utf8(t.clone()).expect("text"))
        .collect();
    assert!(written_err.ends_with(&kept_err), "{kept_err:?}");
    assert!(!kept_out.is_empty() && !kept_err.is_empty());
}
