//! PostgreSQL: the batch commit (reads for the workflow engine, the plan's
//! writes), the outbox and its relay queries, and the hub's own messages.
//! All SQL of the pipeline is here; the rules it applies are in `workflow`.

mod acks;
mod batch;
mod dead_letters;
mod outbox;
mod own;
mod replay;
mod writes;

pub(crate) use batch::{commit_batch, BatchInput, BatchOutcome, CommitError};
pub(crate) use dead_letters::{
    give_up_dead_letters, resolve_redriven, take_dead_letters, DeadLetter, Take,
};
pub(crate) use outbox::{close_empty_batches, mark_published, mark_unroutable, unpublished};
pub(crate) use own::{record_refusals, record_step, write_own};
pub(crate) use replay::{exchange_messages, insert_deliveries, replay_rows, StoredMessage};
