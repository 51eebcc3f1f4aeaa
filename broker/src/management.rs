//! RabbitMQ management HTTP API: vhosts, users, permissions, connections.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tracing::instrument;

use crate::BrokerError;

#[derive(Debug, Clone)]
pub struct ManagementConfig {
    /// e.g. `http://127.0.0.1:15672`
    pub url: String,
    pub user: String,
    pub password: String,
}

/// Per-vhost permissions, as regular expressions on resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone)]
pub struct Management {
    config: ManagementConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct ConnectionInfo {
    name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    vhost: String,
}

#[derive(Deserialize)]
struct QueueInfo {
    #[serde(default)]
    messages: u64,
}

fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Management {
    pub fn new(config: ManagementConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("HTTP client");
        Self { config, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/{}", self.config.url.trim_end_matches('/'), path)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, BrokerError> {
        let response = request
            .basic_auth(&self.config.user, Some(&self.config.password))
            .send()
            .await?;
        let status = response.status();
        if status.is_success()
            || status == reqwest::StatusCode::NOT_FOUND && what.starts_with("delete")
        {
            Ok(response)
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(BrokerError::Management(format!(
                "{what}: HTTP {status}: {body}"
            )))
        }
    }

    /// Is the management API reachable (and the broker up)?
    pub async fn healthy(&self) -> bool {
        self.send(self.http.get(self.url("overview")), "overview")
            .await
            .is_ok()
    }

    #[instrument(skip(self))]
    pub async fn create_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        self.send(
            self.http
                .put(self.url(&format!("vhosts/{}", enc(vhost))))
                .json(&json!({})),
            "create vhost",
        )
        .await
        .map(|_| ())
    }

    #[instrument(skip(self))]
    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        self.send(
            self.http
                .delete(self.url(&format!("vhosts/{}", enc(vhost)))),
            "delete vhost",
        )
        .await
        .map(|_| ())
    }

    /// Creates or updates a user (no tags: it may not use the management UI,
    /// and is not an `impersonator`, so it cannot forge `user_id`).
    #[instrument(skip(self, password))]
    pub async fn put_user(&self, user: &str, password: &str) -> Result<(), BrokerError> {
        let body = json!({"password": password, "tags": ""});
        self.send(
            self.http
                .put(self.url(&format!("users/{}", enc(user))))
                .json(&body),
            "put user",
        )
        .await
        .map(|_| ())
    }

    #[instrument(skip(self))]
    pub async fn delete_user(&self, user: &str) -> Result<(), BrokerError> {
        self.send(
            self.http.delete(self.url(&format!("users/{}", enc(user)))),
            "delete user",
        )
        .await
        .map(|_| ())
    }

    #[instrument(skip(self))]
    pub async fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        permissions: &Permissions,
    ) -> Result<(), BrokerError> {
        let body = json!({
            "configure": permissions.configure,
            "write": permissions.write,
            "read": permissions.read,
        });
        let path = format!("permissions/{}/{}", enc(vhost), enc(user));
        self.send(
            self.http.put(self.url(&path)).json(&body),
            "set permissions",
        )
        .await
        .map(|_| ())
    }

    /// Topic permissions of `user` on a topic exchange: regular expressions
    /// the routing keys it publishes with (`write`) and binds with (`read`)
    /// must match.
    #[instrument(skip(self))]
    pub async fn set_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), BrokerError> {
        let body = json!({ "exchange": exchange, "write": write, "read": read });
        let path = format!("topic-permissions/{}/{}", enc(vhost), enc(user));
        self.send(
            self.http.put(self.url(&path)).json(&body),
            "set topic permissions",
        )
        .await
        .map(|_| ())
    }

    /// Closes every open connection of `user` in `vhost`; returns how many.
    #[instrument(skip(self))]
    pub async fn close_connections(&self, vhost: &str, user: &str) -> Result<usize, BrokerError> {
        let response = self
            .send(self.http.get(self.url("connections")), "list connections")
            .await?;
        let connections: Vec<ConnectionInfo> = response.json().await?;
        let mut closed = 0;
        for c in connections
            .into_iter()
            .filter(|c| c.user == user && c.vhost == vhost)
        {
            let path = format!("connections/{}", enc(&c.name));
            // A connection that closed meanwhile is not an error.
            let deleted = self
                .send(self.http.delete(self.url(&path)), "delete connection")
                .await;
            if deleted.is_ok() {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Messages in a queue (ready + unacknowledged), as the broker last reported.
    pub async fn queue_depth(&self, vhost: &str, queue: &str) -> Result<u64, BrokerError> {
        let path = format!("queues/{}/{}", enc(vhost), enc(queue));
        let response = self.send(self.http.get(self.url(&path)), "queue").await?;
        Ok(response.json::<QueueInfo>().await?.messages)
    }
}
