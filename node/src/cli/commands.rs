//! Sign-and-submit commands and reads: builds a ledger `Command` from arguments, signs it
//! with a key file, posts it to its typed route, and prints the node's JSON answer.
//!
//! An envelope gets a fresh random nonce and expires `ENVELOPE_LIFETIME` after now. A write
//! succeeds only if the ledger accepted the command and every event in it; an HTTP error, a
//! recorded rejection or a failed event is printed and gives a non-zero exit. This module
//! never decides what the ledger will accept: it lets the ledger say so.

use super::client::{NodeClient, RequestError, REQUEST_TIMEOUT};
use super::keys::{read_key_file, KeyFile};
use super::{
    AccountCommand, AssetCommand, KeyCommand, PartyCommand, ReadOpts, SignOpts, TopCommand,
    TransferCommand,
};
use anyhow::{bail, Context};
use ledger::reason::Reason;
use ledger::{
    AccountFlags, Command, CommandResult, Effect, NewAccount, Outcome, SignedCommand, Transfer,
    TransferFlags,
};
use serde::{Deserialize, Serialize};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a CLI envelope stays valid: long enough for a slow leader election, well under
/// the ledger's `ENVELOPE_LIFETIME_NS_MAX`, so modest clock skew is tolerated either way.
pub const ENVELOPE_LIFETIME: Duration = Duration::from_secs(60);

const _: () = assert!(
    (ENVELOPE_LIFETIME.as_secs() * 1_000_000_000) < ledger::limits::ENVELOPE_LIFETIME_NS_MAX
);

/// The `200` answer to a write (`spec/http.md`, Writes): `{journal_index, journal_hash,
/// timestamp_ns, outcome}`. Integers are read as JSON numbers or decimal strings; the whole
/// answer is kept as it came, for printing.
#[derive(Clone, Debug, Deserialize)]
pub struct WriteResponse {
    #[serde(deserialize_with = "super::client::lenient_u64")]
    pub journal_index: u64,
    pub outcome: Outcome,
    #[serde(skip)]
    pub raw: serde_json::Value,
}

impl WriteResponse {
    /// Decodes a write's answer, keeping the raw JSON beside the typed fields.
    pub fn from_json(raw: serde_json::Value) -> Result<WriteResponse, serde_json::Error> {
        let mut response = WriteResponse::deserialize(&raw)?;
        response.raw = raw;
        Ok(response)
    }
}

/// The route a command is posted to: its typed route where `spec/http.md` names one, else
/// the generic `/v1/commands` (genesis, and every command without a typed route).
pub fn route_for(command: &Command) -> &'static str {
    match command {
        Command::RegisterParty { .. } => "/v1/parties",
        Command::AddKey { .. } | Command::RevokeKey { .. } => "/v1/keys",
        Command::RegisterAsset { .. } => "/v1/assets",
        Command::CreateAccounts { .. } => "/v1/accounts",
        Command::CreateTransfers { .. } => "/v1/transfers",
        Command::SetRateTable { .. } => "/v1/rates",
        Command::RegisterHost { .. } => "/v1/hosts",
        Command::OfferCapacity { .. } => "/v1/offers",
        Command::ReportMeter { .. } => "/v1/meter-reports",
        Command::RequestWithdrawal { .. } => "/v1/withdrawals",
        Command::CancelWithdrawal { .. } => "/v1/withdrawals/cancel",
        Command::ReportAllocation { .. } => "/v1/allocation-reports",
        Command::ListProduct { .. } => "/v1/products",
        Command::PlaceOrder { .. } => "/v1/orders",
        Command::CancelOrder { .. } => "/v1/orders/cancel",
        Command::AmendOrder { .. } => "/v1/orders/amend",
        Command::ListPackage { .. } => "/v1/packages",
        Command::BuyPackage { .. } => "/v1/purchases",
        Command::RecordUsage { .. } => "/v1/usage",
        Command::CreateProgramme { .. } => "/v1/programmes",
        Command::IssueVoucher { .. } => "/v1/vouchers",
        Command::RevokeVoucher { .. } => "/v1/vouchers/revoke",
        _ => "/v1/commands",
    }
}

/// Signs `command` for the key file's party with a random nonce, expiring a minute from now.
pub fn sign(signer: &KeyFile, command: Command) -> anyhow::Result<SignedCommand> {
    let mut nonce = [0u8; 16];
    getrandom::getrandom(&mut nonce).context("the operating system gave no randomness")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    let expires_at_ns = u64::try_from((now + ENVELOPE_LIFETIME).as_nanos())
        .context("the system clock is past the year 2554")?;
    Ok(signer.key.sign(
        signer.party.clone(),
        u128::from_le_bytes(nonce),
        expires_at_ns,
        command,
    ))
}

/// Posts a signed command to its typed route.
pub async fn submit(
    client: &NodeClient,
    signed: &SignedCommand,
) -> Result<WriteResponse, RequestError> {
    let route = route_for(&signed.body.command);
    let raw: serde_json::Value = client.post(route, signed, REQUEST_TIMEOUT).await?;
    WriteResponse::from_json(raw).map_err(|error| RequestError::Decode {
        url: format!("{}{route}", client.base_url()),
        message: format!("not a write answer: {error}"),
    })
}

/// Signs and submits.
pub async fn sign_and_submit(
    client: &NodeClient,
    signer: &KeyFile,
    command: Command,
) -> anyhow::Result<WriteResponse> {
    let signed = sign(signer, command)?;
    Ok(submit(client, &signed).await?)
}

/// Event results that are not failures: the event had been applied before with the same
/// fields, so a retry changed nothing, as it should.
pub fn is_idempotent_repeat(reason: Reason) -> bool {
    matches!(reason, Reason::TransferExists | Reason::AccountExists)
}

/// The failures in an outcome, one line each; empty if everything applied.
pub fn outcome_failures(outcome: &Outcome) -> Vec<String> {
    match &outcome.result {
        CommandResult::Rejected(reason) => vec![format!("command rejected: {reason}")],
        // A usage event reported before is the idempotent repeat; any other is a failure.
        CommandResult::Accepted(Effect::UsageRecorded(recorded)) => recorded
            .results
            .iter()
            .filter(|event| event.reason != Reason::UsageEventExists)
            .map(|event| {
                format!(
                    "event {}: {} ({} tokens consumed, {} rejected)",
                    event.index, event.reason, event.consumed, event.rejected
                )
            })
            .collect(),
        CommandResult::Accepted(_) => outcome
            .event_results()
            .iter()
            .filter(|event| !is_idempotent_repeat(event.reason))
            .map(|event| format!("event {}: {}", event.index, event.reason))
            .collect(),
    }
}

/// Prints a write's answer and turns any failure in it into an error.
fn report_write(response: &WriteResponse) -> anyhow::Result<ExitCode> {
    print_json(&response.raw)?;
    let failures = outcome_failures(&response.outcome);
    if !failures.is_empty() {
        bail!(
            "journal entry {} recorded failures: {}",
            response.journal_index,
            failures.join("; ")
        );
    }
    for event in response.outcome.event_results() {
        eprintln!(
            "note: event {} was applied before ({}); nothing changed",
            event.index, event.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Pretty-prints JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).context("encoding the answer")?
    );
    Ok(())
}

/// Runs a sign-and-submit or read command.
pub async fn run(command: TopCommand) -> anyhow::Result<ExitCode> {
    match command {
        TopCommand::Genesis(args) => {
            let signer = read_key_file(&args.sign.key_file)?;
            let command = Command::Genesis {
                operator: signer.party.clone(),
                keys: vec![signer.key.public_key()],
                assets: args.assets,
            };
            write(&args.sign, &signer, command).await
        }
        TopCommand::Party { command: PartyCommand::Register { sign, party, role, public_key } } => {
            let command = Command::RegisterParty { party, role: role.into(), keys: vec![public_key] };
            load_and_write(&sign, command).await
        }
        TopCommand::Party { command: PartyCommand::Show { party, read } } => {
            show(&read, &format!("/v1/parties/{party}")).await
        }
        TopCommand::Key { command: KeyCommand::Add(args) } => {
            let command = Command::AddKey { party: args.party, key: args.public_key };
            load_and_write(&args.sign, command).await
        }
        TopCommand::Key { command: KeyCommand::Revoke(args) } => {
            let command = Command::RevokeKey { party: args.party, key: args.public_key };
            load_and_write(&args.sign, command).await
        }
        TopCommand::Asset { command: AssetCommand::Register { sign, code } } => {
            load_and_write(&sign, Command::RegisterAsset { asset: code }).await
        }
        TopCommand::Account {
            command: AccountCommand::Create { sign, id, asset, kind, no_overdraft_guard, reference },
        } => {
            let account = NewAccount {
                id,
                asset,
                kind: kind.into(),
                flags: AccountFlags {
                    debits_must_not_exceed_credits: !no_overdraft_guard,
                    ..AccountFlags::default()
                },
                reference,
            };
            load_and_write(&sign, Command::CreateAccounts { accounts: vec![account] }).await
        }
        TopCommand::Account { command: AccountCommand::Show { id, read } } => {
            show(&read, &format!("/v1/accounts/{id}")).await
        }
        TopCommand::Account { command: AccountCommand::Transfers { id, after, limit, read } } => {
            let mut query = Vec::new();
            if let Some(after) = after {
                query.push(format!("after={after}"));
            }
            if let Some(limit) = limit {
                query.push(format!("limit={limit}"));
            }
            show_with_query(&read, &format!("/v1/accounts/{id}/transfers"), query).await
        }
        TopCommand::Transfer(cli) => match (cli.command, cli.create) {
            (Some(TransferCommand::Show { id, read }), _) => {
                show(&read, &format!("/v1/transfers/{id}")).await
            }
            (Some(TransferCommand::Post(args)), _) => resolve_pending(args, true).await,
            (Some(TransferCommand::Void(args)), _) => resolve_pending(args, false).await,
            (None, Some(args)) => {
                let transfer = Transfer {
                    id: args.id,
                    debit_account_id: args.from,
                    credit_account_id: args.to,
                    amount: args.amount,
                    pending_id: 0,
                    timeout_s: args.timeout_s.unwrap_or(0),
                    code: args.code,
                    reference: args.reference,
                    flags: TransferFlags {
                        linked: args.linked,
                        pending: args.pending,
                        ..TransferFlags::default()
                    },
                };
                let command = Command::CreateTransfers { transfers: vec![transfer] };
                load_and_write(&args.sign_opts(), command).await
            }
            (None, None) => bail!("cbank transfer: give --id, --from, --to and --amount, or a subcommand (post, void, show)"),
        },
        TopCommand::Journal(args) => {
            let mut query = Vec::new();
            if let Some(from) = args.from {
                query.push(format!("from={from}"));
            }
            if let Some(limit) = args.limit {
                query.push(format!("limit={limit}"));
            }
            show_with_query(&args.read, "/v1/journal", query).await
        }
        TopCommand::Head(read) => show(&read, "/v1/head").await,
        TopCommand::Node { .. }
        | TopCommand::Cluster { .. }
        | TopCommand::Keys { .. }
        | TopCommand::Dev(_)
        | TopCommand::Bank(_)
        | TopCommand::Market(_)
        | TopCommand::Vouchers(_)
        | TopCommand::Audit { .. }
        | TopCommand::Bench(_)
        | TopCommand::Sim(_)
        | TopCommand::Agent(_) => bail!("internal error: this command is not dispatched here"),
    }
}

async fn resolve_pending(args: super::PendingResolveArgs, post: bool) -> anyhow::Result<ExitCode> {
    let transfer = Transfer {
        id: args.id,
        debit_account_id: 0,
        credit_account_id: 0,
        amount: args.amount.unwrap_or(0),
        pending_id: args.pending_id,
        timeout_s: 0,
        code: args.code,
        reference: args.reference,
        flags: TransferFlags {
            post_pending: post,
            void_pending: !post,
            ..TransferFlags::default()
        },
    };
    load_and_write(
        &args.sign,
        Command::CreateTransfers {
            transfers: vec![transfer],
        },
    )
    .await
}

pub(super) async fn load_and_write(sign: &SignOpts, command: Command) -> anyhow::Result<ExitCode> {
    let signer = read_key_file(&sign.key_file)?;
    write(sign, &signer, command).await
}

async fn write(sign: &SignOpts, signer: &KeyFile, command: Command) -> anyhow::Result<ExitCode> {
    let client = NodeClient::new(&sign.node.url)?;
    let response = sign_and_submit(&client, signer, command).await?;
    report_write(&response)
}

pub(super) async fn show(read: &ReadOpts, path: &str) -> anyhow::Result<ExitCode> {
    show_with_query(read, path, Vec::new()).await
}

pub(super) async fn show_with_query(
    read: &ReadOpts,
    path: &str,
    mut query: Vec<String>,
) -> anyhow::Result<ExitCode> {
    if read.local {
        query.push("consistency=local".to_owned());
    }
    let path = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    let client = NodeClient::new(&read.node.url)?;
    let answer: serde_json::Value = client.get(&path).await?;
    print_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::outcome::EventResult;
    use ledger::{PartyId, SigningKey};

    fn signer() -> KeyFile {
        KeyFile {
            party: PartyId::new("sme-alpha"),
            key: SigningKey::from_seed([3; 32]),
        }
    }

    #[test]
    fn signed_envelopes_verify_expire_in_a_minute_and_use_fresh_nonces() {
        let signer = signer();
        let command = Command::RegisterAsset {
            asset: "TOK:qwen".parse().unwrap(),
        };
        let a = sign(&signer, command.clone()).unwrap();
        let b = sign(&signer, command).unwrap();
        assert!(a.signature_is_valid() && b.signature_is_valid());
        assert_eq!(a.body.signer, signer.party);
        assert_ne!(a.body.nonce, b.body.nonce);
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let lifetime_ns = a.body.expires_at_ns - now_ns;
        assert!(
            lifetime_ns > 55_000_000_000 && lifetime_ns <= 60_000_000_000,
            "{lifetime_ns}"
        );
    }

    #[test]
    fn each_command_goes_to_its_typed_route() {
        let key = SigningKey::from_seed([1; 32]).public_key();
        let party = PartyId::new("p");
        let cases = [
            (
                Command::Genesis {
                    operator: party.clone(),
                    keys: vec![key],
                    assets: vec![],
                },
                "/v1/commands",
            ),
            (
                Command::RegisterParty {
                    party: party.clone(),
                    role: ledger::Role::Sme,
                    keys: vec![key],
                },
                "/v1/parties",
            ),
            (
                Command::AddKey {
                    party: party.clone(),
                    key,
                },
                "/v1/keys",
            ),
            (Command::RevokeKey { party, key }, "/v1/keys"),
            (
                Command::RegisterAsset {
                    asset: ledger::Asset::Cny,
                },
                "/v1/assets",
            ),
            (Command::CreateAccounts { accounts: vec![] }, "/v1/accounts"),
            (
                Command::CreateTransfers { transfers: vec![] },
                "/v1/transfers",
            ),
            (
                Command::SetRateTable {
                    version: 1,
                    rates: vec![],
                },
                "/v1/rates",
            ),
            (
                Command::CancelWithdrawal { withdrawal_id: 1 },
                "/v1/withdrawals/cancel",
            ),
            (
                Command::ReportAllocation {
                    allocation_id: 1,
                    update: ledger::bank::AllocationUpdate::Running,
                },
                "/v1/allocation-reports",
            ),
            (Command::CancelOrder { order_id: 1 }, "/v1/orders/cancel"),
            (
                Command::AmendOrder {
                    order_id: 1,
                    price: Some(2_500),
                    quantity: 3_600,
                },
                "/v1/orders/amend",
            ),
            (Command::RecordUsage { events: vec![] }, "/v1/usage"),
            (
                Command::RevokeVoucher { voucher_id: 1 },
                "/v1/vouchers/revoke",
            ),
        ];
        for (command, route) in cases {
            assert_eq!(route_for(&command), route, "{}", command.name());
        }
    }

    #[test]
    fn failed_events_are_failures_and_idempotent_repeats_are_not() {
        let outcome = |results| Outcome {
            expired: vec![],
            scheduled: vec![],
            result: CommandResult::Accepted(Effect::TransfersCreated { results }),
        };
        assert!(outcome_failures(&outcome(vec![])).is_empty());
        let repeat = EventResult {
            index: 0,
            reason: Reason::TransferExists,
        };
        assert!(outcome_failures(&outcome(vec![repeat])).is_empty());
        let failed = EventResult {
            index: 1,
            reason: Reason::ExceedsCredits,
        };
        assert_eq!(
            outcome_failures(&outcome(vec![repeat, failed])),
            ["event 1: exceeds_credits"]
        );
        let rejected = Outcome {
            expired: vec![],
            scheduled: vec![],
            result: CommandResult::Rejected(Reason::NotPermitted),
        };
        assert_eq!(
            outcome_failures(&rejected),
            ["command rejected: not_permitted"]
        );
        let usage = |results| Outcome {
            expired: vec![],
            scheduled: vec![],
            result: CommandResult::Accepted(Effect::UsageRecorded(ledger::shelf::UsageRecorded {
                consumed: 0,
                results,
                alerts: vec![],
            })),
        };
        let event = |reason, consumed, rejected| ledger::shelf::UsageResult {
            index: 0,
            reason,
            consumed,
            rejected,
        };
        assert!(outcome_failures(&usage(vec![event(Reason::UsageEventExists, 0, 0)])).is_empty());
        assert_eq!(
            outcome_failures(&usage(vec![event(Reason::QuotaExhausted, 5, 7)])),
            ["event 0: quota_exhausted (5 tokens consumed, 7 rejected)"]
        );
    }

    #[test]
    fn a_write_response_decodes_from_the_documented_json() {
        let json = r#"{"journal_index": 4, "journal_hash": "00ff", "timestamp_ns": 17,
            "outcome": {"expired": [], "result": {"accepted": {"transfers_created": {"results": [{"index": 0, "reason": "exceeds_credits"}]}}}}}"#;
        let response = WriteResponse::from_json(serde_json::from_str(json).unwrap()).unwrap();
        assert_eq!(response.journal_index, 4);
        assert_eq!(response.raw["journal_hash"], "00ff");
        let text = json.replace("\"journal_index\": 4", "\"journal_index\": \"4\"");
        let response = WriteResponse::from_json(serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(response.journal_index, 4);
        assert_eq!(
            outcome_failures(&response.outcome),
            ["event 0: exceeds_credits"]
        );
        assert!(report_write(&response).is_err());
    }
}
