//! `imi-bench`: IMI Hub against a raw single-hop RabbitMQ baseline, measured
//! in the same run on the same machine.
//!
//! With no arguments it creates its own vhosts and database, starts a hub
//! in-process, and prints throughput for both, end-to-end latency p50/p99 at a
//! fixed offered rate, and as its last line `hub/raw throughput ratio: R`.

use std::collections::HashMap;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;
use imi_adapters::{Adapter, Incoming, OutgoingMessage};
use imi_broker::{Broker, BrokerConfig, Outgoing, Properties, QueueDecl, QueueType, Topology};
use imi_schemas::envelope::Envelope;
use imi_schemas::ids::{AuthorityId, MessageType};
use imi_tests::{amqp_base_url, diploma_request, TestEnv};
use tokio_util::sync::CancellationToken;

mod alerts;
mod console;
mod cpu;

#[derive(Parser)]
#[command(name = "imi-bench", about = "IMI Hub vs raw RabbitMQ, same run")]
struct Args {
    /// `backbone` (1:1 throughput and latency), `alerts` (1:N fan-out) or
    /// `console` (the console's pages on a large database).
    #[arg(default_value = "backbone", value_parser = ["backbone", "alerts", "console"])]
    mode: String,
    /// `console`: exchanges to seed (five messages each).
    #[arg(long, default_value_t = 1_000_000)]
    exchanges: usize,
    /// `console`: timed requests per page.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Messages in each throughput run.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Sending endpoints (each acting for one authority), and as many recipients.
    #[arg(long, default_value_t = 4)]
    endpoints: usize,
    /// Publishes in flight per sender (one confirm wait per window).
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Offered rate for the latency runs, messages per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds each latency run lasts (counted).
    #[arg(long, default_value_t = 5)]
    latency_secs: u64,
    /// Seconds at the offered rate before counting starts, in each latency run.
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Seconds of quiet before each latency run, so it measures the steady
    /// rate and not the aftermath of the throughput runs (PostgreSQL's
    /// autovacuum, the broker's segment writes).
    #[arg(long, default_value_t = 5)]
    settle_secs: u64,
    /// Hub: ingress prefetch (default: the hub's default).
    #[arg(long)]
    prefetch: Option<u16>,
    /// Hub: milliseconds a batch waits for more messages.
    #[arg(long)]
    linger_ms: Option<u64>,
    /// Hub: batch transactions at once.
    #[arg(long)]
    commit_concurrency: Option<usize>,
    /// Hub: AMQP channels it publishes on.
    #[arg(long)]
    publish_channels: Option<usize>,
    /// Hub: committed batches awaiting confirms at once.
    #[arg(long)]
    in_flight_batches: Option<usize>,
    /// Hub: most messages per batch transaction.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Hub: seconds between outbox relay passes.
    #[arg(long)]
    relay_interval_secs: Option<u64>,
    /// Hub: milliseconds receipts wait to share a message (0: none wait).
    #[arg(long)]
    receipt_linger_ms: Option<u64>,
    /// Throughput runs of each kind; the best of them counts (the machine is
    /// shared and noisy; best-of for both sides keeps the ratio fair).
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    /// Writes each latency run's per-message latencies to `<prefix>-raw.csv`
    /// and `<prefix>-hub.csv` (to see whether the tail is one stall).
    #[arg(long)]
    latency_trace: Option<std::path::PathBuf>,
    /// After the raw runs, measure only the hub's throughput with encryption
    /// at rest off and on, with and without audit traffic beside it, runs
    /// interleaved; prints each variant's ratio and its loss against both
    /// off. Skips the default hub and latency runs.
    #[arg(long)]
    data_protection: bool,
    /// Audit entries a second appended beside the load in the audit
    /// variants of `--data-protection` (a console's readers).
    #[arg(long, default_value_t = 50)]
    audit_per_second: u32,
    /// Queue type for the hub's queues and the raw baseline alike.
    #[arg(long, default_value = "quorum", value_parser = ["quorum", "classic"])]
    queue_type: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().build()?.block_on(async {
        if args.mode == "alerts" {
            alerts::run(&args.queue_type, args.repeats.max(1)).await
        } else if args.mode == "console" {
            console::run(args.exchanges, args.samples.max(1)).await
        } else {
            run(args).await
        }
    })
}

fn sender_authority(i: usize) -> String {
    format!("FI-SENDER{i}")
}
fn recipient_authority(i: usize) -> String {
    format!("DE-RECIPIENT{i}")
}

fn request(from: usize, to: usize) -> OutgoingMessage {
    OutgoingMessage {
        message_type: MessageType::try_from("pq-information-request.send").unwrap(),
        sender: AuthorityId::try_from(sender_authority(from).as_str()).unwrap(),
        recipients: vec![AuthorityId::try_from(recipient_authority(to).as_str()).unwrap()],
        exchange: None,
        payload: diploma_request(),
        schema_version: 1,
        countries: Vec::new(),
        message_id: None,
    }
}

/// Arrival times by message id, and the latencies measured from them.
#[derive(Default)]
struct Clock {
    sent: Mutex<HashMap<String, Instant>>,
    /// (sent, latency, message id) of every counted message.
    counted: Mutex<Vec<(Instant, Duration, String)>>,
    /// When the hub committed each message (its receipt's `accepted_at`,
    /// unix ms), for `--latency-trace`.
    committed: Mutex<HashMap<String, i64>>,
    /// Whether to keep `committed`: only for a trace, so that the hub's side
    /// does not pay bookkeeping the raw side does not.
    keeps_commits: bool,
    /// Only messages sent from this moment on count (none before it is
    /// set: the warm-up).
    counting_from: Mutex<Option<Instant>>,
}

impl Clock {
    fn sent(&self, id: String) {
        self.sent.lock().unwrap().insert(id, Instant::now());
    }
    fn count_from_now(&self) {
        *self.counting_from.lock().unwrap() = Some(Instant::now());
    }
    fn received(&self, id: &str) {
        if let Some(t) = self.sent.lock().unwrap().remove(id) {
            let counted = self
                .counting_from
                .lock()
                .unwrap()
                .is_some_and(|from| t >= from);
            if counted {
                self.counted
                    .lock()
                    .unwrap()
                    .push((t, t.elapsed(), id.to_owned()));
            }
        }
    }
    fn committed(&self, id: uuid::Uuid, at_unix_ms: i64) {
        if self.keeps_commits {
            self.committed
                .lock()
                .unwrap()
                .insert(id.to_string(), at_unix_ms);
        }
    }

    /// Writes `ms since the first counted send,latency ms,ms from send to
    /// the hub's commit` per message (the last empty for the raw run).
    fn write_trace(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut trace = self.counted.lock().unwrap().clone();
        trace.sort();
        let Some(first) = trace.first().map(|(t, _, _)| *t) else {
            return Ok(());
        };
        // The wall-clock time of the first send, to line the trace up with
        // other tools' timestamps.
        let epoch = std::time::SystemTime::now() - first.elapsed();
        let epoch_ms = epoch
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        let committed = self.committed.lock().unwrap();
        let mut out =
            format!("# first send at unix ms {epoch_ms:.0}\nsent_ms,latency_ms,commit_ms\n");
        for (t, l, id) in trace {
            let sent_ms = (t - first).as_secs_f64() * 1000.0;
            let commit = committed
                .get(&id)
                .map(|at| format!("{:.1}", *at as f64 - (epoch_ms + sent_ms)))
                .unwrap_or_default();
            out += &format!("{sent_ms:.3},{:.3},{commit}\n", l.as_secs_f64() * 1000.0);
        }
        std::fs::write(path, out)
    }

    fn percentiles(&self) -> (f64, f64, usize) {
        let mut l: Vec<Duration> = self.counted.lock().unwrap().iter().map(|c| c.1).collect();
        l.sort();
        if l.is_empty() {
            return (f64::NAN, f64::NAN, 0);
        }
        let at = |q: f64| {
            l[((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1].as_secs_f64() * 1000.0
        };
        (at(0.50), at(0.99), l.len())
    }
}

/// A latency run's result.
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    samples: usize,
    /// How busy the machine was meanwhile (`cpu::CpuSample::since`).
    cpu: String,
}

impl Latency {
    fn of(clock: &Clock, cpu: String) -> Self {
        let (p50_ms, p99_ms, samples) = clock.percentiles();
        Self {
            p50_ms,
            p99_ms,
            samples,
            cpu,
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let names: Vec<(String, Vec<String>)> = (0..args.endpoints)
        .map(|i| (format!("bs{i}"), vec![sender_authority(i)]))
        .chain((0..args.endpoints).map(|i| (format!("br{i}"), vec![recipient_authority(i)])))
        .collect();
    let specs: Vec<(&str, Vec<&str>)> = names
        .iter()
        .map(|(p, a)| (p.as_str(), a.iter().map(String::as_str).collect()))
        .collect();
    let specs: Vec<(&str, &[&str])> = specs.iter().map(|(p, a)| (*p, a.as_slice())).collect();
    let mut env = TestEnv::with_endpoints(&specs).await;
    env.config.amqp.queue_type = args.queue_type.clone();
    if let Some(p) = args.prefetch {
        env.config.pipeline.prefetch = p;
    }
    if let Some(c) = args.commit_concurrency {
        env.config.pipeline.commit_concurrency = c;
    }
    if let Some(c) = args.publish_channels {
        env.config.pipeline.publish_channels = c;
    }
    if let Some(c) = args.in_flight_batches {
        env.config.pipeline.publish_in_flight_batches = c;
    }
    if let Some(l) = args.linger_ms {
        env.config.pipeline.batch_linger_ms = l;
    }
    if let Some(b) = args.batch_size {
        env.config.pipeline.batch_size = b;
    }
    if let Some(r) = args.relay_interval_secs {
        env.config.pipeline.relay_interval_secs = r;
    }
    if let Some(r) = args.receipt_linger_ms {
        env.config.pipeline.receipt_linger_ms = r;
    }
    let result = measure(&args, &env).await;
    env.cleanup().await;
    result
}

async fn measure(args: &Args, env: &TestEnv) -> anyhow::Result<()> {
    let body_size = serde_json::to_vec(&Envelope {
        sender: sender_authority(0),
        recipients: vec![recipient_authority(0)],
        countries: Vec::new(),
        payload: diploma_request(),
    })?
    .len();
    println!(
        "IMI Hub benchmark: {} messages, {} senders -> {} recipients, {} B envelope, {} queues, window {}, best of {}",
        args.messages, args.endpoints, args.endpoints, body_size, args.queue_type, args.window, args.repeats
    );

    let raw_vhost = format!("{}-raw", env.vhost);
    env.management.create_vhost(&raw_vhost).await?;
    let all = imi_broker::Permissions {
        configure: ".*".into(),
        write: ".*".into(),
        read: ".*".into(),
    };
    env.management
        .set_permissions(&raw_vhost, "guest", &all)
        .await?;
    let raw = async {
        let mut t: f64 = 0.0;
        let cpu = cpu::CpuSample::take();
        for _ in 0..args.repeats.max(1) {
            t = t.max(raw_throughput(args, &raw_vhost, body_size, false).await?);
        }
        println!(
            "raw throughput runs, cpu meanwhile: {}",
            cpu::CpuSample::take().since(&cpu)
        );
        let shared = raw_throughput(args, &raw_vhost, body_size, true).await?;
        let l = raw_latency(args, &raw_vhost, body_size).await?;
        anyhow::Ok((t, shared, l))
    }
    .await;
    let _ = env.management.delete_vhost(&raw_vhost).await;
    let (raw_rate, raw_shared_rate, raw_latency) = raw?;
    if args.data_protection {
        return data_protection(args, env, raw_rate).await;
    }

    let hub = env.start_hub().await;
    let hub_result = async {
        let mut t: f64 = 0.0;
        let start = metrics_snapshot(&hub.http).await;
        let cpu = cpu::CpuSample::take();
        for _ in 0..args.repeats.max(1) {
            t = t.max(hub_throughput(args, env).await?);
        }
        println!(
            "hub throughput runs, cpu meanwhile: {}",
            cpu::CpuSample::take().since(&cpu)
        );
        let loaded = metrics_snapshot(&hub.http).await;
        internals("throughput runs", &start, &loaded);
        let l = hub_latency(args, env).await?;
        let paced = metrics_snapshot(&hub.http).await;
        internals(&format!("at {} msg/s", args.rate), &loaded, &paced);
        anyhow::Ok((t, l))
    }
    .await;
    hub.stop().await;
    let (hub_rate, hub_latency) = hub_result?;

    println!(
        "throughput raw single hop:  {raw_rate:>8.0} msg/s  (same client topology as the hub run)"
    );
    println!(
        "  for reference, raw with all clients on one shared connection: {raw_shared_rate:.0} msg/s (hub/that: {:.2})",
        hub_rate / raw_shared_rate
    );
    println!("throughput hub end to end:  {hub_rate:>8.0} msg/s  (each message also answered with a receipt)");
    for (name, l) in [("raw", &raw_latency), ("hub", &hub_latency)] {
        println!(
            "latency at {} msg/s, {name}:   p50 {:>6.2} ms  p99 {:>6.2} ms  ({} samples, after {} s quiet and {} s warm-up)",
            args.rate, l.p50_ms, l.p99_ms, l.samples, args.settle_secs, args.warmup_secs
        );
        println!("  cpu meanwhile: {}", l.cpu);
    }
    println!("{}", validation_rate(env)?);
    println!("{}", sealing_rate(env)?);
    println!("hub/raw throughput ratio: {:.2}", hub_rate / raw_rate);
    Ok(())
}

/// The hub's metrics as name (with labels) → value.
async fn metrics_snapshot(http: &str) -> HashMap<String, f64> {
    let Ok(text) = async { reqwest::get(format!("{http}/metrics")).await?.text().await }.await
    else {
        return HashMap::new();
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The hub's own view of one part of the run, from the change in its metrics.
fn internals(label: &str, before: &HashMap<String, f64>, after: &HashMap<String, f64>) {
    let delta = |name: &str| {
        after.get(name).copied().unwrap_or(f64::NAN) - before.get(name).copied().unwrap_or(0.0)
    };
    // The smallest bucket bound that holds 99 % of the observations.
    let p99 = |histogram: &str| {
        let total = delta(&format!("{histogram}_count"));
        let mut bounds: Vec<(f64, f64)> = after
            .keys()
            .filter_map(|k| {
                let le = k.strip_prefix(&format!("{histogram}_bucket{{le=\""))?;
                let le = le.strip_suffix("\"}")?;
                Some((le.parse::<f64>().ok()?, delta(k)))
            })
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        bounds
            .iter()
            .find(|(_, n)| *n >= total * 0.99)
            .map_or(f64::NAN, |(le, _)| le * 1000.0)
    };
    let batches = delta("imi_batch_size_messages_count");
    println!(
        "hub internals, {label}: {batches} batches, mean {:.0} msgs/batch, commit mean {:.1} ms (p99 <= {:.0} ms), publish+confirm mean {:.1} ms (p99 <= {:.0} ms)",
        delta("imi_batch_size_messages_sum") / batches,
        delta("imi_commit_seconds_sum") / delta("imi_commit_seconds_count") * 1000.0,
        p99("imi_commit_seconds"),
        delta("imi_publish_seconds_sum") / delta("imi_publish_seconds_count") * 1000.0,
        p99("imi_publish_seconds"),
    );
}

/// Validations per second on one core of a realistic professional-
/// qualifications request (the hub's per-message check, parsing excluded).
fn validation_rate(env: &TestEnv) -> anyhow::Result<String> {
    let catalogue = imi_hub::catalogue::load(&env.config.catalogue_dir)?;
    let t = MessageType::try_from("pq-information-request.send")?;
    let (_, action) = catalogue
        .resolve(&t)
        .ok_or_else(|| anyhow::anyhow!("no PQ request in the catalogue"))?;
    let payload = diploma_request();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..1000 {
            assert!(action.is_valid(std::hint::black_box(&payload)));
        }
        n += 1000;
    }
    let validate_only = n as f64 / started.elapsed().as_secs_f64();
    // What the hub does per message: parse the body, then validate.
    let body = serde_json::to_vec(&Envelope {
        sender: sender_authority(0),
        recipients: vec![recipient_authority(0)],
        countries: Vec::new(),
        payload,
    })?;
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..1000 {
            let envelope: Envelope = serde_json::from_slice(std::hint::black_box(&body))?;
            assert!(action.is_valid(&envelope.payload));
        }
        n += 1000;
    }
    Ok(format!(
        "validation, one core: {validate_only:.0} PQ requests/s (parse + validate: {:.0}/s)",
        n as f64 / started.elapsed().as_secs_f64()
    ))
}

pub(crate) fn raw_broker(vhost: &str, name: &str, queues: &[String], queue_type: &str) -> Broker {
    let queue_type = QueueType::parse(queue_type).expect("checked by clap");
    Broker::start(
        BrokerConfig {
            tls: None,
            url: imi_broker::connection_url(&amqp_base_url(), vhost, None).expect("broker URL"),
            connection_name: name.into(),
        },
        Topology {
            exchanges: vec![],
            queues: queues
                .iter()
                .map(|q| QueueDecl {
                    name: q.clone(),
                    queue_type,
                    dead_letter_exchange: None,
                    delivery_limit: None,
                    bindings: vec![],
                })
                .collect(),
        },
    )
}

fn raw_message(queue: &str, body: &[u8]) -> (String, Outgoing) {
    let id = uuid::Uuid::new_v4().to_string();
    let message = Outgoing {
        exchange: String::new(),
        routing_key: queue.into(),
        mandatory: true,
        properties: Properties {
            message_id: Some(id.clone()),
            content_type: Some("application/json".into()),
            ..Default::default()
        },
        body: body.to_vec(),
    };
    (id, message)
}

/// The raw baseline mirrors the hub run's client topology: one connection
/// per sending system, one queue and one consuming connection per recipient
/// system, the same prefetch (200) and per-message acks as the SDK inbox.
struct RawClients {
    senders: Vec<(Broker, Arc<imi_broker::Publisher>)>,
    consumers: Vec<Broker>,
    queues: Vec<String>,
    stop: CancellationToken,
    received: tokio::sync::mpsc::Receiver<()>,
}

impl RawClients {
    async fn close(self) {
        self.stop.cancel();
        for (b, _) in &self.senders {
            b.close().await;
        }
        for b in &self.consumers {
            b.close().await;
        }
    }
}

/// With `shared`, every client uses one connection (channels of their own),
/// which lapin handles with far less CPU than one connection per system.
async fn raw_clients(
    args: &Args,
    vhost: &str,
    prefix: &str,
    shared: bool,
    clock: Arc<Clock>,
) -> anyhow::Result<RawClients> {
    let queues: Vec<String> = (0..args.endpoints)
        .map(|i| format!("{prefix}.{i}"))
        .collect();
    let stop = CancellationToken::new();
    let (tx, received) = tokio::sync::mpsc::channel(100_000);
    let one = raw_broker(vhost, "bench raw shared", &queues, &args.queue_type);
    one.wait_connected(Duration::from_secs(15)).await?;
    let connect = |name: String, queues: &[String]| {
        let broker = if shared {
            one.clone()
        } else {
            raw_broker(vhost, &name, queues, &args.queue_type)
        };
        async move {
            broker.wait_connected(Duration::from_secs(15)).await?;
            anyhow::Ok(broker)
        }
    };
    let mut consumers = vec![one.clone()];
    for (i, queue) in queues.iter().enumerate() {
        let broker = connect(
            format!("bench raw recipient {i}"),
            std::slice::from_ref(queue),
        )
        .await?;
        let mut deliveries = broker.consume(queue, 200, stop.clone());
        let (tx, clock) = (tx.clone(), clock.clone());
        tokio::spawn(async move {
            while let Some(d) = deliveries.recv().await {
                clock.received(d.properties.message_id.as_deref().unwrap_or(""));
                let _ = d.acker.ack().await;
                let _ = tx.send(()).await;
            }
        });
        consumers.push(broker);
    }
    let mut senders = Vec::new();
    for i in 0..args.endpoints {
        let broker = connect(format!("bench raw sender {i}"), &[]).await?;
        let publisher = Arc::new(broker.publisher());
        senders.push((broker, publisher));
    }
    Ok(RawClients {
        senders,
        consumers,
        queues,
        stop,
        received,
    })
}

async fn raw_throughput(
    args: &Args,
    vhost: &str,
    body_size: usize,
    shared: bool,
) -> anyhow::Result<f64> {
    let prefix = if shared {
        "bench.raw.shared"
    } else {
        "bench.raw"
    };
    let mut clients = raw_clients(args, vhost, prefix, shared, Arc::default()).await?;
    let body = vec![b'x'; body_size];
    let per_sender = args.messages / args.endpoints;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, (_, publisher)) in clients.senders.iter().enumerate() {
        let (publisher, body, queues) = (publisher.clone(), body.clone(), clients.queues.clone());
        let window = args.window;
        tasks.push(tokio::spawn(async move {
            let mut left = per_sender;
            let mut k = 0;
            while left > 0 {
                let n = left.min(window);
                let batch: Vec<_> = (0..n)
                    .map(|j| raw_message(&queues[(i + k + j) % queues.len()], &body).1)
                    .collect();
                publisher.publish_all(&batch).await?;
                left -= n;
                k += n;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let done = wait_for(
        &mut clients.received,
        per_sender * args.endpoints,
        Duration::from_secs(120),
    )
    .await?;
    clients.close().await;
    Ok((per_sender * args.endpoints) as f64 / (done - started).as_secs_f64())
}

async fn raw_latency(args: &Args, vhost: &str, body_size: usize) -> anyhow::Result<Latency> {
    let clock = Arc::new(Clock::default());
    let mut clients = raw_clients(args, vhost, "bench.raw.latency", false, clock.clone()).await?;
    let warmup = (args.rate * args.warmup_secs) as usize;
    let total = warmup + (args.rate * args.latency_secs) as usize;
    settle(args).await;
    let body = vec![b'x'; body_size];
    let mut cpu = cpu::CpuSample::take();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate));
    for k in 0..total {
        tick.tick().await;
        if k == warmup {
            clock.count_from_now();
            cpu = cpu::CpuSample::take();
        }
        let (id, message) = raw_message(&clients.queues[k % clients.queues.len()], &body);
        clock.sent(id);
        let publisher = clients.senders[k % clients.senders.len()].1.clone();
        tokio::spawn(async move { publisher.publish_all(std::slice::from_ref(&message)).await });
    }
    wait_for(&mut clients.received, total, Duration::from_secs(60)).await?;
    let cpu = cpu::CpuSample::take().since(&cpu);
    clients.close().await;
    trace(args, &clock, "raw");
    Ok(Latency::of(&clock, cpu))
}

/// The quiet before a latency run. It starts by writing the earlier runs'
/// dirty pages to disk: the kernel writes pages back 30 s after they were
/// dirtied, which landed in the middle of the latency runs as bursts of
/// 300 MB/s and stalled every fsync (the broker's and PostgreSQL's) for up to
/// 200 ms.
async fn settle(args: &Args) {
    let synced = tokio::process::Command::new("sync").status().await;
    if !synced.is_ok_and(|s| s.success()) {
        eprintln!("`sync` failed; the latency run may meet the kernel's writeback");
    }
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
}

fn trace(args: &Args, clock: &Clock, kind: &str) {
    if let Some(prefix) = &args.latency_trace {
        let path = prefix.with_file_name(format!(
            "{}-{kind}.csv",
            prefix.file_name().unwrap_or_default().to_string_lossy()
        ));
        if let Err(error) = clock.write_trace(&path) {
            eprintln!("could not write {}: {error}", path.display());
        }
    }
}

struct HubClients {
    senders: Vec<Arc<Adapter>>,
    /// Kept to be closed: an adapter left open reconnects after the run's
    /// vhost is deleted, and lapin panics if the runtime ends mid-connect.
    recipients: Vec<Arc<Adapter>>,
    stop: CancellationToken,
    received: tokio::sync::mpsc::Receiver<()>,
}

impl HubClients {
    async fn close(&self) {
        self.stop.cancel();
        for adapter in self.senders.iter().chain(&self.recipients) {
            adapter.close().await;
        }
    }
}

/// Connects every endpoint; recipients count what they receive (recording
/// latency), senders drain their receipts.
async fn hub_clients(env: &TestEnv, args: &Args, clock: Arc<Clock>) -> anyhow::Result<HubClients> {
    let stop = CancellationToken::new();
    let (tx, received) = tokio::sync::mpsc::channel(100_000);
    let (mut senders, mut recipients) = (Vec::new(), Vec::new());
    for i in 0..args.endpoints * 2 {
        let adapter = Arc::new(env.adapter(i).await);
        let mut inbox = adapter.inbox(stop.clone());
        let is_recipient = i >= args.endpoints;
        let tx = tx.clone();
        let clock = clock.clone();
        tokio::spawn(async move {
            while let Some(item) = inbox.next().await {
                if let Incoming::Message(_) = &item.incoming {
                    if is_recipient {
                        clock.received(&item.message_id);
                        let _ = tx.send(()).await;
                    }
                } else if let Incoming::Receipt(r) = &item.incoming {
                    clock.committed(r.message_id, r.accepted_at.timestamp_millis());
                } else if let Incoming::Rejection(r) = &item.incoming {
                    eprintln!("unexpected rejection: {r:?}");
                }
                let _ = item.ack().await;
            }
        });
        if is_recipient {
            recipients.push(adapter);
        } else {
            senders.push(adapter);
        }
    }
    Ok(HubClients {
        senders,
        recipients,
        stop,
        received,
    })
}

async fn wait_for(
    received: &mut tokio::sync::mpsc::Receiver<()>,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Instant> {
    let deadline = tokio::time::Instant::now() + timeout;
    for i in 0..n {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some(())) => {}
            _ => bail!("only {i} of {n} messages arrived in time"),
        }
    }
    Ok(Instant::now())
}

async fn hub_throughput(args: &Args, env: &TestEnv) -> anyhow::Result<f64> {
    let mut clients = hub_clients(env, args, Arc::default()).await?;
    let per_sender = args.messages / args.endpoints;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, adapter) in clients.senders.iter().enumerate() {
        let adapter = adapter.clone();
        let window = args.window;
        let recipients = args.endpoints;
        tasks.push(tokio::spawn(async move {
            let mut left = per_sender;
            let mut k = 0;
            while left > 0 {
                let n = left.min(window);
                let batch: Vec<_> = (0..n)
                    .map(|j| request(i, (i + k + j) % recipients))
                    .collect();
                adapter.send_batch(&batch).await?;
                left -= n;
                k += n;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let done = wait_for(
        &mut clients.received,
        per_sender * args.endpoints,
        Duration::from_secs(240),
    )
    .await?;
    clients.close().await;
    Ok((per_sender * args.endpoints) as f64 / (done - started).as_secs_f64())
}

async fn hub_latency(args: &Args, env: &TestEnv) -> anyhow::Result<Latency> {
    let clock = Arc::new(Clock {
        keeps_commits: args.latency_trace.is_some(),
        ..Clock::default()
    });
    let mut clients = hub_clients(env, args, clock.clone()).await?;
    let warmup = (args.rate * args.warmup_secs) as usize;
    let total = warmup + (args.rate * args.latency_secs) as usize;
    settle(args).await;
    let mut cpu = cpu::CpuSample::take();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate));
    for k in 0..total {
        tick.tick().await;
        if k == warmup {
            clock.count_from_now();
            cpu = cpu::CpuSample::take();
        }
        let i = k % clients.senders.len();
        let mut message = request(i, k % args.endpoints);
        let id = imi_schemas::ids::MessageId::new(uuid::Uuid::new_v4());
        message.message_id = Some(id);
        clock.sent(id.to_string());
        let adapter = clients.senders[i].clone();
        tokio::spawn(async move { adapter.send(&message).await });
    }
    wait_for(&mut clients.received, total, Duration::from_secs(120)).await?;
    let cpu = cpu::CpuSample::take().since(&cpu);
    clients.close().await;
    trace(args, &clock, "hub");
    Ok(Latency::of(&clock, cpu))
}

/// The cost of encryption at rest and of the audit log on the ratio, all
/// variants in one run, interleaved round by round in a rotating order (the
/// machine drifts, and the database grows with every run).
async fn data_protection(args: &Args, env: &TestEnv, raw_rate: f64) -> anyhow::Result<()> {
    // (label, encryption, audit traffic)
    let variants = [
        ("encryption off, audit idle", false, false),
        ("encryption on,  audit idle", true, false),
        ("encryption off, audit busy", false, true),
        ("encryption on,  audit busy", true, true),
    ];
    let mut runs: [Vec<f64>; 4] = Default::default();
    let pool = env.pool().await;
    for round in 0..args.repeats.max(1) {
        // Each round starts one variant later, so each takes every place
        // in the order (the database grows during a round).
        for i in (0..variants.len()).map(|k| (k + round) % variants.len()) {
            let (label, encrypted, audited) = &variants[i];
            let mut config = env.config.clone();
            if *encrypted {
                // What the variants without encryption stored plain is
                // sealed first: turning encryption on seals the existing
                // rows once (a hub's pass after its start), which is not the
                // steady cost measured here.
                let keys = imi_hub::at_rest::DataKeys::load(
                    config.encryption.key_file.as_ref(),
                    &config.encryption.previous_key_files,
                )?;
                imi_hub::at_rest::Reencryption::new(pool.clone(), keys)
                    .run_once()
                    .await?;
            } else {
                config.encryption.key_file = None;
            }
            let hub =
                TestEnv::start_hub_configured(config, Arc::new(imi_hub::clock::SystemClock)).await;
            // The hub's own start-up passes (its re-encryption scan finds
            // nothing left to seal) end before the load.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let stop = tokio_util::sync::CancellationToken::new();
            let audit = audited.then(|| {
                let (pool, stop, rate) = (pool.clone(), stop.clone(), args.audit_per_second);
                tokio::spawn(async move { imi_hub::bench::audit_traffic(&pool, rate, stop).await })
            });
            let rate = hub_throughput(args, env).await;
            stop.cancel();
            let appended = match audit {
                Some(task) => task.await??,
                None => 0,
            };
            hub.stop().await;
            let rate = rate?;
            runs[i].push(rate);
            println!(
                "  round {round}: {label}: {rate:.0} msg/s (ratio {:.2}){}",
                rate / raw_rate,
                if *audited {
                    format!(", {appended} audit entries meanwhile")
                } else {
                    String::new()
                }
            );
        }
    }
    // The median of the rounds: on a shared two-core machine one lucky run
    // decides a best-of.
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = runs.iter().map(|r| median(r)).collect();
    println!(
        "data protection, median of {} interleaved rounds each (raw {raw_rate:.0} msg/s, audit busy = {} entries/s):",
        args.repeats.max(1),
        args.audit_per_second
    );
    for (i, (label, _, _)) in variants.iter().enumerate() {
        println!(
            "  {label}: {:>6.0} msg/s  ratio {:.2}  ({:+.1} % against both off; best {:.0})",
            medians[i],
            medians[i] / raw_rate,
            (medians[i] / medians[0] - 1.0) * 100.0,
            runs[i].iter().copied().fold(0.0, f64::max)
        );
    }
    println!("{}", sealing_rate(env)?);
    println!("hub/raw throughput ratio: {:.2}", medians[3] / raw_rate);
    Ok(())
}

/// Seals and opens per second on one core of the benchmark's envelope: the
/// CPU encryption at rest adds to each message, resolvable where the
/// throughput runs' noise is not.
fn sealing_rate(env: &TestEnv) -> anyhow::Result<String> {
    let body = serde_json::to_vec(&Envelope {
        sender: sender_authority(0),
        recipients: vec![recipient_authority(0)],
        countries: Vec::new(),
        payload: diploma_request(),
    })?;
    let keys = imi_hub::at_rest::DataKeys::load(env.config.encryption.key_file.as_ref(), &[])?;
    const N: u32 = 200_000;
    let started = Instant::now();
    let mut sealed = Vec::new();
    for _ in 0..N {
        sealed = keys.seal_for_bench(&body);
    }
    let seal = f64::from(N) / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..N {
        std::hint::black_box(imi_hub::at_rest::read_stored(&sealed));
    }
    let open = f64::from(N) / started.elapsed().as_secs_f64();
    Ok(format!(
        "encryption at rest, one core, {} B envelope: seal {:.0}/s ({:.2} µs), open {:.0}/s ({:.2} µs)",
        body.len(),
        seal,
        1e6 / seal,
        open,
        1e6 / open
    ))
}
