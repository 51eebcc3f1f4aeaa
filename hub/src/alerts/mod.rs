//! 1:N exchanges beyond the pipeline: who has acknowledged what (the
//! per-recipient delivery view), broadcast subscribers, and reminders to
//! recipients that have not acknowledged. National validation is a
//! coordinator's step: `coordination`.

mod deliveries;
mod reminders;
mod subscribers;

pub(crate) use deliveries::{deliveries, Counts, Delivery, ExchangeDeliveries, FieldDeadline};
pub use reminders::AckReminders;
pub(crate) use subscribers::create_subscriber;
