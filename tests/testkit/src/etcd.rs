//! A real, single-member etcd on loopback ports, for tests of the etcd store backend.
//!
//! Each [`EtcdServer`] owns its process and a temporary data directory; dropping it kills the
//! process by PID and removes the directory. Every URL it is given is on 127.0.0.1, so
//! nothing listens on or connects to any other address.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::TestkitError;
use crate::port::free_ports;

/// Where Debian's `etcd-server` package installs the server.
const ETCD_BINARY: &str = "/usr/bin/etcd";

/// How many port pairs to try when another process takes a chosen port first.
const START_ATTEMPTS: u32 = 5;

/// How long etcd may take to elect itself and answer `/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of etcd's log an error carries.
const LOG_TAIL_BYTES: u64 = 4096;

/// The member name; one member per cluster, so it need not be unique.
const MEMBER: &str = "slipway-test";

/// A running etcd, killed when dropped.
#[derive(Debug)]
pub struct EtcdServer {
    child: Child,
    client_port: u16,
    // Dropped after the process is killed in `Drop`, so etcd never sees its directory vanish.
    dir: TempDir,
}

impl EtcdServer {
    /// Starts etcd on free loopback ports and waits until it answers `/health`.
    pub fn start() -> Result<EtcdServer, TestkitError> {
        if !Path::new(ETCD_BINARY).is_file() {
            return Err(TestkitError::EtcdMissing {
                path: ETCD_BINARY.to_owned(),
            });
        }
        let mut attempt = 1;
        loop {
            match Self::try_start()? {
                Ok(server) => return Ok(server),
                Err((status, log_tail)) => {
                    // Ports are probed free and then released before etcd binds them, so
                    // another process may win the race; only that failure is worth a retry.
                    if !log_tail.contains("address already in use") || attempt == START_ATTEMPTS {
                        return Err(TestkitError::EtcdExited {
                            status,
                            attempts: attempt,
                            log_tail,
                        });
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The etcd process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding etcd's data and its log (`etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// One start on fresh ports: the server, or etcd's exit status and log tail if it died.
    fn try_start() -> Result<Result<EtcdServer, (ExitStatus, String)>, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-etcd-")
            .tempdir()
            .map_err(TestkitError::io("creating etcd's temporary directory"))?;
        let log_path = dir.path().join("etcd.log");
        let log = File::create(&log_path)
            .map_err(TestkitError::io(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(TestkitError::io(format!(
            "duplicating {}",
            log_path.display()
        )))?;
        let [client_port, peer_port] = free_ports::<2>()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let child = Command::new(ETCD_BINARY)
            .arg("--name")
            .arg(MEMBER)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("{MEMBER}={peer_url}"))
            .arg("--initial-cluster-state")
            .arg("new")
            // Room for the store's 1.5 MiB values plus the request around them.
            .arg("--max-request-bytes")
            .arg("2097152")
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(TestkitError::io(format!("starting {ETCD_BINARY}")))?;
        let mut server = EtcdServer {
            child,
            client_port,
            dir,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = server
                .child
                .try_wait()
                .map_err(TestkitError::io("checking on etcd"))?
            {
                return Ok(Err((status, log_tail(&log_path))));
            }
            if healthy(client_port) {
                return Ok(Ok(server));
            }
            if started.elapsed() > READY_TIMEOUT {
                let log_tail = log_tail(&log_path);
                drop(server);
                return Err(TestkitError::EtcdNotReady {
                    waited: READY_TIMEOUT,
                    log_tail,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // Errors mean the process is already gone, which is the goal.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether etcd answers `GET /health` with a healthy status: it has a leader and serves a
/// linearizable read, so clients can use it at once.
fn healthy(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(2));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    // A timeout or reset mid-read leaves a partial response, judged like any other.
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200") && response.contains(r#""health":"true""#)
}

/// The end of the log file, or a note saying why it could not be read.
pub(crate) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_dies_with_its_handle() {
        let started = Instant::now();
        let server = EtcdServer::start().unwrap();
        eprintln!("etcd started in {:?}", started.elapsed());
        assert!(server.endpoint().starts_with("http://127.0.0.1:"));
        assert!(healthy(server.client_port));
        let pid = server.pid();
        let dir = server.dir().to_owned();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(server);
        // Reaped by `wait`, so the PID no longer names a process (or a zombie).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(!dir.exists());
    }

    #[test]
    fn two_servers_run_side_by_side() {
        let a = EtcdServer::start().unwrap();
        let b = EtcdServer::start().unwrap();
        assert_ne!(a.endpoint(), b.endpoint());
        assert!(healthy(a.client_port) && healthy(b.client_port));
    }
}
