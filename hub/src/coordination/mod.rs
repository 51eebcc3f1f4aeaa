//! What coordinators do to exchanges over HTTP: reassign a request to
//! another authority, and validate (or refuse) their country's outgoing 1:N
//! messages. Each step is recorded as a transition with the account's name,
//! and what it sends goes out through the outbox like every message.

mod reassign;
mod validation;

pub(crate) use reassign::{reassign, REFERRED};
pub(crate) use validation::{decide_validation, pending_validations, set_gate, PendingValidation};
