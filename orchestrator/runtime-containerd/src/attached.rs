//! Processes run in a container with their streams attached to the caller (`kubectl
//! exec`): FIFOs in a private temporary directory that the shim opens, and a terminal when
//! asked for, resized through `tasks.ResizePty`.
//!
//! Our ends of the FIFOs are opened before the process is created, because the shim's
//! blocking opens wait for them: stdout and stderr for reading (only read once `Start`
//! returned, when the shim holds its writers, so end of file means the process is done),
//! stdin for reading and writing, so the shim's own opens never find it without a reader.
//! The shim keeps a writer of stdin open itself; `tasks.CloseIO` lets it go, which is how
//! the process sees end of file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest,
};
use slipway_runtime::{Attached, AttachedExec, AttachedProcess, Error, Exit, Result};
use tokio::net::unix::pipe;

use crate::container::{PROCESS_TYPE, TASK_CREATE, signal, wait_process};
use crate::grpc::{Conn, gone_is_ok};

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Other(format!("{what} {}: {e}", path.display()))
}

fn fifo(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| io_error("creating the FIFO", &path, &std::io::Error::from(e)))?;
    Ok(path)
}

/// Where the shim sends an output nobody asked for: it opens whatever path it is given,
/// and an empty one fails once another stream is set.
const DISCARD: &str = "/dev/null";

fn path_text(path: Option<&PathBuf>, otherwise: &str) -> String {
    path.map_or_else(
        || otherwise.to_owned(),
        |p| p.to_string_lossy().into_owned(),
    )
}

pub(crate) async fn exec_attached(
    conn: Arc<Conn>,
    container: &str,
    exec: &AttachedExec,
) -> Result<Attached> {
    let dir = tempfile::Builder::new()
        .prefix("slipway-exec-")
        .tempdir()
        .map_err(|e| Error::Other(format!("a directory for the exec's FIFOs: {e}")))?;
    let stdin_path = exec.stdin.then(|| fifo(dir.path(), "stdin")).transpose()?;
    let stdout_path = exec
        .stdout
        .then(|| fifo(dir.path(), "stdout"))
        .transpose()?;
    let stderr_path = (exec.stderr && !exec.tty)
        .then(|| fifo(dir.path(), "stderr"))
        .transpose()?;
    let stdin = stdin_path
        .as_ref()
        .map(|path| {
            pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(path)
                .map_err(|e| io_error("opening", path, &e))
        })
        .transpose()?;
    let receiver = |path: &PathBuf| {
        pipe::OpenOptions::new()
            .open_receiver(path)
            .map_err(|e| io_error("opening", path, &e))
    };
    let stdout = stdout_path.as_ref().map(receiver).transpose()?;
    let stderr = stderr_path.as_ref().map(receiver).transpose()?;
    let mut process = exec.process.clone();
    let Some(object) = process.as_object_mut() else {
        return Err(Error::Invalid(format!(
            "process spec of {} is not a JSON object",
            exec.id
        )));
    };
    object.insert("terminal".to_owned(), exec.tty.into());
    let spec = serde_json::to_vec(&process)
        .map_err(|e| Error::Invalid(format!("process spec of {}: {e}", exec.id)))?;
    let call = conn.call("tasks.Exec").deadline(TASK_CREATE);
    call.run(conn.tasks().exec(call.req(ExecProcessRequest {
        container_id: container.to_owned(),
        stdin: path_text(stdin_path.as_ref(), ""),
        stdout: path_text(stdout_path.as_ref(), DISCARD),
        stderr: path_text(stderr_path.as_ref(), if exec.tty { "" } else { DISCARD }),
        terminal: exec.tty,
        spec: Some(prost_types::Any {
            type_url: PROCESS_TYPE.to_owned(),
            value: spec,
        }),
        exec_id: exec.id.clone(),
    })))
    .await?;
    let handle = Process {
        conn: Arc::clone(&conn),
        container: container.to_owned(),
        id: exec.id.clone(),
        dir: Mutex::new(Some(dir)),
    };
    let call = conn.call("tasks.Start").deadline(TASK_CREATE);
    let started = call
        .run(conn.tasks().start(call.req(StartRequest {
            container_id: container.to_owned(),
            exec_id: exec.id.clone(),
        })))
        .await;
    if let Err(e) = started {
        let _ = handle.remove().await;
        return Err(e);
    }
    Ok(Attached {
        stdin: stdin.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>),
        stdout: stdout.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        stderr: stderr.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        process: Box::new(handle),
    })
}

/// An attached exec's process; its FIFO directory goes when the process is removed.
struct Process {
    conn: Arc<Conn>,
    container: String,
    id: String,
    dir: Mutex<Option<tempfile::TempDir>>,
}

impl Process {
    async fn remove(&self) -> Result<()> {
        let call = self.conn.call("tasks.DeleteProcess");
        let deleted = gone_is_ok(
            call.run(
                self.conn
                    .tasks()
                    .delete_process(call.req(DeleteProcessRequest {
                        container_id: self.container.clone(),
                        exec_id: self.id.clone(),
                    })),
            )
            .await
            .map(drop),
        );
        if let Ok(mut dir) = self.dir.lock() {
            dir.take();
        }
        deleted
    }
}

#[async_trait]
impl AttachedProcess for Process {
    async fn resize(&self, width: u16, height: u16) -> Result<()> {
        let call = self.conn.call("tasks.ResizePty");
        call.run(self.conn.tasks().resize_pty(call.req(ResizePtyRequest {
            container_id: self.container.clone(),
            exec_id: self.id.clone(),
            width: width.into(),
            height: height.into(),
        })))
        .await
        .map(drop)
    }

    async fn close_stdin(&self) -> Result<()> {
        let call = self.conn.call("tasks.CloseIO");
        gone_is_ok(
            call.run(self.conn.tasks().close_io(call.req(CloseIoRequest {
                container_id: self.container.clone(),
                exec_id: self.id.clone(),
                stdin: true,
            })))
            .await
            .map(drop),
        )
    }

    async fn kill(&self, signal_number: u32) -> Result<()> {
        gone_is_ok(signal(&self.conn, &self.container, &self.id, signal_number, false).await)
    }

    async fn wait(&self) -> Result<Exit> {
        let exit = wait_process(&self.conn, &self.container, &self.id).await;
        let removed = self.remove().await;
        let exit = exit?;
        removed?;
        Ok(exit)
    }
}
