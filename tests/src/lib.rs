//! Test harness: every test gets its own PostgreSQL database, its own
//! RabbitMQ vhost and uniquely named broker users, and a hub on port 0.
//! Nothing here is mocked: the services are the machine's real ones.

pub mod browser;
pub mod console;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use imi_adapters::{Adapter, EndpointConfig, Inbox, InboxItem, Incoming, OutgoingMessage};
use imi_broker::{Management, ManagementConfig};
use imi_hub::config::{AmqpSettings, DatabaseSettings, HttpSettings, PipelineSettings};
use imi_hub::{Config, Hub};
use imi_schemas::ids::{AuthorityId, MessageType};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn database_base_url() -> String {
    std::env::var("IMI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}
pub fn amqp_base_url() -> String {
    std::env::var("IMI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
}
pub fn management_config() -> ManagementConfig {
    ManagementConfig {
        url: std::env::var("IMI_TEST_MANAGEMENT_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:15672".into()),
        user: "guest".into(),
        password: "guest".into(),
    }
}

pub fn init_tracing() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_test_writer()
            .try_init();
    }
}

/// One endpoint of the test registry.
#[derive(Debug, Clone)]
pub struct TestEndpoint {
    pub id: String,
    pub password: String,
    pub authorities: Vec<String>,
}

/// An isolated world for one test.
pub struct TestEnv {
    pub suffix: String,
    pub vhost: String,
    pub db_name: String,
    pub db_url: String,
    pub management: Management,
    pub endpoints: Vec<TestEndpoint>,
    pub dir: PathBuf,
    pub config: Config,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

impl TestEnv {
    /// Three endpoints: `fi` acts for FI-VALVIRA and FI-TEO, `de` for DE-AEKNO,
    /// `fr` for FR-CNOM (registered for no procedure).
    pub async fn new() -> TestEnv {
        Self::with_endpoints(&[
            ("fi", &["FI-VALVIRA", "FI-TEO"]),
            ("de", &["DE-AEKNO"]),
            ("fr", &["FR-CNOM"]),
        ])
        .await
    }

    /// Endpoints named `<prefix>-<suffix>`, each acting for the authorities
    /// given; every authority except French ones (kept unregistered for the
    /// authorization tests) is registered for pq-information-request.
    pub async fn with_endpoints(specs: &[(&str, &[&str])]) -> TestEnv {
        Self::with_registrations(specs, &["pq-information-request"]).await
    }

    /// Like [`TestEnv::with_endpoints`], registering every authority (except
    /// French ones) for `procedures`.
    pub async fn with_registrations(specs: &[(&str, &[&str])], procedures: &[&str]) -> TestEnv {
        init_tracing();
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let vhost = format!("imi-test-{suffix}");
        let db_name = format!("imi_test_{suffix}");
        let mut admin = PgConnection::connect(&format!("{}/postgres", database_base_url()))
            .await
            .expect("PostgreSQL reachable");
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        let management = Management::new(management_config());
        management.create_vhost(&vhost).await.expect("create vhost");

        let endpoints: Vec<TestEndpoint> = specs
            .iter()
            .map(|(prefix, authorities)| TestEndpoint {
                id: format!("{prefix}-{suffix}"),
                password: format!("pw-{prefix}-{suffix}"),
                authorities: authorities.iter().map(|a| (*a).to_owned()).collect(),
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("imi-test-{suffix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let seed = json!({"endpoints": endpoints.iter().map(|e| json!({
            "id": e.id,
            "password": e.password,
            "authorities": e.authorities.iter().map(|a| json!({
                "id": a,
                "country": &a[..2],
                "names": {"en": a},
                "procedures": if a.starts_with("FR") { json!([]) } else { json!(procedures) },
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()});
        let seed_path = dir.join("seed.yaml");
        std::fs::write(&seed_path, serde_json::to_string_pretty(&seed).unwrap()).unwrap();

        let db_url = format!("{}/{db_name}", database_base_url());
        let config = Config {
            instance: format!("hub-{suffix}"),
            amqp: AmqpSettings {
                url: amqp_base_url().into(),
                vhost: vhost.clone(),
                management_url: management_config().url,
                management_user: "guest".into(),
                management_password: "guest".into(),
                queue_type: "quorum".into(),
                endpoint_max_connections: 20,
                endpoint_max_channels: 200,
                inbox_max_messages: 1_000_000,
                ca_file: None,
            },
            database: DatabaseSettings {
                url: db_url.clone().into(),
                max_connections: 8,
            },
            http: HttpSettings {
                listen: "127.0.0.1:0".parse().unwrap(),
                secure_cookies: false,
                tls_cert_file: None,
                tls_key_file: None,
            },
            pipeline: PipelineSettings {
                relay_interval_secs: 1,
                ..PipelineSettings::default()
            },
            catalogue_dir: workspace().join("schemas/catalogue"),
            seed_file: Some(seed_path),
            audit: imi_hub::config::AuditSettings {
                signing_key_file: dir.join("audit-signing.key"),
                checkpoint_file: Some(dir.join("audit-checkpoints.jsonl")),
                ..Default::default()
            },
            subjects: imi_hub::config::SubjectSettings {
                index_key_file: dir.join("subject-index.key"),
                ..Default::default()
            },
            // Every test runs with stored payloads sealed, so every read
            // path is proven to open them.
            encryption: imi_hub::config::EncryptionSettings {
                key_file: Some(dir.join("data.key")),
                previous_key_files: Vec::new(),
            },
        };
        TestEnv {
            suffix,
            vhost,
            db_name,
            db_url,
            management,
            endpoints,
            dir,
            config,
        }
    }

    /// Builds and runs a hub in this process.
    pub async fn start_hub(&self) -> RunningHub {
        self.start_hub_as(&self.config.instance).await
    }

    /// Another hub instance on the same database and vhost, under its own name.
    pub async fn start_hub_as(&self, instance: &str) -> RunningHub {
        self.start_hub_with(instance, std::sync::Arc::new(imi_hub::clock::SystemClock))
            .await
    }

    /// A hub on a clock of the test's (deadlines).
    pub async fn start_hub_with(
        &self,
        instance: &str,
        clock: std::sync::Arc<dyn imi_hub::clock::Clock>,
    ) -> RunningHub {
        let mut config = self.config.clone();
        config.instance = instance.to_owned();
        Self::start_hub_configured(config, clock).await
    }

    /// A hub with a configuration of the test's (e.g. reaching the broker
    /// through a [`proxy::Proxy`]).
    pub async fn start_hub_configured(
        config: Config,
        clock: std::sync::Arc<dyn imi_hub::clock::Clock>,
    ) -> RunningHub {
        let hub = Hub::build_with_clock(config, clock)
            .await
            .expect("hub builds");
        let deadlines = hub.deadlines();
        let reminders = hub.ack_reminders();
        let retention = hub.retention();
        let audit_checkpoints = hub.audit_checkpoints();
        let subject_deadlines = hub.subject_deadlines();
        let addr = hub.http_addr();
        let catalogue = hub.catalogue();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            hub.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .expect("hub runs");
        });
        RunningHub {
            http: format!("http://{addr}"),
            catalogue,
            deadlines,
            reminders,
            retention,
            audit_checkpoints,
            subject_deadlines,
            stop: Some(tx),
            task,
        }
    }

    /// Writes this test's configuration as a TOML file (for a hub process).
    pub fn write_config(&self) -> PathBuf {
        let c = &self.config;
        let mut text = format!(
            r#"instance = "{instance}"
catalogue_dir = "{catalogue}"
seed_file = "{seed}"
[amqp]
url = "{amqp}"
vhost = "{vhost}"
management_url = "{mgmt}"
management_user = "guest"
management_password = "guest"
queue_type = "{qt}"
[database]
url = "{db}"
[http]
listen = "127.0.0.1:0"
[pipeline]
relay_interval_secs = {relay_interval_secs}
receipt_linger_ms = {receipt_linger_ms}
[audit]
signing_key_file = "{key}"
[subjects]
index_key_file = "{index_key}"
"#,
            instance = c.instance,
            catalogue = c.catalogue_dir.display(),
            seed = c.seed_file.as_ref().unwrap().display(),
            amqp = c.amqp.url.expose_secret(),
            vhost = c.amqp.vhost,
            mgmt = c.amqp.management_url,
            qt = c.amqp.queue_type,
            db = c.database.url.expose_secret(),
            relay_interval_secs = c.pipeline.relay_interval_secs,
            receipt_linger_ms = c.pipeline.receipt_linger_ms,
            key = c.audit.signing_key_file.display(),
            index_key = c.subjects.index_key_file.display(),
        );
        if let Some(key) = &c.encryption.key_file {
            let previous: Vec<String> = c
                .encryption
                .previous_key_files
                .iter()
                .map(|p| format!("{:?}", p.display().to_string()))
                .collect();
            text.push_str(&format!(
                "[encryption]\nkey_file = \"{}\"\nprevious_key_files = [{}]\n",
                key.display(),
                previous.join(", ")
            ));
        }
        let path = self.dir.join("hub.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Spawns the hub as a separate process (so a test can SIGKILL it).
    /// `binary` is `env!("CARGO_BIN_EXE_imi-hub-under-test")`, which only
    /// integration tests can name.
    pub fn spawn_hub_process(&self, binary: &str) -> tokio::process::Child {
        let config = self.write_config();
        tokio::process::Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hub process")
    }

    /// A hub process under its own instance name, returned once its
    /// `/readyz` answers 200 (database and broker up, consuming).
    pub async fn spawn_ready_hub_process(
        &self,
        binary: &str,
        instance: &str,
    ) -> tokio::process::Child {
        self.spawn_ready_hub_process_with(binary, instance, &[])
            .await
    }

    /// Like [`TestEnv::spawn_ready_hub_process`], with configuration
    /// overrides as `IMI_*` variables (e.g. `IMI_AMQP_URL` through a proxy).
    pub async fn spawn_ready_hub_process_with(
        &self,
        binary: &str,
        instance: &str,
        overrides: &[(&str, String)],
    ) -> tokio::process::Child {
        use tokio::io::{AsyncBufReadExt, BufReader};
        // Port 0: the hub binds a free port and prints it; nothing can take
        // the port between a test choosing it and the hub binding it.
        let mut child = tokio::process::Command::new(binary)
            .args(["run", "--config"])
            .arg(self.write_config())
            .env("RUST_LOG", "warn")
            .env("IMI_INSTANCE", instance)
            .env("IMI_HTTP_LISTEN", "127.0.0.1:0")
            .envs(overrides.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hub process");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (found, address) = oneshot::channel();
        // Reads the address, then keeps the pipe drained (logs go there too).
        tokio::spawn(async move {
            let mut found = Some(found);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("listening on ") {
                    if let Some(tx) = found.take() {
                        let _ = tx.send(url.to_owned());
                    }
                }
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(30), address)
            .await
            .expect("the hub process prints its address")
            .expect("the hub process prints its address");
        for _ in 0..300 {
            let ready = reqwest::get(format!("{base}/readyz")).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return child;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the hub process did not become ready");
    }

    pub fn endpoint_config(&self, endpoint: usize) -> EndpointConfig {
        let e = &self.endpoints[endpoint];
        EndpointConfig {
            tls: None,
            amqp_url: amqp_base_url()
                .rsplit_once('@')
                .map(|(_, h)| format!("amqp://{h}"))
                .unwrap_or_else(amqp_base_url),
            vhost: self.vhost.clone(),
            endpoint: e.id.clone(),
            password: e.password.clone(),
        }
    }

    /// Connects as endpoint 0 (`fi`), 1 (`de`) or 2 (`fr`).
    pub async fn adapter(&self, endpoint: usize) -> Adapter {
        Adapter::connect(&self.endpoint_config(endpoint))
            .await
            .expect("adapter connects")
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.db_url).await.expect("test database")
    }

    /// Removes the vhost, the broker users and the database.
    pub async fn cleanup(self) {
        let _ = self.management.delete_vhost(&self.vhost).await;
        for e in &self.endpoints {
            let _ = self.management.delete_user(&e.id).await;
        }
        if let Ok(mut admin) =
            PgConnection::connect(&format!("{}/postgres", database_base_url())).await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.db_name
            ))
            .execute(&mut admin)
            .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A hub running in this process.
pub struct RunningHub {
    pub http: String,
    /// The catalogue in force, to reload it.
    pub catalogue: imi_hub::catalogue::SharedCatalogue,
    /// Its deadline checker, to run a pass now.
    pub deadlines: imi_hub::DeadlineChecker,
    /// Its acknowledgement reminder pass, to run one now.
    pub reminders: imi_hub::AckReminders,
    /// Its retention pass, to run one now.
    pub retention: imi_hub::RetentionPass,
    /// Its audit checkpoint signer, to sign one now.
    pub audit_checkpoints: imi_hub::audit_log::checkpoints::Checkpointer,
    /// Its data-subject deadline pass, to run one now.
    pub subject_deadlines: imi_hub::subjects::SubjectDeadlines,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningHub {
    /// Graceful shutdown: drains, then returns.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), &mut self.task)
            .await
            .expect("hub stops within 60 s")
            .expect("hub task");
    }
}

/// The common scene: a hub, FI-VALVIRA's endpoint and DE-AEKNO's endpoint
/// connected, each with its inbox open.
pub struct World {
    pub env: TestEnv,
    pub hub: RunningHub,
    pub fi: Adapter,
    pub de: Adapter,
    pub fi_inbox: Inbox,
    pub de_inbox: Inbox,
}

impl World {
    pub async fn start(env: TestEnv) -> World {
        let hub = env.start_hub().await;
        let fi = env.adapter(0).await;
        let de = env.adapter(1).await;
        // The inboxes stop when their adapter's connection closes.
        let (fi_inbox, _) = open_inbox(&fi);
        let (de_inbox, _) = open_inbox(&de);
        World {
            env,
            hub,
            fi,
            de,
            fi_inbox,
            de_inbox,
        }
    }
}

/// Closes the adapters, stops the hub (draining), and removes the test's
/// database, vhost and users.
pub async fn finish(env: TestEnv, hub: RunningHub, adapters: Vec<Adapter>) {
    for a in adapters {
        a.close().await;
    }
    hub.stop().await;
    env.cleanup().await;
}

/// Copies the shipped catalogue into this test's folder and points the hub
/// at the copy, so the test can change it.
pub fn own_catalogue(env: &mut TestEnv) -> PathBuf {
    let target = env.dir.join("catalogue");
    copy_dir(&workspace().join("schemas/catalogue"), &target);
    env.config.catalogue_dir = target.clone();
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// A realistic diploma-verification request payload.
pub fn diploma_request() -> serde_json::Value {
    json!({
        "professional": {"family_name": "Virtanen", "given_names": "Aino", "date_of_birth": "1988-04-12"},
        "profession": "PQ-NURSE",
        "diploma": {"title": "Sairaanhoitaja (AMK)", "awarded_by": "Metropolia", "awarded_on": "2012-06-01"},
        "questions": ["PQ-Q-DIPLOMA-AUTHENTIC", "PQ-Q-GOOD-STANDING"],
        "requested_answer_date": "2026-12-15"
    })
}

/// FI-VALVIRA asks DE-AEKNO to verify a diploma.
pub fn request_to_de() -> OutgoingMessage {
    OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.send").unwrap(),
        sender: AuthorityId::try_from("FI-VALVIRA").unwrap(),
        recipients: vec![AuthorityId::try_from("DE-AEKNO").unwrap()],
        exchange: None,
        payload: diploma_request(),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    }
}

/// A follow-up of `pq-information-request` on `exchange`: `action` taken by
/// `sender`, naming `to` as recipients (empty: the other party).
pub fn follow_up(
    action: &str,
    sender: &str,
    to: &[&str],
    exchange: imi_schemas::ids::ExchangeId,
    payload: serde_json::Value,
) -> OutgoingMessage {
    OutgoingMessage {
        message_type: MessageType::try_from(format!("pq-information-request.{action}").as_str())
            .unwrap(),
        sender: AuthorityId::try_from(sender).unwrap(),
        recipients: to
            .iter()
            .map(|a| AuthorityId::try_from(*a).unwrap())
            .collect(),
        exchange: Some(exchange),
        payload,
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    }
}

/// Opens an inbox that stops when the returned token is cancelled (or dropped
/// with the test).
pub fn open_inbox(adapter: &Adapter) -> (Inbox, CancellationToken) {
    let stop = CancellationToken::new();
    (adapter.inbox(stop.clone()), stop)
}

/// The next inbox item, acked, failing the test after `secs`.
pub async fn next_acked(inbox: &mut Inbox, secs: u64) -> (String, Option<String>, Incoming) {
    let item: InboxItem = inbox
        .next_within(Duration::from_secs(secs))
        .await
        .expect("an inbox item in time");
    let out = (
        item.message_id.clone(),
        item.exchange_id.clone(),
        item.incoming.clone(),
    );
    item.ack().await.expect("ack");
    out
}

/// The next inbox item, which must be a rejection (acked).
pub async fn next_rejection(inbox: &mut Inbox) -> imi_schemas::protocol::Rejection {
    match next_acked(inbox, 30).await.2 {
        Incoming::Rejection(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The next inbox item, which must be a receipt (acked).
pub async fn next_receipt(inbox: &mut Inbox) -> imi_schemas::protocol::Receipt {
    match next_acked(inbox, 30).await.2 {
        Incoming::Receipt(r) => r,
        other => panic!("expected a receipt, got {other:?}"),
    }
}

/// Asserts nothing arrives within `millis`.
pub async fn assert_quiet(inbox: &mut Inbox, millis: u64) {
    if let Ok(item) = inbox.next_within(Duration::from_millis(millis)).await {
        panic!("expected nothing, got {:?}", item.incoming);
    }
}

/// The catalogue's example payload of `<procedure>.<action>`.
pub fn example(hub: &RunningHub, procedure: &str, action: &str) -> serde_json::Value {
    let catalogue = hub.catalogue.current();
    let (_, action) = catalogue
        .resolve(&MessageType::try_from(format!("{procedure}.{action}").as_str()).unwrap())
        .expect("catalogue action");
    action.example.clone().expect("the action has an example")
}

/// A message of a 1:N procedure: `recipients` and `countries` as the
/// procedure's rule wants them; `exchange` for a follow-up.
pub fn one_to_many(
    message_type: &str,
    sender: &str,
    recipients: &[&str],
    countries: &[&str],
    exchange: Option<imi_schemas::ids::ExchangeId>,
    payload: serde_json::Value,
) -> OutgoingMessage {
    OutgoingMessage {
        message_type: MessageType::try_from(message_type).unwrap(),
        sender: AuthorityId::try_from(sender).unwrap(),
        recipients: recipients
            .iter()
            .map(|a| AuthorityId::try_from(*a).unwrap())
            .collect(),
        countries: countries
            .iter()
            .map(|c| imi_schemas::ids::CountryCode::try_from(*c).unwrap())
            .collect(),
        exchange,
        payload,
        schema_version: 1,
        message_id: None,
    }
}

/// Calls the hub's JSON API; returns the status and the JSON body.
pub async fn call_api(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(format!("{http}{path}")),
        "PUT" => client.put(format!("{http}{path}")),
        "DELETE" => client.delete(format!("{http}{path}")),
        _ => client.get(format!("{http}{path}")),
    };
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// A process's resident memory now and at its peak, in MiB (from
/// `/proc/<pid>/status`); `None` once it has exited.
pub fn resident_mib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((kib("VmRSS:")? / 1024, kib("VmHWM:")? / 1024))
}
