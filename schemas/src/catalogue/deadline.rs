//! Deadlines as the acts say them: a period of calendar days, working days,
//! weeks or months, counted from an event, and stopped or restarted by a
//! request for more information; the per-country calendars of working days.
//!
//! Pure: the hub gives [`Deadline::clock`] an exchange's history and gets
//! the deadline's clock now. Replaying the whole history (rather than
//! updating a stored clock step by step) keeps the answer the same whichever
//! hub instance computes it, and in whatever order batches committed.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveTime, Utc};
use serde_json::Value;

pub use super::model::{ClockRule, DeadlineEvent, SourceOfDeadline as DeadlineSource};

/// How long a deadline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    WorkingDays(u32),
    Weeks(u32),
    Months(u32),
}

impl Period {
    /// The due time of a period counted from an event at `start`, as
    /// Regulation (EEC, Euratom) No 1182/71 counts periods (Art. 3): the
    /// day of the event does not count; the period ends with the last hour
    /// of its last day (`Days`/`Weeks` later, `Months` later on the same day
    /// or the month's last, or the `WorkingDays`-th working day); a last day
    /// that is not a working day of `calendar` moves to the next working day.
    /// Days end at midnight UTC.
    pub fn due(&self, start: DateTime<Utc>, calendar: &Calendar) -> DateTime<Utc> {
        self.due_after_date(start.date_naive(), calendar)
    }

    /// The due time of a period counted from a date (a decision's date):
    /// the end of its last day, moved to the next working day as [`due`]
    /// says.
    ///
    /// [`due`]: Period::due
    pub fn due_after_date(&self, date: NaiveDate, calendar: &Calendar) -> DateTime<Utc> {
        let last = calendar.this_or_next_working_day(self.end_day(date, calendar));
        end_of(last)
    }

    fn end_day(&self, from: NaiveDate, calendar: &Calendar) -> NaiveDate {
        match *self {
            Period::Days(n) => from + Duration::days(i64::from(n)),
            Period::Weeks(n) => from + Duration::weeks(i64::from(n)),
            Period::Months(n) => from
                .checked_add_months(Months::new(n))
                .unwrap_or(NaiveDate::MAX),
            Period::WorkingDays(n) => {
                let mut day = from;
                let mut left = n;
                // Bounded: a calendar without working days cannot loop.
                for _ in 0..(u64::from(n) * 7 + 366) {
                    if left == 0 {
                        break;
                    }
                    day = match day.succ_opt() {
                        Some(next) => next,
                        None => break,
                    };
                    if calendar.is_working_day(day) {
                        left -= 1;
                    }
                }
                day
            }
        }
    }

    /// `25 working days`, for references and notices.
    pub fn describe(&self) -> String {
        match *self {
            Period::Days(n) => format!("{n} days"),
            Period::WorkingDays(n) => format!("{n} working days"),
            Period::Weeks(n) => format!("{n} weeks"),
            Period::Months(n) => format!("{n} months"),
        }
    }
}

/// The days a country's authorities work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Indexed by `Weekday::num_days_from_monday`.
    weekend: [bool; 7],
    holidays: BTreeSet<NaiveDate>,
    /// Holidays are known up to this date (none for the default calendar).
    pub valid_until: Option<NaiveDate>,
}

impl Default for Calendar {
    /// Monday to Friday, no holidays: for a country without a calendar.
    fn default() -> Self {
        Self {
            weekend: [false, false, false, false, false, true, true],
            holidays: BTreeSet::new(),
            valid_until: None,
        }
    }
}

impl Calendar {
    pub fn new(
        weekend: impl IntoIterator<Item = chrono::Weekday>,
        holidays: impl IntoIterator<Item = NaiveDate>,
        valid_until: NaiveDate,
    ) -> Self {
        let mut days = [false; 7];
        for d in weekend {
            days[d.num_days_from_monday() as usize] = true;
        }
        Self {
            weekend: days,
            holidays: holidays.into_iter().collect(),
            valid_until: Some(valid_until),
        }
    }

    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        !self.weekend[day.weekday().num_days_from_monday() as usize]
            && !self.holidays.contains(&day)
    }

    /// `day` if it is a working day, else the next one (at most a year on,
    /// whatever the calendar says).
    pub fn this_or_next_working_day(&self, day: NaiveDate) -> NaiveDate {
        let mut d = day;
        for _ in 0..366 {
            if self.is_working_day(d) {
                return d;
            }
            d = match d.succ_opt() {
                Some(next) => next,
                None => return d,
            };
        }
        day
    }

    pub fn holidays(&self) -> impl Iterator<Item = &NaiveDate> {
        self.holidays.iter()
    }
}

/// When a deadline runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadlineRuns {
    /// While the exchange is in one of `states`, counted from `from` (or,
    /// without it, from entering them).
    InStates {
        states: Vec<String>,
        from: Option<DeadlineEvent>,
    },
    /// From the date in this field of the opening payload.
    FromField(String),
}

/// One deadline of a procedure, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadline {
    pub code: String,
    pub runs: DeadlineRuns,
    pub period: Period,
    /// Due by the agreed answer date when there is one.
    pub agreed_date: bool,
    pub more_information: ClockRule,
    /// Applies only when this boolean field of the opening payload is true.
    pub if_field: Option<String>,
    pub source: DeadlineSource,
    /// What missing it means in law: a code with labels.
    pub consequence: Option<String>,
}

/// One step of an exchange's history, as the deadline clock reads it.
#[derive(Debug, Clone, Copy)]
pub struct HistoryStep<'a> {
    /// The events the step's action is (`marks`, and `request-received` for
    /// the opening action).
    pub events: &'a [DeadlineEvent],
    pub to: &'a str,
    pub at: DateTime<Utc>,
    /// The step's payload, where it was read (agreed dates, `if_field`).
    pub payload: Option<&'a Value>,
}

/// A deadline's clock after an exchange's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Not running: not started, met, or not applicable.
    Off,
    Running {
        started_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    },
    /// Stopped by a request for more information, with the time it had left
    /// (`None`: it restarts with the whole period on receipt).
    Stopped {
        started_at: DateTime<Utc>,
        left: Option<Duration>,
    },
}

/// The field of an opening request that proposes an answer date, and the
/// field of a later action that counter-proposes one (some forms call the
/// counter-proposal `requested_answer_date` too).
const REQUESTED_ANSWER_DATE: &str = "requested_answer_date";
const PROPOSED_ANSWER_DATE: &str = "proposed_answer_date";

impl Deadline {
    /// The clock after `history` (in order; the first step opened the
    /// exchange), counting working days with `calendar`. Deadlines counted
    /// from a payload date are not clocks: always `Off` here.
    pub fn clock(&self, history: &[HistoryStep<'_>], calendar: &Calendar) -> Clock {
        let DeadlineRuns::InStates { states, from } = &self.runs else {
            return Clock::Off;
        };
        let opening = history.first().and_then(|s| s.payload);
        if let Some(field) = &self.if_field {
            let flagged = opening.and_then(|p| p.get(field)).and_then(Value::as_bool);
            if flagged != Some(true) {
                return Clock::Off;
            }
        }
        let runs_in = |s: &str| states.iter().any(|x| x == s);
        let mut clock = Clock::Off;
        let mut in_states = false;
        let mut met_before = false;
        for step in history {
            let has = |e: DeadlineEvent| step.events.contains(&e);
            let requested = has(DeadlineEvent::MoreInformationRequested)
                || has(DeadlineEvent::DocumentsRequested);
            let received = has(DeadlineEvent::MoreInformationReceived)
                || has(DeadlineEvent::DocumentsReceived);
            if requested {
                if let Clock::Running { started_at, due_at } = clock {
                    clock = match self.more_information {
                        ClockRule::Stop => Clock::Stopped {
                            started_at,
                            left: Some((due_at - step.at).max(Duration::zero())),
                        },
                        ClockRule::Restart => Clock::Stopped {
                            started_at,
                            left: None,
                        },
                        ClockRule::None => clock,
                    };
                }
            }
            let was_stopped = matches!(clock, Clock::Stopped { .. });
            if received {
                if let Clock::Stopped { started_at, left } = clock {
                    clock = match left {
                        Some(left) => Clock::Running {
                            started_at,
                            due_at: step.at + left,
                        },
                        None => Clock::Running {
                            started_at: step.at,
                            due_at: self.period.due(step.at, calendar),
                        },
                    };
                }
            }
            let now_in = runs_in(step.to);
            // Entering the states again after a stop resumes the clock (or
            // keeps it stopped until the receipt); it does not start anew.
            // Entering them again after the clock was met (a follow-up
            // question after the answer) starts it anew, whatever started it
            // the first time.
            let reenters = now_in && !in_states && !was_stopped;
            let starts = match from {
                Some(event) => has(*event) || (reenters && met_before),
                None => reenters,
            };
            // A counter-proposal accepted after the clock started (a clock
            // counted from receipt) moves the agreed date.
            if self.agreed_date && !starts && has(DeadlineEvent::Acceptance) {
                if let (Clock::Running { started_at, .. }, Some(date)) =
                    (clock, counter_proposal(step))
                {
                    clock = Clock::Running {
                        started_at,
                        due_at: end_of(date),
                    };
                }
            }
            if starts && now_in {
                clock = Clock::Running {
                    started_at: step.at,
                    due_at: self.due_from(step, opening, calendar),
                };
            } else if !now_in {
                if let Clock::Running { .. } = clock {
                    clock = Clock::Off;
                    met_before = true;
                }
            }
            in_states = now_in;
        }
        clock
    }

    /// The due time of a clock started by `step`: the agreed answer date
    /// (the counter-proposal, else the requester's proposal), else the
    /// period.
    fn due_from(
        &self,
        step: &HistoryStep<'_>,
        opening: Option<&Value>,
        calendar: &Calendar,
    ) -> DateTime<Utc> {
        if self.agreed_date {
            let agreed = counter_proposal(step).or_else(|| date_in(opening, REQUESTED_ANSWER_DATE));
            if let Some(date) = agreed {
                return end_of(date);
            }
        }
        self.period.due(step.at, calendar)
    }

    /// `Directive 2014/67/EU, Art. 6(6)` or `default: …`.
    pub fn source_text(&self) -> String {
        match &self.source {
            DeadlineSource::Act { act, article } => format!("{act}, {article}"),
            DeadlineSource::Default { default } => format!("default: {default}"),
        }
    }
}

/// A date field of a payload (the form has validated its format).
fn date_in(payload: Option<&Value>, field: &str) -> Option<NaiveDate> {
    payload
        .and_then(|p| p.get(field))
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
}

/// The answer date a step other than the opening one proposes.
fn counter_proposal(step: &HistoryStep<'_>) -> Option<NaiveDate> {
    if step.events.contains(&DeadlineEvent::RequestReceived) {
        return None;
    }
    date_in(step.payload, PROPOSED_ANSWER_DATE)
        .or_else(|| date_in(step.payload, REQUESTED_ANSWER_DATE))
}

/// The end of an agreed day: the deadline falls at midnight after it (UTC).
fn end_of(date: NaiveDate) -> DateTime<Utc> {
    (date + Duration::days(1))
        .and_time(NaiveTime::MIN)
        .and_utc()
}

#[cfg(test)]
mod tests;
