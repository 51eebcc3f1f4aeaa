//! Data-subject requests (docs/data-subjects.md): a person asks which of
//! their data IMI holds, to correct them, or objects to their processing.
//!
//! Every accepted payload is indexed by who it is about: the catalogue's
//! identifying fields (name with date of birth, or a national identifier)
//! as keyed hashes (`keyed`), written with the message, deleted when the
//! exchange's personal data are erased. An operator or a coordinator
//! searches by the same fields, opens a request on what was found, exports
//! it (JSON, and a page in the person's language), records corrections and
//! objections on the exchanges, and answers within a month; the deadline
//! pass reminds the office a week before and marks the request overdue.
//! Every search, export and step is in the audit log.

mod deadlines;
mod export;
mod index;
mod keyed;
mod requests;

pub use deadlines::SubjectDeadlines;
pub(crate) use export::{export_html, export_json, Exported};
pub use index::reindex;
pub(crate) use index::{find, forget_exchanges, within_scope, Found};
pub(crate) use keyed::SubjectKey;
pub use keyed::SubjectKeyer;
pub(crate) use requests::{
    add_exchanges, answer, due, exchange_statements, list, notices, open, record_statement,
    request, request_exchanges, NewRequest, Request, RequestKind, Statement, StatementKind,
};
