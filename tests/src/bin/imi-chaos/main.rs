//! `imi-chaos`: steady mixed load through several hub processes while
//! faults are injected at random moments, on loopback only; then an
//! invariant checker compares what every sender was told, what every
//! recipient application received, and what the database holds.
//!
//! Load: requesters send `pq-information-request` requests, the responder
//! accepts and then answers each one, and an alerter sends `pq-alert` to
//! every registered authority (hundreds, behind a few gateways). Faults:
//! SIGKILL of a hub (restarted after a moment), a hub's broker or database
//! connections cut or paused through a TCP proxy, and with
//! `--restart-services` a restart of RabbitMQ and of PostgreSQL.
//!
//! Its last line is `chaos: lost L, duplicated D, orphans O, illegal I`;
//! it exits non-zero unless all four are 0.

mod check;
mod faults;
mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use imi_tests::TestEnv;

#[derive(Parser, Clone)]
#[command(
    name = "imi-chaos",
    about = "Faults under load; then nothing lost, nothing twice"
)]
pub(crate) struct Args {
    /// Seconds of load with faults (the drain after it is not counted).
    #[arg(long, default_value_t = 180)]
    pub secs: u64,
    /// Hub processes competing for the ingress queue.
    #[arg(long, default_value_t = 2)]
    pub hubs: usize,
    /// Mean seconds between two faults.
    #[arg(long, default_value_t = 2.0)]
    pub fault_every: f64,
    /// Requests per second, over all requesters.
    #[arg(long, default_value_t = 40)]
    pub rate: u64,
    /// Requesting endpoints.
    #[arg(long, default_value_t = 4)]
    pub requesters: usize,
    /// Alert gateways, each acting for `--authorities-per-gateway` authorities.
    #[arg(long, default_value_t = 10)]
    pub gateways: usize,
    #[arg(long, default_value_t = 20)]
    pub authorities_per_gateway: usize,
    /// Seconds between two alerts.
    #[arg(long, default_value_t = 3)]
    pub alert_every: u64,
    /// Also restart RabbitMQ and PostgreSQL (the machine's own: nothing else
    /// may use them during the run).
    #[arg(long)]
    pub restart_services: bool,
    /// Seconds the drain may take before what is missing counts as lost.
    #[arg(long, default_value_t = 240)]
    pub drain_secs: u64,
    /// Instead of random faults: stall every hub's database for
    /// `--stall-secs`, let it flow for half as long, and again, under the
    /// load (backpressure: the hubs must stop taking work, not buffer).
    #[arg(long)]
    pub overload: bool,
    #[arg(long, default_value_t = 60)]
    pub stall_secs: u64,
    /// Also flood the hub with this many tiny invalid messages during the
    /// run (each must be refused once).
    #[arg(long, default_value_t = 0)]
    pub flood: usize,
    /// Random seed (printed; the same seed gives the same fault plan).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    println!(
        "imi-chaos: seed {seed}, {} s, {} hubs",
        args.secs, args.hubs
    );
    let specs = load::endpoints(&args);
    let refs: Vec<Vec<&str>> = specs
        .iter()
        .map(|(_, a)| a.iter().map(String::as_str).collect())
        .collect();
    let spec_refs: Vec<(&str, &[&str])> = specs
        .iter()
        .zip(&refs)
        .map(|((id, _), a)| (id.as_str(), a.as_slice()))
        .collect();
    let env =
        TestEnv::with_registrations(&spec_refs, &["pq-information-request", "pq-alert"]).await;
    let env = Arc::new(env);

    let mut hubs = faults::Hubs::start(env.clone(), args.hubs).await;
    let world = load::World::connect(env.clone(), &args, &specs).await?;
    let started = Instant::now();
    let stop_load = tokio_util::sync::CancellationToken::new();
    let load = world.clone().run(&args, stop_load.clone());
    println!("load running; injecting faults");
    let faults = async {
        let duration = Duration::from_secs(args.secs);
        let log = if args.overload {
            faults::overload(&mut hubs, Duration::from_secs(args.stall_secs), duration).await
        } else {
            faults::inject(&mut hubs, &args, seed, duration).await
        };
        stop_load.cancel();
        log
    };
    let (_, log) = tokio::join!(load, faults);
    let loaded = started.elapsed();
    hubs.exited_by_themselves += hubs.heal().await;
    println!(
        "load and faults ended after {:.0} s; draining (up to {} s)",
        loaded.as_secs_f64(),
        args.drain_secs
    );
    world
        .drain(&env, Duration::from_secs(args.drain_secs))
        .await;
    let report = check::run(&env, &world, &log, loaded).await?;
    hubs.stop().await;
    let exited = hubs.exited_by_themselves;
    let rss = std::mem::take(&mut hubs.rss_samples);
    let peak = hubs.peak_rss_mib;
    drop(hubs);
    world.close().await;
    println!("hubs that exited by themselves (restarted): {exited}");
    if !rss.is_empty() {
        let mut per_minute = std::collections::BTreeMap::<u64, u64>::new();
        for (at, mib) in &rss {
            let m = per_minute.entry(at / 60).or_default();
            *m = (*m).max(*mib);
        }
        let mut all: Vec<u64> = rss.iter().map(|(_, m)| *m).collect();
        all.sort_unstable();
        println!(
            "hub memory (resident, sampled twice a second): median {} MiB, peak {peak} MiB; peak per minute: {:?}",
            all[all.len() / 2],
            per_minute.values().collect::<Vec<_>>()
        );
    }
    let clean = report.print();
    Arc::try_unwrap(env)
        .map_err(|_| anyhow::anyhow!("the environment is still shared"))?
        .cleanup()
        .await;
    if !clean {
        std::process::exit(1);
    }
    Ok(())
}
