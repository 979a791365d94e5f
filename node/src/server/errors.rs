//! The one place that maps errors to HTTP statuses and JSON bodies (and to gRPC codes).
//!
//! Every error the API returns is `{"code": "<stable_snake_case>", "message": "<text>"}`, plus
//! the optional fields `spec/http.md` names. A command the ledger rejected carries the ledger's
//! `Reason` name as its code; [`reason_status`] decides its status, and nothing else in the node
//! may. This module never decides whether a command is acceptable (the ledger does) and never
//! hides an internal error behind a 2xx.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger::{Head, Reason};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Codes of errors raised by the node itself, before or around the ledger (`spec/http.md`).
pub mod code {
    pub const MALFORMED_JSON: &str = "malformed_json";
    pub const WRONG_COMMAND_TYPE: &str = "wrong_command_type";
    pub const INVALID_PARAMETER: &str = "invalid_parameter";
    pub const SIGNATURE_INVALID: &str = "signature_invalid";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const BODY_TIMEOUT: &str = "body_timeout";
    pub const BATCH_TOO_LARGE: &str = "batch_too_large";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const OVERLOADED: &str = "overloaded";
    pub const UNAVAILABLE: &str = "unavailable";
    pub const TIMEOUT: &str = "timeout";
    pub const ADMIN_TOKEN_INVALID: &str = "admin_token_invalid";
    /// `POST /v1/admin/cluster/init` on a node that already belongs to a cluster.
    pub const CLUSTER_ALREADY_INITIALISED: &str = "cluster_already_initialised";
    /// A membership change that Raft refused (one already in progress, or it would leave the
    /// cluster without voters).
    pub const MEMBERSHIP_CHANGE_REFUSED: &str = "membership_change_refused";
    /// `POST /v1/admin/faults` on a node started without fault administration.
    pub const FAULT_ADMIN_DISABLED: &str = "fault_admin_disabled";
    /// The node's own storage failed while reading: a bug or a broken disk, never bad input.
    pub const INTERNAL: &str = "internal";
    /// A statement would have more than `STATEMENT_LINES_MAX` lines.
    pub const STATEMENT_TOO_LARGE: &str = "statement_too_large";
    /// A programme report would have more than `PROGRAMME_REPORT_ROWS_MAX` rows.
    pub const REPORT_TOO_LARGE: &str = "report_too_large";
}

/// An error answer: status, stable code, human message and optional extra fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Cow<'static, str>,
    pub message: String,
    /// Extra fields beside `code` and `message` (for example `journal_index`).
    pub fields: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            fields: Map::new(),
        }
    }

    /// Adds an extra field to the body.
    pub fn with_field(mut self, name: &str, value: impl Into<Value>) -> ApiError {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    pub fn malformed_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::MALFORMED_JSON, message)
    }

    pub fn wrong_command_type(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::WRONG_COMMAND_TYPE, message)
    }

    pub fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code::INVALID_PARAMETER, message)
    }

    pub fn signature_invalid() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::SIGNATURE_INVALID,
            "the signature does not verify over the command body with the body's key; \
             nothing was proposed",
        )
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            code::METHOD_NOT_ALLOWED,
            message,
        )
    }

    pub fn body_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, code::BODY_TOO_LARGE, message)
    }

    pub fn body_timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, code::BODY_TIMEOUT, message)
    }

    pub fn batch_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::BATCH_TOO_LARGE,
            message,
        )
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code::UNSUPPORTED_MEDIA_TYPE,
            message,
        )
    }

    pub fn overloaded(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, code::OVERLOADED, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, message)
    }

    pub fn timeout(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::GATEWAY_TIMEOUT, code::TIMEOUT, message)
    }

    pub fn admin_token_invalid() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            code::ADMIN_TOKEN_INVALID,
            "missing or wrong administrator token: send `authorization: Bearer <token>` with \
             the token from <data dir>/admin.token",
        )
    }

    /// A statement over `STATEMENT_LINES_MAX` lines: the request is well formed, but
    /// this node will not build an answer that large (narrowing the period does not help, since
    /// a statement recomputes balances from the account's first transfer).
    pub fn statement_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::STATEMENT_TOO_LARGE,
            message,
        )
    }

    /// A programme report over `PROGRAMME_REPORT_ROWS_MAX` rows (nothing is journaled).
    pub fn report_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::REPORT_TOO_LARGE,
            message,
        )
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code::INTERNAL, message)
    }

    /// A command the ledger rejected: the reason is the code, and the journal entry that
    /// recorded the rejection is named.
    pub fn rejected(reason: Reason, head: Head) -> ApiError {
        ApiError {
            status: reason_status(reason),
            code: Cow::Borrowed(reason.name()),
            message: format!(
                "the ledger rejected the command ({reason}); journal entry {} records it",
                head.index
            ),
            fields: Map::new(),
        }
        .with_field("journal_index", head.index)
        .with_field("journal_hash", head.hash.to_string())
    }

    /// The JSON body: `code`, `message`, then the extra fields.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("code".to_owned(), Value::from(self.code.as_ref()));
        body.insert("message".to_owned(), Value::from(self.message.as_str()));
        for (name, value) in &self.fields {
            body.insert(name.clone(), value.clone());
        }
        Value::Object(body)
    }

    /// The body with the HTTP status as a field, for one result inside a batch answer (whose
    /// own status is 200).
    pub fn body_with_status(&self) -> Value {
        let mut body = self.body();
        if let Value::Object(map) = &mut body {
            map.insert("status".to_owned(), Value::from(self.status.as_u16()));
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// The HTTP status of a command the ledger rejected with `reason` (`spec/http.md`).
pub fn reason_status(reason: Reason) -> StatusCode {
    match reason {
        Reason::KeyNotOfSigner | Reason::SignerUnknown | Reason::SignatureInvalid => {
            StatusCode::UNAUTHORIZED
        }
        Reason::NotPermitted | Reason::NotOrderOwner => StatusCode::FORBIDDEN,
        Reason::NonceReplayed | Reason::GenesisAlreadyApplied => StatusCode::CONFLICT,
        Reason::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        // The supermarket (`spec/http.md`): what a command names does not exist…
        Reason::ProductUnknown
        | Reason::OrderUnknown
        | Reason::AccountUnknown
        | Reason::PackageUnknown => StatusCode::NOT_FOUND,
        // … or exists already as something else (the same id with the same fields is an
        // accepted repeat, not an error).
        Reason::ProductExistsWithDifferentFields
        | Reason::OrderExistsWithDifferentFields
        | Reason::PackageExistsWithDifferentFields
        | Reason::PurchaseExistsWithDifferentFields
        | Reason::UsageEventExists => StatusCode::CONFLICT,
        // Vouchers (`spec/vouchers.md`), by the same classes: unknown things, taken ids, and
        // another government's programme or another SME's voucher.
        Reason::ProgrammeUnknown | Reason::VoucherUnknown => StatusCode::NOT_FOUND,
        Reason::ProgrammeExistsWithDifferentFields | Reason::VoucherExistsWithDifferentFields => {
            StatusCode::CONFLICT
        }
        Reason::NotProgrammeOwner | Reason::VoucherNotBeneficiary => StatusCode::FORBIDDEN,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The gRPC code of a command the ledger rejected with `reason`, for the agent service: the
/// same classes as [`reason_status`].
pub fn reason_grpc_code(reason: Reason) -> tonic::Code {
    match reason_status(reason) {
        StatusCode::UNAUTHORIZED => tonic::Code::Unauthenticated,
        StatusCode::FORBIDDEN => tonic::Code::PermissionDenied,
        StatusCode::CONFLICT => tonic::Code::AlreadyExists,
        StatusCode::NOT_FOUND => tonic::Code::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
        _ => tonic::Code::FailedPrecondition,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_maps_to_a_client_error_with_its_own_name() {
        for reason in Reason::ALL {
            let status = reason_status(*reason);
            assert!(status.is_client_error(), "{reason}: {status}");
            let error = ApiError::rejected(*reason, Head::default());
            assert_eq!(error.code, reason.name());
            assert_eq!(error.body()["code"], reason.name());
            assert_eq!(error.body()["journal_index"], 0);
            assert_ne!(reason_grpc_code(*reason), tonic::Code::Ok);
        }
    }

    #[test]
    fn the_statuses_named_by_the_spec() {
        let cases = [
            (Reason::KeyNotOfSigner, 401),
            (Reason::SignerUnknown, 401),
            (Reason::SignatureInvalid, 401),
            (Reason::NotPermitted, 403),
            (Reason::NonceReplayed, 409),
            (Reason::GenesisAlreadyApplied, 409),
            (Reason::BatchTooLarge, 413),
            (Reason::ExceedsCredits, 422),
            (Reason::LedgerNotInitialised, 422),
        ];
        for (reason, status) in cases {
            assert_eq!(reason_status(reason).as_u16(), status, "{reason}");
        }
    }

    #[test]
    fn the_bank_reasons_follow_the_general_rule() {
        // spec/http.md: only the reasons it names get 401, 403, 409 or 413; the bank's own
        // (id_reserved, 88, and 140 to 182), not_host_owner included, are all 422.
        let bank = Reason::ALL
            .iter()
            .filter(|reason| reason.number() == 88 || (140..=182).contains(&reason.number()));
        let mut count = 0;
        for reason in bank {
            assert_eq!(reason_status(*reason).as_u16(), 422, "{reason}");
            count += 1;
        }
        assert!(count >= 26, "only {count} bank reasons found");
    }

    #[test]
    fn the_market_reasons_named_by_the_spec() {
        // spec/http.md: unknown things 404, a different thing under a taken id 409, another
        // party's order 403; every other market reason (200 to 245) is 422.
        let named = [
            (Reason::ProductUnknown, 404),
            (Reason::OrderUnknown, 404),
            (Reason::AccountUnknown, 404),
            (Reason::PackageUnknown, 404),
            (Reason::ProductExistsWithDifferentFields, 409),
            (Reason::OrderExistsWithDifferentFields, 409),
            (Reason::PackageExistsWithDifferentFields, 409),
            (Reason::PurchaseExistsWithDifferentFields, 409),
            (Reason::UsageEventExists, 409),
            (Reason::NotOrderOwner, 403),
        ];
        for (reason, status) in named {
            assert_eq!(reason_status(reason).as_u16(), status, "{reason}");
        }
        assert_eq!(
            reason_grpc_code(Reason::OrderUnknown),
            tonic::Code::NotFound
        );
        let others = Reason::ALL.iter().filter(|reason| {
            (200..=245).contains(&reason.number())
                && !named.iter().any(|(named, _)| named == *reason)
        });
        let mut count = 0;
        for reason in others {
            assert_eq!(reason_status(*reason).as_u16(), 422, "{reason}");
            count += 1;
        }
        // Tick, lot, price, type, post-only, FOK, funds, goods, sold-out and quota problems.
        for reason in [
            Reason::PriceNotOnTick,
            Reason::QuantityNotOnLot,
            Reason::OrderTypeInvalid,
            Reason::PostOnlyWouldCross,
            Reason::FillOrKillUnfillable,
            Reason::InsufficientFunds,
            Reason::InsufficientGoods,
            Reason::PackageSoldOut,
            Reason::QuotaExhausted,
            Reason::QuotaNone,
        ] {
            assert_eq!(reason_status(reason).as_u16(), 422, "{reason}");
        }
        assert!(count >= 25, "only {count} other market reasons found");
    }

    #[test]
    fn the_voucher_reasons_named_by_the_spec() {
        // spec/http.md: unknown programme or voucher 404, a different one under a taken id
        // 409, another government's programme or another SME's voucher 403; every other
        // voucher reason (250 to 266) is 422.
        let named = [
            (Reason::ProgrammeUnknown, 404),
            (Reason::VoucherUnknown, 404),
            (Reason::ProgrammeExistsWithDifferentFields, 409),
            (Reason::VoucherExistsWithDifferentFields, 409),
            (Reason::NotProgrammeOwner, 403),
            (Reason::VoucherNotBeneficiary, 403),
        ];
        for (reason, status) in named {
            assert_eq!(reason_status(reason).as_u16(), status, "{reason}");
        }
        let others: Vec<&Reason> = Reason::ALL
            .iter()
            .filter(|reason| {
                (250..=266).contains(&reason.number())
                    && !named.iter().any(|(named, _)| named == *reason)
            })
            .collect();
        for reason in &others {
            assert_eq!(reason_status(**reason).as_u16(), 422, "{reason}");
        }
        assert_eq!(others.len() + named.len(), 17, "reasons 250 to 266");
        assert_eq!(
            reason_grpc_code(Reason::NotProgrammeOwner),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn a_batch_result_carries_its_status() {
        let body = ApiError::overloaded("full").body_with_status();
        assert_eq!(body["status"], 429);
        assert_eq!(body["code"], "overloaded");
        assert_eq!(body["message"], "full");
    }
}
