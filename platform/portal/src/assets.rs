//! The stylesheet and the small script, compiled into the binary so the portal needs no
//! CDN or file on disk.

use axum::response::{IntoResponse, Response};
use http::header;

const STYLESHEET: &str = include_str!("../assets/slipway.css");
const SCRIPT: &str = include_str!("../assets/live.js");

/// An hour: short enough that a new release's styles arrive the same day, with no
/// fingerprinted names to manage.
const CACHE: &str = "public, max-age=3600";

pub(crate) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        STYLESHEET,
    )
        .into_response()
}

pub(crate) async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        SCRIPT,
    )
        .into_response()
}
