//! Fuzz target: `wire::http::decode_chunked` and the incremental `ChunkedDecoder`.
//!
//! Input: two bytes of data limit, two bytes of split position, then the body bytes. The
//! one-shot decode, a decoder fed everything at once and a decoder fed the body in two pieces
//! (split at the chosen position) must agree on the outcome, the bytes consumed and the data;
//! a decoded body encoded again as one chunk decodes to the same data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::http::{decode_chunked, ChunkedDecoder, Progress};
use xenplug::wire::Error;

/// How a decoder ended: done after consuming so many bytes of the whole input, needing more,
/// or refusing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done(usize),
    NeedMore,
    Failed(Error),
}

fuzz_target!(|data: &[u8]| {
    let [l0, l1, s0, s1, body @ ..] = data else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes([*l0, *l1]));
    let split = usize::from(u16::from_le_bytes([*s0, *s1])) % (body.len() + 1);

    // One shot: `out` keeps what was there before, and is restored unless the body is done.
    let mut one_shot = b"prefix".to_vec();
    let shot = match decode_chunked(body, &mut one_shot, limit) {
        Ok(Some(consumed)) => Outcome::Done(consumed),
        Ok(None) => Outcome::NeedMore,
        Err(error) => Outcome::Failed(error),
    };
    let one_shot = one_shot
        .strip_prefix(b"prefix")
        .expect("decode_chunked keeps what out held")
        .to_vec();
    if !matches!(shot, Outcome::Done(_)) {
        assert!(one_shot.is_empty(), "an incomplete decode left data in out");
    }

    // Whole input, one feed.
    let mut whole = ChunkedDecoder::new(limit);
    let mut whole_out = Vec::new();
    let whole_outcome = match whole.feed(body, &mut whole_out) {
        Ok(Progress::Done(consumed)) => Outcome::Done(consumed),
        Ok(Progress::NeedMore) => Outcome::NeedMore,
        Err(error) => Outcome::Failed(error),
    };
    assert_eq!(shot, whole_outcome);
    if let Outcome::Done(consumed) = shot {
        assert!(consumed <= body.len());
        assert_eq!(one_shot, whole_out);
        assert_eq!(whole.decoded(), whole_out.len());
        // A finished decoder takes nothing more.
        assert_eq!(
            whole.feed(b"0\r\n\r\n", &mut whole_out),
            Ok(Progress::Done(0))
        );
        assert_eq!(whole.decoded(), one_shot.len());
    }
    assert!(whole_out.len() <= limit);
    if whole_outcome == Outcome::NeedMore {
        assert!(whole.decoded() >= whole_out.len());
    }

    // Two pieces.
    let (first, second) = body.split_at(split);
    let mut pieces = ChunkedDecoder::new(limit);
    let mut pieces_out = Vec::new();
    let pieces_outcome = match pieces.feed(first, &mut pieces_out) {
        Ok(Progress::Done(consumed)) => Outcome::Done(consumed),
        Err(error) => Outcome::Failed(error),
        Ok(Progress::NeedMore) => match pieces.feed(second, &mut pieces_out) {
            Ok(Progress::Done(consumed)) => Outcome::Done(split + consumed),
            Ok(Progress::NeedMore) => Outcome::NeedMore,
            Err(error) => Outcome::Failed(error),
        },
    };
    assert_eq!(
        whole_outcome, pieces_outcome,
        "split at {split} changes the outcome"
    );
    if !matches!(whole_outcome, Outcome::Failed(_)) {
        // Data is the same whether the body is complete or not (on failure each decoder
        // may have appended a different amount before noticing).
        assert_eq!(whole_out, pieces_out, "split at {split} changes the data");
        assert_eq!(whole.decoded(), pieces.decoded());
    }

    // Round trip: the decoded data as one chunk.
    if let Outcome::Done(_) = shot {
        let mut encoded = Vec::new();
        if !one_shot.is_empty() {
            encoded.extend_from_slice(format!("{:x}\r\n", one_shot.len()).as_bytes());
            encoded.extend_from_slice(&one_shot);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        let mut again = Vec::new();
        assert_eq!(
            decode_chunked(&encoded, &mut again, limit),
            Ok(Some(encoded.len()))
        );
        assert_eq!(again, one_shot);
    }
});
