//! Receipts held for a moment, so that one AMQP message answers several
//! batches from the same sender endpoint.
//!
//! Why: at 1,000 msg/s a batch holds about four messages, so nearly every
//! request also cost the broker a second message (its receipt): a publish, a
//! quorum-queue write, a delivery and an ack. That was a fifth of the
//! broker's work on the hub's path.
//!
//! Why it is safe: a batch's ingress deliveries are acked once its routed
//! messages are confirmed, without waiting for its receipts. Its receipt rows
//! are in the outbox, and the batch is marked published only once every
//! receipt message carrying them is confirmed too (`Parts`). A crash in
//! between leaves the batch unmarked, and the relay sends its receipt rows
//! (and its messages again, which receivers drop by `message_id`). A receipt
//! keeps its own id (derived from the accepted message's id) in whichever
//! message carries it, so the SDK drops a repeated one.
//!
//! Order: receipts held for an endpoint go out, on the same channel and just
//! before, whenever a batch sends that endpoint anything else, so a sender
//! normally learns an exchange id before it sees a reply in that exchange.
//! Not always: a receipt message already on its way (window over) travels on
//! another channel than the next batch, and RabbitMQ does not order across
//! channels (docs/protocol.md says so to integrators).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use imi_broker::Outgoing;
use imi_schemas::protocol::Receipt;
use tokio::time::{Duration, Instant};
use uuid::Uuid;

use super::Published;
use crate::outgoing::{self, OutboxRow, ReceiptsFor};

/// Most receipts one message carries (a busy gateway's message stays small).
const MAX_RECEIPTS_PER_MESSAGE: usize = 500;

/// Receipts gathered for one endpoint.
struct Held {
    receipts: Vec<Receipt>,
    /// Message ids answered so far: a retried message answered twice within
    /// the window is listed once (the SDK hands out each item of a delivery).
    answered: HashSet<Uuid>,
    /// (batch, outbox row) of every receipt row merged in.
    rows: Vec<(Uuid, Uuid)>,
    due: Instant,
}

/// One receipt message ready to publish.
pub(super) struct Flush {
    /// (batch, outbox row) it answers for: the batches' marks wait for its
    /// confirm, and the rows go to the relay if the broker returns it.
    pub rows: Vec<(Uuid, Uuid)>,
    pub message: Outgoing,
}

/// The receipts waiting to go out, by sender endpoint.
pub(super) struct ReceiptHold {
    window: Duration,
    held: BTreeMap<String, Held>,
}

impl ReceiptHold {
    pub(super) fn new(window: Duration) -> Self {
        Self {
            window,
            held: BTreeMap::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds a batch's receipt rows; returns the messages already due
    /// (the window is zero, or an endpoint's message is full).
    pub(super) fn hold(&mut self, batch: Uuid, rows: Vec<ReceiptsFor>, now: Instant) -> Vec<Flush> {
        let mut full = Vec::new();
        for row in rows {
            let held = self
                .held
                .entry(row.endpoint.clone())
                .or_insert_with(|| Held {
                    receipts: Vec::new(),
                    answered: HashSet::new(),
                    rows: Vec::new(),
                    due: now + self.window,
                });
            for receipt in row.receipts {
                if held.answered.insert(receipt.message_id) {
                    held.receipts.push(receipt);
                }
            }
            held.rows.push((batch, row.row_id));
            if held.receipts.len() >= MAX_RECEIPTS_PER_MESSAGE || self.window.is_zero() {
                full.push(row.endpoint);
            }
        }
        full.dedup();
        self.take(full)
    }

    /// When the next held message is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.held.values().map(|h| h.due).min()
    }

    /// The messages whose window has passed.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<Flush> {
        let due: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.due <= now)
            .map(|(e, _)| e.clone())
            .collect();
        self.take(due)
    }

    /// The messages held for any of `endpoints` (they must precede what is
    /// about to be sent to them).
    pub(super) fn take_for<'a>(&mut self, endpoints: impl Iterator<Item = &'a str>) -> Vec<Flush> {
        let mut wanted: Vec<String> = endpoints
            .filter(|e| self.held.contains_key(*e))
            .map(str::to_owned)
            .collect();
        wanted.sort();
        wanted.dedup();
        self.take(wanted)
    }

    /// Everything held (shutting down).
    pub(super) fn take_all(&mut self) -> Vec<Flush> {
        let all: Vec<String> = self.held.keys().cloned().collect();
        self.take(all)
    }

    fn take(&mut self, endpoints: Vec<String>) -> Vec<Flush> {
        endpoints
            .into_iter()
            .filter_map(|endpoint| {
                let held = self.held.remove(&endpoint)?;
                Some(Flush {
                    rows: held.rows,
                    message: OutboxRow::into_amqp(outgoing::receipts(endpoint, &held.receipts)),
                })
            })
            .collect()
    }
}

/// How many publications each batch still waits for (its own messages, and
/// each receipt message carrying its receipts) before it can be marked
/// published.
#[derive(Default)]
pub(super) struct Parts {
    open: HashMap<Uuid, Open>,
}

struct Open {
    left: usize,
    unroutable: Vec<Uuid>,
}

impl Parts {
    pub(super) fn expect(&mut self, batch: Uuid, parts: usize) {
        self.open.insert(
            batch,
            Open {
                left: parts,
                unroutable: Vec::new(),
            },
        );
    }

    /// One publication of `batch` is confirmed; `unroutable` are its rows
    /// the broker returned.
    pub(super) fn confirmed(&mut self, batch: Uuid, unroutable: &[Uuid]) -> Option<Published> {
        let open = self.open.get_mut(&batch)?;
        open.unroutable.extend_from_slice(unroutable);
        open.left = open.left.saturating_sub(1);
        if open.left > 0 {
            return None;
        }
        let open = self.open.remove(&batch)?;
        Some(Published {
            batch_id: batch,
            confirmed_at: Utc::now(),
            unroutable: open.unroutable,
        })
    }

    /// A receipt message is confirmed: one part for each receipt row it
    /// carries (`rows` as in [`Flush::rows`]; a batch expects one part per
    /// receipt row).
    pub(super) fn flush_confirmed(
        &mut self,
        rows: &[(Uuid, Uuid)],
        routed: bool,
    ) -> Vec<Published> {
        rows.iter()
            .filter_map(|(batch, row)| {
                let unroutable: &[Uuid] = if routed {
                    &[]
                } else {
                    std::slice::from_ref(row)
                };
                self.confirmed(*batch, unroutable)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(n: u128) -> Receipt {
        Receipt {
            message_id: Uuid::from_u128(n),
            exchange_id: Uuid::from_u128(n + 1000),
            message_type: "pq-information-request.send".into(),
            state: "sent".into(),
            recipients: vec!["DE-X".into()],
            accepted_at: Utc::now(),
        }
    }

    fn row(endpoint: &str, ns: &[u128]) -> ReceiptsFor {
        let receipts: Vec<Receipt> = ns.iter().map(|n| receipt(*n)).collect();
        ReceiptsFor {
            row_id: outgoing::receipts(endpoint.into(), &receipts).id,
            endpoint: endpoint.into(),
            receipts,
        }
    }

    fn carried(flush: &Flush) -> Vec<Uuid> {
        serde_json::from_slice::<imi_schemas::protocol::ReceiptBatch>(&flush.message.body)
            .unwrap()
            .receipts
            .iter()
            .map(|r| r.message_id)
            .collect()
    }

    #[test]
    fn batches_for_one_endpoint_share_a_message_once_due() {
        let mut hold = ReceiptHold::new(Duration::from_millis(10));
        let t0 = Instant::now();
        let (b1, b2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert!(hold.hold(b1, vec![row("fi", &[1, 2])], t0).is_empty());
        assert!(hold.hold(b2, vec![row("fi", &[3])], t0).is_empty());
        assert!(hold.take_due(t0 + Duration::from_millis(9)).is_empty());
        let flushed = hold.take_due(t0 + Duration::from_millis(10));
        assert_eq!(flushed.len(), 1);
        assert_eq!(
            carried(&flushed[0]),
            [1, 2, 3].map(Uuid::from_u128).to_vec()
        );
        assert_eq!(flushed[0].message.routing_key, "fi");
        assert!(hold.is_empty());
    }

    #[test]
    fn a_message_answered_twice_in_the_window_is_listed_once() {
        let mut hold = ReceiptHold::new(Duration::from_millis(10));
        let t0 = Instant::now();
        hold.hold(Uuid::from_u128(1), vec![row("fi", &[1])], t0);
        hold.hold(Uuid::from_u128(2), vec![row("fi", &[1, 2])], t0);
        let flushed = hold.take_all();
        assert_eq!(carried(&flushed[0]), [1, 2].map(Uuid::from_u128).to_vec());
        assert_eq!(flushed[0].rows.len(), 2, "both batches wait for it");
    }

    #[test]
    fn a_single_batch_message_keeps_the_id_the_store_gave_its_row() {
        let mut hold = ReceiptHold::new(Duration::ZERO);
        let r = row("fi", &[7, 8]);
        let id = r.row_id;
        let flushed = hold.hold(Uuid::from_u128(1), vec![r], Instant::now());
        assert_eq!(flushed.len(), 1);
        assert_eq!(
            flushed[0].message.properties.message_id,
            Some(id.to_string())
        );
    }

    #[test]
    fn sending_an_endpoint_anything_takes_its_held_receipts_first() {
        let mut hold = ReceiptHold::new(Duration::from_secs(60));
        let now = Instant::now();
        hold.hold(
            Uuid::from_u128(1),
            vec![row("fi", &[1]), row("se", &[2])],
            now,
        );
        let taken = hold.take_for(["de", "fi", "fi"].into_iter());
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].message.routing_key, "fi");
        assert_eq!(hold.take_all().len(), 1);
    }

    #[test]
    fn a_full_message_goes_at_once() {
        let mut hold = ReceiptHold::new(Duration::from_secs(60));
        let many: Vec<u128> = (0..MAX_RECEIPTS_PER_MESSAGE as u128).collect();
        let flushed = hold.hold(Uuid::from_u128(1), vec![row("fi", &many)], Instant::now());
        assert_eq!(flushed.len(), 1);
        assert!(hold.is_empty());
    }

    #[test]
    fn a_batch_is_done_only_when_its_messages_and_every_receipt_message_are_confirmed() {
        let mut parts = Parts::default();
        let mut hold = ReceiptHold::new(Duration::ZERO);
        let b = Uuid::from_u128(1);
        parts.expect(b, 3);
        let mut flushes = hold.hold(b, vec![row("fi", &[1]), row("se", &[2])], Instant::now());
        assert!(parts.confirmed(b, &[]).is_none(), "its own messages");
        let first = flushes.remove(0);
        assert!(parts.flush_confirmed(&first.rows, true).is_empty());
        let second = flushes.remove(0);
        let done = parts.flush_confirmed(&second.rows, false);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].batch_id, b);
        assert_eq!(
            done[0].unroutable,
            vec![second.rows[0].1],
            "returned receipt rows go to the relay"
        );
    }
}
