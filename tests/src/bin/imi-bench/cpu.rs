//! Where the CPU went during part of a run, read from `/proc` (Linux): the
//! benchmark shares two cores with RabbitMQ and PostgreSQL, so a latency
//! figure means little without knowing how busy the machine was.

use std::collections::HashMap;
use std::time::Instant;

/// `/proc` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

pub(crate) struct CpuSample {
    at: Instant,
    by_group: HashMap<&'static str, f64>,
    /// (busy, all) ticks of the whole machine, every core.
    machine: (f64, f64),
}

impl CpuSample {
    pub(crate) fn take() -> Self {
        let mut by_group = HashMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (command) state ppid ...": utime and stime are the 12th
            // and 13th fields after the command.
            let Some((head, tail)) = stat.rsplit_once(')') else {
                continue;
            };
            let command = head.split_once('(').map_or("", |(_, c)| c);
            let ticks: f64 = tail
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<f64>().ok())
                .sum();
            *by_group.entry(group(command)).or_insert(0.0) += ticks;
        }
        let machine = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let ticks: Vec<f64> = s
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|t| t.parse().ok())
                    .collect();
                let all: f64 = ticks.iter().sum();
                // idle and iowait
                Some((all - ticks.get(3)? - ticks.get(4)?, all))
            })
            .unwrap_or_default();
        Self {
            at: Instant::now(),
            by_group,
            machine,
        }
    }

    /// "machine 78 % busy; this process 98 %, RabbitMQ 71 %, ..." (per cent
    /// of one core), since `earlier`.
    pub(crate) fn since(&self, earlier: &CpuSample) -> String {
        let seconds = (self.at - earlier.at).as_secs_f64().max(1e-3);
        let mut groups: Vec<(&str, f64)> = self
            .by_group
            .iter()
            .map(|(g, t)| {
                let before = earlier.by_group.get(g).copied().unwrap_or(0.0);
                (*g, (t - before) / TICKS_PER_SECOND / seconds * 100.0)
            })
            .filter(|(_, p)| *p >= 1.0)
            .collect();
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (busy, all) = (
            self.machine.0 - earlier.machine.0,
            self.machine.1 - earlier.machine.1,
        );
        let parts: Vec<String> = groups
            .iter()
            .map(|(g, p)| format!("{g} {p:.0} %"))
            .collect();
        format!(
            "machine {:.0} % busy; per cent of one core: {}",
            busy / all.max(1.0) * 100.0,
            parts.join(", ")
        )
    }
}

fn group(command: &str) -> &'static str {
    match command {
        "imi-bench" => "this process (hub and clients)",
        "beam.smp" => "RabbitMQ",
        "postgres" => "PostgreSQL",
        c if c.starts_with("kworker") => "kernel workers",
        _ => "other",
    }
}
