//! Fuzz target: `wire::xenstore::parse` over a byte stream, as the watch client reads it.
//!
//! Invariants: no panic; each message parsed takes between 16 and 16 + 4096 bytes, its payload
//! no longer than the protocol's maximum; a message whose payload is NUL-terminated UTF-8
//! strings, written again with `emit`, parses to the same type, request id and payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::xenstore::{
    emit, parse, XENSTORE_HEADER_LEN, XENSTORE_MESSAGE_MAX, XENSTORE_PAYLOAD_MAX,
};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((message, used)) = parse(rest) {
        assert!((XENSTORE_HEADER_LEN..=XENSTORE_MESSAGE_MAX).contains(&used));
        assert!(message.payload.len() <= XENSTORE_PAYLOAD_MAX);
        assert_eq!(used, XENSTORE_HEADER_LEN + message.payload.len());
        let _ = message.watch_event();
        let _ = message.error();
        if let Some(strings) = message.strings() {
            let terminated = message.payload.is_empty() || message.payload.ends_with(&[0]);
            if terminated && message.transaction == 0 && !strings.iter().any(|s| s.contains('\0'))
            {
                let mut buffer = [0u8; XENSTORE_MESSAGE_MAX];
                let len = emit(message.kind, message.request, &strings, &mut buffer)
                    .expect("a parsed message is written again");
                let (again, again_used) = parse(&buffer[..len]).expect("written message parses");
                assert_eq!(again_used, len);
                assert_eq!(again.kind, message.kind);
                assert_eq!(again.request, message.request);
                assert_eq!(again.payload, message.payload);
            }
        }
        rest = &rest[used..];
    }
});
