//! The ops dashboard served by the api stage: one page (`/`, `/dashboard`)
//! whose HTML, CSS and JavaScript are compiled into the binary (no CDN, no
//! build step), polling [`overview`] at `GET /api/overview`.
//!
//! The page and its assets hold no data and are public; the data comes from
//! `/api/*`, which the page calls with a bearer token when the API asks for one.

mod families;
pub mod overview;
mod roster;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use allot_store::Store;

use crate::api::ApiState;
use crate::metrics::Metrics;
use roster::Roster;

/// What the dashboard routes share.
#[derive(Clone)]
struct Dash {
    store: Arc<Store>,
    metrics: Metrics,
    /// Rep names and teams of the rule version in force, cached.
    roster: Arc<Roster>,
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../assets/dashboard/index.html"),
};

const ASSETS: [Asset; 3] = [
    Asset {
        name: "dashboard.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/dashboard/dashboard.css"),
    },
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/dashboard/dashboard.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/dashboard/favicon.svg"),
    },
];

/// Everything the page loads comes from this origin; nothing may frame it.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Dashboard routes, merged into [`crate::api::router`].
pub fn router(state: ApiState) -> Router {
    routes(state.store, state.metrics)
}

/// The same routes over just a store and a metrics registry (no admin, no
/// auth of their own: whatever wraps them guards `/api/overview`).
pub fn routes(store: Arc<Store>, metrics: Metrics) -> Router {
    let dash = Dash {
        store,
        metrics,
        roster: Arc::new(Roster::default()),
    };
    Router::new()
        .route("/", get(page))
        .route("/dashboard", get(page))
        .route("/assets/{file}", get(asset))
        .route("/api/overview", get(overview))
        .with_state(dash)
}

async fn page(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        Some(a) => serve(a, &headers),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

/// The asset with an ETag of its bytes; browsers revalidate on every load
/// (`no-cache`) and get a 304 while the binary is the same.
fn serve(a: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", fnv1a(a.body));
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        a.body.into_response()
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(a.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if a.name == INDEX.name {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    res
}

/// 64-bit FNV-1a: a stable fingerprint of an embedded file for its ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The dashboard's figures (shape: [`overview`]).
async fn overview(State(d): State<Dash>) -> Response {
    let built = tokio::task::spawn_blocking(move || {
        let now = crate::now_ms();
        let reps = d.roster.reps(&d.store, now);
        overview::build(&d.metrics, &d.store, &reps, now)
    })
    .await;
    let mut res = match built {
        Ok(Ok(o)) => Json(o).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "status": "error", "message": format!("store: {e}") })),
        )
            .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "error", "message": format!("overview: {e}") })),
        )
            .into_response(),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        routes(Arc::new(Store::temporary().unwrap()), Metrics::new())
    }

    async fn get(uri: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(uri);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        let res = app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    #[tokio::test]
    async fn pages_and_assets_have_types_and_cache_headers() {
        let cases = [
            ("/", StatusCode::OK, "text/html; charset=utf-8", "no-cache"),
            (
                "/dashboard",
                StatusCode::OK,
                "text/html; charset=utf-8",
                "no-cache",
            ),
            (
                "/assets/dashboard.js",
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                "no-cache",
            ),
            (
                "/assets/dashboard.css",
                StatusCode::OK,
                "text/css; charset=utf-8",
                "no-cache",
            ),
            (
                "/assets/favicon.svg",
                StatusCode::OK,
                "image/svg+xml",
                "no-cache",
            ),
            (
                "/api/overview",
                StatusCode::OK,
                "application/json",
                "no-store",
            ),
        ];
        for (uri, status, ctype, cache) in cases {
            let (s, h, body) = get(uri, None).await;
            assert_eq!(s, status, "{uri}");
            assert_eq!(h[header::CONTENT_TYPE], ctype, "{uri}");
            assert_eq!(h[header::CACHE_CONTROL], cache, "{uri}");
            assert!(!body.is_empty(), "{uri}");
        }
        let (s, _, _) = get("/assets/nope.js", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_unchanged_asset_is_not_sent_again() {
        let (_, h, _) = get("/assets/dashboard.js", None).await;
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let (s, _, body) = get("/assets/dashboard.js", Some(&etag)).await;
        assert_eq!(s, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn the_page_loads_nothing_from_elsewhere() {
        let (_, h, body) = get("/", None).await;
        let html = String::from_utf8(body).unwrap();
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        for needle in ["http://", "https://", "//cdn"] {
            assert!(!html.contains(needle), "page refers to {needle}");
        }
        assert!(html.contains("/assets/dashboard.js"));
    }

    #[tokio::test]
    async fn overview_is_json_with_every_section() {
        let (_, _, body) = get("/api/overview", None).await;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for key in [
            "generated_at",
            "ingest",
            "decisions",
            "dlq",
            "writer",
            "failed_writes",
            "stages",
            "workload",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        assert_eq!(v["decisions"]["total"], 0);
    }
}
