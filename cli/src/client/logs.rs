//! `slipway logs`: a container's log, or those of every pod of a deployment (or label
//! selector) with `[pod/NAME/CONTAINER]` prefixes, followed concurrently with `-f`.

use futures::{AsyncBufReadExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use tokio_util::sync::CancellationToken;

use super::api_failure;
use super::pods::{self, Named};
use super::target::Target;
use crate::exit::Failure;

/// Print the logs of a pod's container, or of all pods of a deployment.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  slipway logs web-7d4b9c-x2x8q\n  \
    slipway logs -f deployment/web --tail 20\n  slipway logs -l app=web -c sidecar\n  \
    slipway logs web-7d4b9c-x2x8q --since 5m --timestamps")]
pub(crate) struct LogsArgs {
    /// POD, pod/NAME or deployment/NAME
    #[arg(
        value_name = "POD|deployment/NAME",
        required_unless_present = "selector"
    )]
    what: Option<String>,
    /// The container [default: the pod's only or default container; every container for
    /// several pods]
    #[arg(short, long, value_name = "NAME")]
    container: Option<String>,
    /// Keep printing what the containers write, until Ctrl-C or they stop
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines of each log
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    tail: Option<i64>,
    /// The log of the container's previous run
    #[arg(short, long)]
    previous: bool,
    /// Only lines written in this last while (30s, 5m, 1h)
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// Each line starts with the time it was written (RFC 3339)
    #[arg(long)]
    timestamps: bool,
    /// The pods with these labels, e.g. app=web
    #[arg(short = 'l', long, value_name = "SELECTOR", conflicts_with = "what")]
    selector: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Whose logs: one pod's, or those of the pods a selector picks.
enum Pods {
    One(String),
    Selected(String),
}

/// One log to print: pod, container, and the prefix its lines get.
struct Source {
    pod: String,
    container: String,
    prefix: String,
}

pub(crate) async fn logs(args: LogsArgs, shutdown: CancellationToken) -> Result<(), Failure> {
    if args.tail.is_some_and(|n| n < -1) {
        return Err(Failure::bad_input(
            "--tail must be 0 or more (or -1 for all)",
        ));
    }
    let since = args
        .since
        .as_deref()
        .map(|text| {
            let since = slipway_preview_config::parse_duration(text)
                .map_err(|e| Failure::bad_input(format!("--since: {e}")))?;
            i64::try_from(since.as_secs()).map_err(|_| Failure::bad_input("--since is too long"))
        })
        .transpose()?;
    let session = args.target.connect()?;
    let api: Api<Pod> = Api::namespaced(session.client.clone(), &session.namespace);
    let wanted = match (&args.what, &args.selector) {
        (_, Some(selector)) => Pods::Selected(selector.clone()),
        (Some(what), None) => match pods::parse(what, false)? {
            Named::Pod(name) => Pods::One(name),
            Named::Deployment(name) => {
                Pods::Selected(pods::deployment_selector(&session, &name).await?)
            }
            Named::Service(_) => {
                return Err(Failure::bad_input("logs come from pods and deployments"));
            }
        },
        (None, None) => return Err(Failure::bad_input("name a pod, a deployment or -l")),
    };
    let sources = match wanted {
        Pods::One(name) => {
            let pod = api.get(&name).await.map_err(api_failure)?;
            let container = match &args.container {
                Some(container) => container.clone(),
                None => pods::default_container(&pod)?,
            };
            vec![Source {
                pod: name,
                container,
                prefix: String::new(),
            }]
        }
        Pods::Selected(selector) => {
            let listed = api
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(api_failure)?;
            if listed.items.is_empty() {
                return Err(Failure::bad_input(format!("no pods match {selector}")));
            }
            let mut sources = Vec::new();
            for pod in &listed.items {
                let name = pod.metadata.name.clone().unwrap_or_default();
                for container in pods::containers(pod) {
                    if args.container.as_ref().is_some_and(|c| *c != container) {
                        continue;
                    }
                    sources.push(Source {
                        prefix: format!("[pod/{name}/{container}] "),
                        pod: name.clone(),
                        container,
                    });
                }
            }
            sources
        }
    };
    let params = |container: &str| LogParams {
        container: Some(container.to_owned()),
        follow: args.follow,
        tail_lines: args.tail.filter(|n| *n >= 0),
        previous: args.previous,
        since_seconds: since,
        timestamps: args.timestamps,
        ..LogParams::default()
    };
    if !args.follow {
        for source in &sources {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                printed = print_log(&api, source, params(&source.container)) => printed?,
            }
        }
        return Ok(());
    }
    let following = futures::future::try_join_all(
        sources
            .iter()
            .map(|source| print_log(&api, source, params(&source.container))),
    );
    tokio::select! {
        () = shutdown.cancelled() => Ok(()),
        printed = following => printed.map(drop),
    }
}

/// Prints one container's log, line by line with its source's prefix.
async fn print_log(pods: &Api<Pod>, source: &Source, params: LogParams) -> Result<(), Failure> {
    let at = format!("pod/{}/{}", source.pod, source.container);
    let stream = pods
        .log_stream(&source.pod, &params)
        .await
        .map_err(|e| Failure::from_kube(&at, e))?;
    let mut lines = stream.lines();
    while let Some(line) = lines
        .try_next()
        .await
        .map_err(|e| Failure::unreachable(format!("{at}: the log stream broke: {e}")))?
    {
        say!("{}{line}", source.prefix);
    }
    Ok(())
}
