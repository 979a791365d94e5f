//! Read handlers of the compute vouchers: programmes, a programme's report (JSON or CSV, every
//! line with the hash of the journal entry it came from), vouchers by id and by beneficiary,
//! and this node's signed checkpoint of any applied journal entry (what `cbank audit export`
//! gathers from every node).
//!
//! Ledger reads take `?consistency=linearizable|local` and are made fresh exactly as in
//! `reads.rs`; lists are paged with its helpers. A report is `Ledger::programme_report` as it
//! serializes, with `journal_hash` added to each line (looked up in this node's journal store,
//! as `GET /v1/journal` reads it; `null` for an entry before the first one this node stores,
//! after a snapshot install) and the `journal_head` the report was read at. A checkpoint is
//! always this node's own signature, never forwarded: an applied journal entry never changes,
//! so any node that has applied it answers for itself. `u64` and `u128` numbers are decimal
//! strings, as in the ledger's own JSON.
//!
//! This file never writes anything and never decides a business outcome: the vouchers'
//! commands go through `writes.rs`.

use super::errors::ApiError;
use super::extract::{parse_bounded, Params, PathText};
use super::reads::{
    answer, answer_by_id, ensure_fresh, json_answer, owned, page, party_list, storage_error,
    text_list, Consistency, ListParams, ReadParams,
};
use super::routes::ApiState;
use crate::limits::{JOURNAL_STORE_POLL, JOURNAL_STORE_WAIT, PROGRAMME_REPORT_ROWS_MAX};
use crate::storage::{AppliedState, ReadError};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use ledger::vouchers::{
    LineKind, Programme, ProgrammeReport, ProgrammeSpec, Purchase, Redemption, ReportLine, Voucher,
};
use ledger::{Checkpoint, Hash, JournalEntry, Ledger, PartyId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::time::Instant;

/// The media type of a CSV report.
pub(crate) const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// The header row of a CSV report. Every field below it comes from an alphabet without commas,
/// quotes or line breaks (digits, lowercase hex, party ids, the names below), so no field is
/// ever quoted.
pub(crate) const CSV_HEADER: &str =
    "kind,voucher_id,beneficiary,seller,purchase,price,amount,at_ns,journal_index,journal_hash";

/// Query parameters of a programme report.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReportParams {
    #[serde(default)]
    consistency: Consistency,
    #[serde(default)]
    format: ReportFormat,
}

/// How a programme report is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReportFormat {
    #[default]
    Json,
    Csv,
}

/// A programme's money, in fen: `budget = unissued + issued` and `issued = redeemed + expired
/// + revoked + outstanding`.
#[derive(Debug, PartialEq, Eq, Serialize)]
struct TotalsView {
    #[serde(with = "ledger::wire::u128_text")]
    budget: u128,
    #[serde(with = "ledger::wire::u128_text")]
    unissued: u128,
    #[serde(with = "ledger::wire::u128_text")]
    issued: u128,
    #[serde(with = "ledger::wire::u128_text")]
    redeemed: u128,
    #[serde(with = "ledger::wire::u128_text")]
    expired: u128,
    #[serde(with = "ledger::wire::u128_text")]
    revoked: u128,
    #[serde(with = "ledger::wire::u128_text")]
    outstanding: u128,
}

/// A programme: its rules as its government signed them, and where its money stands.
#[derive(Debug, Serialize)]
struct ProgrammeView<'a> {
    spec: &'a ProgrammeSpec,
    government: &'a PartyId,
    /// The programme's own account.
    #[serde(with = "ledger::wire::u128_text")]
    account_id: u128,
    /// What that account holds: the unissued budget and what revoked and expired vouchers
    /// gave back (which is never issued again).
    #[serde(with = "ledger::wire::u128_text")]
    held: u128,
    #[serde(with = "ledger::wire::u64_text")]
    created_at_ns: u64,
    #[serde(with = "ledger::wire::u64_text")]
    journal_index: u64,
    totals: TotalsView,
}

fn programme_view(programme: &Programme) -> ProgrammeView<'_> {
    let totals = programme.totals;
    ProgrammeView {
        spec: &programme.spec,
        government: &programme.government,
        account_id: programme.account_id,
        held: programme.held(),
        created_at_ns: programme.created_at_ns,
        journal_index: programme.journal_index,
        totals: TotalsView {
            budget: programme.spec.budget,
            unissued: programme.unissued(),
            issued: totals.issued,
            redeemed: totals.redeemed,
            expired: totals.expired,
            revoked: totals.revoked,
            outstanding: totals.outstanding(),
        },
    }
}

fn no_programme(programme_id: &str) -> ApiError {
    ApiError::not_found(format!("no programme {programme_id:?}"))
}

/// A voucher, what is left of it, and each purchase (or fill) it paid towards; its `redeemed`
/// is what it paid in all.
#[derive(Debug, Serialize)]
struct VoucherView<'a> {
    #[serde(flatten)]
    voucher: &'a Voucher,
    #[serde(with = "ledger::wire::u128_text")]
    remaining: u128,
    redemptions: Vec<&'a Redemption>,
}

/// Views of `vouchers`, each with its redemptions (one pass over the ledger's redemptions).
fn voucher_views<'a>(ledger: &'a Ledger, vouchers: Vec<&'a Voucher>) -> Vec<VoucherView<'a>> {
    let wanted: BTreeSet<u128> = vouchers.iter().map(|v| v.spec.voucher_id).collect();
    let mut paid: BTreeMap<u128, Vec<&Redemption>> = BTreeMap::new();
    for redemption in &ledger.vouchers().redemptions {
        if wanted.contains(&redemption.voucher_id) {
            paid.entry(redemption.voucher_id)
                .or_default()
                .push(redemption);
        }
    }
    vouchers
        .into_iter()
        .map(|voucher| VoucherView {
            voucher,
            remaining: voucher.remaining(),
            redemptions: paid.remove(&voucher.spec.voucher_id).unwrap_or_default(),
        })
        .collect()
}

/// The journal entry at `index` from this node's store, waiting (at most `JOURNAL_STORE_WAIT`)
/// for one the ledger has applied but sled does not show yet. `Ok(None)`: the entry is before
/// the first one this node stores. Blocking: call it off the async threads.
fn stored_entry(applied: &AppliedState, index: u64) -> Result<Option<JournalEntry>, ReadError> {
    let deadline = Instant::now() + JOURNAL_STORE_WAIT;
    loop {
        match applied.journal_entry(index) {
            Ok(Some(entry)) => return Ok(Some(entry)),
            Err(ReadError::JournalNotStored { .. }) => return Ok(None),
            Err(error) => return Err(error),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(JOURNAL_STORE_POLL),
            Ok(None) => {
                return Err(ReadError::Storage(format!(
                    "journal entry {index} is applied but not in the journal store after {} ms",
                    JOURNAL_STORE_WAIT.as_millis()
                )))
            }
        }
    }
}

/// The hash of each journal entry named in `indexes` (`None` where this node does not store it).
async fn entry_hashes(
    api: &ApiState,
    indexes: BTreeSet<u64>,
) -> Result<BTreeMap<u64, Option<Hash>>, ApiError> {
    let applied = api.applied.clone();
    let read = move || {
        indexes
            .into_iter()
            .map(|index| {
                Ok((
                    index,
                    stored_entry(&applied, index)?.map(|entry| entry.hash),
                ))
            })
            .collect::<Result<BTreeMap<_, _>, ReadError>>()
    };
    match crate::blocking::run(read).await {
        Ok(Ok(hashes)) => Ok(hashes),
        Ok(Err(error)) => Err(storage_error(error)),
        Err(error) => Err(ApiError::internal(format!("reading the journal: {error}"))),
    }
}

/// One report line with the hash of its journal entry.
#[derive(Debug, Serialize)]
struct LineView<'a> {
    #[serde(flatten)]
    line: &'a ReportLine,
    journal_hash: Option<Hash>,
}

fn hash_of(hashes: &BTreeMap<u64, Option<Hash>>, index: u64) -> Option<Hash> {
    hashes.get(&index).copied().flatten()
}

/// The JSON report: the ledger's report, each line with its entry's hash, and the head it was
/// read at.
fn report_json(
    report: &ProgrammeReport,
    hashes: &BTreeMap<u64, Option<Hash>>,
    head: ledger::Head,
) -> Result<Value, ApiError> {
    let lines: Vec<LineView> = report
        .lines
        .iter()
        .map(|line| LineView {
            line,
            journal_hash: hash_of(hashes, line.journal_index),
        })
        .collect();
    let mut value = owned(report)?;
    let Value::Object(fields) = &mut value else {
        return Err(ApiError::internal(
            "a report does not encode as a JSON object",
        ));
    };
    fields.insert("lines".to_owned(), owned(lines)?);
    fields.insert("journal_head".to_owned(), owned(head)?);
    Ok(value)
}

fn kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Funded => "funded",
        LineKind::Issued => "issued",
        LineKind::Redeemed => "redeemed",
        LineKind::Revoked => "revoked",
        LineKind::Expired => "expired",
    }
}

/// A purchase in one CSV field: `order:<order id>:trade:<trade id>` or `package:<purchase id>`.
fn purchase_field(purchase: &Purchase) -> String {
    match purchase {
        Purchase::Order { order_id, trade_id } => format!("order:{order_id}:trade:{trade_id}"),
        Purchase::Package { purchase_id } => format!("package:{purchase_id}"),
    }
}

/// The CSV report: [`CSV_HEADER`], one row per line in journal order, then one row per
/// programme total (`total_budget`, `total_unissued`, …) with the total in `amount`.
fn report_csv(report: &ProgrammeReport, hashes: &BTreeMap<u64, Option<Hash>>) -> String {
    let text = |value: Option<String>| value.unwrap_or_default();
    let mut csv = String::from(CSV_HEADER);
    csv.push('\n');
    for line in &report.lines {
        let fields = [
            kind_name(line.kind).to_owned(),
            text(line.voucher_id.map(|id| id.to_string())),
            text(line.beneficiary.as_ref().map(|party| party.to_string())),
            text(line.seller.as_ref().map(|party| party.to_string())),
            text(line.purchase.as_ref().map(purchase_field)),
            text(line.price.map(|price| price.to_string())),
            line.amount.to_string(),
            line.at_ns.to_string(),
            line.journal_index.to_string(),
            text(hash_of(hashes, line.journal_index).map(|hash| hash.to_string())),
        ];
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    let totals = [
        ("total_budget", report.budget),
        ("total_unissued", report.unissued),
        ("total_issued", report.issued),
        ("total_redeemed", report.redeemed),
        ("total_expired", report.expired),
        ("total_revoked", report.revoked),
        ("total_outstanding", report.outstanding),
    ];
    for (kind, amount) in totals {
        csv.push_str(&format!("{kind},,,,,,{amount},,,\n"));
    }
    csv
}

/// `GET /v1/programmes?after=<programme id>&limit=`: by programme id.
pub(crate) async fn programmes(
    State(api): State<ApiState>,
    Params(params): Params<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    text_list(&api, params, &uri, &headers, |ledger, range, limit| {
        let programmes = ledger
            .vouchers()
            .programmes
            .range::<String, _>(range)
            .map(|(_, programme)| programme_view(programme));
        let (programmes, next) = page(programmes, limit, |view| view.spec.programme_id.clone());
        Ok(json!({ "programmes": owned(programmes)?, "next": next }))
    })
    .await
}

/// `GET /v1/programmes/{id}`.
pub(crate) async fn programme(
    State(api): State<ApiState>,
    PathText(programme_id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer(&api, params.consistency, &uri, &headers, |ledger| {
        let programme = ledger.vouchers().programmes.get(&programme_id);
        owned(programme_view(
            programme.ok_or_else(|| no_programme(&programme_id))?,
        ))
    })
    .await
}

/// `GET /v1/programmes/{id}/report?format=json|csv`.
pub(crate) async fn programme_report(
    State(api): State<ApiState>,
    PathText(programme_id): PathText,
    Params(params): Params<ReportParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = ensure_fresh(&api, params.consistency, &uri, &headers).await {
        return answer;
    }
    let read = api.applied.read(|ledger| {
        let report = ledger
            .programme_report(&programme_id)
            .ok_or_else(|| no_programme(&programme_id))?;
        Ok::<_, ApiError>((report, ledger.head()))
    });
    let (report, head) = match read {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    let rows = report.lines.len() + report.beneficiaries.len() + report.sellers.len();
    if rows > PROGRAMME_REPORT_ROWS_MAX {
        return ApiError::report_too_large(format!(
            "the report of programme {programme_id:?} has {rows} rows; at most \
             {PROGRAMME_REPORT_ROWS_MAX} are served (export the journal instead)"
        ))
        .into_response();
    }
    let indexes = report.lines.iter().map(|line| line.journal_index).collect();
    let hashes = match entry_hashes(&api, indexes).await {
        Ok(hashes) => hashes,
        Err(error) => return error.into_response(),
    };
    match params.format {
        ReportFormat::Json => match report_json(&report, &hashes, head) {
            Ok(value) => json_answer(&value),
            Err(error) => error.into_response(),
        },
        ReportFormat::Csv => {
            let mut response = report_csv(&report, &hashes).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(CSV_CONTENT_TYPE));
            // Programme ids are `[a-z0-9._-]`, always a valid header value.
            let disposition = format!("attachment; filename=\"{programme_id}-report.csv\"");
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                headers.insert(CONTENT_DISPOSITION, value);
            }
            response
        }
    }
}

/// `GET /v1/vouchers/{id}`.
pub(crate) async fn voucher(
    State(api): State<ApiState>,
    PathText(id): PathText,
    Params(params): Params<ReadParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    answer_by_id(
        &api,
        "voucher id",
        &id,
        params.consistency,
        &uri,
        &headers,
        |ledger, id| {
            let voucher = ledger
                .vouchers()
                .vouchers
                .get(&id)
                .ok_or_else(|| ApiError::not_found(format!("no voucher {id}")))?;
            let mut views = voucher_views(ledger, vec![voucher]);
            owned(views.pop())
        },
    )
    .await
}

/// `GET /v1/parties/{id}/vouchers?after=<voucher id>&limit=`: the vouchers the party holds as
/// beneficiary, by voucher id, each with what it paid.
pub(crate) async fn party_vouchers(
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
            let start = after.map_or(Bound::Unbounded, Bound::Excluded);
            // No index by beneficiary: a scan of the vouchers, like orders by owner.
            let vouchers = ledger
                .vouchers()
                .vouchers
                .range((start, Bound::Unbounded))
                .map(|(_, voucher)| voucher)
                .filter(|voucher| voucher.spec.beneficiary == *party);
            let (vouchers, next) = page(vouchers, limit, |voucher| voucher.spec.voucher_id);
            let views = voucher_views(ledger, vouchers);
            Ok(json!({ "vouchers": owned(views)?, "next": next }))
        },
    )
    .await
}

/// `GET /v1/checkpoints/{index}`: this node's signature over the head at journal entry
/// `index` (the entry's index and hash); 404 if this node has not applied it yet, or stores the
/// journal only from a later index.
pub(crate) async fn checkpoint(State(api): State<ApiState>, PathText(index): PathText) -> Response {
    let index = match parse_bounded("journal index", Some(&index), 1, 1, u64::MAX) {
        Ok(index) => index,
        Err(error) => return error.into_response(),
    };
    let head = api.applied.read(|ledger| ledger.head());
    if index > head.index {
        return ApiError::not_found(format!(
            "journal entry {index} is not applied on node {} yet (its head is {})",
            api.node_id, head.index
        ))
        .with_field("journal_head", head.index)
        .into_response();
    }
    let signed = if index == head.index {
        head
    } else {
        let applied = api.applied.clone();
        let first_index = applied.first_journal_index();
        match crate::blocking::run(move || stored_entry(&applied, index)).await {
            Ok(Ok(Some(entry))) => entry.head(),
            Ok(Ok(None)) => {
                return storage_error(ReadError::JournalNotStored {
                    first_journal_index: first_index,
                })
                .into_response()
            }
            Ok(Err(error)) => return storage_error(error).into_response(),
            Err(error) => {
                return ApiError::internal(format!("reading the journal: {error}")).into_response()
            }
        }
    };
    let checkpoint = Checkpoint::sign(signed, &api.node_key);
    json_answer(&json!({ "node_id": api.node_id, "checkpoint": checkpoint }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PROGRAMME_REPORT_ROW_BYTES_MAX;
    use ledger::vouchers::PartyTotals;

    fn line(kind: LineKind, journal_index: u64) -> ReportLine {
        ReportLine {
            kind,
            voucher_id: Some(7),
            beneficiary: Some(PartyId::new("sme")),
            seller: None,
            purchase: None,
            price: None,
            amount: 100,
            at_ns: 5,
            journal_index,
        }
    }

    fn report() -> ProgrammeReport {
        let mut redeemed = line(LineKind::Redeemed, 4);
        redeemed.seller = Some(PartyId::new("univ"));
        redeemed.purchase = Some(Purchase::Order {
            order_id: 9,
            trade_id: 1,
        });
        redeemed.price = Some(1_000);
        redeemed.amount = 300;
        ProgrammeReport {
            programme_id: "city".to_owned(),
            government: PartyId::new("gov"),
            budget: 1_000,
            unissued: 900,
            issued: 100,
            redeemed: 300,
            expired: 0,
            revoked: 0,
            outstanding: 0,
            beneficiaries: Vec::new(),
            sellers: Vec::new(),
            lines: vec![
                line(LineKind::Issued, 3),
                redeemed,
                line(LineKind::Expired, 6),
            ],
        }
    }

    #[test]
    fn a_csv_report_has_a_header_a_row_per_line_and_the_totals() {
        let hashes = BTreeMap::from([
            (3, Some(Hash([0xab; 32]))),
            (4, Some(Hash([0x01; 32]))),
            (6, None),
        ]);
        let csv = report_csv(&report(), &hashes);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], CSV_HEADER);
        assert_eq!(rows.len(), 1 + 3 + 7);
        assert_eq!(
            rows[1],
            format!("issued,7,sme,,,,100,5,3,{}", "ab".repeat(32))
        );
        assert_eq!(
            rows[2],
            format!(
                "redeemed,7,sme,univ,order:9:trade:1,1000,300,5,4,{}",
                "01".repeat(32)
            )
        );
        assert_eq!(rows[3], "expired,7,sme,,,,100,5,6,");
        assert_eq!(rows[4], "total_budget,,,,,,1000,,,");
        assert_eq!(rows[10], "total_outstanding,,,,,,0,,,");
        let columns = CSV_HEADER.split(',').count();
        assert!(rows.iter().all(|row| row.split(',').count() == columns));
    }

    #[test]
    fn a_json_report_adds_each_lines_hash_and_the_head() {
        let hashes = BTreeMap::from([(3, Some(Hash([0xab; 32]))), (4, None)]);
        let head = ledger::Head {
            index: 6,
            hash: Hash([2; 32]),
        };
        let value = report_json(&report(), &hashes, head).unwrap();
        assert_eq!(value["lines"][0]["journal_hash"], "ab".repeat(32));
        assert_eq!(value["lines"][0]["journal_index"], "3");
        assert_eq!(value["lines"][1]["journal_hash"], Value::Null);
        assert_eq!(value["journal_head"]["index"], 6);
        assert_eq!(value["redeemed"], "300");
        // It still reads as the ledger's report (the added fields are ignored).
        let read: ProgrammeReport = serde_json::from_value(value).unwrap();
        assert_eq!(read, report());
    }

    #[test]
    fn report_rows_fit_their_byte_bound() {
        let party = PartyId::new("p".repeat(64));
        let big = ReportLine {
            kind: LineKind::Redeemed,
            voucher_id: Some(u128::MAX),
            beneficiary: Some(party.clone()),
            seller: Some(party.clone()),
            purchase: Some(Purchase::Order {
                order_id: u128::MAX,
                trade_id: u64::MAX,
            }),
            price: Some(u128::MAX),
            amount: u128::MAX,
            at_ns: u64::MAX,
            journal_index: u64::MAX,
        };
        let view = LineView {
            line: &big,
            journal_hash: Some(Hash([0xff; 32])),
        };
        let totals = PartyTotals {
            party,
            issued: u128::MAX,
            redeemed: u128::MAX,
            expired: u128::MAX,
            revoked: u128::MAX,
            outstanding: u128::MAX,
        };
        for bytes in [
            serde_json::to_vec(&view).unwrap().len(),
            serde_json::to_vec(&totals).unwrap().len(),
        ] {
            assert!(bytes <= PROGRAMME_REPORT_ROW_BYTES_MAX, "{bytes} bytes");
        }
    }
}
