//! Signing in with a platform token (checked through the API's SelfSubjectReview) and
//! signing out; the sign-in form is CSRF-protected by a double-submit cookie, as there is
//! no session yet to hold its token.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Inner;
use crate::api::{self, Error as ApiError};
use crate::page::{self, Chrome, Ctx, Page, PageError, Query, render_with};
use crate::session::{self, SESSION_COOKIE, SIGNIN_COOKIE};

/// How long a sign-in form stays good to submit.
const FORM_TTL: Duration = Duration::from_secs(60 * 60);

#[derive(Template)]
#[template(path = "signin.html")]
struct SignIn {
    chrome: Option<Chrome>,
    csrf: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: Option<String>,
}

fn next_or_home(next: Option<String>) -> String {
    next.filter(|n| page::safe_next(n))
        .unwrap_or_else(|| "/".to_owned())
}

/// The form; it reuses the browser's form token if it has one, so two tabs both work.
pub(crate) async fn form(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(next): Query<Next>,
) -> Page {
    let token = match session::cookie(&headers, SIGNIN_COOKIE).filter(|t| session::well_formed(t)) {
        Some(token) => token.to_owned(),
        None => session::random_hex()?,
    };
    signin_page(&inner, StatusCode::OK, token, next_or_home(next.next), None)
}

fn signin_page(
    inner: &Inner,
    code: StatusCode,
    csrf: String,
    next: String,
    error: Option<String>,
) -> Page {
    let cookie = session::set_cookie(
        SIGNIN_COOKIE,
        &csrf,
        "/signin",
        FORM_TTL,
        inner.options.secure_cookies,
    );
    let mut response = render_with(
        code,
        &SignIn {
            chrome: None,
            csrf,
            next,
            error,
        },
    )?;
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Checks the token with the API and starts a session.
pub(crate) async fn submit(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> Page {
    let expected = session::cookie(&headers, SIGNIN_COOKIE)
        .filter(|t| session::well_formed(t))
        .unwrap_or_default();
    let form: Credentials = page::checked_form(&body, expected)?;
    let next = next_or_home(form.next);
    let token = form.token.trim().to_owned();
    let retry = |message: &str| {
        signin_page(
            &inner,
            StatusCode::UNAUTHORIZED,
            expected.to_owned(),
            next.clone(),
            Some(message.to_owned()),
        )
    };
    if token.is_empty() {
        return retry("Enter a platform token.");
    }
    let (username, groups) = match review(&inner, &token).await {
        Ok(who) => who,
        Err(ApiError::Unauthorized) => {
            return retry("That token was not accepted: it is unknown, revoked or expired.");
        }
        Err(e) => return Err(PageError::Api(e)),
    };
    let id = inner.sessions.create(token, username, groups)?;
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        session::set_cookie(
            SESSION_COOKIE,
            &id,
            "/",
            inner.sessions.ttl(),
            inner.options.secure_cookies,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        page::clear_cookie(SIGNIN_COOKIE, "/signin"),
    );
    Ok(response)
}

/// Who `token` belongs to, by the API's SelfSubjectReview.
async fn review(inner: &Inner, token: &str) -> Result<(String, Vec<String>), ApiError> {
    let client = api::client(inner.upstream.clone(), token)?;
    let request = json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "SelfSubjectReview",
    });
    let answer: Value = api::send(
        &client,
        http::Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        Some(&request),
    )
    .await?;
    let user = &answer["status"]["userInfo"];
    let username = user["username"].as_str().unwrap_or_default().to_owned();
    if username.is_empty() {
        return Err(ApiError::Failed {
            code: 200,
            message: "a SelfSubjectReview that names no user".to_owned(),
        });
    }
    let groups = user["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_owned))
        .collect();
    Ok((username, groups))
}

#[derive(Deserialize)]
struct Empty {}

/// Ends the session and clears its cookie.
pub(crate) async fn signout(ctx: Ctx, body: Bytes) -> Result<Response, PageError> {
    let Empty {} = ctx.form(&body)?;
    ctx.end();
    let mut response = Redirect::to("/signin").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, page::clear_cookie(SESSION_COOKIE, "/"));
    Ok(response)
}
