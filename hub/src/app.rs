//! Building and running the hub: the struct tests drive (port 0, own database,
//! own vhost) and `main` runs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imi_broker::{
    Backoff, Broker, BrokerConfig, Management, ManagementConfig, Permissions, QueueType,
};
use imi_schemas::protocol::{DEAD_LETTER_QUEUE, INGRESS_QUEUE};
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::activity::Activity;
use crate::alerts::AckReminders;
use crate::at_rest::{DataKeys, Reencryption};
use crate::audit_log;
use crate::audit_log::checkpoints::{Checkpointer, Signer};
use crate::catalogue::{self, SharedCatalogue};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::deadlines::DeadlineChecker;
use crate::dispatch::Sender;
use crate::error::HubError;
use crate::metrics::Metrics;
use crate::pipeline::{self, PipelineContext};
use crate::registry::{apply_seed, SeedFile, SharedRegistry};
use crate::retention::RetentionPass;
use crate::subjects::{SubjectDeadlines, SubjectKeyer};
use crate::supervise::{self, Joined, Liveness, Vital};
use crate::{http, tasks, topology};
use axum_server::tls_rustls::RustlsConfig;

/// How long shutdown waits for in-flight batches before giving up on them
/// (they stay unacked and come back after restart).
/// After the drain, how long each other task gets to stop before it is
/// aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);
const REGISTRY_REFRESH: Duration = Duration::from_secs(5);
/// How often kept dead letters whose re-drive a crash interrupted are tried
/// again (new ones are re-driven as they come).
const DEAD_LETTER_REDRIVE: Duration = Duration::from_secs(30);

pub struct Hub {
    config: Config,
    pool: PgPool,
    broker: Broker,
    management: Management,
    catalogue: SharedCatalogue,
    registry: SharedRegistry,
    metrics: Arc<Metrics>,
    activity: Arc<Activity>,
    listener: TcpListener,
    queue_type: QueueType,
    publishers: Arc<Vec<imi_broker::Publisher>>,
    clock: Arc<dyn Clock>,
    signer: Signer,
    subjects: SubjectKeyer,
    /// Seals stored payloads (off without `encryption.key_file`).
    data_keys: DataKeys,
    /// The console's and API's certificate, when they serve HTTPS.
    https: Option<RustlsConfig>,
}

/// The HTTPS certificate of `http.tls_cert_file` and `http.tls_key_file`,
/// read at start so a wrong file stops the start with a clear error.
async fn http_tls(http: &crate::config::HttpSettings) -> Result<Option<RustlsConfig>, HubError> {
    match (&http.tls_cert_file, &http.tls_key_file) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            // ring is the one TLS provider the hub is built with.
            let _ = rustls::crypto::ring::default_provider().install_default();
            RustlsConfig::from_pem_file(cert, key)
                .await
                .map(Some)
                .map_err(|e| HubError::Setting {
                    key: "http.tls_cert_file",
                    problem: format!("{} with {}: {e}", cert.display(), key.display()),
                })
        }
        _ => Err(HubError::Setting {
            key: "http.tls_key_file",
            problem: "give both http.tls_cert_file and http.tls_key_file, or neither".into(),
        }),
    }
}

/// Waiting for the database at start: at 3 a.m. a hub that waits for its
/// database beats one that exits. About five minutes in all.
const DATABASE_WAIT: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(8));
const DATABASE_ATTEMPTS: u32 = 60;

/// How often the hub looks whether an audit checkpoint is due.
const AUDIT_CHECKPOINT_CHECK: Duration = Duration::from_secs(60);

/// Connects to PostgreSQL, waiting while it is down.
pub async fn connect_database(url: &str, max_connections: u32) -> Result<PgPool, HubError> {
    let mut attempt = 0u32;
    loop {
        match PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
        {
            Ok(pool) => return Ok(pool),
            Err(error) if attempt < DATABASE_ATTEMPTS => {
                warn!(%error, attempt, "Database not reachable; retrying.");
                tokio::time::sleep(DATABASE_WAIT.delay(attempt)).await;
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Runs a start-up step again while the database is unreachable (restarting,
/// a connection cut mid-step), as the start waits for the broker; every
/// step is idempotent. Other errors (a bad migration, a bad seed) stop the
/// start at once.
async fn while_database_recovers<T, F, Fut>(step: &str, mut run: F) -> Result<T, HubError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, HubError>>,
{
    let mut attempt = 0u32;
    loop {
        match run().await {
            Err(error) if attempt < DATABASE_ATTEMPTS && connection_lost(&error) => {
                warn!(%error, attempt, step, "Database lost during start; retrying the step.");
                tokio::time::sleep(DATABASE_WAIT.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn connection_lost(error: &HubError) -> bool {
    let lost = |e: &sqlx::Error| match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        // The server going away says so: class 08 (connection exception),
        // 57P01-57P03 (shut down by the administrator, crashed, starting).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    };
    match error {
        HubError::Database(e) => lost(e),
        HubError::Migration(sqlx::migrate::MigrateError::Execute(e)) => lost(e),
        _ => false,
    }
}

impl Hub {
    pub async fn build(config: Config) -> Result<Hub, HubError> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`Hub::build`] with a clock of the caller's (deadline tests).
    pub async fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Hub, HubError> {
        config.validate()?;
        let catalogue = catalogue::load(&config.catalogue_dir)?;
        let queue_type = config.amqp.queue_type()?;
        let pool = connect_database(
            config.database.url.expose_secret(),
            config.database.max_connections,
        )
        .await?;
        while_database_recovers("migrations", || async {
            Ok(sqlx::migrate!("../migrations").run(&pool).await?)
        })
        .await?;
        let signer = Signer::load_or_create(&config.audit.signing_key_file)?;
        let subjects = SubjectKeyer::load_or_create(&config.subjects.index_key_file)?;
        let data_keys = DataKeys::load(
            config.encryption.key_file.as_ref(),
            &config.encryption.previous_key_files,
        )?;
        while_database_recovers("audit chain", || async {
            Ok(audit_log::chain_earlier_entries(&pool).await?)
        })
        .await?;

        let management = Management::new(ManagementConfig {
            url: config.amqp.management_url.clone(),
            user: config.amqp.management_user.clone(),
            password: config.amqp.management_password.clone(),
        });
        management.create_vhost(&config.amqp.vhost).await?;
        if let Some(user) = imi_broker::user_of(config.amqp.url.expose_secret()) {
            let all = Permissions {
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            management
                .set_permissions(&config.amqp.vhost, &user, &all)
                .await?;
        }
        if let Some(path) = &config.seed_file {
            let text = std::fs::read_to_string(path).map_err(|source| HubError::Read {
                path: path.clone(),
                source,
            })?;
            let seed = SeedFile::parse(&text)?;
            while_database_recovers("seed", || {
                apply_seed(&seed, &pool, &management, &config.amqp.vhost)
            })
            .await?;
        }
        let registry = SharedRegistry::default();
        while_database_recovers("registry", || async { Ok(registry.reload(&pool).await?) }).await?;
        crate::registry::limits::apply_at_start(
            &management,
            &config.amqp.vhost,
            config.amqp.endpoint_limits(),
            config.amqp.inbox_max_messages,
            registry.current().endpoints().map(|e| e.id.as_str()),
        )
        .await?;

        let mut topology = topology::core(queue_type);
        let current = registry.current();
        topology.merge(topology::inboxes(
            queue_type,
            current.endpoints().map(|e| e.id.as_str()),
        ));
        let broker = Broker::start(
            BrokerConfig {
                tls: config.amqp.broker_tls()?,
                url: config.amqp.url_with_vhost()?.expose_secret().to_owned(),
                connection_name: config.instance.clone(),
            },
            topology,
        );
        // Wait until the topology is declared, so nothing published after
        // `build` returns is unroutable. A broker that is down is waited for.
        while let Err(error) = broker.wait_connected(Duration::from_secs(10)).await {
            warn!(%error, "Waiting for the broker.");
        }
        let listener = TcpListener::bind(config.http.listen).await?;
        let https = http_tls(&config.http).await?;
        let catalogue = SharedCatalogue::new(catalogue, &config.catalogue_dir);
        let publishers = Arc::new(
            (0..config.pipeline.publish_channels.max(1))
                .map(|_| broker.publisher())
                .collect(),
        );
        Ok(Hub {
            config,
            pool,
            broker,
            management,
            catalogue,
            registry,
            metrics: Arc::new(Metrics::default()),
            activity: Arc::new(Activity::default()),
            listener,
            queue_type,
            publishers,
            clock,
            signer,
            subjects,
            data_keys,
            https,
        })
    }

    /// The HTTP address actually bound (port 0 resolved).
    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn management(&self) -> &Management {
        &self.management
    }

    /// The retention pass (it also runs by itself every
    /// `pipeline.deadline_check_secs`).
    /// Signs the audit chain's head when due (it also runs by itself every
    /// minute, and once more at stop).
    pub fn audit_checkpoints(&self) -> Checkpointer {
        Checkpointer::new(self.pool.clone(), self.signer.clone(), &self.config.audit)
    }

    pub fn retention(&self) -> RetentionPass {
        RetentionPass {
            pool: self.pool.clone(),
            catalogue: self.catalogue.clone(),
            clock: self.clock.clone(),
            rejected_after: Duration::from_secs(
                self.config.pipeline.rejected_retention_days * 24 * 3600,
            ),
            data_keys: self.data_keys.clone(),
        }
    }

    /// The acknowledgement reminder pass (it also runs by itself every
    /// `pipeline.deadline_check_secs`).
    pub fn ack_reminders(&self) -> AckReminders {
        AckReminders {
            sender: self.sender(),
            clock: self.clock.clone(),
            after: Duration::from_secs(self.config.pipeline.ack_reminder_after_hours * 3600),
        }
    }

    /// The deadline checker (it also runs by itself every
    /// `pipeline.deadline_check_secs`).
    pub fn deadlines(&self) -> DeadlineChecker {
        DeadlineChecker {
            sender: self.sender(),
            catalogue: self.catalogue.clone(),
            registry: self.registry.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The data-subject requests' deadline pass (it also runs by itself
    /// every `pipeline.deadline_check_secs`).
    pub fn subject_deadlines(&self) -> SubjectDeadlines {
        SubjectDeadlines {
            pool: self.pool.clone(),
            clock: self.clock.clone(),
            remind_before: chrono::Duration::days(self.config.subjects.remind_days_before.into()),
        }
    }

    /// The pass that seals what is stored plain or under an earlier key
    /// (it also runs by itself every `pipeline.deadline_check_secs`).
    pub fn reencryption(&self) -> Reencryption {
        Reencryption::new(self.pool.clone(), self.data_keys.clone())
    }

    /// How periodic passes send the hub's own messages.
    fn sender(&self) -> Sender {
        Sender {
            pool: self.pool.clone(),
            publishers: self.publishers.clone(),
            instance: self.config.instance.clone(),
        }
    }

    fn pipeline_context(&self) -> PipelineContext {
        PipelineContext {
            pool: self.pool.clone(),
            catalogue: self.catalogue.clone(),
            registry: self.registry.clone(),
            publishers: self.publishers.clone(),
            settings: self.config.pipeline.clone(),
            metrics: self.metrics.clone(),
            activity: self.activity.clone(),
            instance: self.config.instance.clone(),
            abort: CancellationToken::new(),
            subjects: self.subjects.clone(),
            data_keys: self.data_keys.clone(),
        }
    }

    /// The catalogue in force, to reload it (SIGHUP does the same).
    pub fn catalogue(&self) -> SharedCatalogue {
        self.catalogue.clone()
    }

    /// Runs until `shutdown` resolves, then drains: stops consuming, finishes
    /// in-flight batches (commit, publish, ack), and closes connections.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), HubError> {
        let ctx = self.pipeline_context();
        let liveness = Liveness::default();
        let stop_consuming = CancellationToken::new();
        let stop_background = CancellationToken::new();

        let deliveries = self.broker.consume(
            INGRESS_QUEUE,
            self.config.pipeline.prefetch,
            stop_consuming.clone(),
        );
        let mut pipeline = Vital::new(
            "pipeline",
            tokio::spawn(pipeline::run(ctx.clone(), deliveries)),
        );
        let mut dead_letters = Vital::new(
            "dead-letter consumer",
            tokio::spawn(pipeline::run_dead_letters(
                ctx.clone(),
                self.broker
                    .consume(DEAD_LETTER_QUEUE, 100, stop_consuming.clone()),
            )),
        );
        let every = Duration::from_secs(self.config.pipeline.deadline_check_secs.max(1));
        let mut relay = Vital::new(
            "outbox relay",
            tokio::spawn(pipeline::run_relay(ctx.clone(), stop_background.clone())),
        );
        let refresher = tokio::spawn(tasks::every(
            "registry refresh",
            REGISTRY_REFRESH,
            stop_background.clone(),
            {
                let refresh = RegistryRefresh {
                    pool: self.pool.clone(),
                    registry: self.registry.clone(),
                    broker: self.broker.clone(),
                    queue_type: self.queue_type,
                };
                move || {
                    let refresh = refresh.clone();
                    async move { refresh.once().await }
                }
            },
        ));
        let deadlines = tokio::spawn(tasks::every("deadlines", every, stop_background.clone(), {
            let checker = self.deadlines();
            move || {
                let checker = checker.clone();
                async move { checker.check_once().await }
            }
        }));
        let reminders = tokio::spawn(tasks::every(
            "acknowledgement reminders",
            every,
            stop_background.clone(),
            {
                let reminders = self.ack_reminders();
                move || {
                    let reminders = reminders.clone();
                    async move { reminders.check_once().await }
                }
            },
        ));
        let subject_deadlines = tokio::spawn(tasks::every(
            "data-subject deadlines",
            every,
            stop_background.clone(),
            {
                let pass = self.subject_deadlines();
                move || {
                    let pass = pass.clone();
                    async move { pass.check_once().await.map(|_| ()) }
                }
            },
        ));
        let reencryption = tokio::spawn(tasks::every(
            "re-encryption",
            every,
            stop_background.clone(),
            {
                let pass = self.reencryption();
                move || {
                    let pass = pass.clone();
                    async move { pass.run_once().await.map(|_| ()) }
                }
            },
        ));
        let checkpointer = self.audit_checkpoints();
        let checkpoints = tokio::spawn(tasks::every(
            "audit checkpoints",
            AUDIT_CHECKPOINT_CHECK,
            stop_background.clone(),
            {
                let checkpointer = checkpointer.clone();
                move || {
                    let checkpointer = checkpointer.clone();
                    async move { checkpointer.checkpoint_if_due(false).await.map(|_| ()) }
                }
            },
        ));
        let retention = tokio::spawn(tasks::every("retention", every, stop_background.clone(), {
            let pass = self.retention();
            move || {
                let pass = pass.clone();
                async move { pass.run_once().await }
            }
        }));
        let dead_letter_redrive = tokio::spawn(tasks::every(
            "dead-letter re-drive",
            DEAD_LETTER_REDRIVE,
            stop_background.clone(),
            {
                let ctx = ctx.clone();
                move || {
                    let ctx = ctx.clone();
                    async move { pipeline::redrive_dead_letters(&ctx).await.map(|_| ()) }
                }
            },
        ));
        let reloader = tokio::spawn(reload_on_sighup(
            self.catalogue.clone(),
            stop_background.clone(),
        ));
        let state = http::AppState {
            pool: self.pool.clone(),
            broker: self.broker.clone(),
            metrics: self.metrics.clone(),
            pipeline: ctx.clone(),
            activity: self.activity.clone(),
            console: http::ConsoleSettings {
                // Served over HTTPS, cookies are `Secure` whatever the setting.
                secure_cookies: self.config.http.secure_cookies || self.https.is_some(),
                subject_answer_days: self.config.subjects.answer_within_days,
            },
            stopping: stop_background.clone(),
            liveness: liveness.clone(),
            registry: crate::registry::workflow::RegistryContext {
                pool: self.pool.clone(),
                management: self.management.clone(),
                broker: self.broker.clone(),
                vhost: self.config.amqp.vhost.clone(),
                queue_type: self.queue_type,
                endpoint_limits: self.config.amqp.endpoint_limits(),
                registry: self.registry.clone(),
                catalogue: self.catalogue.clone(),
            },
        };
        let http_stop = stop_background.clone();
        let router = http::router(state);
        let server_task = match self.https.clone() {
            None => tokio::spawn(async move {
                axum::serve(self.listener, router)
                    .with_graceful_shutdown(async move { http_stop.cancelled().await })
                    .await
            }),
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopping = handle.clone();
                tokio::spawn(async move {
                    http_stop.cancelled().await;
                    stopping.graceful_shutdown(Some(STOP_GRACE));
                });
                let listener = self.listener.into_std()?;
                tokio::spawn(async move {
                    axum_server::from_tcp_rustls(listener, tls)
                        .handle(handle)
                        .serve(router.into_make_service())
                        .await
                })
            }
        };
        let mut server = Vital::new("HTTP server", server_task);
        info!(instance = %self.config.instance, "IMI Hub running.");

        // Until asked to stop, or until a vital task ends by itself (a bug:
        // the hub then turns unready, stops, and exits non-zero).
        let failed = tokio::select! {
            _ = shutdown => None,
            r = pipeline.ended() => { supervise::lost(&liveness, pipeline.name, &r); Some(pipeline.name) }
            r = dead_letters.ended() => { supervise::lost(&liveness, dead_letters.name, &r); Some(dead_letters.name) }
            r = relay.ended() => { supervise::lost(&liveness, relay.name, &r); Some(relay.name) }
            r = server.ended() => { supervise::lost(&liveness, server.name, &r); Some(server.name) }
        };
        info!("Shutting down: draining in-flight messages.");
        stop_consuming.cancel();
        let drain = Duration::from_secs(self.config.pipeline.drain_secs);
        if pipeline.join_within(drain).await == Joined::Aborted {
            // Not finished in time (the broker or the database is away): what
            // was taken and not acked goes back to the queue when the
            // connection closes, and is redelivered.
            warn!("Drain timed out; leaving the rest unacked for redelivery.");
        }
        ctx.abort.cancel();
        if dead_letters.join_within(STOP_GRACE).await == Joined::Aborted {
            warn!("Dead letters in hand were not recorded; they stay in their queue.");
        }
        stop_background.cancel();
        relay.join_within(STOP_GRACE).await;
        for (name, task) in [
            ("registry refresh", refresher),
            ("catalogue reloader", reloader),
            ("deadlines", deadlines),
            ("acknowledgement reminders", reminders),
            ("data-subject deadlines", subject_deadlines),
            ("re-encryption", reencryption),
            ("retention", retention),
            ("dead-letter re-drive", dead_letter_redrive),
            ("audit checkpoints", checkpoints),
        ] {
            Vital::new(name, task).join_within(STOP_GRACE).await;
        }
        // What was appended since the last checkpoint is signed before the
        // hub goes.
        supervise::within("signing the audit chain's head", STOP_GRACE, async move {
            if let Err(e) = checkpointer.checkpoint_if_due(true).await {
                warn!(error = %e, "The audit chain's head was not signed at stop.");
            }
        })
        .await;
        server.join_within(STOP_GRACE).await;
        supervise::within(
            "closing the broker connection",
            STOP_GRACE,
            self.broker.close(),
        )
        .await;
        supervise::within("closing the database pool", STOP_GRACE, self.pool.close()).await;
        match failed {
            Some(task) => Err(HubError::TaskEnded(task)),
            None => {
                info!("Stopped.");
                Ok(())
            }
        }
    }
}

/// Picks up registry changes made outside this process and declares inbox
/// queues for new endpoints.
#[derive(Clone)]
struct RegistryRefresh {
    pool: PgPool,
    registry: SharedRegistry,
    broker: Broker,
    queue_type: QueueType,
}

impl RegistryRefresh {
    async fn once(&self) -> Result<(), HubError> {
        let before: std::collections::HashSet<String> = self
            .registry
            .current()
            .endpoints()
            .map(|e| e.id.to_string())
            .collect();
        self.registry.reload(&self.pool).await?;
        let current = self.registry.current();
        let new: Vec<&str> = current
            .endpoints()
            .map(|e| e.id.as_str())
            .filter(|e| !before.contains(*e))
            .collect();
        if !new.is_empty() {
            self.broker
                .declare(topology::inboxes(self.queue_type, new.into_iter()))
                .await?;
        }
        Ok(())
    }
}

/// `kill -HUP <hub>` reloads the catalogue (the usual operator gesture).
async fn reload_on_sighup(catalogue: SharedCatalogue, stop: CancellationToken) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        warn!("Cannot listen for SIGHUP; catalogue reload by signal is off.");
        return;
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => {
                // Errors are logged by reload; the old catalogue stays.
                let _ = catalogue.reload();
            }
            _ = stop.cancelled() => return,
        }
    }
}
