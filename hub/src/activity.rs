//! What the console shows live, kept in memory by the pipeline: messages
//! accepted and refused per minute over the last hour, and when each
//! endpoint was last heard from. Per hub instance, since it started; the
//! database keeps the record, this is the pulse.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// Minutes kept.
const WINDOW: usize = 60;

/// Counts of one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Minute {
    /// Minutes since the epoch.
    pub(crate) minute: i64,
    pub(crate) accepted: u64,
    pub(crate) refused: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Activity {
    minutes: Mutex<VecDeque<Minute>>,
    last_seen: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl Activity {
    /// Records a committed batch: its counts, and the endpoints it came from.
    pub(crate) fn record<'a>(
        &self,
        at: DateTime<Utc>,
        accepted: u64,
        refused: u64,
        senders: impl Iterator<Item = &'a str>,
    ) {
        let minute = at.timestamp().div_euclid(60);
        {
            let mut minutes = self.minutes.lock().expect("activity lock");
            match minutes.back_mut() {
                Some(last) if last.minute == minute => {
                    last.accepted += accepted;
                    last.refused += refused;
                }
                _ => {
                    minutes.push_back(Minute {
                        minute,
                        accepted,
                        refused,
                    });
                    while minutes.len() > WINDOW {
                        minutes.pop_front();
                    }
                }
            }
        }
        let mut seen = self.last_seen.lock().expect("activity lock");
        for sender in senders {
            match seen.get_mut(sender) {
                Some(t) => *t = at,
                None => {
                    seen.insert(sender.to_owned(), at);
                }
            }
        }
    }

    /// The last hour, a minute each, oldest first, ending with the minute of
    /// `now` (minutes without traffic are zero).
    pub(crate) fn last_hour(&self, now: DateTime<Utc>) -> Vec<Minute> {
        let current = now.timestamp().div_euclid(60);
        let minutes = self.minutes.lock().expect("activity lock");
        (current - WINDOW as i64 + 1..=current)
            .map(|minute| {
                minutes
                    .iter()
                    .find(|m| m.minute == minute)
                    .copied()
                    .unwrap_or(Minute {
                        minute,
                        ..Minute::default()
                    })
            })
            .collect()
    }

    /// When `endpoint` was last heard from, since this hub started.
    pub(crate) fn last_seen(&self, endpoint: &str) -> Option<DateTime<Utc>> {
        self.last_seen
            .lock()
            .expect("activity lock")
            .get(endpoint)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn minutes_add_up_and_the_hour_rolls() {
        let activity = Activity::default();
        let t = |m: i64, s: u32| Utc.timestamp_opt(m * 60 + i64::from(s), 0).unwrap();
        activity.record(t(100, 1), 3, 1, ["fi-gw"].into_iter());
        activity.record(t(100, 59), 2, 0, ["de-gw"].into_iter());
        activity.record(t(102, 0), 5, 5, ["fi-gw"].into_iter());
        let hour = activity.last_hour(t(102, 30));
        assert_eq!(hour.len(), 60);
        let minute = |m| hour.iter().find(|x| x.minute == m).copied().unwrap();
        assert_eq!((minute(100).accepted, minute(100).refused), (5, 1));
        assert_eq!((minute(101).accepted, minute(101).refused), (0, 0));
        assert_eq!(minute(102).refused, 5);
        assert_eq!(activity.last_seen("fi-gw"), Some(t(102, 0)));
        assert_eq!(activity.last_seen("at-gw"), None);
        // An hour later the old minutes are gone.
        assert!(activity
            .last_hour(t(200, 0))
            .iter()
            .all(|m| m.accepted == 0));
    }
}
