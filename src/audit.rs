//! The audit trail's shape and its tamper-evident hash chain. Pure: the store
//! appends entries; this module says what an entry hashes to and checks a chain.

use crate::clock::Millis;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The hash "before" the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited event: a request, a decision, an execution or its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub at: Millis,
    /// `request`, `denied`, `approval.requested`, `approval.approved`, `execution`, …
    pub kind: String,
    /// The person (or the raw identity for strangers).
    pub person: String,
    pub identity: String,
    pub channel: Option<String>,
    pub command: Option<String>,
    /// Canonical JSON of the arguments.
    pub args: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

/// An entry as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: i64,
    pub entry: Entry,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of `entry` at position `seq` following `prev_hash`.
pub fn chain_hash(prev_hash: &str, seq: i64, entry: &Entry) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    // Serializing a plain struct of strings and integers cannot fail.
    h.update(serde_json::to_vec(entry).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Where a chain stops being consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("entry {seq}: its hash does not match its contents (edited?)")]
    Hash { seq: i64 },
    #[error("entry {seq}: it does not follow the entry before it (removed or reordered?)")]
    Link { seq: i64 },
}

/// Checks a whole chain in order; returns the number of entries checked.
pub fn verify(records: &[Record]) -> Result<usize, Broken> {
    let mut prev = GENESIS.to_string();
    for (expected_seq, r) in (1..).zip(records) {
        if r.prev_hash != prev || r.seq != expected_seq {
            return Err(Broken::Link { seq: r.seq });
        }
        if chain_hash(&r.prev_hash, r.seq, &r.entry) != r.hash {
            return Err(Broken::Hash { seq: r.seq });
        }
        prev = r.hash.clone();
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let entry = Entry {
                    at: seq,
                    kind: "request".into(),
                    person: "alice".into(),
                    identity: "console:alice".into(),
                    channel: None,
                    command: Some("queue stats".into()),
                    args: None,
                    outcome: "ok".into(),
                    detail: None,
                };
                let hash = chain_hash(&prev, seq, &entry);
                let r = Record {
                    seq,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
    }

    #[test]
    fn edits_removals_and_reorders_are_found() {
        let mut c = chain(5);
        c[2].entry.person = "mallory".into();
        assert_eq!(verify(&c), Err(Broken::Hash { seq: 3 }));
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c), Err(Broken::Link { seq: 3 }));
        let mut c = chain(5);
        c.swap(3, 4);
        assert!(verify(&c).is_err());
    }
}
