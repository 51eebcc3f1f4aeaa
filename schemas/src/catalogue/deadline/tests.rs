use chrono::{DateTime, NaiveDate, TimeZone, Utc, Weekday};
use serde_json::json;

use super::*;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A German-style calendar with Easter 2026 (Good Friday 3 April, Easter
/// Monday 6 April) and 1 May.
fn calendar() -> Calendar {
    Calendar::new(
        [Weekday::Sat, Weekday::Sun],
        [date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 1)],
        date(2026, 12, 31),
    )
}

fn deadline(states: &[&str], from: Option<DeadlineEvent>, period: Period) -> Deadline {
    Deadline {
        code: "answer".into(),
        runs: DeadlineRuns::InStates {
            states: states.iter().map(|s| s.to_string()).collect(),
            from,
        },
        period,
        agreed_date: false,
        more_information: ClockRule::None,
        if_field: None,
        source: DeadlineSource::Default {
            default: "test".into(),
        },
        consequence: None,
    }
}

const OPENS: &[DeadlineEvent] = &[DeadlineEvent::RequestReceived];
const ACCEPTS: &[DeadlineEvent] = &[DeadlineEvent::Acceptance];
const ASKS: &[DeadlineEvent] = &[DeadlineEvent::MoreInformationRequested];
const GETS: &[DeadlineEvent] = &[DeadlineEvent::MoreInformationReceived];
const NONE: &[DeadlineEvent] = &[];

fn step<'a>(
    events: &'a [DeadlineEvent],
    to: &'a str,
    at: DateTime<Utc>,
    payload: Option<&'a Value>,
) -> HistoryStep<'a> {
    HistoryStep {
        events,
        to,
        at,
        payload,
    }
}

#[test]
fn working_days_skip_weekends_and_public_holidays() {
    // Thursday 2 April 2026: Friday 3 (Good Friday), the weekend and Monday
    // 6 (Easter Monday) do not count; the 2nd working day is Wednesday 8.
    let due = Period::WorkingDays(2).due(at(2026, 4, 2, 10), &calendar());
    assert_eq!(due, at(2026, 4, 9, 0), "to the end of Wednesday 8");
    // Without the holidays (a country with no calendar): Monday 6 is the 2nd.
    let due = Period::WorkingDays(2).due(at(2026, 4, 2, 10), &Calendar::default());
    assert_eq!(due, at(2026, 4, 7, 0));
}

#[test]
fn twenty_five_working_days_are_five_weeks_without_holidays() {
    let due = Period::WorkingDays(25).due(at(2026, 9, 7, 9), &calendar());
    assert_eq!(due, at(2026, 10, 13, 0));
}

#[test]
fn months_keep_the_day_or_take_the_last_day_of_a_shorter_month() {
    let cal = Calendar::default(); // Tuesday 15 September 2026, to its end.
    assert_eq!(
        Period::Months(6).due(at(2026, 3, 15, 8), &cal),
        at(2026, 9, 16, 0)
    );
    // 28 February 2026 is a Saturday: the period ends with Monday 2 March.
    assert_eq!(
        Period::Months(1).due(at(2026, 1, 31, 8), &cal),
        at(2026, 3, 3, 0)
    );
    // Sunday 22 March 2026: Monday 23.
    assert_eq!(
        Period::Weeks(3).due(at(2026, 3, 1, 8), &cal),
        at(2026, 3, 24, 0)
    );
}

#[test]
fn a_period_ending_on_a_holiday_ends_with_the_next_working_day() {
    // 10 days from 24 March 2026 end on Friday 3 April, Good Friday in this
    // calendar; then the weekend and Easter Monday: Tuesday 7 April.
    let due = Period::Days(10).due(at(2026, 3, 24, 15), &calendar());
    assert_eq!(due, at(2026, 4, 8, 0));
}

#[test]
fn a_period_after_a_date_ends_at_the_end_of_its_last_day() {
    let due = Period::Days(3).due_after_date(date(2026, 5, 4), &Calendar::default());
    assert_eq!(due, at(2026, 5, 8, 0));
}

#[test]
fn a_clock_from_receipt_runs_through_acceptance_and_stops_at_the_answer() {
    let d = deadline(
        &["sent", "accepted"],
        Some(DeadlineEvent::RequestReceived),
        Period::WorkingDays(25),
    );
    let cal = calendar();
    let sent = step(OPENS, "sent", at(2026, 9, 7, 9), None);
    let accepted = step(ACCEPTS, "accepted", at(2026, 9, 9, 9), None);
    assert_eq!(
        d.clock(&[sent, accepted], &cal),
        Clock::Running {
            started_at: at(2026, 9, 7, 9),
            due_at: at(2026, 10, 13, 0)
        },
        "acceptance does not restart a clock counted from receipt"
    );
    let answered = step(NONE, "answered", at(2026, 9, 20, 9), None);
    assert_eq!(d.clock(&[sent, accepted, answered], &cal), Clock::Off);
}

#[test]
fn a_clock_from_entering_a_state_starts_when_it_is_entered() {
    let d = deadline(&["accepted"], None, Period::Days(14));
    let cal = Calendar::default();
    let sent = step(OPENS, "sent", at(2026, 1, 1, 9), None);
    assert_eq!(d.clock(&[sent], &cal), Clock::Off);
    let accepted = step(ACCEPTS, "accepted", at(2026, 1, 3, 9), None);
    assert_eq!(
        d.clock(&[sent, accepted], &cal),
        Clock::Running {
            started_at: at(2026, 1, 3, 9),
            // Saturday 17 January: Monday 19, to its end.
            due_at: at(2026, 1, 20, 0)
        }
    );
}

#[test]
fn a_stopped_clock_resumes_with_the_time_it_had_left() {
    let mut d = deadline(
        &["accepted"],
        Some(DeadlineEvent::Acceptance),
        Period::Days(30),
    );
    d.more_information = ClockRule::Stop;
    let cal = Calendar::default();
    let history = [
        step(OPENS, "sent", at(2026, 1, 1, 9), None),
        step(ACCEPTS, "accepted", at(2026, 1, 2, 9), None), // Due at the end of Monday 2 February (1 February is a Sunday):
        // 21 days 15 hours left.
        step(ASKS, "information-requested", at(2026, 1, 12, 9), None),
    ];
    assert_eq!(
        d.clock(&history, &cal),
        Clock::Stopped {
            started_at: at(2026, 1, 2, 9),
            left: Some(Duration::days(21) + Duration::hours(15))
        }
    );
    let mut resumed = history.to_vec();
    resumed.push(step(GETS, "accepted", at(2026, 2, 1, 9), None));
    assert_eq!(
        d.clock(&resumed, &cal),
        Clock::Running {
            started_at: at(2026, 1, 2, 9),
            due_at: at(2026, 2, 23, 0)
        }
    );
}

#[test]
fn a_restarting_clock_takes_the_whole_period_again_on_receipt() {
    let mut d = deadline(
        &["accepted"],
        Some(DeadlineEvent::Acceptance),
        Period::Months(1),
    );
    d.more_information = ClockRule::Restart;
    let cal = Calendar::default();
    let history = [
        step(OPENS, "sent", at(2026, 1, 1, 9), None),
        step(ACCEPTS, "accepted", at(2026, 1, 2, 9), None),
        step(ASKS, "information-requested", at(2026, 1, 20, 9), None),
        step(GETS, "accepted", at(2026, 3, 10, 9), None),
    ];
    assert_eq!(
        d.clock(&history, &cal),
        Clock::Running {
            started_at: at(2026, 3, 10, 9),
            due_at: at(2026, 4, 11, 0)
        }
    );
}

#[test]
fn a_clock_that_ignores_requests_for_information_runs_on() {
    let d = deadline(
        &["accepted"],
        Some(DeadlineEvent::Acceptance),
        Period::Days(30),
    );
    let history = [
        step(OPENS, "sent", at(2026, 1, 1, 9), None),
        step(ACCEPTS, "accepted", at(2026, 1, 2, 9), None),
        step(ASKS, "accepted", at(2026, 1, 12, 9), None),
    ];
    assert_eq!(
        d.clock(&history, &Calendar::default()),
        Clock::Running {
            started_at: at(2026, 1, 2, 9),
            due_at: at(2026, 2, 3, 0)
        }
    );
}

#[test]
fn an_agreed_answer_date_wins_over_the_period() {
    let mut d = deadline(
        &["accepted"],
        Some(DeadlineEvent::Acceptance),
        Period::Days(14),
    );
    d.agreed_date = true;
    let cal = Calendar::default();
    let proposal = json!({"requested_answer_date": "2026-03-31"});
    let agreed = json!({});
    let counter = json!({"proposed_answer_date": "2026-04-15"});
    let sent = step(OPENS, "sent", at(2026, 3, 1, 9), Some(&proposal));
    let due = |accept: &Value| match d.clock(
        &[
            sent,
            step(ACCEPTS, "accepted", at(2026, 3, 2, 9), Some(accept)),
        ],
        &cal,
    ) {
        Clock::Running { due_at, .. } => due_at,
        other => panic!("not running: {other:?}"),
    };
    assert_eq!(
        due(&agreed),
        at(2026, 4, 1, 0),
        "the requester's date, accepted"
    );
    assert_eq!(
        due(&counter),
        at(2026, 4, 16, 0),
        "the responder's counter-proposal"
    );
    let no_date = json!({});
    let sent = step(OPENS, "sent", at(2026, 3, 1, 9), Some(&no_date));
    let accepted = step(ACCEPTS, "accepted", at(2026, 3, 2, 9), Some(&agreed));
    assert_eq!(
        d.clock(&[sent, accepted], &cal),
        Clock::Running {
            started_at: at(2026, 3, 2, 9),
            due_at: at(2026, 3, 17, 0)
        },
        "no date proposed: the period"
    );
}

#[test]
fn a_deadline_for_urgent_requests_runs_only_for_them() {
    let mut d = deadline(
        &["sent", "accepted"],
        Some(DeadlineEvent::RequestReceived),
        Period::WorkingDays(2),
    );
    d.if_field = Some("urgent".into());
    let cal = calendar();
    let urgent = json!({"urgent": true});
    let ordinary = json!({"urgent": false});
    let unsaid = json!({});
    assert!(matches!(
        d.clock(
            &[step(OPENS, "sent", at(2026, 9, 7, 9), Some(&urgent))],
            &cal
        ),
        Clock::Running { .. }
    ));
    for payload in [&ordinary, &unsaid] {
        assert_eq!(
            d.clock(
                &[step(OPENS, "sent", at(2026, 9, 7, 9), Some(payload))],
                &cal
            ),
            Clock::Off
        );
    }
}

#[test]
fn a_counter_proposal_accepted_later_moves_a_clock_counted_from_receipt() {
    let mut d = deadline(
        &["sent", "accepted"],
        Some(DeadlineEvent::RequestReceived),
        Period::Days(30),
    );
    d.agreed_date = true;
    let cal = Calendar::default();
    let opening = json!({});
    // This form calls the responder's counter-proposal `requested_answer_date`.
    let accept = json!({"requested_answer_date": "2026-05-20"});
    let history = [
        step(OPENS, "sent", at(2026, 3, 1, 9), Some(&opening)),
        step(ACCEPTS, "accepted", at(2026, 3, 2, 9), Some(&accept)),
    ];
    assert_eq!(
        d.clock(&history[..1], &cal),
        Clock::Running {
            started_at: at(2026, 3, 1, 9),
            due_at: at(2026, 4, 1, 0)
        }
    );
    assert_eq!(
        d.clock(&history, &cal),
        Clock::Running {
            started_at: at(2026, 3, 1, 9),
            due_at: at(2026, 5, 21, 0)
        }
    );
}

#[test]
fn a_follow_up_question_after_the_answer_starts_the_clock_anew() {
    let d = deadline(
        &["accepted"],
        Some(DeadlineEvent::Acceptance),
        Period::Days(14),
    );
    let cal = Calendar::default();
    let history = [
        step(OPENS, "sent", at(2026, 3, 2, 9), None),
        step(ACCEPTS, "accepted", at(2026, 3, 3, 9), None),
        step(NONE, "answered", at(2026, 3, 5, 9), None),
    ];
    assert_eq!(d.clock(&history, &Calendar::default()), Clock::Off, "met");
    let mut again = history.to_vec();
    again.push(step(NONE, "accepted", at(2026, 3, 9, 9), None));
    assert_eq!(
        d.clock(&again, &cal),
        Clock::Running {
            started_at: at(2026, 3, 9, 9),
            due_at: at(2026, 3, 24, 0)
        }
    );
}
