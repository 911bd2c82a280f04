//! Which sources a log line has already told about: a source that keeps repeating what got
//! it refused is logged once, not once per request, and the memory of who was told is bounded.

use std::collections::VecDeque;
use std::net::IpAddr;

/// Sources already told about, per kind of notice `K`, oldest first; past `capacity` the
/// oldest is forgotten (and would be logged again).
#[derive(Debug)]
pub struct Noticed<K> {
    told: VecDeque<(IpAddr, K)>,
    capacity: usize,
}

impl<K: Copy + PartialEq> Noticed<K> {
    /// An empty memory of at most `capacity` (source, notice) pairs.
    pub fn new(capacity: usize) -> Self {
        Noticed {
            told: VecDeque::new(),
            capacity,
        }
    }

    /// Whether a log line should tell about `notice` for `source`: true the first time (then
    /// remembered), false after. An IPv4-mapped IPv6 address is the IPv4 source.
    pub fn first(&mut self, source: IpAddr, notice: K) -> bool {
        let key = (source.to_canonical(), notice);
        if self.told.contains(&key) {
            return false;
        }
        if self.told.len() >= self.capacity {
            self.told.pop_front();
        }
        self.told.push_back(key);
        true
    }

    /// How many pairs are remembered.
    pub fn len(&self) -> usize {
        self.told.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.told.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn told_once_per_source_and_notice_with_bounded_memory() {
        let mut noticed = Noticed::new(4);
        let one = Ipv4Addr::new(10, 0, 0, 1);
        assert!(noticed.first(one.into(), 'a'));
        assert!(!noticed.first(one.into(), 'a'));
        assert!(
            !noticed.first(IpAddr::V6(one.to_ipv6_mapped()), 'a'),
            "the same source"
        );
        assert!(noticed.first(one.into(), 'b'), "another notice");
        for n in 0..4 {
            noticed.first(Ipv4Addr::new(10, 0, 1, n).into(), 'a');
        }
        assert_eq!(noticed.len(), 4);
        assert!(noticed.first(one.into(), 'a'), "forgotten: told again");
    }
}
