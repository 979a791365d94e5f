//! `cbank cluster …`: membership administration through a node's admin routes.
//!
//! Admin routes take the node's bearer token from `<data dir>/admin.token`. Membership changes
//! are serialised by the node (one at a time, learners added blocking before promotion);
//! this module only asks for them, and `dev.rs` reuses its calls. It never edits membership
//! any other way.

use super::client::{NodeClient, RequestError, ADMIN_REQUEST_TIMEOUT};
use super::commands::print_json;
use super::{AdminOpts, ClusterCommand, TokenSource};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use crate::server::ADMIN_TOKEN_FILE;

/// A cluster member as the admin API names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub raft_addr: SocketAddr,
    pub http_addr: SocketAddr,
}

/// `GET /v1/cluster`, the fields the CLI acts on (the rest is printed as it comes).
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterView {
    #[serde(deserialize_with = "super::client::lenient_u64")]
    pub node_id: u64,
    #[serde(default, deserialize_with = "super::client::lenient_option_u64")]
    pub leader_id: Option<u64>,
    #[serde(default)]
    pub members: Vec<MemberView>,
}

/// One member in `GET /v1/cluster`.
#[derive(Clone, Debug, Deserialize)]
pub struct MemberView {
    #[serde(deserialize_with = "super::client::lenient_u64")]
    pub id: u64,
    #[serde(default)]
    pub voter: bool,
}

impl ClusterView {
    pub fn member(&self, id: u64) -> Option<&MemberView> {
        self.members.iter().find(|member| member.id == id)
    }
}

/// Reads a node's admin token from a file.
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the admin token {} (the node writes it at first start)",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        bail!("the admin token file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

fn token_path(source: &TokenSource) -> anyhow::Result<PathBuf> {
    match (&source.token_file, &source.data_dir) {
        (Some(file), _) => Ok(file.clone()),
        (None, Some(dir)) => Ok(dir.join(ADMIN_TOKEN_FILE)),
        (None, None) => bail!("give --token-file FILE or --data DIR"),
    }
}

fn admin_client(admin: &AdminOpts) -> anyhow::Result<NodeClient> {
    let token = read_token(&token_path(&admin.token)?)?;
    Ok(NodeClient::new(&admin.node.url)?.with_admin_token(token))
}

/// `POST /v1/admin/cluster/init`.
pub async fn init(
    client: &NodeClient,
    members: &[Member],
) -> Result<serde_json::Value, RequestError> {
    let body = serde_json::json!({ "members": members });
    client
        .post("/v1/admin/cluster/init", &body, ADMIN_REQUEST_TIMEOUT)
        .await
}

/// `POST /v1/admin/cluster/learners`: returns once the learner has caught up.
pub async fn add_learner(
    client: &NodeClient,
    member: &Member,
) -> Result<serde_json::Value, RequestError> {
    client
        .post("/v1/admin/cluster/learners", member, ADMIN_REQUEST_TIMEOUT)
        .await
}

/// `POST /v1/admin/cluster/promote`.
pub async fn promote(client: &NodeClient, id: u64) -> Result<serde_json::Value, RequestError> {
    let body = serde_json::json!({ "id": id });
    client
        .post("/v1/admin/cluster/promote", &body, ADMIN_REQUEST_TIMEOUT)
        .await
}

/// `POST /v1/admin/cluster/remove`.
pub async fn remove(client: &NodeClient, id: u64) -> Result<serde_json::Value, RequestError> {
    let body = serde_json::json!({ "id": id });
    client
        .post("/v1/admin/cluster/remove", &body, ADMIN_REQUEST_TIMEOUT)
        .await
}

/// `GET /v1/cluster`: the node's own view of the cluster.
pub async fn status(client: &NodeClient) -> Result<serde_json::Value, RequestError> {
    client.get("/v1/cluster").await
}

/// Runs `cbank cluster …`.
pub async fn run(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    let answer = match command {
        ClusterCommand::Init { admin, members } => init(&admin_client(&admin)?, &members).await?,
        ClusterCommand::AddLearner {
            admin,
            id,
            raft_addr,
            http_addr,
        } => {
            let member = Member {
                id,
                raft_addr,
                http_addr,
            };
            add_learner(&admin_client(&admin)?, &member).await?
        }
        ClusterCommand::Promote { admin, id } => promote(&admin_client(&admin)?, id).await?,
        ClusterCommand::Remove { admin, id } => remove(&admin_client(&admin)?, id).await?,
        ClusterCommand::Status(read) => {
            let client = NodeClient::new(&read.node.url)?;
            let path = if read.local {
                "/v1/cluster?consistency=local"
            } else {
                "/v1/cluster"
            };
            client.get(path).await?
        }
    };
    print_json(&answer)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_serialise_as_the_admin_api_names_them() {
        let member = Member {
            id: 2,
            raft_addr: "127.0.0.1:7012".parse().unwrap(),
            http_addr: "127.0.0.1:7002".parse().unwrap(),
        };
        let json = serde_json::to_value(&member).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": 2, "raft_addr": "127.0.0.1:7012", "http_addr": "127.0.0.1:7002"})
        );
    }

    #[test]
    fn tokens_are_trimmed_and_missing_ones_explained() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        let error = read_token(&path).unwrap_err();
        assert!(format!("{error:#}").contains("admin token"), "{error:#}");
        std::fs::write(&path, "  \n").unwrap();
        assert!(format!("{:#}", read_token(&path).unwrap_err()).contains("empty"));
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "s3cret");
        let source = TokenSource {
            token_file: None,
            data_dir: Some(dir.path().to_owned()),
        };
        assert_eq!(token_path(&source).unwrap(), path);
    }

    #[test]
    fn the_cluster_view_reads_the_documented_fields() {
        let json = r#"{"node_id": 1, "leader_id": null, "term": 3, "role": "follower",
            "members": [{"id": 1, "raft_addr": "127.0.0.1:7011", "http_addr": "127.0.0.1:7001", "voter": true}],
            "last_applied": 0, "last_log_index": 0, "journal_head": {"index": 0, "hash": "00"}}"#;
        let view: ClusterView = serde_json::from_str(json).unwrap();
        assert_eq!(view.leader_id, None);
        assert!(view.member(1).unwrap().voter);
        assert!(view.member(2).is_none());
    }
}
