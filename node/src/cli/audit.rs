//! `cbank audit`: export a journal range with checkpoints signed by several nodes and the
//! programme reports as published; verify such an export offline; build and verify the
//! inclusion proof of one voucher.
//!
//! - `export --node URL… --out FILE [--programme ID…]`: reads the requested programme reports
//!   (default: every programme) from the node whose applied head is lowest, all at one journal
//!   index `n` (read again if a command landed between two of them); waits until every given
//!   node has applied `n`; collects each node's signed checkpoint of entry `n`
//!   (`GET /v1/checkpoints/{n}`); pages entries `1..=n` out of `GET /v1/journal`; checks that
//!   they chain to the checkpoints' head and that every report line names its entry's hash; and
//!   writes `ledger::audit::export(...)` as JSON, and `FILE.node-keys.json` with each node's
//!   public key as its checkpoint names it.
//! - `verify FILE --node-keys KEYS`: runs `ledger::audit::verify_export` on the files alone. It
//!   opens no socket and needs no node; it exits 0 with a summary, or 1 printing the first
//!   failure (`entry 17: hash does not chain from the entry before`).
//! - `prove --node URL… --voucher ID --out FILE`: like `export` without reports, at the lowest
//!   applied head; replays the entries through a `ledger::Ledger` (each must give back the very
//!   entry the node stored) and writes `ledger::audit::prove_voucher(...)`.
//! - `verify-proof FILE --node-keys KEYS`: `ledger::audit::verify_proof`, offline; prints the
//!   voucher's entries.
//!
//! The node keys are whatever the auditor trusts: `export` writes them out for convenience,
//! but an auditor should compare them with keys obtained from the operators themselves. This
//! module never decides whether an export is honest: `ledger::audit` does.

use super::client::{NodeClient, RequestError};
use super::parse_public_key;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ledger::audit::{self, Export, Proof};
use ledger::journal::verify_chain;
use ledger::vouchers::ProgrammeReport;
use ledger::{Checkpoint, Hash, Head, JournalEntry, Ledger, PublicKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The node-keys file's format name.
pub const NODE_KEYS_FORMAT: &str = "cbank-node-keys-v1";

/// Bytes of an export, proof or node-keys file that `verify` agrees to read.
pub const AUDIT_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

/// Entries asked for per `GET /v1/journal` (the node's page maximum).
const JOURNAL_PAGE_ENTRIES: u64 = 1_000;

/// How often the reports are read again when a command landed between two of them.
const REPORT_READ_ATTEMPTS_MAX: u32 = 20;

/// How long `export` and `prove` wait for every node to apply the export's last entry, or for
/// the source node's journal store to show it.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);

/// Between two looks at a node that has not caught up yet.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export journal entries 1..=n, every given node's signed checkpoint of entry n and the
    /// programme reports, for `cbank audit verify`.
    Export(ExportArgs),
    /// Verify an export offline against trusted node keys (no node is contacted).
    Verify(VerifyArgs),
    /// Build the inclusion proof of one voucher's journal entries.
    Prove(ProveArgs),
    /// Verify a voucher's inclusion proof offline against trusted node keys.
    VerifyProof(VerifyArgs),
}

/// The nodes to read from: every one of them signs a checkpoint.
#[derive(Debug, Clone, Args)]
pub struct NodesArg {
    /// A node's HTTP address; repeat for each node whose checkpoint signature to collect.
    #[arg(long = "node", value_name = "URL", required = true)]
    pub nodes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub nodes: NodesArg,
    /// Where to write the export (and FILE.node-keys.json beside it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// A programme whose report to include; repeatable (default: every programme).
    #[arg(long = "programme", value_name = "ID", value_parser = super::vouchers::parse_programme_id)]
    pub programmes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    #[command(flatten)]
    pub nodes: NodesArg,
    /// The voucher whose entries to prove.
    #[arg(long)]
    pub voucher: u128,
    /// Where to write the proof (and FILE.node-keys.json beside it).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export (or proof) file.
    pub file: PathBuf,
    /// The node public keys to trust: a node-keys file as `export` writes it, or a JSON list
    /// of hex keys.
    #[arg(long, value_name = "FILE")]
    pub node_keys: PathBuf,
}

/// One node's key, as the node-keys file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    pub public_key: PublicKey,
}

/// The node-keys file `export` and `prove` write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeKeysFile {
    pub format: String,
    pub nodes: Vec<NodeKey>,
}

/// What `verify` accepts as trusted keys.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TrustedKeys {
    File(NodeKeysFile),
    Hex(Vec<String>),
}

/// Runs an audit command.
pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Export(args) => export(args).await,
        AuditCommand::Verify(args) => verify(&args),
        AuditCommand::Prove(args) => prove(args).await,
        AuditCommand::VerifyProof(args) => verify_proof(&args),
    }
}

/// One node to read from.
struct Node {
    url: String,
    client: NodeClient,
}

fn nodes(arg: &NodesArg) -> anyhow::Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::new();
    for url in &arg.nodes {
        let client = NodeClient::new(url)?;
        if nodes
            .iter()
            .all(|node| node.client.base_url() != client.base_url())
        {
            nodes.push(Node {
                url: client.base_url().to_owned(),
                client,
            });
        }
    }
    Ok(nodes)
}

/// `GET /v1/head`.
#[derive(Debug, Deserialize)]
struct HeadAnswer {
    head: Head,
}

/// `GET /v1/checkpoints/{index}`.
#[derive(Debug, Deserialize)]
struct CheckpointAnswer {
    #[serde(deserialize_with = "super::client::lenient_u64")]
    node_id: u64,
    checkpoint: Checkpoint,
}

/// `GET /v1/journal`.
#[derive(Debug, Deserialize)]
struct JournalPage {
    entries: Vec<JournalEntry>,
}

/// `GET /v1/programmes`.
#[derive(Debug, Deserialize)]
struct ProgrammePage {
    programmes: Vec<ProgrammeId>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ProgrammeId {
    spec: ProgrammeIdSpec,
}

#[derive(Debug, Deserialize)]
struct ProgrammeIdSpec {
    programme_id: String,
}

/// A report as `GET /v1/programmes/{id}/report` serves it: the ledger's report, the hash of
/// each line's entry, and the head it was read at.
#[derive(Debug)]
struct ServedReport {
    report: ProgrammeReport,
    line_hashes: Vec<Option<Hash>>,
    head: Head,
}

#[derive(Debug, Deserialize)]
struct ServedExtras {
    lines: Vec<ServedLine>,
    journal_head: Head,
}

#[derive(Debug, Deserialize)]
struct ServedLine {
    journal_hash: Option<Hash>,
}

async fn head_of(node: &Node) -> anyhow::Result<Head> {
    let answer: HeadAnswer = node
        .client
        .get("/v1/head?consistency=local")
        .await
        .with_context(|| format!("reading the journal head of {}", node.url))?;
    Ok(answer.head)
}

/// The position of the node with the lowest applied journal head, and that head.
async fn lowest_head(nodes: &[Node]) -> anyhow::Result<(usize, Head)> {
    let mut lowest: Option<(usize, Head)> = None;
    for (position, node) in nodes.iter().enumerate() {
        let head = head_of(node).await?;
        if lowest.is_none_or(|(_, low)| head.index < low.index) {
            lowest = Some((position, head));
        }
    }
    lowest.context("no node given")
}

/// Every programme id, page by page, from `node`'s applied state.
async fn all_programmes(node: &Node) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = "/v1/programmes?consistency=local&limit=1000".to_owned();
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let page: ProgrammePage = node
            .client
            .get(&path)
            .await
            .with_context(|| format!("listing the programmes of {}", node.url))?;
        ids.extend(page.programmes.into_iter().map(|p| p.spec.programme_id));
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ids),
        }
    }
}

async fn served_report(node: &Node, programme_id: &str) -> anyhow::Result<ServedReport> {
    let path = format!("/v1/programmes/{programme_id}/report?format=json&consistency=local");
    let value: serde_json::Value = node
        .client
        .get(&path)
        .await
        .with_context(|| format!("reading the report of {programme_id} from {}", node.url))?;
    let extras: ServedExtras = serde_json::from_value(value.clone())
        .with_context(|| format!("the report of {programme_id} has no line hashes or head"))?;
    let report: ProgrammeReport = serde_json::from_value(value)
        .with_context(|| format!("the report of {programme_id} is not a programme report"))?;
    Ok(ServedReport {
        report,
        line_hashes: extras.lines.into_iter().map(|l| l.journal_hash).collect(),
        head: extras.journal_head,
    })
}

/// The reports of `programmes` from `node`, all read at one journal head (read again, up to
/// `REPORT_READ_ATTEMPTS_MAX` times, when a command landed between two of them).
async fn reports_at_one_head(
    node: &Node,
    programmes: &[String],
) -> anyhow::Result<(Head, Vec<ServedReport>)> {
    for _ in 0..REPORT_READ_ATTEMPTS_MAX {
        let before = head_of(node).await?;
        let mut reports = Vec::with_capacity(programmes.len());
        for programme_id in programmes {
            reports.push(served_report(node, programme_id).await?);
        }
        if reports.iter().all(|report| report.head == before) {
            return Ok((before, reports));
        }
    }
    bail!(
        "the journal of {} kept moving while its reports were read ({REPORT_READ_ATTEMPTS_MAX} \
         tries); export again when it is quieter",
        node.url
    )
}

/// Waits until every node has applied journal entry `index`.
async fn wait_until_applied(nodes: &[Node], index: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + CATCH_UP_WAIT;
    for node in nodes {
        loop {
            let head = head_of(node).await?;
            if head.index >= index {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} has applied the journal only up to {} after {} s; the export needs {index}",
                    node.url,
                    head.index,
                    CATCH_UP_WAIT.as_secs()
                );
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
        }
    }
    Ok(())
}

/// Each node's signed checkpoint of entry `index`, checked to be validly signed and to name
/// the same head as the others (two different heads would mean the nodes' journals forked).
async fn checkpoints_of(nodes: &[Node], index: u64) -> anyhow::Result<Vec<(NodeKey, Checkpoint)>> {
    let mut checkpoints: Vec<(NodeKey, Checkpoint)> = Vec::new();
    for node in nodes {
        let answer: CheckpointAnswer = node
            .client
            .get(&format!("/v1/checkpoints/{index}"))
            .await
            .with_context(|| {
            format!("reading the checkpoint of entry {index} from {}", node.url)
        })?;
        let checkpoint = answer.checkpoint;
        if checkpoint.head.index != index || !checkpoint.signature_is_valid() {
            bail!(
                "{} answered with a checkpoint that is not a valid signature of entry {index}",
                node.url
            );
        }
        if let Some((first, other)) = checkpoints.first() {
            if other.head != checkpoint.head {
                bail!(
                    "{} and {} sign different hashes for entry {index} ({} and {}): their \
                     journals differ",
                    first.node.as_deref().unwrap_or("a node"),
                    node.url,
                    other.head.hash,
                    checkpoint.head.hash
                );
            }
        }
        let key = NodeKey {
            node: Some(node.url.clone()),
            node_id: Some(answer.node_id),
            public_key: checkpoint.node_key,
        };
        checkpoints.push((key, checkpoint));
    }
    Ok(checkpoints)
}

/// Entries `1..=last` from `node`, page by page, waiting (bounded) for entries its journal
/// store does not show yet.
async fn entries_from(node: &Node, last: u64) -> Result<Vec<JournalEntry>, anyhow::Error> {
    let mut entries: Vec<JournalEntry> = Vec::new();
    let deadline = Instant::now() + CATCH_UP_WAIT;
    while (entries.len() as u64) < last {
        let from = entries.len() as u64 + 1;
        let limit = JOURNAL_PAGE_ENTRIES.min(last - entries.len() as u64);
        let path = format!("/v1/journal?from={from}&limit={limit}&consistency=local");
        let page: JournalPage = node.client.get(&path).await?;
        if page.entries.is_empty() {
            if Instant::now() >= deadline {
                bail!("{} serves the journal only up to {}", node.url, from - 1);
            }
            tokio::time::sleep(CATCH_UP_POLL).await;
            continue;
        }
        let room = usize::try_from(last - entries.len() as u64).unwrap_or(usize::MAX);
        entries.extend(page.entries.into_iter().take(room));
    }
    Ok(entries)
}

/// Entries `1..=head.index`, from the first of `nodes` (in `order`) that stores them all,
/// checked to chain to `head`.
async fn journal_to(
    nodes: &[Node],
    order: &[usize],
    head: Head,
) -> anyhow::Result<Vec<JournalEntry>> {
    let mut errors = Vec::new();
    for &position in order {
        let node = &nodes[position];
        match entries_from(node, head.index).await {
            Ok(entries) => {
                let reached = verify_chain(Head::default(), &entries)
                    .with_context(|| format!("the journal served by {}", node.url))?;
                if reached != head {
                    bail!(
                        "the journal served by {} ends at {} {}, not at the signed head {} {}",
                        node.url,
                        reached.index,
                        reached.hash,
                        head.index,
                        head.hash
                    );
                }
                return Ok(entries);
            }
            Err(error) => {
                // A node that installed a snapshot stores only a suffix: try the next one.
                let stored_from = error
                    .downcast_ref::<RequestError>()
                    .and_then(|error| error.code())
                    .is_some_and(|code| code == "not_found");
                if !stored_from {
                    return Err(error);
                }
                errors.push(format!("{}: {error}", node.url));
            }
        }
    }
    bail!(
        "no node serves the whole journal up to {}: {}",
        head.index,
        errors.join("; ")
    )
}

/// Reading order: the source node first, then the others.
fn source_first(count: usize, source: usize) -> Vec<usize> {
    std::iter::once(source)
        .chain((0..count).filter(|position| *position != source))
        .collect()
}

/// The journal and every node's checkpoint at `head`.
struct Gathered {
    entries: Vec<JournalEntry>,
    checkpoints: Vec<Checkpoint>,
    keys: Vec<NodeKey>,
}

async fn gather(nodes: &[Node], source: usize, index: u64) -> anyhow::Result<Gathered> {
    wait_until_applied(nodes, index).await?;
    let signed = checkpoints_of(nodes, index).await?;
    let head = signed
        .first()
        .map(|(_, checkpoint)| checkpoint.head)
        .context("no node given")?;
    let entries = journal_to(nodes, &source_first(nodes.len(), source), head).await?;
    let (keys, checkpoints) = signed.into_iter().unzip();
    Ok(Gathered {
        entries,
        checkpoints,
        keys,
    })
}

/// `FILE.node-keys.json` beside `out`.
fn keys_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".node-keys.json");
    PathBuf::from(name)
}

fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn write_keys(out: &Path, keys: Vec<NodeKey>) -> anyhow::Result<PathBuf> {
    let path = keys_path(out);
    let file = NodeKeysFile {
        format: NODE_KEYS_FORMAT.to_owned(),
        nodes: keys,
    };
    write_json(&path, &file)?;
    Ok(path)
}

/// Checks that every line of a served report names the hash of the entry it cites.
fn check_line_hashes(served: &ServedReport, entries: &[JournalEntry]) -> anyhow::Result<()> {
    for (line, hash) in served.report.lines.iter().zip(&served.line_hashes) {
        let entry = usize::try_from(line.journal_index)
            .ok()
            .and_then(|index| index.checked_sub(1))
            .and_then(|position| entries.get(position));
        match (entry, hash) {
            (Some(entry), Some(hash)) if entry.hash == *hash => {}
            // A node that installed a snapshot names no hash for entries before it.
            (Some(_), None) => {}
            _ => bail!(
                "the report of {} cites entry {} with a hash the journal does not have",
                served.report.programme_id,
                line.journal_index
            ),
        }
    }
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let nodes = nodes(&args.nodes)?;
    let (source, lowest) = lowest_head(&nodes).await?;
    let programmes = if args.programmes.is_empty() {
        all_programmes(&nodes[source]).await?
    } else {
        args.programmes.clone()
    };
    let (head, served) = if programmes.is_empty() {
        (lowest, Vec::new())
    } else {
        reports_at_one_head(&nodes[source], &programmes).await?
    };
    let gathered = gather(&nodes, source, head.index).await?;
    for report in &served {
        check_line_hashes(report, &gathered.entries)?;
    }
    let reports: Vec<ProgrammeReport> = served.into_iter().map(|served| served.report).collect();
    let report_count = reports.len();
    let signers = gathered.checkpoints.len();
    let export = audit::export(&gathered.entries, gathered.checkpoints, reports);
    write_json(&args.out, &export)?;
    let keys = write_keys(&args.out, gathered.keys)?;
    println!(
        "exported journal entries 1..={} (head {}), checkpoints signed by {signers} nodes and \
         {report_count} programme reports to {}",
        head.index,
        head.hash,
        args.out.display()
    );
    println!("node keys: {}", keys.display());
    Ok(ExitCode::SUCCESS)
}

/// Replays `entries` through a fresh ledger; each must give back exactly the stored entry.
fn replay(entries: &[JournalEntry]) -> anyhow::Result<Ledger> {
    let mut ledger = Ledger::new();
    for entry in entries {
        let index = entry.body.index;
        if entry.body.timestamp_ns <= ledger.last_timestamp_ns() {
            bail!("entry {index}: its timestamp does not increase");
        }
        if ledger.apply(&entry.body.command, entry.body.timestamp_ns) != *entry {
            bail!("entry {index}: replaying its command gives a different entry");
        }
    }
    Ok(ledger)
}

async fn prove(args: ProveArgs) -> anyhow::Result<ExitCode> {
    let nodes = nodes(&args.nodes)?;
    let (source, lowest) = lowest_head(&nodes).await?;
    let gathered = gather(&nodes, source, lowest.index).await?;
    let entries = gathered.entries;
    let ledger = tokio::task::spawn_blocking({
        let entries = entries.clone();
        move || replay(&entries)
    })
    .await
    .context("the replay stopped")??;
    let Some(proof) = audit::prove_voucher(&ledger, &entries, args.voucher, gathered.checkpoints)
    else {
        bail!(
            "voucher {} is not in the journal up to entry {}",
            args.voucher,
            lowest.index
        );
    };
    write_json(&args.out, &proof)?;
    let keys = write_keys(&args.out, gathered.keys)?;
    println!(
        "proof of voucher {}: entries {:?} among {}..={}, to {}",
        args.voucher,
        proof.indexes,
        proof.previous.index + 1,
        lowest.index,
        args.out.display()
    );
    println!("node keys: {}", keys.display());
    Ok(ExitCode::SUCCESS)
}

/// Reads a whole file of at most `AUDIT_FILE_BYTES_MAX` bytes.
fn read_bounded(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > AUDIT_FILE_BYTES_MAX {
        bail!(
            "{} is {size} bytes; at most {AUDIT_FILE_BYTES_MAX} are read",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes = read_bounded(path)?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not {what}", path.display()))
}

/// The trusted node keys of a node-keys file or a JSON list of hex keys.
fn trusted_keys(path: &Path) -> anyhow::Result<Vec<PublicKey>> {
    let keys = match read_json::<TrustedKeys>(path, "a node-keys file or a list of hex keys")? {
        TrustedKeys::File(file) => {
            if file.format != NODE_KEYS_FORMAT {
                bail!("{} is not a {NODE_KEYS_FORMAT} file", path.display());
            }
            file.nodes.into_iter().map(|node| node.public_key).collect()
        }
        TrustedKeys::Hex(list) => list
            .iter()
            .map(|text| parse_public_key(text).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    if keys.is_empty() {
        bail!("{} names no node keys", path.display());
    }
    Ok(keys)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = trusted_keys(&args.node_keys)?;
    let export: Export = read_json(&args.file, "an audit export")?;
    match audit::verify_export(&export, &trusted) {
        Ok(verified) => {
            println!(
                "verified: journal entries 1..={} chain to head {}",
                verified.entries, verified.head.hash
            );
            println!(
                "  every command's signature re-checked and its outcome replayed; the ledger's \
                 invariants hold"
            );
            println!(
                "  signed by {} of {} trusted node keys",
                verified.signers,
                trusted.len()
            );
            let programmes: Vec<&str> = export
                .reports
                .iter()
                .map(|report| report.programme_id.as_str())
                .collect();
            println!(
                "  {} programme reports match the journal: {}",
                verified.reports,
                programmes.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("FAILED: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn verify_proof(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let trusted = trusted_keys(&args.node_keys)?;
    let proof: Proof = read_json(&args.file, "a voucher proof")?;
    match audit::verify_proof(&proof, &trusted) {
        Ok(entries) => {
            let last = proof.previous.index + proof.entries.len() as u64;
            println!(
                "verified: voucher {}'s entries are in the journal up to entry {last}, signed by \
                 trusted node keys",
                proof.voucher_id
            );
            for entry in entries {
                let outcome = match entry.body.outcome.rejected() {
                    Some(reason) => format!("rejected: {reason}"),
                    None => "accepted".to_owned(),
                };
                println!(
                    "  entry {} {}: {} by {} ({outcome})",
                    entry.body.index,
                    entry.hash,
                    entry.body.command.body.command.name(),
                    entry.body.command.body.signer
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("FAILED: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, TopCommand};
    use clap::Parser;
    use ledger::testing::Harness;
    use ledger::SigningKey;

    fn parse(args: &[&str]) -> Result<AuditCommand, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("cbank").chain(args.iter().copied()))?;
        match cli.command {
            TopCommand::Audit { command } => Ok(command),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn audit_commands_parse() {
        let command = parse(&[
            "audit",
            "export",
            "--node",
            "http://127.0.0.1:7001",
            "--node",
            "http://127.0.0.1:7002",
            "--out",
            "audit.json",
            "--programme",
            "beijing-ai-2026",
        ])
        .unwrap();
        let AuditCommand::Export(args) = command else {
            panic!("parsed as {command:?}");
        };
        assert_eq!(args.nodes.nodes.len(), 2);
        assert_eq!(args.programmes, ["beijing-ai-2026"]);
        assert_eq!(keys_path(&args.out), Path::new("audit.json.node-keys.json"));
        assert!(parse(&["audit", "export", "--out", "a.json"]).is_err());
        assert!(parse(&["audit", "verify", "a.json"]).is_err());
        assert!(parse(&["audit", "verify", "a.json", "--node-keys", "k.json"]).is_ok());
        assert!(parse(&[
            "audit",
            "prove",
            "--node",
            "n",
            "--voucher",
            "5",
            "--out",
            "p.json"
        ])
        .is_ok());
        assert!(parse(&["audit", "verify-proof", "p.json", "--node-keys", "k"]).is_ok());
        assert_eq!(source_first(3, 1), [1, 0, 2]);
    }

    #[test]
    fn trusted_keys_come_from_a_keys_file_or_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed([4; 32]).public_key();
        let written = write_keys(
            &dir.path().join("export.json"),
            vec![NodeKey {
                node: Some("http://127.0.0.1:7001".to_owned()),
                node_id: Some(1),
                public_key: key,
            }],
        )
        .unwrap();
        assert_eq!(written, dir.path().join("export.json.node-keys.json"));
        assert_eq!(trusted_keys(&written).unwrap(), [key]);
        let list = dir.path().join("list.json");
        std::fs::write(&list, format!("[\"{key}\"]")).unwrap();
        assert_eq!(trusted_keys(&list).unwrap(), [key]);
        std::fs::write(&list, "[]").unwrap();
        assert!(trusted_keys(&list).is_err());
        std::fs::write(&list, "[\"zz\"]").unwrap();
        assert!(trusted_keys(&list).is_err());
    }

    #[test]
    fn a_replay_gives_back_the_stored_entries_or_names_the_first_that_differs() {
        let mut harness = Harness::new();
        harness.add_party("sme", ledger::Role::Sme);
        let entries = harness.journal.clone();
        let ledger = replay(&entries).unwrap();
        assert_eq!(ledger.head(), harness.ledger.head());
        let mut forged = entries.clone();
        forged[1].body.timestamp_ns += 1;
        let error = replay(&forged).unwrap_err().to_string();
        assert!(error.starts_with("entry 2:"), "{error}");
    }
}
