//! The tracker's repositories: flat files and the event journal, in three parts so that the
//! engine can use the formats without the files:
//!
//! - [`record`]: hypervisor and VM records and their `key=value` text. Pure: no file I/O, no
//!   clock.
//! - [`journal`]: journal events and their one-line text. Pure: no file I/O, no clock.
//! - `store` ([`Repository`]): the files. Opens and reads them (blocking file I/O, no sockets,
//!   no clock: time comes in as unix seconds) and stages changes.
//! - `writer`: the thread that makes staged changes durable, in order, so that the owner's
//!   event loop never waits for a disk flush.
//!
//! # Layout
//!
//! ```text
//! <root>/hardware/<host-uuid>          one HardwareRecord per hypervisor
//! <root>/virtual/<vm-uuid>             one VirtualRecord per VM
//! <root>/tenants/<tenant>/<vm-uuid>    tenant_view() of each VM filed under that tenant
//! <root>/events.log                    the journal
//! <root>/.lock                         flock()ed by the one process that owns the repository
//! ```
//!
//! File names are canonical (lower-case, hyphenated) UUIDs and tenant names matching
//! `[A-Za-z0-9_-]{1,64}` ([`is_valid_name`]), so no name can leave its folder.
//!
//! # Records
//!
//! Each record file holds one record in the format [`record`] describes. Every record is
//! written with [`write_atomic`](crate::files::write_atomic).
//!
//! # Journal
//!
//! First line [`JOURNAL_FORMAT_LINE`](crate::consts::JOURNAL_FORMAT_LINE), then one line per
//! event in the format [`journal`] describes. Sequence numbers start at 1 and grow by one with
//! no gap. The lines of one flush are appended with one `write` and one `fsync`, after the
//! records changed before them; a crash can leave a prefix of the last flush, whose last line
//! may be torn (no newline): [`Repository::open`] cuts a torn line away, since it was never
//! read. Lines before it are whole. Events are read ([`Repository::events_since`]) only once
//! durable; the records' maps show a change at once, a flush ahead of the disk.
//!
//! # Crash consistency
//!
//! Each record is old or new, never torn. Between records (a VM's virtual record and its
//! tenant slice) a crash can leave one updated and not the other: [`Repository::open`]
//! rewrites every tenant slice from the virtual records and removes stale ones, and removes
//! the temporary files [`write_atomic`](crate::files::write_atomic) left. Records and the
//! journal are not one transaction: a caller that writes records and then appends their events
//! can lose those events in a crash, and must compare what it finds on start with what it sees.

pub mod journal;
pub mod record;
mod store;
mod writer;

pub use journal::{Event, EventDraft, EventKind};
pub use record::{
    is_valid_name, tenant_view, ActionRecord, HardwareRecord, ServiceRecord, VirtualRecord,
};
pub use store::{Batch, Repository, VirtualRecords};
