//! `POST /v1/commands/canonical`: the exact bytes a client signs for a command body.
//!
//! The web console signs in the browser with WebCrypto's Ed25519, which cannot encode bincode.
//! Rather than a second encoder in JavaScript that could drift from `ledger::codec`, the
//! browser sends the unsigned body (`{signer, key, nonce, expires_at_ns, command}`) here and
//! signs the bytes it gets back; the private key never leaves the browser. Trust: the console's
//! JavaScript comes from the same node, so asking it for the bytes adds no party to trust, and
//! the node that receives the signed command recomputes the bytes from its JSON, so bytes of
//! any other command give `401 signature_invalid`.
//!
//! This file only encodes: it never checks rights, nonces or expiry, and never proposes.

use super::errors::ApiError;
use super::extract::JsonBody;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::envelope::SIGNING_DOMAIN;
use ledger::limits::COMMAND_BYTES_MAX;
use ledger::CommandBody;
use serde_json::json;

/// `POST /v1/commands/canonical`: `{"signing_bytes": hex}`, `SIGNING_DOMAIN ‖ canonical bytes`.
pub(crate) async fn canonical(body: JsonBody<CommandBody>) -> Response {
    let signing_bytes = body.value.signing_bytes();
    let canonical_bytes = signing_bytes.len() - SIGNING_DOMAIN.len();
    if canonical_bytes > COMMAND_BYTES_MAX {
        return ApiError::body_too_large(format!(
            "the command's canonical bytes are {canonical_bytes} bytes, over the limit of \
             {COMMAND_BYTES_MAX}"
        ))
        .into_response();
    }
    Json(json!({
        "signing_bytes": hex::encode(&signing_bytes),
        "canonical_bytes": canonical_bytes,
    }))
    .into_response()
}
