//! Request extractors whose rejections are our JSON errors, never axum's plain-text ones.
//!
//! [`JsonBody`] checks the content type (415), reads the body under the router's
//! `DefaultBodyLimit` (413) within `REQUEST_BODY_TIMEOUT` (408) and parses it (400 `malformed_json`), and keeps the raw bytes so a
//! follower can forward exactly what the client sent. [`Params`] and [`PathText`] turn query and
//! path rejections into 400 `invalid_parameter`. This file never interprets a command.

use super::errors::ApiError;
use crate::limits::REQUEST_BODY_TIMEOUT;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON request body: the parsed value and the bytes it came from.
pub(crate) struct JsonBody<T> {
    pub value: T,
    pub bytes: Bytes,
}

/// Whether the request says its body is `application/json` (parameters such as `charset` are
/// allowed).
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case("application/json"))
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        if !is_json(request.headers()) {
            return Err(ApiError::unsupported_media_type(
                "the body must be JSON, sent with `content-type: application/json`",
            ));
        }
        // A body that does not arrive in time would hold one of the in-flight permits for as
        // long as the client likes: a few hundred idle connections would lock everyone out.
        let read = Bytes::from_request(request, state);
        let Ok(read) = tokio::time::timeout(REQUEST_BODY_TIMEOUT, read).await else {
            return Err(ApiError::body_timeout(format!(
                "the body did not arrive within {} s of the headers",
                REQUEST_BODY_TIMEOUT.as_secs()
            )));
        };
        let bytes = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large(format!(
                    "the body is larger than {} bytes",
                    crate::limits::REQUEST_BYTES_MAX
                ))
            } else {
                ApiError::malformed_json(format!(
                    "the body could not be read: {}",
                    rejection.body_text()
                ))
            }
        })?;
        let value = parse_json(&bytes)?;
        Ok(JsonBody { value, bytes })
    }
}

/// Parses a JSON body; `400 malformed_json` if it is not JSON or does not match the schema.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::malformed_json(format!("the body does not match the schema: {error}"))
    })
}

/// Query parameters; a rejection is `400 invalid_parameter`.
pub(crate) struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Params<T>, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::invalid_parameter(format!(
                "bad query parameters: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The one path parameter of a route, as text; a rejection is `400 invalid_parameter`.
pub(crate) struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<PathText, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(text)) => Ok(PathText(text)),
            Err(rejection) => Err(ApiError::invalid_parameter(format!(
                "bad path parameter: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Parses a decimal `u128` (an id) named `what`.
pub(crate) fn parse_u128(what: &str, text: &str) -> Result<u128, ApiError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ApiError::invalid_parameter(format!(
            "{what} must be a decimal integer, not {text:?}"
        )));
    }
    text.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("{what} is out of range: {text:?}")))
}

/// Parses an optional decimal number named `what`, between `min` and `max`.
pub(crate) fn parse_bounded(
    what: &str,
    text: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let value = parse_u128(what, text)?;
    match u64::try_from(value) {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(ApiError::invalid_parameter(format!(
            "{what} must be between {min} and {max}, not {text}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn json_content_types() {
        let check = |value: Option<&'static str>, expected: bool| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            }
            assert_eq!(is_json(&headers), expected, "{value:?}");
        };
        check(Some("application/json"), true);
        check(Some("Application/JSON; charset=utf-8"), true);
        check(Some("text/plain"), false);
        check(Some("application/jsonx"), false);
        check(None, false);
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(parse_u128("id", "42").ok(), Some(42));
        assert_eq!(
            parse_u128("id", "340282366920938463463374607431768211455").ok(),
            Some(u128::MAX)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "0x10",
            "340282366920938463463374607431768211456",
        ] {
            let error = parse_u128("id", bad).expect_err(bad);
            assert_eq!(error.code, "invalid_parameter");
        }
        assert_eq!(parse_bounded("limit", None, 100, 1, 1000).ok(), Some(100));
        assert_eq!(
            parse_bounded("limit", Some("1000"), 100, 1, 1000).ok(),
            Some(1000)
        );
        assert!(parse_bounded("limit", Some("1001"), 100, 1, 1000).is_err());
        assert!(parse_bounded("limit", Some("0"), 100, 1, 1000).is_err());
    }
}
