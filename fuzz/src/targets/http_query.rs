//! HTTP query strings and path parameters: the parameter sets of every read
//! (`node::server::inputs::parse_query`, axum's `Query` as the handlers run it) and the number
//! parsers every id, page bound and time in a path or query goes through.
//!
//! The first byte picks the parameter set; the rest is the query string. Checks: nothing
//! panics; every refusal is `400 invalid_parameter` with a message; the number parsers accept
//! exactly the decimal numbers in range, with the value `str::parse` gives (no sign, no
//! spaces, no hex, no overflow wrapping), and `parse_bounded` never answers outside its bounds.

use node::server::errors::ApiError;
use node::server::inputs::{parse_bounded, parse_query, parse_u128, QUERY_KINDS};

pub fn run(data: &[u8]) {
    let Some((selector, bytes)) = crate::select(data) else {
        return;
    };
    let Ok(query) = std::str::from_utf8(bytes) else {
        return;
    };
    let kind = QUERY_KINDS[usize::from(selector) % QUERY_KINDS.len()];
    if let Err(error) = parse_query(kind, query) {
        check_refusal(&error);
    }
    for pair in query.split('&') {
        let value = pair.split_once('=').map_or(pair, |(_, value)| value);
        check_numbers(value);
    }
}

fn check_refusal(error: &ApiError) {
    assert_eq!(error.status.as_u16(), 400, "{error:?}");
    assert_eq!(error.code, "invalid_parameter", "{error:?}");
    assert!(!error.message.is_empty());
}

fn check_numbers(text: &str) {
    let decimal = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let expected = if decimal {
        text.parse::<u128>().ok()
    } else {
        None
    };
    match parse_u128("id", text) {
        Ok(value) => assert_eq!(Some(value), expected, "parse_u128 accepted {text:?}"),
        Err(error) => {
            assert_eq!(expected, None, "parse_u128 refused {text:?}");
            check_refusal(&error);
        }
    }
    let (min, max, default) = (1, 1_000, 100);
    match parse_bounded("limit", Some(text), default, min, max) {
        Ok(value) => {
            assert!((min..=max).contains(&value), "{value} out of bounds");
            assert_eq!(
                Some(u128::from(value)),
                expected,
                "parse_bounded accepted {text:?}"
            );
        }
        Err(error) => {
            let in_range = expected.is_some_and(|value| (1..=1_000).contains(&value));
            assert!(!in_range, "parse_bounded refused {text:?}");
            check_refusal(&error);
        }
    }
    assert_eq!(
        parse_bounded("limit", None, default, min, max).ok(),
        Some(default)
    );
}
