//! Fuzz target: `wire::ssdp::parse` on any datagram; what parses is emitted and parsed again.
//!
//! Invariants: parse never panics; a parsed message that emits (emit may refuse one that lacks
//! a header its kind requires, or holds a CR) parses again to the same message, less the
//! headers UDA 1.1 does not send for that kind; emitting that is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::ssdp::{self, Message, NotifyKind};
use xenplug::wire::Cursor;

/// The buffer every emit writes into: as large as the largest datagram parse accepts, so a
/// re-parse is never refused for size.
const EMIT_BUFFER: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = ssdp::parse(data) else {
        return;
    };
    let mut buffer = [0u8; EMIT_BUFFER];
    let mut cursor = Cursor::new(&mut buffer);
    if emit(&message, &mut cursor).is_err() {
        return;
    }
    let emitted = cursor.written().to_vec();
    assert!(!emitted.is_empty());
    let reparsed = match ssdp::parse(&emitted) {
        Ok(reparsed) => reparsed,
        Err(error) => panic!(
            "emitted message does not parse ({error}): {:?}",
            String::from_utf8_lossy(&emitted)
        ),
    };
    assert_eq!(
        reparsed,
        expected(message),
        "{:?}",
        String::from_utf8_lossy(&emitted)
    );
    let mut again = [0u8; EMIT_BUFFER];
    let mut cursor = Cursor::new(&mut again);
    emit(&reparsed, &mut cursor).expect("a re-parsed message emits");
    assert_eq!(
        cursor.written(),
        emitted.as_slice(),
        "emit is not a fixed point"
    );
});

fn emit(message: &Message<'_>, cursor: &mut Cursor<'_>) -> xenplug::wire::Result<()> {
    match message {
        Message::Notify(notify) => notify.emit(cursor),
        Message::Search(search) => search.emit(cursor),
        Message::Response(response) => response.emit(cursor),
    }
}

/// `message` as it reads after emit: each NOTIFY kind carries only its UDA 1.1 header set
/// (section 1.2.2 alive, 1.2.3 byebye, 1.2.4 update).
fn expected(message: Message<'_>) -> Message<'_> {
    match message {
        Message::Notify(mut notify) => {
            match notify.notification_subtype {
                NotifyKind::Alive => notify.next_boot_id = None,
                NotifyKind::ByeBye => {
                    notify.location = None;
                    notify.max_age = None;
                    notify.server = None;
                    notify.next_boot_id = None;
                    notify.search_port = None;
                }
                NotifyKind::Update => {
                    notify.max_age = None;
                    notify.server = None;
                }
            }
            Message::Notify(notify)
        }
        other => other,
    }
}
