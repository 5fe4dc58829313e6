//! Requests a web page made the operator's browser send are refused (cross-site request forgery
//! and DNS rebinding). Without a token the API trusts whoever reaches its loopback port, and a
//! page from anywhere can make the browser reach it:
//!
//! - **Host** (loopback binds only): the request must name this service, `localhost`,
//!   `127.0.0.1`, `[::1]` or the listen address, with the listen port or none. A page whose name
//!   was rebound to 127.0.0.1 sends its own name, and is refused (403 `foreign_host`). A request
//!   without `Host` (not a browser: browsers always send it) passes. On other binds a token is
//!   required anyway ([`super::auth::token_for`]), a page cannot know it, and the name clients
//!   use (a load balancer's, a proxy's) is not ours to list: no Host check there.
//! - **Origin** on POST, PUT, PATCH and DELETE: when present it must be this service's own
//!   (`http://` or `https://` and the request's `Host`, or the `X-Forwarded-Host` a proxy in
//!   front sets), else 403 `foreign_origin`. The console sends its own origin; a program
//!   (curl, Tencent's push to `POST /v1/ccc/cdr`) sends none and passes.
//! - **Content-Type** on the uploads: the media types each endpoint documents, else 415
//!   `unsupported_media_type`: `text/plain`, `application/x-www-form-urlencoded` (what HTML
//!   forms and `curl --data-binary` send) are the types a page may send anywhere without asking.
//!   A body without a `Content-Type` is read as the endpoint's own type (browsers always send
//!   an `Origin` with one, so the check above holds it).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::api::ApiError;

/// The media types each upload takes (method POST; `*` is one path segment).
const UPLOADS: &[(&str, &[&str])] = &[
    ("/v1/campaigns", &["text/csv", "multipart/form-data"]),
    ("/v1/campaigns/*/contacts", &["text/csv"]),
    ("/v1/campaigns/*/requeue", &["application/json"]),
    ("/v1/calls", &["application/json"]),
];

/// What the service answers to, from where it listens.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The names a request may give in `Host`, lowercased; `None` checks none (not loopback).
    hosts: Option<Vec<String>>,
}

impl Guard {
    pub fn new(listen: SocketAddr) -> Guard {
        if !listen.ip().is_loopback() {
            return Guard { hosts: None };
        }
        let own = match listen {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let port = listen.port();
        let mut hosts = Vec::new();
        for name in ["localhost", "127.0.0.1", "[::1]", own.as_str()] {
            hosts.push(format!("{name}:{port}"));
            hosts.push(name.to_string());
        }
        Guard { hosts: Some(hosts) }
    }

    /// Why this request is refused, if it is.
    pub fn refuse(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<ApiError> {
        let forbidden = |code, message: String| ApiError::new(StatusCode::FORBIDDEN, code, message);
        let mut host_values = headers.get_all(header::HOST).iter();
        let host = host_values.next();
        if host_values.next().is_some() {
            return Some(forbidden(
                "foreign_host",
                "send one `Host` header, not several".into(),
            ));
        }
        let host = match host.map(|h| h.to_str()) {
            Some(Ok(h)) => Some(h.trim().to_ascii_lowercase()),
            Some(Err(_)) => {
                return Some(forbidden(
                    "foreign_host",
                    "the `Host` header is not text".into(),
                ))
            }
            None => None,
        };
        if let (Some(allowed), Some(h)) = (&self.hosts, &host) {
            if !allowed.contains(h) {
                return Some(forbidden(
                    "foreign_host",
                    format!(
                        "`Host: {}` is not this service: on loopback it answers to {} (a page \
                         whose name points at this machine is refused)",
                        printable(h),
                        allowed
                            .iter()
                            .filter(|a| a.contains(':') && !a.ends_with(']'))
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let changes = !matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if changes {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin
                    .to_str()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                let forwarded = headers
                    .get("x-forwarded-host")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_ascii_lowercase());
                let ours = [host.as_deref(), forwarded.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|h| origin == format!("http://{h}") || origin == format!("https://{h}"));
                if !ours {
                    return Some(forbidden(
                        "foreign_origin",
                        format!(
                            "`Origin: {}` is not this service's own: a {method} from another site's page is refused",
                            printable(&origin)
                        ),
                    ));
                }
            }
        }
        if *method == Method::POST {
            if let Some(types) = upload_types(path) {
                if let Some(given) = headers.get(header::CONTENT_TYPE) {
                    let given = given.to_str().unwrap_or_default();
                    let essence = given
                        .split(';')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_ascii_lowercase();
                    if !types.contains(&essence.as_str()) {
                        return Some(ApiError::new(
                            StatusCode::UNSUPPORTED_MEDIA_TYPE,
                            "unsupported_media_type",
                            format!(
                                "`Content-Type: {}` is not taken by POST {path}: send {} \
                                 (with curl: -H 'Content-Type: {}')",
                                printable(given),
                                types.join(" or "),
                                types[0]
                            ),
                        ));
                    }
                }
            }
        }
        None
    }
}

/// The media types a POST to `path` takes, if it is an upload.
fn upload_types(path: &str) -> Option<&'static [&'static str]> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    UPLOADS.iter().find_map(|(pattern, types)| {
        let want: Vec<&str> = pattern.split('/').collect();
        (want.len() == parts.len()
            && want
                .iter()
                .zip(&parts)
                .all(|(w, p)| (*w == "*" && !p.is_empty()) || w == p))
        .then_some(*types)
    })
}

/// At most 100 characters of a header value, control characters dropped (it is quoted back).
fn printable(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect()
}

/// `app` behind the [`Guard`] for a service listening on `listen`.
pub fn guarded<S: Clone + Send + Sync + 'static>(app: Router<S>, listen: SocketAddr) -> Router<S> {
    app.layer(middleware::from_fn_with_state(
        Arc::new(Guard::new(listen)),
        check,
    ))
}

async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    match guard.refuse(req.method(), req.uri().path(), req.headers()) {
        Some(refusal) => refusal.into_response(),
        None => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn code(
        g: &Guard,
        m: Method,
        path: &str,
        pairs: &[(&'static str, &'static str)],
    ) -> &'static str {
        g.refuse(&m, path, &headers(pairs)).map_or("ok", |e| e.code)
    }

    #[test]
    fn loopback_answers_to_its_own_names_only() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap());
        for ok in [
            "localhost:8080",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost",
        ] {
            let h = HeaderValue::from_str(ok).unwrap();
            let mut m = HeaderMap::new();
            m.insert(header::HOST, h);
            assert!(
                g.refuse(&Method::GET, "/v1/campaigns", &m).is_none(),
                "{ok}"
            );
        }
        assert_eq!(
            code(&g, Method::GET, "/", &[("host", "evil.example:8080")]),
            "foreign_host"
        );
        assert_eq!(
            code(&g, Method::GET, "/", &[("host", "localhost:9090")]),
            "foreign_host"
        );
        assert_eq!(
            code(&g, Method::GET, "/", &[("host", "localhost.evil.example")]),
            "foreign_host"
        );
        assert_eq!(code(&g, Method::GET, "/", &[]), "ok");
        let v6 = Guard::new("[::1]:7000".parse().unwrap());
        assert_eq!(code(&v6, Method::GET, "/", &[("host", "[::1]:7000")]), "ok");
        let other = Guard::new("127.0.0.2:7000".parse().unwrap());
        assert_eq!(
            code(&other, Method::GET, "/", &[("host", "127.0.0.2:7000")]),
            "ok"
        );
        let open = Guard::new("0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            code(&open, Method::GET, "/", &[("host", "dialer.example.com")]),
            "ok"
        );
    }

    #[test]
    fn a_change_from_another_origin_is_refused_and_its_own_passes() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap());
        let host = ("host", "127.0.0.1:8080");
        let p = "/v1/campaigns/1/pause";
        assert_eq!(
            code(
                &g,
                Method::POST,
                p,
                &[host, ("origin", "http://evil.example")]
            ),
            "foreign_origin"
        );
        assert_eq!(
            code(&g, Method::POST, p, &[host, ("origin", "null")]),
            "foreign_origin"
        );
        assert_eq!(
            code(
                &g,
                Method::DELETE,
                p,
                &[host, ("origin", "http://localhost:8080")]
            ),
            "foreign_origin"
        );
        assert_eq!(
            code(
                &g,
                Method::POST,
                p,
                &[host, ("origin", "http://127.0.0.1:8080")]
            ),
            "ok"
        );
        assert_eq!(code(&g, Method::POST, p, &[host]), "ok");
        assert_eq!(
            code(
                &g,
                Method::GET,
                p,
                &[host, ("origin", "http://evil.example")]
            ),
            "ok"
        );
        let open = Guard::new("0.0.0.0:8080".parse().unwrap());
        let proxied = [
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "dialer.example.com"),
            ("origin", "https://dialer.example.com"),
        ];
        assert_eq!(code(&open, Method::POST, p, &proxied), "ok");
    }

    #[test]
    fn uploads_take_the_types_they_document() {
        let g = Guard::new("127.0.0.1:8080".parse().unwrap());
        let post = |path, t| code(&g, Method::POST, path, &[("content-type", t)]);
        assert_eq!(
            post("/v1/campaigns", "text/plain"),
            "unsupported_media_type"
        );
        assert_eq!(
            post("/v1/campaigns", "application/x-www-form-urlencoded"),
            "unsupported_media_type"
        );
        assert_eq!(post("/v1/campaigns", "Text/CSV; charset=utf-8"), "ok");
        assert_eq!(
            post("/v1/campaigns", "multipart/form-data; boundary=x"),
            "ok"
        );
        assert_eq!(
            post(
                "/v1/campaigns/3/contacts",
                "multipart/form-data; boundary=x"
            ),
            "unsupported_media_type"
        );
        assert_eq!(post("/v1/campaigns/3/contacts", "text/csv"), "ok");
        assert_eq!(post("/v1/calls", "text/plain"), "unsupported_media_type");
        assert_eq!(post("/v1/campaigns/3/requeue", "application/json"), "ok");
        assert_eq!(post("/v1/campaigns/3/pause", "text/plain"), "ok");
        assert_eq!(post("/v1/ccc/cdr", "application/json"), "ok");
        assert_eq!(code(&g, Method::POST, "/v1/campaigns", &[]), "ok");
    }
}
