//! The self-service web portal: server-rendered HTML pages over the API, acting with the
//! signed-in user's platform token, so a page shows and does exactly what kubectl with that
//! token could (DESIGN D2, D8).
//!
//! [`Portal::new`] takes the server's *authenticated* API router (bearer tokens and RBAC)
//! as its upstream; the portal never reads a database. [`Portal::router`] serves the pages
//! at paths that never collide with the API's (`/api`, `/apis`, `/slipway/v1`, ...), so the
//! server can merge it in front of the API. Pages work without JavaScript; `live.js` only
//! counts down expiries and follows logs.

mod api;
mod assets;
mod catalog;
mod cluster;
mod home;
mod page;
mod platform;
mod previews;
mod repos;
mod service;
mod session;
mod signin;
mod squad;
mod view;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use slipway_clock::{SharedClock, SystemClock};

use crate::session::Sessions;

/// How the portal is served.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whether the portal is served over TLS: its cookies are then `Secure`.
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
    /// The gateway's base URL (`http://127.0.0.1:8080`), for the URLs of Ingresses.
    pub gateway: Option<String>,
    /// The clock sessions expire by and ages are counted from.
    pub clock: SharedClock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            secure_cookies: false,
            session_ttl: Duration::from_secs(12 * 60 * 60),
            gateway: None,
            clock: SystemClock::shared(),
        }
    }
}

/// The portal over an upstream API.
pub struct Portal {
    inner: Arc<Inner>,
}

/// What every handler shares.
pub(crate) struct Inner {
    /// The authenticated API router; each call adds the session's bearer token.
    upstream: Router,
    options: Options,
    sessions: Sessions,
}

impl Portal {
    /// A portal whose pages call `upstream`, the server's authenticated API router (the one
    /// kubectl reaches).
    pub fn new(upstream: Router, options: Options) -> Portal {
        let sessions = Sessions::new(options.clock.clone(), options.session_ttl);
        Portal {
            inner: Arc::new(Inner {
                upstream,
                options,
                sessions,
            }),
        }
    }

    /// The portal's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(home::page))
            .route("/signin", get(signin::form).post(signin::submit))
            .route("/signout", post(signin::signout))
            .route("/squads/{squad}", get(squad::page))
            .route(
                "/squads/{squad}/services/{namespace}/{deployment}",
                get(service::page),
            )
            .route(
                "/squads/{squad}/services/{namespace}/{deployment}/scale",
                post(service::scale),
            )
            .route(
                "/squads/{squad}/services/{namespace}/{deployment}/restart",
                post(service::restart),
            )
            .route(
                "/squads/{squad}/services/{namespace}/{deployment}/rollback",
                post(service::rollback),
            )
            .route(
                "/squads/{squad}/services/{namespace}/{deployment}/logs",
                get(service::logs),
            )
            .route("/previews", get(previews::page))
            .route(
                "/previews/{squad}/{namespace}/extend",
                post(previews::extend),
            )
            .route("/previews/{squad}/{namespace}/wake", post(previews::wake))
            .route(
                "/previews/{squad}/{namespace}/destroy",
                get(previews::confirm_destroy).post(previews::destroy),
            )
            .route("/repos", get(repos::page).post(repos::register))
            .route("/repos/{squad}/{owner}/{name}", get(repos::detail))
            .route("/cluster", get(cluster::page))
            .route("/catalog", get(catalog::page))
            .route("/assets/slipway.css", get(assets::stylesheet))
            .route("/assets/live.js", get(assets::script))
            .with_state(self.inner)
    }
}
