//! A squad's page: members, namespaces, quota use as bars, one row per Deployment, recent
//! events and the squad's previews. Each namespace costs a fixed handful of list calls,
//! made together; nothing is fetched per Deployment.

use askama::Template;
use axum::extract::Path;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, ResourceQuota, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;

use crate::api;
use crate::page::{Chrome, Ctx, Page, PageError, render};
use crate::platform::{List, Member, Preview, Squad};
use crate::previews::PreviewRow;
use crate::view::{self, Bar, DeploymentRow, EventRow, Exposure, Gateway};

/// The ResourceQuota the platform puts in every squad namespace.
const QUOTA_NAME: &str = "squad-quota";

#[derive(Template)]
#[template(path = "squad.html")]
struct SquadPage {
    chrome: Option<Chrome>,
    name: String,
    members: Vec<Member>,
    namespaces: Vec<NamespaceUse>,
    /// One bar: the previews alive of the squad's budget.
    preview_bars: Vec<Bar>,
    services: Vec<DeploymentRow>,
    events: Vec<EventRow>,
    previews: Vec<PreviewRow>,
}

/// One namespace's quota use.
struct NamespaceUse {
    name: String,
    bars: Vec<Bar>,
}

/// What one namespace holds, listed once.
pub(crate) struct Namespace {
    pub(crate) name: String,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) quota: Option<ResourceQuota>,
    pub(crate) events: Vec<Event>,
    pub(crate) services: Vec<Service>,
    pub(crate) ingresses: Vec<Ingress>,
}

/// Lists what the squad page shows of namespace `name`.
pub(crate) async fn namespace(ctx: &Ctx, name: &str) -> Result<Namespace, PageError> {
    let lp = ListParams::default();
    let quotas = kube::Api::<ResourceQuota>::namespaced(ctx.client.clone(), name);
    let (deployments, quota, events, services, ingresses) = futures::try_join!(
        ctx.list_in::<Deployment>(name, &lp),
        ctx.call(quotas.get_opt(QUOTA_NAME)),
        ctx.list_in::<Event>(name, &lp),
        ctx.list_in::<Service>(name, &lp),
        ctx.list_in::<Ingress>(name, &lp),
    )?;
    Ok(Namespace {
        name: name.to_owned(),
        deployments,
        quota,
        events,
        services,
        ingresses,
    })
}

/// The rows of a namespace's Deployments, each with the URLs that expose it.
pub(crate) fn rows(ns: &Namespace, gateway: &Gateway, now: jiff::Timestamp) -> Vec<DeploymentRow> {
    let exposure = Exposure {
        services: &ns.services,
        ingresses: &ns.ingresses,
    };
    ns.deployments
        .iter()
        .map(|d| {
            let urls = exposure.urls(&exposure.services_of(d), gateway);
            view::deployment_row(d, now, urls)
        })
        .collect()
}

pub(crate) async fn page(ctx: Ctx, Path(squad): Path<String>) -> Page {
    let (record, previews) = futures::try_join!(
        ctx.get::<Squad>(api::path(&["squads", &squad])),
        ctx.get::<List<Preview>>(api::path(&["previews"])),
    )?;
    let namespaces =
        futures::future::try_join_all(record.namespaces.iter().map(|ns| namespace(&ctx, ns)))
            .await?;
    let now = ctx.now();
    let gateway = Gateway::parse(ctx.inner.options.gateway.as_deref());
    let mut services: Vec<DeploymentRow> = namespaces
        .iter()
        .flat_map(|ns| rows(ns, &gateway, now))
        .collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let all_events: Vec<Event> = namespaces
        .iter()
        .flat_map(|ns| ns.events.iter().cloned())
        .collect();
    let events = view::event_rows(&all_events, now, 20, |_| true);
    let previews: Vec<PreviewRow> = previews
        .items
        .iter()
        .filter(|p| p.squad == record.name && p.is_open())
        .map(|p| PreviewRow::new(p, now))
        .collect();
    let preview_bars = vec![Bar::new(
        "previews",
        &previews.len().to_string(),
        &record.previews.max.to_string(),
    )];
    let namespaces = namespaces
        .iter()
        .map(|ns| NamespaceUse {
            name: ns.name.clone(),
            bars: ns.quota.as_ref().map(view::quota_bars).unwrap_or_default(),
        })
        .collect();
    render(&SquadPage {
        chrome: Some(ctx.chrome("home")),
        name: record.name,
        members: record.members,
        namespaces,
        preview_bars,
        services,
        events,
        previews,
    })
}
