//! The web console: static files embedded in the binary and served under `/console/`.
//!
//! The console is one HTML page, one hand-written JavaScript module (with a port of BLAKE3
//! beside it, as WebCrypto has none) and one stylesheet (`node/console/`), compiled in with `include_str!`, so every node serves it with nothing to
//! install and nothing fetched from elsewhere. The page reads and writes through the same
//! `/v1/...` routes as every client; keys stay in the browser, which signs with WebCrypto's
//! Ed25519 over the bytes `POST /v1/commands/canonical` returns (`signing.rs`). `/` redirects
//! to `/console/`.
//!
//! This file serves bytes only: no data, no decisions.

use super::errors::ApiError;
use super::extract::PathText;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file: its name under `/console/`, its media type and its text.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    text: &'static str,
}

/// The browser may load and fetch nothing but this node's own files and routes: no inline
/// script, no other origin, no frames. A key in the page can then leave it only through code
/// this node served.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Every file of the console.
const ASSETS: [Asset; 4] = [
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        text: include_str!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        media_type: "text/javascript; charset=utf-8",
        text: include_str!("../../console/app.js"),
    },
    Asset {
        name: "blake3.js",
        media_type: "text/javascript; charset=utf-8",
        text: include_str!("../../console/blake3.js"),
    },
    Asset {
        name: "app.css",
        media_type: "text/css; charset=utf-8",
        text: include_str!("../../console/app.css"),
    },
];

/// `GET /` and `GET /console`: a redirect to `/console/`.
pub(crate) async fn redirect() -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/console/"));
    response
}

/// `GET /console/`: the page.
pub(crate) async fn index() -> Response {
    serve("index.html")
}

/// `GET /console/{file}`.
pub(crate) async fn file(PathText(name): PathText) -> Response {
    serve(&name)
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::not_found(format!("the console has no file {name:?}")).into_response();
    };
    let mut response = asset.text.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    // The files change with the binary; a browser asks again rather than keep an old script.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_names_is_served() {
        let page = ASSETS[0].text;
        for asset in &ASSETS[1..] {
            assert!(
                page.contains(&format!("/console/{}", asset.name)),
                "index.html does not load {}",
                asset.name
            );
        }
    }

    #[test]
    fn the_console_fetches_nothing_from_elsewhere() {
        // The only absolute URL allowed is the SVG namespace, which names, never fetches.
        const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";
        for asset in &ASSETS {
            assert!(
                !asset.text.contains("https://"),
                "{} names https://",
                asset.name
            );
            assert_eq!(
                asset.text.matches("http://").count(),
                asset.text.matches(SVG_NAMESPACE).count(),
                "{} names an http:// address",
                asset.name
            );
        }
    }
}
