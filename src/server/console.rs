//! The web console: a page, a script and a style sheet compiled into the binary (no CDN, no
//! build step; it works offline), served at `/console/` by `serve`. It is a client of the same
//! `/v1` API as anyone else: the bearer token is typed once, kept in the tab's `sessionStorage`
//! and sent as `Authorization: Bearer` by the script; it is never in a URL or a cookie.
//!
//! Every answer of the service carries the security headers of [`security_headers`]: a
//! Content-Security-Policy that allows scripts, styles and connections from this origin only
//! (no inline script, no `eval`), no framing, no MIME sniffing, no referrer.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::Service;

const INDEX_HTML: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");
const ICON_SVG: &str = include_str!("console/icon.svg");

/// The policy of every answer. `img-src` allows `data:` for nothing but the browser's own
/// built-in images; the chart is inline SVG built with DOM calls, not markup.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `/` and `/console` lead to the console; its three files are under `/console/`.
pub fn router() -> Router<Arc<Service>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/console/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/console/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route(
            "/console/icon.svg",
            get(|| asset("image/svg+xml", ICON_SVG)),
        )
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new binary may bring new files: the browser asks again (cheap: they are small).
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Add the security headers to every answer (pages, assets and API alike).
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
