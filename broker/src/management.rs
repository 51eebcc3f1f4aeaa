//! RabbitMQ management HTTP API: vhosts, users, permissions, connections.

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
