//! RabbitMQ management HTTP API: vhosts, users, permissions, limits,
//! policies, connections.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use tracing::instrument;
use url::Url;

use crate::BrokerError;

#[derive(Debug, Clone)]
pub struct ManagementConfig {
    /// e.g. `http://127.0.0.1:15672`
    pub url: String,
    pub user: String,
    pub password: SecretString,
}

/// Per-vhost permissions, as regular expressions on resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// What one broker user may hold open at once, across all its connections
/// (RabbitMQ's user limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserLimits {
    pub max_connections: u32,
    pub max_channels: u32,
}

/// A policy: settings RabbitMQ applies to every queue whose name matches
/// `pattern` (a regular expression), and that can change without
/// re-declaring the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuePolicy {
    pub name: String,
    pub pattern: String,
    /// e.g. `{"max-length": 100000}`
    pub definition: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Management {
    config: ManagementConfig,
    http: reqwest::Client,
}

/// An open broker connection, as the management API lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionInfo {
    pub name: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub vhost: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub connected_at: Option<u64>,
}

/// A queue, as the management API last sampled it.
#[derive(Debug, Clone, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    /// Ready and unacknowledged.
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub consumers: u64,
}

/// What a 404 means for a request: for a delete, that there was nothing to
/// delete (done); for anything else, an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Absent {
    IsDone,
    IsError,
}

impl Management {
    pub fn new(config: ManagementConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .expect("HTTP client");
        Self { config, http }
    }

    /// `<management url>/api/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, BrokerError> {
        let invalid = |source| BrokerError::ManagementUrl {
            url: self.config.url.clone(),
            source,
        };
        let mut url = Url::parse(&self.config.url).map_err(invalid)?;
        url.path_segments_mut()
            .map_err(|()| invalid(url::ParseError::RelativeUrlWithCannotBeABaseBase))?
            .pop_if_empty()
            .push("api")
            .extend(segments);
        Ok(url)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
        absent: Absent,
    ) -> Result<reqwest::Response, BrokerError> {
        let response = request
            .basic_auth(
                &self.config.user,
                Some(self.config.password.expose_secret()),
            )
            .send()
            .await
            .map_err(|source| BrokerError::Http { what, source })?;
        let status = response.status();
        let gone = status == reqwest::StatusCode::NOT_FOUND && absent == Absent::IsDone;
        if status.is_success() || gone {
            Ok(response)
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(BrokerError::Management {
                what,
                status: status.as_u16(),
                body,
            })
        }
    }

    #[instrument(skip(self))]
    pub async fn create_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        let request = self
            .http
            .put(self.url(&["vhosts", vhost])?)
            .json(&json!({}));
        self.send(request, "create vhost", Absent::IsError).await?;
        Ok(())
    }

    #[instrument(skip(self))]
    pub async fn delete_vhost(&self, vhost: &str) -> Result<(), BrokerError> {
        let request = self.http.delete(self.url(&["vhosts", vhost])?);
        self.send(request, "delete vhost", Absent::IsDone).await?;
        Ok(())
    }

    /// Creates or updates a user (no tags: it may not use the management UI,
    /// and is not an `impersonator`, so it cannot forge `user_id`).
    #[instrument(skip(self, password))]
    pub async fn put_user(&self, user: &str, password: &str) -> Result<(), BrokerError> {
        let body = json!({"password": password, "tags": ""});
        let request = self.http.put(self.url(&["users", user])?).json(&body);
        self.send(request, "put user", Absent::IsError).await?;
        Ok(())
    }

    #[instrument(skip(self))]
    pub async fn delete_user(&self, user: &str) -> Result<(), BrokerError> {
        let request = self.http.delete(self.url(&["users", user])?);
        self.send(request, "delete user", Absent::IsDone).await?;
        Ok(())
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
        let url = self.url(&["permissions", vhost, user])?;
        let request = self.http.put(url).json(&body);
        self.send(request, "set permissions", Absent::IsError)
            .await?;
        Ok(())
    }

    /// Sets `user`'s connection and channel limits; the broker refuses a
    /// connection or channel beyond them.
    #[instrument(skip(self))]
    pub async fn set_user_limits(&self, user: &str, limits: UserLimits) -> Result<(), BrokerError> {
        for (name, value) in [
            ("max-connections", limits.max_connections),
            ("max-channels", limits.max_channels),
        ] {
            let url = self.url(&["user-limits", user, name])?;
            let request = self.http.put(url).json(&json!({ "value": value }));
            self.send(request, "set user limit", Absent::IsError)
                .await?;
        }
        Ok(())
    }

    /// `user`'s limits as the broker holds them (`None` where unlimited).
    #[instrument(skip(self))]
    pub async fn user_limits(&self, user: &str) -> Result<(Option<u32>, Option<u32>), BrokerError> {
        #[derive(Deserialize)]
        struct Entry {
            value: serde_json::Map<String, serde_json::Value>,
        }
        let what = "read user limits";
        let request = self.http.get(self.url(&["user-limits", user])?);
        let response = self.send(request, what, Absent::IsError).await?;
        let entries: Vec<Entry> = response
            .json()
            .await
            .map_err(|source| BrokerError::Http { what, source })?;
        let get = |key: &str| {
            entries
                .iter()
                .find_map(|e| e.value.get(key)?.as_u64())
                .and_then(|v| u32::try_from(v).ok())
        };
        Ok((get("max-connections"), get("max-channels")))
    }

    /// Creates or replaces a queue policy in `vhost`.
    #[instrument(skip(self), fields(policy = %policy.name))]
    pub async fn put_queue_policy(
        &self,
        vhost: &str,
        policy: &QueuePolicy,
    ) -> Result<(), BrokerError> {
        let body = json!({
            "pattern": policy.pattern,
            "definition": policy.definition,
            "apply-to": "queues",
            "priority": 0,
        });
        let url = self.url(&["policies", vhost, &policy.name])?;
        let request = self.http.put(url).json(&body);
        self.send(request, "put policy", Absent::IsError).await?;
        Ok(())
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
        let url = self.url(&["topic-permissions", vhost, user])?;
        let request = self.http.put(url).json(&body);
        self.send(request, "set topic permissions", Absent::IsError)
            .await?;
        Ok(())
    }

    /// Every open connection in `vhost`.
    #[instrument(skip(self))]
    pub async fn connections(&self, vhost: &str) -> Result<Vec<ConnectionInfo>, BrokerError> {
        let what = "list connections";
        let request = self.http.get(self.url(&["vhosts", vhost, "connections"])?);
        let response = self.send(request, what, Absent::IsError).await?;
        response
            .json()
            .await
            .map_err(|source| BrokerError::Http { what, source })
    }

    /// Every queue of `vhost`, with its depth and consumers.
    #[instrument(skip(self))]
    pub async fn queues(&self, vhost: &str) -> Result<Vec<QueueInfo>, BrokerError> {
        let what = "list queues";
        let request = self.http.get(self.url(&["queues", vhost])?);
        let response = self.send(request, what, Absent::IsError).await?;
        response
            .json()
            .await
            .map_err(|source| BrokerError::Http { what, source })
    }

    /// Closes every open connection of `user` in `vhost`; returns how many.
    #[instrument(skip(self))]
    pub async fn close_connections(&self, vhost: &str, user: &str) -> Result<usize, BrokerError> {
        let what = "list connections";
        let request = self.http.get(self.url(&["connections"])?);
        let response = self.send(request, what, Absent::IsError).await?;
        let connections: Vec<ConnectionInfo> = response
            .json()
            .await
            .map_err(|source| BrokerError::Http { what, source })?;
        let mut closed = 0;
        for c in connections
            .into_iter()
            .filter(|c| c.user == user && c.vhost == vhost)
        {
            let request = self.http.delete(self.url(&["connections", &c.name])?);
            // A connection that closed meanwhile is not an error.
            if self
                .send(request, "delete connection", Absent::IsDone)
                .await
                .is_ok()
            {
                closed += 1;
            }
        }
        Ok(closed)
    }
}
