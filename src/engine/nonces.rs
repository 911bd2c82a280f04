//! Engine layer: the nonces of valid signatures a device has seen, so that a captured request
//! cannot be sent again ([`crate::wire::signature`]). Time comes in as Unix seconds; no I/O.
//!
//! A signature is valid for [`SIGNATURE_MAX_SKEW`] seconds either side of its timestamp, so a
//! nonce need be remembered only until its timestamp has left that window: after that the
//! timestamp check refuses the request anyway. Only signatures whose HMAC matched reach this
//! table (only holders of the key can add to it); it is bounded all the same, and a full
//! table refuses rather than forgets (a forgotten nonce could be replayed).

use crate::wire::signature::{
    decode_hex, Signature, SignatureError, NONCE_BYTES, SIGNATURE_MAX_SKEW,
};
use std::collections::{BTreeSet, HashMap};

/// Nonces remembered at most: about 68 signed calls a second sustained over the window.
pub const NONCES_MAX: usize = 8192;

/// The nonces seen within the window.
#[derive(Debug, Default)]
pub struct Nonces {
    /// Nonce -> the Unix second after which it may be forgotten.
    seen: HashMap<u128, u64>,
    /// The same, ordered by when each may be forgotten.
    order: BTreeSet<(u64, u128)>,
}

impl Nonces {
    /// An empty table.
    pub fn new() -> Nonces {
        Nonces::default()
    }

    /// Accepts `signature`'s nonce at `now`, or refuses it: [`SignatureError::Replayed`] when it
    /// was seen within the window, or when the table is full of nonces still in their window.
    pub fn check(&mut self, now: u64, signature: &Signature) -> Result<(), SignatureError> {
        self.forget_expired(now);
        let mut bytes = [0u8; NONCE_BYTES];
        decode_hex(&signature.nonce, &mut bytes).ok_or(SignatureError::Malformed)?;
        let nonce = u128::from_be_bytes(bytes);
        if self.seen.contains_key(&nonce) || self.seen.len() >= NONCES_MAX {
            return Err(SignatureError::Replayed);
        }
        let until = signature.timestamp.saturating_add(SIGNATURE_MAX_SKEW);
        self.seen.insert(nonce, until);
        self.order.insert((until, nonce));
        Ok(())
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn forget_expired(&mut self, now: u64) {
        while let Some(&(until, nonce)) = self.order.first() {
            if until >= now {
                break;
            }
            self.order.pop_first();
            self.seen.remove(&nonce);
        }
        if self.seen.is_empty() {
            self.seen.shrink_to(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(timestamp: u64, nonce: u128) -> Signature {
        Signature {
            timestamp,
            nonce: format!("{nonce:032x}"),
            identity: "tracker".into(),
        }
    }

    #[test]
    fn a_nonce_is_accepted_once_within_its_window() {
        let mut nonces = Nonces::new();
        assert_eq!(nonces.check(1000, &signature(1000, 1)), Ok(()));
        assert_eq!(
            nonces.check(1001, &signature(1000, 1)),
            Err(SignatureError::Replayed)
        );
        assert_eq!(nonces.check(1001, &signature(1001, 2)), Ok(()));
        // Still refused at the window's last second, forgotten after it (by then the
        // timestamp check refuses the request anyway).
        assert_eq!(
            nonces.check(1000 + SIGNATURE_MAX_SKEW, &signature(1000, 1)),
            Err(SignatureError::Replayed)
        );
        assert_eq!(
            nonces.check(1002 + SIGNATURE_MAX_SKEW, &signature(1000, 1)),
            Ok(())
        );
        assert_eq!(nonces.len(), 1);
    }

    #[test]
    fn a_full_table_refuses_rather_than_forgets() {
        let mut nonces = Nonces::new();
        for nonce in 0..NONCES_MAX as u128 {
            assert_eq!(nonces.check(5000, &signature(5000, nonce)), Ok(()));
        }
        assert_eq!(
            nonces.check(5000, &signature(5000, u128::MAX)),
            Err(SignatureError::Replayed)
        );
        assert_eq!(
            nonces.check(5000, &signature(5000, 7)),
            Err(SignatureError::Replayed)
        );
        // Once their window has passed they go, and the memory with them.
        assert_eq!(
            nonces.check(5001 + SIGNATURE_MAX_SKEW, &signature(5061, u128::MAX)),
            Ok(())
        );
        assert_eq!(nonces.len(), 1);
    }

    #[test]
    fn a_malformed_nonce_is_refused() {
        let mut nonces = Nonces::new();
        let bad = Signature {
            timestamp: 1,
            nonce: "xyz".into(),
            identity: "a".into(),
        };
        assert_eq!(nonces.check(1, &bad), Err(SignatureError::Malformed));
        assert!(nonces.is_empty());
    }
}
