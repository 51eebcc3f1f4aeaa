//! The faults: hub processes killed and restarted, their broker and
//! database connections cut or paused through TCP proxies, and (when
//! allowed) RabbitMQ and PostgreSQL restarted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use imi_tests::proxy::Proxy;
use imi_tests::TestEnv;
use secrecy::ExposeSecret;
use tokio::process::{Child, Command};

use crate::Args;

/// One fault, and when the service was whole again.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub kind: &'static str,
    pub ended: Instant,
}

struct Hub {
    child: Option<Child>,
    amqp: Proxy,
    db: Proxy,
    instance: String,
}

pub(crate) struct Hubs {
    /// Hubs that exited without being killed (restarted at once).
    pub exited_by_themselves: usize,
    /// The largest resident memory seen of any hub process, in MiB, and
    /// the samples taken.
    pub peak_rss_mib: u64,
    /// (seconds since the start, MiB) per hub sample.
    pub rss_samples: Vec<(u64, u64)>,
    started: Instant,
    env: Arc<TestEnv>,
    hubs: Vec<Hub>,
    binary: PathBuf,
}

impl Hubs {
    /// `n` hub processes, each reaching RabbitMQ and PostgreSQL through
    /// proxies of its own; returned once all are ready.
    pub(crate) async fn start(env: Arc<TestEnv>, n: usize) -> Hubs {
        // The hub binary is built beside this one (`cargo build --bins`).
        let binary = std::env::current_exe()
            .expect("own path")
            .with_file_name("imi-hub-under-test");
        assert!(
            binary.exists(),
            "{} is missing: build with `cargo build -p imi-tests --bins`",
            binary.display()
        );
        let mut hubs = Hubs {
            exited_by_themselves: 0,
            peak_rss_mib: 0,
            rss_samples: Vec::new(),
            started: Instant::now(),
            env,
            hubs: Vec::new(),
            binary,
        };
        for i in 0..n {
            let hub = Hub {
                child: None,
                amqp: Proxy::start("127.0.0.1:5672".parse().unwrap()).await,
                db: Proxy::start("127.0.0.1:5432".parse().unwrap()).await,
                instance: format!("chaos-hub-{i}"),
            };
            let overrides = hubs.overrides(&hub);
            let child = hubs
                .env
                .spawn_ready_hub_process_with(
                    hubs.binary.to_str().unwrap(),
                    &hub.instance,
                    &overrides,
                )
                .await;
            hubs.hubs.push(Hub {
                child: Some(child),
                ..hub
            });
        }
        hubs
    }

    fn overrides(&self, hub: &Hub) -> Vec<(&'static str, String)> {
        let through = |url: &str, port: u16| {
            let mut u = url::Url::parse(url).unwrap();
            u.set_port(Some(port)).unwrap();
            u.to_string()
        };
        vec![
            (
                "IMI_AMQP_URL",
                through(
                    self.env.config.amqp.url.expose_secret(),
                    hub.amqp.addr.port(),
                ),
            ),
            (
                "IMI_DATABASE_URL",
                through(
                    self.env.config.database.url.expose_secret(),
                    hub.db.addr.port(),
                ),
            ),
            // Quick passes, so a restarted hub soon re-sends what a killed
            // one left unconfirmed.
            ("IMI_PIPELINE_RELAY_INTERVAL_SECS", "1".to_owned()),
            ("IMI_PIPELINE_DRAIN_SECS", "5".to_owned()),
        ]
    }

    /// Starts hub `i` without waiting for it (it may come up into a fault).
    fn spawn(&mut self, i: usize) {
        let overrides = self.overrides(&self.hubs[i]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.dir.join(format!("{}.log", self.hubs[i].instance)))
            .expect("hub log");
        let child = Command::new(&self.binary)
            .args(["run", "--config"])
            .arg(self.env.write_config())
            .env("RUST_LOG", "warn")
            .env("IMI_INSTANCE", &self.hubs[i].instance)
            .env("IMI_HTTP_LISTEN", "127.0.0.1:0")
            .envs(overrides.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn hub");
        self.hubs[i].child = Some(child);
    }

    async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.hubs[i].child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Every proxy open, every hub running; returns how many hubs had
    /// exited by themselves (each restarted, its log's end printed).
    pub(crate) async fn heal(&mut self) -> usize {
        for i in 0..self.hubs.len() {
            self.hubs[i].amqp.resume();
            self.hubs[i].db.resume();
        }
        self.restart_exited()
    }

    /// Samples each running hub's resident memory.
    pub(crate) fn sample_memory(&mut self) {
        for hub in &self.hubs {
            let Some(pid) = hub.child.as_ref().and_then(|c| c.id()) else {
                continue;
            };
            if let Some((mib, _)) = imi_tests::resident_mib(pid) {
                self.peak_rss_mib = self.peak_rss_mib.max(mib);
                self.rss_samples
                    .push((self.started.elapsed().as_secs(), mib));
            }
        }
    }

    /// Restarts the hubs that exited by themselves (not killed here).
    fn restart_exited(&mut self) -> usize {
        let mut exited = 0;
        for i in 0..self.hubs.len() {
            let status = match &mut self.hubs[i].child {
                Some(c) => c.try_wait().ok().flatten(),
                None => continue,
            };
            if let Some(status) = status {
                exited += 1;
                let log = self.env.dir.join(format!("{}.log", self.hubs[i].instance));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                // The error it stopped with, else its last lines.
                let tail: Vec<&str> = match text.lines().rev().find(|l| l.starts_with("Error: ")) {
                    Some(error) => vec![error],
                    None => text.lines().rev().take(3).collect(),
                };
                println!(
                    "  {} exited by itself ({status}); its log ends: {:?}",
                    self.hubs[i].instance,
                    tail.into_iter().rev().collect::<Vec<_>>()
                );
                self.spawn(i);
            }
        }
        exited
    }

    pub(crate) async fn stop(&mut self) {
        for i in 0..self.hubs.len() {
            self.kill(i).await;
        }
    }
}

/// Injects faults at random moments for `duration`; returns what it did.
pub(crate) async fn inject(
    hubs: &mut Hubs,
    args: &Args,
    seed: u64,
    duration: Duration,
) -> Vec<Fault> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let mut log = Vec::new();
    let mut last_service_restart = started;
    let n = hubs.hubs.len();
    while started.elapsed() < duration {
        let wait = Duration::from_secs_f64(rng.f64() * 2.0 * args.fault_every);
        let waited = Instant::now();
        while waited.elapsed() < wait {
            hubs.sample_memory();
            tokio::time::sleep(wait.min(Duration::from_millis(500))).await;
        }
        if started.elapsed() >= duration {
            break;
        }
        hubs.exited_by_themselves += hubs.restart_exited();
        let i = rng.usize(..n);
        let service_due = args.restart_services
            && last_service_restart.elapsed() > Duration::from_secs(40)
            && started.elapsed() + Duration::from_secs(30) < duration;
        let kind = if service_due && rng.u8(..4) == 0 {
            last_service_restart = Instant::now();
            if rng.bool() {
                restart_rabbitmq().await;
                "restart RabbitMQ"
            } else {
                restart_postgresql().await;
                "restart PostgreSQL"
            }
        } else {
            match rng.u8(..10) {
                0..=4 => {
                    hubs.kill(i).await;
                    tokio::time::sleep(Duration::from_millis(rng.u64(200..2000))).await;
                    hubs.spawn(i);
                    "SIGKILL a hub"
                }
                5 => {
                    hubs.hubs[i].amqp.cut();
                    "cut hub–broker"
                }
                6 => {
                    hubs.hubs[i].db.cut();
                    "cut hub–database"
                }
                7 => {
                    hubs.hubs[i].amqp.pause();
                    tokio::time::sleep(Duration::from_millis(rng.u64(1000..5000))).await;
                    hubs.hubs[i].amqp.resume();
                    "pause hub–broker"
                }
                _ => {
                    hubs.hubs[i].db.pause();
                    tokio::time::sleep(Duration::from_millis(rng.u64(1000..5000))).await;
                    hubs.hubs[i].db.resume();
                    "pause hub–database"
                }
            }
        };
        log.push(Fault {
            kind,
            ended: Instant::now(),
        });
    }
    log
}

async fn run(program: &str, args: &[&str]) {
    match Command::new(program).args(args).status().await {
        Ok(s) if s.success() => {}
        other => eprintln!("{program} {args:?}: {other:?}"),
    }
}

async fn restart_rabbitmq() {
    run("rabbitmqctl", &["stop_app"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    run("rabbitmqctl", &["start_app"]).await;
    run("rabbitmqctl", &["await_startup"]).await;
}

async fn restart_postgresql() {
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        })
        .unwrap_or_else(|| "15".into());
    run(
        "pg_ctlcluster",
        &[
            "--skip-systemctl-redirect",
            &version,
            "main",
            "restart",
            "-m",
            "fast",
        ],
    )
    .await;
}

/// Overload: every hub's database stalls for `stall` (the hubs cannot
/// commit, so they must stop taking work), then flows for half as long,
/// again and again for `duration`, under the same load. Returns the stalls,
/// with the ingress queue's depth printed at the end of each.
pub(crate) async fn overload(hubs: &mut Hubs, stall: Duration, duration: Duration) -> Vec<Fault> {
    let started = Instant::now();
    let mut log = Vec::new();
    while started.elapsed() + stall < duration {
        for hub in &hubs.hubs {
            hub.db.pause();
        }
        let stalled = Instant::now();
        while stalled.elapsed() < stall {
            hubs.sample_memory();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let depth = hubs.ingress_depth().await;
        for hub in &hubs.hubs {
            hub.db.resume();
        }
        println!(
            "  at {:>4} s: database stalled {} s; ingress queue {depth} messages; hub memory peak so far {} MiB",
            started.elapsed().as_secs(),
            stall.as_secs(),
            hubs.peak_rss_mib
        );
        log.push(Fault {
            kind: "database stalled",
            ended: Instant::now(),
        });
        let flowing = Instant::now();
        while flowing.elapsed() < stall / 2 && started.elapsed() < duration {
            hubs.sample_memory();
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    log
}

impl Hubs {
    /// Messages waiting in (or held from) the ingress queue.
    async fn ingress_depth(&self) -> u64 {
        self.env
            .management
            .queues(&self.env.vhost)
            .await
            .ok()
            .and_then(|q| {
                q.into_iter()
                    .find(|q| q.name == imi_schemas::protocol::INGRESS_QUEUE)
                    .map(|q| q.messages)
            })
            .unwrap_or_default()
    }
}
