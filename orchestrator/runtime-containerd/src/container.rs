//! Containers and their tasks: create (snapshot and record), start, signal, wait, exec,
//! list and delete, in the order containerd 1.6 needs (a task always goes before its
//! container record).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as RuntimeRecord;
use containerd_client::services::v1::snapshots::{MountsRequest, PrepareSnapshotRequest};
use containerd_client::services::v1::{
    Container as ContainerRecord, CreateContainerRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest,
    GetContainerRequest, GetRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::v1::{Process, Status};
use slipway_runtime::reference::normalize;
use slipway_runtime::{
    Container, ContainerConfig, Error, ExecConfig, Exit, LogTarget, Result, Task, TaskStatus,
};

use crate::grpc::{Conn, SNAPSHOTTER, gone_is_ok, to_system_time};
use crate::image;

const RUNTIME: &str = "io.containerd.runc.v2";
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
pub(crate) const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";
/// The annotation the runc v2 shim groups containers into one shim by.
const GROUP_ANNOTATION: &str = "io.containerd.runc.v2.group";
/// `tasks.Create` starts a shim and runs `runc create`: slow under load, and it hangs
/// outright when a logger never signals readiness.
pub(crate) const TASK_CREATE: Duration = Duration::from_secs(60);
/// How long a blocking `tasks.Wait` asks for at a time; it is asked again until the
/// process exits.
const WAIT_SLICE: Duration = Duration::from_secs(60);
/// How long a killed process may take to be reaped.
const REAP: Duration = Duration::from_secs(30);
const SIGKILL: u32 = 9;

/// The runc shim's options (`containerd.runc.v1.Options`), which containerd-client does
/// not generate; only the field we set.
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    /// runc's state directory.
    #[prost(string, tag = "7")]
    root: String,
}

pub(crate) async fn create(conn: &Conn, config: &ContainerConfig, runc_root: &Path) -> Result<()> {
    let image_name = normalize(&config.image);
    let resolved = image::resolve(conn, &image_name).await?;
    let parent = resolved.config.chain_ids().pop().unwrap_or_default();
    let spec = spec_for(config)?;
    let lease = conn.lease("create").await?;
    let made = create_leased(conn, config, &image_name, parent, spec, runc_root, &lease).await;
    let dropped = conn.drop_lease(lease).await;
    made?;
    dropped
}

async fn create_leased(
    conn: &Conn,
    config: &ContainerConfig,
    image_name: &str,
    parent: String,
    spec: Vec<u8>,
    runc_root: &Path,
    lease: &str,
) -> Result<()> {
    let call = conn.call("snapshots.Prepare").lease(lease);
    call.run(conn.snapshots().prepare(call.req(PrepareSnapshotRequest {
        snapshotter: SNAPSHOTTER.to_owned(),
        key: config.id.clone(),
        parent,
        labels: HashMap::new(),
    })))
    .await?;
    let options = RuncOptions {
        root: runc_root.to_string_lossy().into_owned(),
    };
    let record = ContainerRecord {
        id: config.id.clone(),
        labels: config.labels.clone().into_iter().collect(),
        image: image_name.to_owned(),
        runtime: Some(RuntimeRecord {
            name: RUNTIME.to_owned(),
            options: Some(prost_types::Any {
                type_url: RUNC_OPTIONS_TYPE.to_owned(),
                value: prost::Message::encode_to_vec(&options),
            }),
        }),
        spec: Some(prost_types::Any {
            type_url: SPEC_TYPE.to_owned(),
            value: spec,
        }),
        snapshotter: SNAPSHOTTER.to_owned(),
        snapshot_key: config.id.clone(),
        ..Default::default()
    };
    let call = conn.call("containers.Create").lease(lease);
    let created = call
        .run(conn.containers().create(call.req(CreateContainerRequest {
            container: Some(record),
        })))
        .await;
    if created.is_err() {
        let _ = image::remove_snapshot(conn, &config.id).await;
    }
    created.map(drop)
}

/// The caller's spec with what only the runtime knows: where the root filesystem is and
/// which shim the container joins.
fn spec_for(config: &ContainerConfig) -> Result<Vec<u8>> {
    let mut spec = config.spec.clone();
    let object = spec
        .as_object_mut()
        .ok_or_else(|| Error::Invalid(format!("spec of {} is not a JSON object", config.id)))?;
    let root = object
        .entry("root")
        .or_insert_with(|| serde_json::json!({}));
    let root = root
        .as_object_mut()
        .ok_or_else(|| Error::Invalid(format!("spec of {}: root is not an object", config.id)))?;
    root.insert("path".to_owned(), "rootfs".into());
    if let Some(group) = &config.group {
        let annotations = object
            .entry("annotations")
            .or_insert_with(|| serde_json::json!({}));
        let annotations = annotations.as_object_mut().ok_or_else(|| {
            Error::Invalid(format!(
                "spec of {}: annotations is not an object",
                config.id
            ))
        })?;
        annotations.insert(GROUP_ANNOTATION.to_owned(), group.clone().into());
    }
    serde_json::to_vec(&spec).map_err(|e| Error::Invalid(format!("spec of {}: {e}", config.id)))
}

pub(crate) async fn start(conn: &Conn, id: &str, log: &LogTarget) -> Result<u32> {
    let uri = log_uri(log)?;
    if let Some(task) = task(conn, id, "").await? {
        match Status::try_from(task.status).unwrap_or(Status::Unknown) {
            Status::Running | Status::Paused | Status::Pausing => {
                return Err(Error::AlreadyExists(format!("task of {id} is running")));
            }
            // Left by an earlier attempt that failed between create and start, or a
            // process that ran and exited: make way for the new one.
            Status::Created | Status::Stopped | Status::Unknown => remove_task(conn, id).await?,
        }
    }
    let call = conn.call("snapshots.Mounts");
    let rootfs = call
        .run(conn.snapshots().mounts(call.req(MountsRequest {
            snapshotter: SNAPSHOTTER.to_owned(),
            key: id.to_owned(),
        })))
        .await?
        .mounts;
    let call = conn.call("tasks.Create").deadline(TASK_CREATE);
    let created = call
        .run(conn.tasks().create(call.req(CreateTaskRequest {
            container_id: id.to_owned(),
            rootfs,
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        })))
        .await;
    if let Err(e) = created {
        let _ = remove_task(conn, id).await;
        return Err(e);
    }
    let call = conn.call("tasks.Start");
    let started = call
        .run(conn.tasks().start(call.req(StartRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        })))
        .await;
    match started {
        Ok(reply) => Ok(reply.pid),
        Err(e) => {
            let _ = remove_task(conn, id).await;
            Err(e)
        }
    }
}

/// Kills a task that is not running for good and deletes it.
async fn remove_task(conn: &Conn, id: &str) -> Result<()> {
    signal(conn, id, "", SIGKILL, true).await?;
    reap(conn, id, "").await?;
    let call = conn.call("tasks.Delete");
    gone_is_ok(
        call.run(conn.tasks().delete(call.req(DeleteTaskRequest {
            container_id: id.to_owned(),
        })))
        .await
        .map(drop),
    )
}

/// Waits for a process that was just killed, bounded.
async fn reap(conn: &Conn, id: &str, exec_id: &str) -> Result<()> {
    match tokio::time::timeout(REAP, wait_process(conn, id, exec_id)).await {
        Ok(Ok(_)) | Ok(Err(Error::NotFound(_))) => Ok(()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Unavailable(format!(
            "{id} {exec_id}: killed process did not exit within {REAP:?}"
        ))),
    }
}

/// `file://` or `binary://` as containerd's shim reads them; empty for nothing.
pub(crate) fn log_uri(log: &LogTarget) -> Result<String> {
    let absolute = |path: &Path| {
        if path.is_absolute() {
            Ok(escape(&path.to_string_lossy(), b"/"))
        } else {
            Err(Error::Invalid(format!(
                "log target {} is not an absolute path",
                path.display()
            )))
        }
    };
    Ok(match log {
        LogTarget::Null => String::new(),
        LogTarget::File(path) => format!("file://{}", absolute(path)?),
        LogTarget::Binary { path, args } => {
            let query: Vec<String> = args
                .iter()
                .map(|(k, v)| format!("{}={}", escape(k, b""), escape(v, b"")))
                .collect();
            let path = absolute(path)?;
            if query.is_empty() {
                format!("binary://{path}")
            } else {
                format!("binary://{path}?{}", query.join("&"))
            }
        }
    })
}

/// Percent-encodes all but unreserved characters and `keep`.
fn escape(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn kill(conn: &Conn, id: &str, signal_number: u32, all: bool) -> Result<()> {
    match signal(conn, id, "", signal_number, all).await {
        Err(Error::NotFound(e)) => {
            // A task gone means its process finished; a container gone is the caller's error.
            if container_exists(conn, id).await? {
                Ok(())
            } else {
                Err(Error::NotFound(e))
            }
        }
        other => other,
    }
}

/// Sends a signal; a process that already finished is not an error.
pub(crate) async fn signal(
    conn: &Conn,
    id: &str,
    exec_id: &str,
    signal: u32,
    all: bool,
) -> Result<()> {
    let call = conn.call("tasks.Kill");
    let sent = call
        .run(conn.tasks().kill(call.req(KillRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
            signal,
            all,
        })))
        .await;
    match sent {
        Err(Error::NotFound(message)) if message.contains("process already finished") => Ok(()),
        other => other.map(drop),
    }
}

async fn container_exists(conn: &Conn, id: &str) -> Result<bool> {
    let call = conn.call("containers.Get");
    match call
        .run(
            conn.containers()
                .get(call.req(GetContainerRequest { id: id.to_owned() })),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) async fn wait(conn: &Conn, id: &str) -> Result<Exit> {
    wait_process(conn, id, "").await
}

/// `tasks.Wait` asked again and again, each time with a deadline, until the process exits.
pub(crate) async fn wait_process(conn: &Conn, id: &str, exec_id: &str) -> Result<Exit> {
    let call = conn.call("tasks.Wait").deadline(WAIT_SLICE);
    loop {
        let request = call.req(WaitRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        });
        match tokio::time::timeout(WAIT_SLICE, conn.tasks().wait(request)).await {
            Ok(Ok(reply)) => {
                let reply = reply.into_inner();
                return Ok(Exit {
                    status: reply.exit_status,
                    at: to_system_time(reply.exited_at.as_ref()),
                });
            }
            Ok(Err(status)) if status.code() == Code::DeadlineExceeded => {}
            Ok(Err(status)) => return Err(call.error(&status)),
            Err(_) => {}
        }
    }
}

async fn task(conn: &Conn, id: &str, exec_id: &str) -> Result<Option<Process>> {
    let call = conn.call("tasks.Get");
    match call
        .run(conn.tasks().get(call.req(GetRequest {
            container_id: id.to_owned(),
            exec_id: exec_id.to_owned(),
        })))
        .await
    {
        Ok(reply) => Ok(reply.process),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn delete(conn: &Conn, id: &str) -> Result<()> {
    if task(conn, id, "").await?.is_some() {
        remove_task(conn, id).await?;
    }
    let call = conn.call("containers.Delete");
    gone_is_ok(
        call.run(
            conn.containers()
                .delete(call.req(DeleteContainerRequest { id: id.to_owned() })),
        )
        .await
        .map(drop),
    )?;
    image::remove_snapshot(conn, id).await
}

pub(crate) async fn list(conn: &Conn) -> Result<Vec<Container>> {
    let call = conn.call("containers.List");
    let records = call
        .run(
            conn.containers()
                .list(call.req(ListContainersRequest { filters: vec![] })),
        )
        .await?
        .containers;
    let call = conn.call("tasks.List");
    let tasks = call
        .run(conn.tasks().list(call.req(ListTasksRequest {
            filter: String::new(),
        })))
        .await?
        .tasks;
    let mut tasks: HashMap<String, Process> = tasks
        .into_iter()
        .map(|p| {
            let id = if p.container_id.is_empty() {
                p.id.clone()
            } else {
                p.container_id.clone()
            };
            (id, p)
        })
        .collect();
    Ok(records
        .into_iter()
        .map(|record| Container {
            task: tasks.remove(&record.id).map(|p| task_of(&p)),
            labels: record.labels.into_iter().collect::<BTreeMap<_, _>>(),
            image: record.image,
            id: record.id,
        })
        .collect())
}

fn task_of(process: &Process) -> Task {
    let status = match Status::try_from(process.status).unwrap_or(Status::Unknown) {
        Status::Created => TaskStatus::Created,
        Status::Running => TaskStatus::Running,
        Status::Stopped => TaskStatus::Stopped,
        Status::Paused | Status::Pausing => TaskStatus::Paused,
        Status::Unknown => TaskStatus::Unknown,
    };
    Task {
        status,
        pid: process.pid,
        exit: (status == TaskStatus::Stopped).then(|| Exit {
            status: process.exit_status,
            at: to_system_time(process.exited_at.as_ref()),
        }),
    }
}

pub(crate) async fn exec(
    conn: &Conn,
    container: &str,
    exec: &ExecConfig,
    timeout: Duration,
) -> Result<Exit> {
    let output = match &exec.output {
        Some(path) => log_uri(&LogTarget::File(path.clone()))?,
        None => String::new(),
    };
    let spec = serde_json::to_vec(&exec.process)
        .map_err(|e| Error::Invalid(format!("process spec of {}: {e}", exec.id)))?;
    let call = conn.call("tasks.Exec").deadline(TASK_CREATE);
    call.run(conn.tasks().exec(call.req(ExecProcessRequest {
        container_id: container.to_owned(),
        stdout: output.clone(),
        stderr: output,
        spec: Some(prost_types::Any {
            type_url: PROCESS_TYPE.to_owned(),
            value: spec,
        }),
        exec_id: exec.id.clone(),
        ..Default::default()
    })))
    .await?;
    let result = run_exec(conn, container, &exec.id, timeout).await;
    let call = conn.call("tasks.DeleteProcess");
    let deleted = gone_is_ok(
        call.run(conn.tasks().delete_process(call.req(DeleteProcessRequest {
            container_id: container.to_owned(),
            exec_id: exec.id.clone(),
        })))
        .await
        .map(drop),
    );
    let exit = result?;
    deleted?;
    Ok(exit)
}

async fn run_exec(conn: &Conn, container: &str, exec_id: &str, timeout: Duration) -> Result<Exit> {
    let call = conn.call("tasks.Start").deadline(TASK_CREATE);
    call.run(conn.tasks().start(call.req(StartRequest {
        container_id: container.to_owned(),
        exec_id: exec_id.to_owned(),
    })))
    .await?;
    match tokio::time::timeout(timeout, wait_process(conn, container, exec_id)).await {
        Ok(exit) => exit,
        Err(_) => {
            signal(conn, container, exec_id, SIGKILL, false).await?;
            reap(conn, container, exec_id).await?;
            Err(Error::Unavailable(format!(
                "exec {exec_id} in {container} did not finish within {timeout:?}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use slipway_runtime::LogTarget;

    use super::log_uri;

    #[test]
    fn log_targets_become_shim_uris() {
        assert_eq!(log_uri(&LogTarget::Null).expect("null"), "");
        assert_eq!(
            log_uri(&LogTarget::File(PathBuf::from("/var/log/a b.log"))).expect("file"),
            "file:///var/log/a%20b.log"
        );
        let args = BTreeMap::from([
            ("dir".to_owned(), "/var/log/pods/x".to_owned()),
            ("max".to_owned(), "10&more".to_owned()),
        ]);
        assert_eq!(
            log_uri(&LogTarget::Binary {
                path: PathBuf::from("/usr/bin/logger"),
                args
            })
            .expect("binary"),
            "binary:///usr/bin/logger?dir=%2Fvar%2Flog%2Fpods%2Fx&max=10%26more"
        );
        assert!(log_uri(&LogTarget::File(PathBuf::from("relative.log"))).is_err());
    }
}
