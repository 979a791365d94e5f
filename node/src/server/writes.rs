//! Write handlers: `POST /v1/commands`, the typed command routes (the bank's, the
//! supermarket's and the vouchers' among them), and `/v1/commands/batch`.
//!
//! A write is parsed, checked against its route's command type, checked for size and
//! signature (a forged or oversized command never reaches the log), then proposed on the leader
//! or forwarded to it from a follower. The answer is the journal entry's position and the
//! ledger's outcome; a command the ledger rejected gets the ledger's reason as its error code.
//! This file never decides whether a command is allowed: the ledger does, when it applies it.

use super::errors::ApiError;
use super::extract::JsonBody;
use super::forward::{leader_from, leadership, no_leader, Leadership};
use super::proposer::{await_applied, ProposeError};
use super::routes::ApiState;
use crate::limits::{COMMANDS_PER_BATCH_REQUEST_MAX, WRITE_DEADLINE};
use crate::raft_types::Applied;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::limits::COMMAND_BYTES_MAX;
use ledger::{Command, SignedCommand};
use serde::Deserialize;
use serde_json::{json, Value};

/// Which commands a write route takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteRoute {
    /// `POST /v1/commands`: any command.
    Commands,
    /// `POST /v1/parties`: `register_party`.
    Parties,
    /// `POST /v1/accounts`: `create_accounts`.
    Accounts,
    /// `POST /v1/transfers`: `create_transfers`.
    Transfers,
    /// `POST /v1/keys`: `add_key` or `revoke_key`.
    Keys,
    /// `POST /v1/assets`: `register_asset`.
    Assets,
    /// `POST /v1/rates`: `set_rate_table`.
    Rates,
    /// `POST /v1/hosts`: `register_host`.
    Hosts,
    /// `POST /v1/offers`: `offer_capacity`.
    Offers,
    /// `POST /v1/meter-reports`: `report_meter`.
    MeterReports,
    /// `POST /v1/withdrawals`: `request_withdrawal`.
    Withdrawals,
    /// `POST /v1/withdrawals/cancel`: `cancel_withdrawal`.
    WithdrawalCancels,
    /// `POST /v1/allocation-reports`: `report_allocation`.
    AllocationReports,
    /// `POST /v1/products`: `list_product`.
    Products,
    /// `POST /v1/orders`: `place_order`.
    Orders,
    /// `POST /v1/orders/cancel`: `cancel_order`.
    OrderCancels,
    /// `POST /v1/orders/amend`: `amend_order`.
    OrderAmends,
    /// `POST /v1/packages`: `list_package`.
    Packages,
    /// `POST /v1/purchases`: `buy_package`.
    Purchases,
    /// `POST /v1/usage`: `record_usage`.
    Usage,
    /// `POST /v1/programmes`: `create_programme`.
    Programmes,
    /// `POST /v1/vouchers`: `issue_voucher`.
    Vouchers,
    /// `POST /v1/vouchers/revoke`: `revoke_voucher`.
    VoucherRevocations,
}

impl WriteRoute {
    /// Whether this route takes `command`.
    fn accepts(self, command: &Command) -> bool {
        match self {
            WriteRoute::Commands => true,
            WriteRoute::Parties => matches!(command, Command::RegisterParty { .. }),
            WriteRoute::Accounts => matches!(command, Command::CreateAccounts { .. }),
            WriteRoute::Transfers => matches!(command, Command::CreateTransfers { .. }),
            WriteRoute::Keys => {
                matches!(command, Command::AddKey { .. } | Command::RevokeKey { .. })
            }
            WriteRoute::Assets => matches!(command, Command::RegisterAsset { .. }),
            WriteRoute::Rates => matches!(command, Command::SetRateTable { .. }),
            WriteRoute::Hosts => matches!(command, Command::RegisterHost { .. }),
            WriteRoute::Offers => matches!(command, Command::OfferCapacity { .. }),
            WriteRoute::MeterReports => matches!(command, Command::ReportMeter { .. }),
            WriteRoute::Withdrawals => matches!(command, Command::RequestWithdrawal { .. }),
            WriteRoute::WithdrawalCancels => {
                matches!(command, Command::CancelWithdrawal { .. })
            }
            WriteRoute::AllocationReports => {
                matches!(command, Command::ReportAllocation { .. })
            }
            WriteRoute::Products => matches!(command, Command::ListProduct { .. }),
            WriteRoute::Orders => matches!(command, Command::PlaceOrder { .. }),
            WriteRoute::OrderCancels => matches!(command, Command::CancelOrder { .. }),
            WriteRoute::OrderAmends => matches!(command, Command::AmendOrder { .. }),
            WriteRoute::Packages => matches!(command, Command::ListPackage { .. }),
            WriteRoute::Purchases => matches!(command, Command::BuyPackage { .. }),
            WriteRoute::Usage => matches!(command, Command::RecordUsage { .. }),
            WriteRoute::Programmes => matches!(command, Command::CreateProgramme { .. }),
            WriteRoute::Vouchers => matches!(command, Command::IssueVoucher { .. }),
            WriteRoute::VoucherRevocations => matches!(command, Command::RevokeVoucher { .. }),
        }
    }

    /// The commands this route takes, for the error message.
    fn expected(self) -> &'static str {
        match self {
            WriteRoute::Commands => "any command",
            WriteRoute::Parties => "register_party",
            WriteRoute::Accounts => "create_accounts",
            WriteRoute::Transfers => "create_transfers",
            WriteRoute::Keys => "add_key or revoke_key",
            WriteRoute::Assets => "register_asset",
            WriteRoute::Rates => "set_rate_table",
            WriteRoute::Hosts => "register_host",
            WriteRoute::Offers => "offer_capacity",
            WriteRoute::MeterReports => "report_meter",
            WriteRoute::Withdrawals => "request_withdrawal",
            WriteRoute::WithdrawalCancels => "cancel_withdrawal",
            WriteRoute::AllocationReports => "report_allocation",
            WriteRoute::Products => "list_product",
            WriteRoute::Orders => "place_order",
            WriteRoute::OrderCancels => "cancel_order",
            WriteRoute::OrderAmends => "amend_order",
            WriteRoute::Packages => "list_package",
            WriteRoute::Purchases => "buy_package",
            WriteRoute::Usage => "record_usage",
            WriteRoute::Programmes => "create_programme",
            WriteRoute::Vouchers => "issue_voucher",
            WriteRoute::VoucherRevocations => "revoke_voucher",
        }
    }
}

/// Checks a command's canonical size and its signature, off the async threads (a full batch
/// command is about a megabyte to encode and hash). Returns the canonical size.
fn check(command: &SignedCommand) -> Result<usize, ApiError> {
    let command_bytes = command.to_bytes().len();
    if command_bytes > COMMAND_BYTES_MAX {
        return Err(ApiError::body_too_large(format!(
            "the command is {command_bytes} bytes in canonical form; at most \
             {COMMAND_BYTES_MAX} are accepted"
        )));
    }
    if !command.signature_is_valid() {
        return Err(ApiError::signature_invalid());
    }
    Ok(command_bytes)
}

/// Runs [`check`] on every command on the blocking pool.
async fn check_all(
    commands: Vec<SignedCommand>,
) -> Result<Vec<(SignedCommand, Result<usize, ApiError>)>, ApiError> {
    crate::blocking::run(move || {
        commands
            .into_iter()
            .map(|command| {
                let checked = check(&command);
                (command, checked)
            })
            .collect()
    })
    .await
    .map_err(|error| ApiError::internal(format!("signature check failed: {error}")))
}

/// The success body of one applied command, or the error of a rejected one.
pub(crate) fn applied_answer(applied: &Applied) -> Result<Value, ApiError> {
    if let Some(reason) = applied.outcome.rejected() {
        return Err(ApiError::rejected(reason, applied.head));
    }
    let outcome = serde_json::to_value(&applied.outcome)
        .map_err(|error| ApiError::internal(format!("encoding the outcome: {error}")))?;
    Ok(json!({
        "journal_index": applied.head.index,
        "journal_hash": applied.head.hash.to_string(),
        "timestamp_ns": applied.timestamp_ns,
        "outcome": outcome,
    }))
}

/// The error for a command that got no answer (other than "not the leader").
fn propose_error(error: ProposeError) -> ApiError {
    match error {
        ProposeError::Overloaded => {
            ApiError::overloaded("the proposal queue is full; retry shortly with the same command")
        }
        ProposeError::Timeout => ApiError::timeout(format!(
            "the command was not applied within {} s; it may still apply: retry with the \
             same ids",
            WRITE_DEADLINE.as_secs()
        )),
        ProposeError::Stopped(why) => ApiError::unavailable(why),
        ProposeError::NotLeader(_) => {
            ApiError::unavailable("this node lost its leadership; retry shortly")
        }
    }
}

/// The original request, kept so a follower can forward it unchanged.
struct Original {
    uri: Uri,
    headers: HeaderMap,
    bytes: Bytes,
}

impl Original {
    async fn forward_to(&self, api: &ApiState, leader: &super::forward::LeaderAddr) -> Response {
        api.forwarder
            .forward(
                leader,
                Method::POST,
                &self.uri,
                &self.headers,
                self.bytes.clone(),
            )
            .await
    }
}

/// A single-command write on `route`.
async fn write(
    api: ApiState,
    route: WriteRoute,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<SignedCommand>,
) -> Response {
    let JsonBody {
        value: command,
        bytes,
    } = body;
    if !route.accepts(&command.body.command) {
        return ApiError::wrong_command_type(format!(
            "this route takes {}, not {}; send other commands to /v1/commands",
            route.expected(),
            command.body.command.name()
        ))
        .into_response();
    }
    let original = Original {
        uri,
        headers,
        bytes,
    };
    let (command, checked) = match check_all(vec![command]).await {
        Ok(mut checked) => match checked.pop() {
            Some(one) => one,
            None => return ApiError::internal("the check lost the command").into_response(),
        },
        Err(error) => return error.into_response(),
    };
    let command_bytes = match checked {
        Ok(command_bytes) => command_bytes,
        Err(error) => return error.into_response(),
    };
    match leadership(&api.raft).await {
        Leadership::Leader => {}
        Leadership::Follower(leader) => return original.forward_to(&api, &leader).await,
        Leadership::Unknown(why) => return no_leader(&why),
    }
    let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
    let result = match api.proposer.enqueue(command, command_bytes) {
        Ok(answer) => await_applied(answer, deadline).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(applied) => match applied_answer(&applied) {
            Ok(body) => Json(body).into_response(),
            Err(error) => error.into_response(),
        },
        // Raft refused the entry before appending it: the leader is elsewhere.
        Err(ProposeError::NotLeader(forward)) => match leader_from(&forward) {
            Some(leader) => original.forward_to(&api, &leader).await,
            None => no_leader("this node is no longer the leader and no other leader is known"),
        },
        Err(error) => propose_error(error).into_response(),
    }
}

macro_rules! typed_write_handlers {
    ($($(#[$doc:meta])* $name:ident => $route:ident;)*) => {$(
        $(#[$doc])*
        pub(crate) async fn $name(
            State(api): State<ApiState>,
            uri: Uri,
            headers: HeaderMap,
            body: JsonBody<SignedCommand>,
        ) -> Response {
            write(api, WriteRoute::$route, uri, headers, body).await
        }
    )*};
}

typed_write_handlers! {
    /// `POST /v1/commands`.
    commands => Commands;
    /// `POST /v1/parties`.
    parties => Parties;
    /// `POST /v1/accounts`.
    accounts => Accounts;
    /// `POST /v1/transfers`.
    transfers => Transfers;
    /// `POST /v1/keys`.
    keys => Keys;
    /// `POST /v1/assets`.
    assets => Assets;
    /// `POST /v1/rates`.
    rates => Rates;
    /// `POST /v1/hosts`.
    hosts => Hosts;
    /// `POST /v1/offers`.
    offers => Offers;
    /// `POST /v1/meter-reports`.
    meter_reports => MeterReports;
    /// `POST /v1/withdrawals`.
    withdrawals => Withdrawals;
    /// `POST /v1/withdrawals/cancel`.
    withdrawal_cancels => WithdrawalCancels;
    /// `POST /v1/allocation-reports`.
    allocation_reports => AllocationReports;
    /// `POST /v1/products`.
    products => Products;
    /// `POST /v1/orders`.
    orders => Orders;
    /// `POST /v1/orders/cancel`.
    order_cancels => OrderCancels;
    /// `POST /v1/orders/amend`.
    order_amends => OrderAmends;
    /// `POST /v1/packages`.
    packages => Packages;
    /// `POST /v1/purchases`.
    purchases => Purchases;
    /// `POST /v1/usage`.
    usage => Usage;
    /// `POST /v1/programmes`.
    programmes => Programmes;
    /// `POST /v1/vouchers`.
    vouchers => Vouchers;
    /// `POST /v1/vouchers/revoke`.
    voucher_revocations => VoucherRevocations;
}

/// The body of `POST /v1/commands/batch`.
#[derive(Debug, Deserialize)]
pub(crate) struct BatchRequest {
    pub commands: Vec<SignedCommand>,
}

/// `POST /v1/commands/batch`: each command is checked and proposed on its own; the answer lists
/// each one's result (a success body or an error object with its `status`), in order.
pub(crate) async fn batch(
    State(api): State<ApiState>,
    uri: Uri,
    headers: HeaderMap,
    body: JsonBody<BatchRequest>,
) -> Response {
    let JsonBody { value, bytes } = body;
    let count = value.commands.len();
    if count > COMMANDS_PER_BATCH_REQUEST_MAX {
        return ApiError::batch_too_large(format!(
            "{count} commands in one batch request; at most {COMMANDS_PER_BATCH_REQUEST_MAX}"
        ))
        .into_response();
    }
    let checked = match check_all(value.commands).await {
        Ok(checked) => checked,
        Err(error) => return error.into_response(),
    };
    match leadership(&api.raft).await {
        Leadership::Leader => {}
        Leadership::Follower(leader) => {
            let original = Original {
                uri,
                headers,
                bytes,
            };
            return original.forward_to(&api, &leader).await;
        }
        Leadership::Unknown(why) => return no_leader(&why),
    }
    let deadline = tokio::time::Instant::now() + WRITE_DEADLINE;
    // Queue every command first, so they can share proposals, then collect the answers.
    let queued: Vec<Result<_, ApiError>> = checked
        .into_iter()
        .map(|(command, checked)| {
            let command_bytes = checked?;
            api.proposer
                .enqueue(command, command_bytes)
                .map_err(propose_error)
        })
        .collect();
    let mut results = Vec::with_capacity(count);
    for queued in queued {
        let result = match queued {
            Ok(answer) => match await_applied(answer, deadline).await {
                Ok(applied) => applied_answer(&applied),
                Err(error) => Err(propose_error(error)),
            },
            Err(error) => Err(error),
        };
        results.push(match result {
            Ok(body) => body,
            Err(error) => error.body_with_status(),
        });
    }
    Json(json!({ "results": results })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{Asset, PartyId, Role};

    #[test]
    fn typed_routes_take_only_their_commands() {
        let asset = Command::RegisterAsset { asset: Asset::Cny };
        let party = Command::RegisterParty {
            party: PartyId::new("p"),
            role: Role::Sme,
            keys: Vec::new(),
        };
        let key = Command::AddKey {
            party: PartyId::new("p"),
            key: ledger::SigningKey::from_seed([1; 32]).public_key(),
        };
        assert!(WriteRoute::Commands.accepts(&asset));
        assert!(WriteRoute::Assets.accepts(&asset));
        assert!(!WriteRoute::Parties.accepts(&asset));
        assert!(WriteRoute::Parties.accepts(&party));
        assert!(!WriteRoute::Accounts.accepts(&party));
        assert!(WriteRoute::Keys.accepts(&key));
        assert!(!WriteRoute::Transfers.accepts(&key));
    }

    #[test]
    fn each_bank_command_has_one_typed_route() {
        use ledger::bank::AllocationUpdate;
        let bank_routes = [
            WriteRoute::Rates,
            WriteRoute::Hosts,
            WriteRoute::Offers,
            WriteRoute::MeterReports,
            WriteRoute::Withdrawals,
            WriteRoute::WithdrawalCancels,
            WriteRoute::AllocationReports,
        ];
        let cancel = Command::CancelWithdrawal { withdrawal_id: 7 };
        let report = Command::ReportAllocation {
            allocation_id: 7,
            update: AllocationUpdate::Running,
        };
        let rates = Command::SetRateTable {
            version: 1,
            rates: Vec::new(),
        };
        for (command, route) in [
            (&cancel, WriteRoute::WithdrawalCancels),
            (&report, WriteRoute::AllocationReports),
            (&rates, WriteRoute::Rates),
        ] {
            for other in bank_routes {
                assert_eq!(other.accepts(command), other == route, "{other:?}");
            }
            assert_eq!(route.expected(), command.name());
            assert!(WriteRoute::Commands.accepts(command));
        }
    }

    #[test]
    fn each_market_command_has_one_typed_route() {
        let market_routes = [
            WriteRoute::Products,
            WriteRoute::Orders,
            WriteRoute::OrderCancels,
            WriteRoute::OrderAmends,
            WriteRoute::Packages,
            WriteRoute::Purchases,
            WriteRoute::Usage,
        ];
        let cases = [
            (
                Command::CancelOrder { order_id: 7 },
                WriteRoute::OrderCancels,
            ),
            (
                Command::AmendOrder {
                    order_id: 7,
                    price: None,
                    quantity: 3_600,
                },
                WriteRoute::OrderAmends,
            ),
            (
                Command::RecordUsage { events: Vec::new() },
                WriteRoute::Usage,
            ),
        ];
        for (command, route) in &cases {
            for other in market_routes {
                assert_eq!(other.accepts(command), other == *route, "{other:?}");
            }
            assert_eq!(route.expected(), command.name());
            assert!(WriteRoute::Commands.accepts(command));
        }
        for route in market_routes {
            assert!(!route.accepts(&Command::RegisterAsset { asset: Asset::Cny }));
        }
    }

    #[test]
    fn each_voucher_command_has_one_typed_route() {
        use ledger::vouchers::{Beneficiaries, Eligible, ProgrammeSpec, VoucherSpec};
        let voucher_routes = [
            WriteRoute::Programmes,
            WriteRoute::Vouchers,
            WriteRoute::VoucherRevocations,
        ];
        let programme = ProgrammeSpec {
            programme_id: "city".to_owned(),
            title: String::new(),
            budget: 1,
            funding_account_id: 1,
            eligible: Eligible::default(),
            max_share_bps: 3_000,
            cap_per_beneficiary_per_year: 1,
            valid_from_ns: 0,
            valid_until_ns: 1,
            beneficiaries: Beneficiaries::Role(Role::Sme),
            stackable: false,
        };
        let voucher = VoucherSpec {
            voucher_id: 1,
            programme_id: "city".to_owned(),
            beneficiary: PartyId::new("sme"),
            amount: 1,
            expires_at_ns: 1,
        };
        let cases = [
            (
                Command::CreateProgramme { programme },
                WriteRoute::Programmes,
            ),
            (Command::IssueVoucher { voucher }, WriteRoute::Vouchers),
            (
                Command::RevokeVoucher { voucher_id: 1 },
                WriteRoute::VoucherRevocations,
            ),
        ];
        for (command, route) in &cases {
            for other in voucher_routes {
                assert_eq!(other.accepts(command), other == *route, "{other:?}");
            }
            assert_eq!(route.expected(), command.name());
            assert!(WriteRoute::Commands.accepts(command));
            assert!(!WriteRoute::Orders.accepts(command));
        }
    }

    #[test]
    fn the_check_refuses_a_forged_signature() {
        let key = ledger::SigningKey::from_seed([2; 32]);
        let mut command = key.sign(
            PartyId::new("p"),
            1,
            1,
            Command::RegisterAsset { asset: Asset::Cny },
        );
        assert!(check(&command).is_ok());
        command.body.nonce = 2;
        assert_eq!(
            check(&command).expect_err("forged").code,
            "signature_invalid"
        );
    }
}
