//! What every page shares: the signed-in caller ([`Ctx`]), the header's chrome, rendering,
//! CSRF-checked forms, and failures as readable pages (never a `Debug` of an error).

use std::future::Future;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use http::{StatusCode, header};
use k8s_openapi::NamespaceResourceScope;
use kube::api::ListParams;
use serde::de::DeserializeOwned;

use crate::Inner;
use crate::api::{self, Error as ApiError};
use crate::platform::{List, Squad};
use crate::session::{self, SESSION_COOKIE, Session};

/// What the header shows for a signed-in user.
pub(crate) struct Chrome {
    pub(crate) user: String,
    pub(crate) admin: bool,
    pub(crate) csrf: String,
    /// Which nav entry is this page's (`aria-current`).
    pub(crate) here: &'static str,
}

/// The signed-in caller of a page, with a client of the API acting as them.
pub(crate) struct Ctx {
    pub(crate) inner: Arc<Inner>,
    id: String,
    pub(crate) session: Session,
    pub(crate) client: kube::Client,
}

impl FromRequestParts<Arc<Inner>> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, inner: &Arc<Inner>) -> Result<Ctx, Response> {
        let found = session::cookie(&parts.headers, SESSION_COOKIE)
            .filter(|id| session::well_formed(id))
            .and_then(|id| inner.sessions.get(id).map(|s| (id.to_owned(), s)));
        let Some((id, session)) = found else {
            // A form posted after the session ended cannot be replayed by a redirect: the
            // user signs in and starts from the home page.
            let next = (parts.method == http::Method::GET)
                .then(|| parts.uri.path_and_query().map(|pq| pq.as_str()))
                .flatten();
            return Err(to_signin(next));
        };
        let client = api::client(inner.upstream.clone(), &session.token)
            .map_err(|e| PageError::Api(e).into_response())?;
        Ok(Ctx {
            inner: Arc::clone(inner),
            id,
            session,
            client,
        })
    }
}

impl Ctx {
    pub(crate) fn chrome(&self, here: &'static str) -> Chrome {
        Chrome {
            user: self.session.username.clone(),
            admin: self.session.is_admin(),
            csrf: self.session.csrf.clone(),
            here,
        }
    }

    /// Runs a kube call; a refused token ends the session, so the next page asks to sign
    /// in again.
    pub(crate) async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, PageError> {
        call.await.map_err(|e| self.failed(ApiError::from(e)))
    }

    /// A JSON call to a platform endpoint, with [`Ctx::call`]'s handling of a refused token.
    pub(crate) async fn platform<T: DeserializeOwned>(
        &self,
        method: http::Method,
        path: String,
        body: Option<&serde_json::Value>,
    ) -> Result<T, PageError> {
        api::send(&self.client, method, &path, body)
            .await
            .map_err(|e| self.failed(e))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: String) -> Result<T, PageError> {
        self.platform(http::Method::GET, path, None).await
    }

    /// The squads this user works in, by name: every squad for an admin, else their own.
    /// The API lists every squad to everyone, but a member may look into their own only.
    pub(crate) async fn my_squads(&self) -> Result<Vec<Squad>, PageError> {
        let mut squads = self.get::<List<Squad>>(api::path(&["squads"])).await?.items;
        if !self.session.is_admin() {
            squads.retain(|s| self.session.is_member(&s.name));
        }
        squads.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(squads)
    }

    /// The objects of kind `K` in `namespace`.
    pub(crate) async fn list_in<K>(
        &self,
        namespace: &str,
        lp: &ListParams,
    ) -> Result<Vec<K>, PageError>
    where
        K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        let api = kube::Api::<K>::namespaced(self.client.clone(), namespace);
        self.call(api.list(lp)).await.map(|l| l.items)
    }

    /// The objects of kind `K` in every namespace (or of a cluster-scoped kind).
    pub(crate) async fn list_all<K>(&self, lp: &ListParams) -> Result<Vec<K>, PageError>
    where
        K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let api = kube::Api::<K>::all(self.client.clone());
        self.call(api.list(lp)).await.map(|l| l.items)
    }

    fn failed(&self, e: ApiError) -> PageError {
        if matches!(e, ApiError::Unauthorized) {
            self.inner.sessions.remove(&self.id);
        }
        PageError::Api(e)
    }

    /// The form in `body`, after its `csrf` field is checked against the session's.
    pub(crate) fn form<T: DeserializeOwned>(&self, body: &Bytes) -> Result<T, PageError> {
        checked_form(body, &self.session.csrf)
    }

    pub(crate) fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::try_from(self.inner.options.clock.now())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// The form in `body` if its `csrf` field equals `expected`.
pub(crate) fn checked_form<T: DeserializeOwned>(
    body: &Bytes,
    expected: &str,
) -> Result<T, PageError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| PageError::Csrf)?;
    let sent = pairs
        .iter()
        .find(|(key, _)| key == "csrf")
        .map(|(_, value)| value.as_str());
    if !sent.is_some_and(|sent| !expected.is_empty() && session::same(sent, expected)) {
        return Err(PageError::Csrf);
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| PageError::BadRequest(format!("the form is not complete: {e}")))
}

/// A redirect to the sign-in page that comes back to `next`.
pub(crate) fn to_signin(next: Option<&str>) -> Response {
    match next.filter(|n| safe_next(n)) {
        Some(next) if next != "/" => {
            Redirect::to(&format!("/signin?next={}", api::encode(next))).into_response()
        }
        _ => Redirect::to("/signin").into_response(),
    }
}

/// Whether `next` is a path on this site (never `//host` or a scheme, an open redirect).
pub(crate) fn safe_next(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.contains('\\')
}

/// A page's query string, parsed; one that does not parse is a readable 400 page rather
/// than axum's plain-text rejection.
pub(crate) struct Query<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Query<T>, PageError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default())
            .map(Query)
            .map_err(|e| PageError::BadRequest(format!("the address's query is not valid: {e}")))
    }
}

/// A page, or what went wrong as a page.
pub(crate) type Page = Result<Response, PageError>;

/// Renders `template` as a 200 page.
pub(crate) fn render(template: &impl Template) -> Page {
    render_with(StatusCode::OK, template)
}

pub(crate) fn render_with(code: StatusCode, template: &impl Template) -> Page {
    let html = template.render().map_err(PageError::Render)?;
    Ok((code, Html(html)).into_response())
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    #[error(transparent)]
    Api(ApiError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the form was not sent from this site's page")]
    Csrf,
    #[error("the page could not be rendered: {0}")]
    Render(askama::Error),
    #[error(transparent)]
    Random(#[from] session::NoRandomness),
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Option<Chrome>,
    code: u16,
    title: &'static str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (code, title) = match &self {
            PageError::Api(ApiError::Unauthorized) => {
                // The session is gone; its cookie goes too.
                let mut response = Redirect::to("/signin").into_response();
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, clear_cookie(SESSION_COOKIE, "/"));
                return response;
            }
            PageError::Api(ApiError::Forbidden(_)) | PageError::Forbidden(_) => {
                (StatusCode::FORBIDDEN, "Not allowed")
            }
            PageError::Api(ApiError::NotFound(_)) | PageError::NotFound(_) => {
                (StatusCode::NOT_FOUND, "Not found")
            }
            PageError::Api(ApiError::Refused { code, .. }) => (
                StatusCode::from_u16(*code).unwrap_or(StatusCode::BAD_REQUEST),
                "Refused",
            ),
            PageError::Api(ApiError::Failed { .. } | ApiError::Unreachable(_)) => {
                (StatusCode::BAD_GATEWAY, "The API failed")
            }
            PageError::BadRequest(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            PageError::Csrf => (StatusCode::FORBIDDEN, "Form refused"),
            PageError::Render(_) | PageError::Random(_) => {
                tracing::error!(error = %self, "portal page");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something broke")
            }
        };
        let message = match &self {
            PageError::Render(_) | PageError::Random(_) => {
                "The portal could not show this page; the server's log says why.".to_owned()
            }
            other => other.to_string(),
        };
        let page = ErrorPage {
            chrome: None,
            code: code.as_u16(),
            title,
            message,
        };
        match page.render() {
            Ok(html) => (code, Html(html)).into_response(),
            Err(_) => (code, title).into_response(),
        }
    }
}

/// A `Set-Cookie` that removes cookie `name`.
pub(crate) fn clear_cookie(name: &str, path: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(&format!(
        "{name}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict"
    ))
    .unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// A 303 back to `to` after a form did its work.
pub(crate) fn done(to: &str) -> Page {
    Ok(Redirect::to(to).into_response())
}

impl Ctx {
    /// Ends this session.
    pub(crate) fn end(&self) {
        self.inner.sessions.remove(&self.id);
    }
}
