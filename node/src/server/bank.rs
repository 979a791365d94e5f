//! Read handlers of the compute bank (`spec/bank.md`): the rate table, hosts and their offers
//! and allocations, withdrawals, and account and party statements.
//!
//! Every read takes `?consistency=linearizable|local` and is made fresh exactly as in `reads.rs`
//! (a linearizable read on a follower is forwarded to the leader). Answers are the `ledger`
//! types as they serialize; lists that grow without bound are paged (`after`, `limit`, `next`).
//! A statement is `ledger::statement::statement` over every transfer of the account, read from
//! the node's account index and bounded by `STATEMENT_LINES_MAX`. This file never writes
//! anything and never decides a business outcome: the bank's commands go through `writes.rs`.

use super::errors::ApiError;
use super::extract::{parse_bounded, parse_u128, Params, PathText};
use super::reads::{
    answer, answer_by_id, ensure_fresh, json_answer, list_page, no_party, page, parse_party,
    party_list, storage_error, Consistency, ListParams, ReadParams,
};
use super::routes::ApiState;
use crate::limits::{STATEMENT_HEADER_LINES, STATEMENT_LINES_MAX};
use crate::storage::{AppliedState, ACCOUNT_TRANSFERS_PAGE_MAX};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use ledger::bank::{Allocation, AllocationState, Withdrawal};
use ledger::statement::{statement, Statement};
use ledger::{Account, Asset, Ledger, TransferRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Which allocations `GET /v1/hosts/{id}/allocations` lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AllocationFilter {
    /// `granted` or `running`, whatever the time: the allocations the host still has to run
    /// or report on. (`spec/bank.md` §1.8 calls an allocation active for the engine only while
    /// also `end_ns > now`; one past its end still awaits its host's final report.)
    #[default]
    Active,
    Granted,
    Running,
    Completed,
    Failed,
    All,
}

impl AllocationFilter {
    fn admits(self, state: AllocationState) -> bool {
        match self {
            AllocationFilter::Active => {
                matches!(state, AllocationState::Granted | AllocationState::Running)
            }
            AllocationFilter::Granted => state == AllocationState::Granted,
            AllocationFilter::Running => state == AllocationState::Running,
            AllocationFilter::Completed => matches!(state, AllocationState::Completed { .. }),
            AllocationFilter::Failed => matches!(state, AllocationState::Failed { .. }),
            AllocationFilter::All => true,
        }
    }
}

/// Query parameters of `GET /v1/hosts/{id}/allocations`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AllocationListParams {
    #[serde(default)]
    consistency: Consistency,
    #[serde(default)]
    state: AllocationFilter,
    after: Option<String>,
    limit: Option<String>,
}

/// Query parameters of the statements (`asset` only for a party's).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatementParams {
    #[serde(default)]
    consistency: Consistency,
    from_ns: Option<String>,
    to_ns: Option<String>,
    asset: Option<String>,
}

fn no_host(host_id: &str) -> ApiError {
    ApiError::not_found(format!("no host {host_id:?}"))
}

/// `GET /v1/rates`: the rate table in force.
pub(crate) async fn rate_table(
    State(api): State<ApiState>,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        ledger.bank().rate_table().cloned().ok_or_else(|| {
            ApiError::not_found("no rate table has been published yet (set_rate_table)")
        })
    })
    .await
}

/// `GET /v1/rates/{version}`: one version of the rate table, in force or not.
pub(crate) async fn rate_table_version(
    State(api): State<ApiState>,
    PathText(version): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let version = match parse_bounded("version", Some(&version), 1, 1, u64::from(u32::MAX)) {
        // At most u32::MAX, checked just above.
        Ok(version) => version as u32,
        Err(error) => return error.into_response(),
    };
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let tables = &ledger.bank().rate_tables;
        // Versions are kept in order, from 1 up by one (`spec/bank.md` §1.6).
        match tables.binary_search_by_key(&version, |table| table.version) {
            Ok(position) => Ok(tables[position].clone()),
            Err(_) => Err(ApiError::not_found(format!(
                "no rate table version {version} (the latest is {})",
                tables.last().map_or(0, |table| table.version)
            ))),
        }
    })
    .await
}

/// `GET /v1/hosts/{id}`.
pub(crate) async fn host(
    State(api): State<ApiState>,
    PathText(host_id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let host = ledger.bank().hosts.get(&host_id);
        host.cloned().ok_or_else(|| no_host(&host_id))
    })
    .await
}

/// `GET /v1/hosts/{id}/offers?after=&limit=`: the host's offers by window start.
pub(crate) async fn host_offers(
    State(api): State<ApiState>,
    PathText(host_id): PathText,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (after, limit) = match list_page(params.after.as_deref(), params.limit.as_deref()) {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let bank = ledger.bank();
        if !bank.hosts.contains_key(&host_id) {
            return Err(no_host(&host_id));
        }
        let start = match after {
            None => Bound::Included((host_id.clone(), 0)),
            Some(offer_id) => {
                let offer = bank.offers.get(&offer_id);
                let offer = offer.filter(|offer| offer.spec.host_id == host_id);
                let offer = offer.ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "after names offer {offer_id}, which is not an offer of host {host_id:?}"
                    ))
                })?;
                Bound::Excluded((host_id.clone(), offer.spec.start_ns))
            }
        };
        let end = Bound::Included((host_id.clone(), u64::MAX));
        let offers = bank.host_offers.range((start, end)).map(|(_, offer_id)| {
            // `host_offers` names only stored offers: both are written together.
            bank.offers.get(offer_id).expect("an indexed offer exists")
        });
        let (offers, next) = page(offers, limit, |offer| offer.spec.offer_id);
        Ok(json!({ "offers": offers, "next": next }))
    })
    .await
}

/// `GET /v1/offers/{id}`.
pub(crate) async fn offer(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_by_id(
        &api,
        "offer id",
        &id,
        params.consistency,
        &uri,
        &headers,
        |ledger, id| {
            let offer = ledger.bank().offers.get(&id).cloned();
            offer.ok_or_else(|| ApiError::not_found(format!("no offer {id}")))
        },
    )
    .await
}

/// `GET /v1/hosts/{id}/allocations?state=&after=&limit=`: by start, then allocation id.
pub(crate) async fn host_allocations(
    State(api): State<ApiState>,
    PathText(host_id): PathText,
    Params(params): Params<AllocationListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (after, limit) = match list_page(params.after.as_deref(), params.limit.as_deref()) {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    let filter = params.state;
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let bank = ledger.bank();
        if !bank.hosts.contains_key(&host_id) {
            return Err(no_host(&host_id));
        }
        // No index by host: allocations are few next to transfers, and a scan is cheap.
        let key = |allocation: &Allocation| (allocation.start_ns, allocation.allocation_id);
        let mut allocations: Vec<&Allocation> = bank
            .allocations
            .values()
            .filter(|allocation| allocation.host_id == host_id && filter.admits(allocation.state))
            .collect();
        allocations.sort_by_key(|allocation| key(allocation));
        let cursor = match after {
            None => None,
            Some(allocation_id) => {
                let allocation = bank.allocations.get(&allocation_id);
                let allocation = allocation.filter(|allocation| allocation.host_id == host_id);
                Some(key(allocation.ok_or_else(|| {
                    ApiError::invalid_parameter(format!(
                        "after names allocation {allocation_id}, which is not an allocation \
                         of host {host_id:?}"
                    ))
                })?))
            }
        };
        let allocations = allocations
            .into_iter()
            .filter(|allocation| cursor.is_none_or(|cursor| key(allocation) > cursor));
        let (allocations, next) = page(allocations, limit, |allocation| allocation.allocation_id);
        Ok(json!({ "allocations": allocations, "next": next }))
    })
    .await
}

/// `GET /v1/allocations/{id}`.
pub(crate) async fn allocation(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_by_id(
        &api,
        "allocation id",
        &id,
        params.consistency,
        &uri,
        &headers,
        |ledger, id| {
            let allocation = ledger.bank().allocations.get(&id).cloned();
            allocation.ok_or_else(|| ApiError::not_found(format!("no allocation {id}")))
        },
    )
    .await
}

/// `GET /v1/withdrawals/{id}`.
pub(crate) async fn withdrawal(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_by_id(
        &api,
        "withdrawal id",
        &id,
        params.consistency,
        &uri,
        &headers,
        |ledger, id| {
            let withdrawal = ledger.bank().withdrawals.get(&id).cloned();
            withdrawal.ok_or_else(|| ApiError::not_found(format!("no withdrawal {id}")))
        },
    )
    .await
}

/// `GET /v1/parties/{id}/withdrawals?after=&limit=`: the party's withdrawals by request time,
/// then withdrawal id.
pub(crate) async fn party_withdrawals(
    State(api): State<ApiState>,
    PathText(party): PathText,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    party_list(
        &api,
        party,
        &params,
        &uri,
        &headers,
        |ledger, party, after, limit| {
            let bank = ledger.bank();
            let key = |withdrawal: &Withdrawal| {
                (withdrawal.requested_at_ns, withdrawal.spec.withdrawal_id)
            };
            let mut withdrawals: Vec<&Withdrawal> = bank
                .withdrawals
                .values()
                .filter(|withdrawal| withdrawal.party == *party)
                .collect();
            withdrawals.sort_by_key(|withdrawal| key(withdrawal));
            let cursor = match after {
                None => None,
                Some(withdrawal_id) => {
                    let withdrawal = bank.withdrawals.get(&withdrawal_id);
                    let withdrawal = withdrawal.filter(|withdrawal| withdrawal.party == *party);
                    Some(key(withdrawal.ok_or_else(|| {
                        ApiError::invalid_parameter(format!(
                            "after names withdrawal {withdrawal_id}, which is not a withdrawal of \
                         {party}"
                        ))
                    })?))
                }
            };
            let withdrawals = withdrawals
                .into_iter()
                .filter(|withdrawal| cursor.is_none_or(|cursor| key(withdrawal) > cursor));
            let (withdrawals, next) = page(withdrawals, limit, |withdrawal| {
                withdrawal.spec.withdrawal_id
            });
            Ok(json!({ "withdrawals": withdrawals, "next": next }))
        },
    )
    .await
}

/// The period `[from_ns, to_ns)` of a statement: from the start of time to its end by default.
fn period(params: &StatementParams) -> Result<(u64, u64), ApiError> {
    let from_ns = parse_bounded("from_ns", params.from_ns.as_deref(), 0, 0, u64::MAX)?;
    let to_ns = parse_bounded("to_ns", params.to_ns.as_deref(), u64::MAX, 0, u64::MAX)?;
    if from_ns > to_ns {
        return Err(ApiError::invalid_parameter(format!(
            "from_ns ({from_ns}) is after to_ns ({to_ns})"
        )));
    }
    Ok((from_ns, to_ns))
}

/// What one statement is built from, copied out of the ledger under one read lock.
struct StatementInput {
    account: Account,
    records: Vec<TransferRecord>,
    /// The pending transfers that the posts and voids among `records` resolve.
    pending: BTreeMap<u128, TransferRecord>,
}

impl StatementInput {
    fn statement(&self, from_ns: u64, to_ns: u64) -> Statement {
        statement(
            &self.account,
            &self.records,
            |id| self.pending.get(&id),
            from_ns,
            to_ns,
        )
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::statement_too_large(format!(
        "the statement of {what} would have more than {STATEMENT_LINES_MAX} lines, more than one \
         answer may hold (a statement recomputes balances from an account's first transfer, \
         whatever the period); read the transfers page by page from \
         /v1/accounts/{{id}}/transfers"
    ))
}

/// The ids of every transfer applied to `account_id`, oldest first, counted with the
/// account's header against `budget` (what is left of `STATEMENT_LINES_MAX` for this request).
fn account_transfer_ids(
    applied: &AppliedState,
    account_id: u128,
    budget: &mut usize,
    what: &str,
) -> Result<Vec<u128>, ApiError> {
    *budget = budget
        .checked_sub(STATEMENT_HEADER_LINES)
        .ok_or_else(|| too_large(what))?;
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let records = applied
            .account_transfers(account_id, after, ACCOUNT_TRANSFERS_PAGE_MAX)
            .map_err(storage_error)?;
        ids.extend(records.iter().map(|record| record.transfer.id));
        if ids.len() > *budget {
            return Err(too_large(what));
        }
        match records.last() {
            Some(last) if records.len() == ACCOUNT_TRANSFERS_PAGE_MAX => {
                after = Some(last.transfer.id);
            }
            _ => break,
        }
    }
    *budget -= ids.len();
    Ok(ids)
}

/// Copies an account, its transfers and the pending transfers they resolve.
fn statement_input(
    ledger: &Ledger,
    account_id: u128,
    transfer_ids: &[u128],
) -> Result<StatementInput, ApiError> {
    let account = ledger
        .account(account_id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no account {account_id}")))?;
    let mut records = Vec::with_capacity(transfer_ids.len());
    let mut pending = BTreeMap::new();
    for id in transfer_ids {
        let record = ledger.transfer(*id).ok_or_else(|| {
            ApiError::internal(format!(
                "the index of account {account_id} names unknown transfer {id}"
            ))
        })?;
        let flags = record.transfer.flags;
        if flags.post_pending || flags.void_pending {
            let pending_id = record.transfer.pending_id;
            if let Some(resolved) = ledger.transfer(pending_id) {
                pending.insert(pending_id, resolved.clone());
            }
        }
        records.push(record.clone());
    }
    Ok(StatementInput {
        account,
        records,
        pending,
    })
}

/// Runs a statement's storage reads and arithmetic on the blocking pool.
async fn blocking<T: Serialize + Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Response {
    match crate::blocking::run(work).await {
        Ok(Ok(value)) => json_answer(&value),
        Ok(Err(error)) => error.into_response(),
        Err(error) => {
            ApiError::internal(format!("building the statement: {error}")).into_response()
        }
    }
}

/// `GET /v1/accounts/{id}/statement?from_ns=&to_ns=`.
pub(crate) async fn account_statement(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<StatementParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parsed = parse_u128("account id", &id).and_then(|id| Ok((id, period(&params)?)));
    let (id, (from_ns, to_ns)) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let applied = api.applied.clone();
    blocking(move || {
        if !applied.read(|ledger| ledger.account(id).is_some()) {
            return Err(ApiError::not_found(format!("no account {id}")));
        }
        let mut budget = STATEMENT_LINES_MAX;
        let what = format!("account {id}");
        let ids = account_transfer_ids(&applied, id, &mut budget, &what)?;
        let input = applied.read(|ledger| statement_input(ledger, id, &ids))?;
        Ok(input.statement(from_ns, to_ns))
    })
    .await
}

/// `GET /v1/parties/{id}/statement?asset=&from_ns=&to_ns=`: a statement per account of the
/// party (of `asset` only, if given), by account id.
pub(crate) async fn party_statement(
    State(api): State<ApiState>,
    PathText(party): PathText,
    Params(params): Params<StatementParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let parsed = parse_party(party).and_then(|party| {
        let asset = match params.asset.as_deref() {
            Some(code) => Some(code.parse::<Asset>().map_err(|error| {
                ApiError::invalid_parameter(format!("asset {code:?}: {error}"))
            })?),
            None => None,
        };
        Ok((party, asset, period(&params)?))
    });
    let (party, asset, (from_ns, to_ns)) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let applied = api.applied.clone();
    blocking(move || {
        let account_ids = applied.read(|ledger| {
            ledger.party(&party).ok_or_else(|| no_party(&party))?;
            // A pass over every account: the ledger keeps no index of accounts by party.
            let accounts = ledger.accounts().filter(|account| {
                account.party == party && asset.as_ref().is_none_or(|asset| account.asset == *asset)
            });
            Ok::<_, ApiError>(accounts.map(|account| account.id).collect::<Vec<_>>())
        })?;
        let mut budget = STATEMENT_LINES_MAX;
        let what = format!("party {party}");
        let mut transfer_ids = Vec::with_capacity(account_ids.len());
        for account_id in &account_ids {
            transfer_ids.push(account_transfer_ids(
                &applied,
                *account_id,
                &mut budget,
                &what,
            )?);
        }
        let inputs = applied.read(|ledger| {
            account_ids
                .iter()
                .zip(&transfer_ids)
                .map(|(account_id, ids)| statement_input(ledger, *account_id, ids))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let statements: Vec<Statement> = inputs
            .iter()
            .map(|input| input.statement(from_ns, to_ns))
            .collect();
        Ok(json!({ "party": party, "statements": statements }))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::STATEMENT_LINE_BYTES_MAX;
    use ledger::statement::{Movement, Side, StatementLine};
    use ledger::{Balances, PartyId, PendingState};

    #[test]
    fn the_largest_statement_line_fits_its_bound() {
        let max = u128::MAX;
        let line = StatementLine {
            transfer_id: max,
            timestamp_ns: u64::MAX,
            journal_index: u64::MAX,
            code: u16::MAX,
            reference: max,
            side: Side::Credit,
            movement: Movement::PostedFromReservation,
            amount: max,
            counterparty_account_id: max,
            state: PendingState::Posted {
                by: max,
                amount: max,
            },
            balances_after: Balances {
                debits_pending: max,
                debits_posted: max,
                credits_pending: max,
                credits_posted: max,
            },
        };
        let bytes = serde_json::to_string(&line)
            .expect("a line serialises")
            .len();
        // Less than the bound: the comma between lines in the array.
        assert!(bytes < STATEMENT_LINE_BYTES_MAX, "{bytes} bytes");
    }

    #[test]
    fn the_largest_statement_header_fits_its_bound() {
        let max = u128::MAX;
        let balances = Balances {
            debits_pending: max,
            debits_posted: max,
            credits_pending: max,
            credits_posted: max,
        };
        let account = Account {
            id: max,
            party: PartyId::new("p".repeat(ledger::limits::PARTY_ID_BYTES_MAX)),
            asset: Asset::Gpuh("G".repeat(32)),
            kind: ledger::AccountKind::Rounding,
            flags: ledger::AccountFlags {
                linked: true,
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: true,
            },
            reference: max,
            balances,
            timestamp_ns: u64::MAX,
        };
        let statement = Statement {
            account,
            from_ns: u64::MAX,
            to_ns: u64::MAX,
            opening: balances,
            closing: balances,
            lines: Vec::new(),
        };
        let bytes = serde_json::to_string(&statement)
            .expect("a statement serialises")
            .len();
        assert!(
            bytes < STATEMENT_HEADER_LINES * STATEMENT_LINE_BYTES_MAX,
            "{bytes} bytes"
        );
    }

    #[test]
    fn the_active_filter_admits_what_the_host_still_owes_a_report_on() {
        let done = AllocationState::Completed { delivered_gpu_s: 1 };
        let failed = AllocationState::Failed { delivered_gpu_s: 0 };
        let all = [
            AllocationState::Granted,
            AllocationState::Running,
            done,
            failed,
        ];
        let admitted =
            |filter: AllocationFilter| all.iter().filter(|state| filter.admits(**state)).count();
        assert_eq!(admitted(AllocationFilter::Active), 2);
        assert_eq!(admitted(AllocationFilter::All), 4);
        assert!(
            AllocationFilter::Completed.admits(done) && !AllocationFilter::Completed.admits(failed)
        );
        assert_eq!(AllocationFilter::default(), AllocationFilter::Active);
    }

    #[test]
    fn a_period_is_ordered_and_defaults_to_all_time() {
        let params = |from: Option<&str>, to: Option<&str>| StatementParams {
            from_ns: from.map(str::to_owned),
            to_ns: to.map(str::to_owned),
            ..StatementParams::default()
        };
        assert_eq!(period(&params(None, None)).ok(), Some((0, u64::MAX)));
        assert_eq!(period(&params(Some("5"), Some("5"))).ok(), Some((5, 5)));
        assert_eq!(
            period(&params(Some("6"), Some("5")))
                .expect_err("reversed")
                .code,
            "invalid_parameter"
        );
    }
}
