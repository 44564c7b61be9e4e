//! The audit trail's shape and its tamper-evident hash chain. Pure: the store
//! appends entries; this module says what an entry hashes to and checks a chain.
//!
//! Each stored row says which encoding its hash uses ([`Record::version`]):
//! - **v1** (rows written before the `source` column): SHA-256 over the
//!   previous hash, the big-endian `seq` and the serde_json of the entry as it
//!   was then (no `source`). Kept only to verify old rows.
//! - **v2** (every new row): SHA-256 over the tag `opsbot-audit-v2\n`, the
//!   previous hash, `seq` and `at` (8 bytes big-endian each), then the fields
//!   `kind, person, identity, source, channel, command, args, outcome, detail`
//!   in that order, each as `0` (absent) or `1` + 8-byte big-endian length +
//!   UTF-8 bytes. Adding a field means a v3 encoding; v1 and v2 rows keep
//!   verifying as they are.

use crate::clock::Millis;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The encoding new rows are hashed with.
pub const CURRENT_VERSION: u8 = 2;

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
    /// Where it came from: `console`, `slack`, `discord`, `alert`, `timer`
    /// (expiry) or `system` (recovery). Empty on v1 rows, which predate it.
    pub source: String,
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
    /// The hash encoding of this row (1 or 2; see the module docs).
    pub version: u8,
}

/// The stored head of the chain: the last appended entry's `seq` and hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// The hash of `entry` at position `seq` following `prev_hash`, in the
/// current encoding.
pub fn chain_hash(prev_hash: &str, seq: i64, entry: &Entry) -> String {
    hash_v2(prev_hash, seq, entry)
}

/// The hash of `entry` in encoding `version`; `None` for an unknown version.
pub fn hash_as(version: u8, prev_hash: &str, seq: i64, entry: &Entry) -> Option<String> {
    match version {
        1 => Some(hash_v1(prev_hash, seq, entry)),
        2 => Some(hash_v2(prev_hash, seq, entry)),
        _ => None,
    }
}

fn hash_v2(prev_hash: &str, seq: i64, e: &Entry) -> String {
    fn field(h: &mut Sha256, v: Option<&str>) {
        match v {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_be_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    let mut h = Sha256::new();
    h.update(b"opsbot-audit-v2\n");
    field(&mut h, Some(prev_hash));
    h.update(seq.to_be_bytes());
    h.update(e.at.to_be_bytes());
    for v in [&e.kind, &e.person, &e.identity, &e.source] {
        field(&mut h, Some(v));
    }
    for v in [&e.channel, &e.command, &e.args] {
        field(&mut h, v.as_deref());
    }
    field(&mut h, Some(&e.outcome));
    field(&mut h, e.detail.as_deref());
    hex::encode(h.finalize())
}

/// The entry as v1 serialized it: the struct's serde_json before `source`
/// existed (same field names and order).
fn hash_v1(prev_hash: &str, seq: i64, e: &Entry) -> String {
    #[derive(Serialize)]
    struct V1<'a> {
        at: Millis,
        kind: &'a str,
        person: &'a str,
        identity: &'a str,
        channel: &'a Option<String>,
        command: &'a Option<String>,
        args: &'a Option<String>,
        outcome: &'a str,
        detail: &'a Option<String>,
    }
    let v1 = V1 {
        at: e.at,
        kind: &e.kind,
        person: &e.person,
        identity: &e.identity,
        channel: &e.channel,
        command: &e.command,
        args: &e.args,
        outcome: &e.outcome,
        detail: &e.detail,
    };
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(seq.to_be_bytes());
    // Serializing a plain struct of strings and integers cannot fail.
    h.update(serde_json::to_vec(&v1).unwrap_or_default());
    hex::encode(h.finalize())
}

/// Where a chain stops being consistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("entry {seq}: its hash does not match its contents (edited?)")]
    Hash { seq: i64 },
    #[error("entry {seq}: it does not follow the entry before it (removed or reordered?)")]
    Link { seq: i64 },
    #[error("entry {seq}: hash encoding v{version} where it cannot be (downgraded?)")]
    Version { seq: i64, version: u8 },
    #[error("the log ends at entry {last} but its head says {head} (tail removed?)")]
    Truncated { last: i64, head: i64 },
    #[error("entry {seq} is not the one the head recorded (tail replaced?)")]
    Head { seq: i64 },
}

/// Checks a whole chain in order, and its end against `head` (read before
/// the records: rows appended since then may follow it). Returns the number
/// of entries checked.
pub fn verify(records: &[Record], head: &Head) -> Result<usize, Broken> {
    let mut prev = GENESIS.to_string();
    let mut newest_version = 1;
    for (expected_seq, r) in (1..).zip(records) {
        if r.prev_hash != prev || r.seq != expected_seq {
            return Err(Broken::Link { seq: r.seq });
        }
        // Versions never go back, and v1 rows predate `source`.
        let downgraded = r.version < newest_version || (r.version == 1 && !r.entry.source.is_empty());
        if downgraded {
            return Err(Broken::Version {
                seq: r.seq,
                version: r.version,
            });
        }
        newest_version = r.version;
        if hash_as(r.version, &r.prev_hash, r.seq, &r.entry).as_deref() != Some(r.hash.as_str()) {
            return Err(Broken::Hash { seq: r.seq });
        }
        if r.seq == head.seq && r.hash != head.hash {
            return Err(Broken::Head { seq: r.seq });
        }
        prev = r.hash.clone();
    }
    let last = records.last().map_or(0, |r| r.seq);
    if last < head.seq {
        return Err(Broken::Truncated { last, head: head.seq });
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `v1` entries written the old way, then `n - v1` in the current encoding.
    fn mixed_chain(n: i64, v1: i64) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let version = if seq <= v1 { 1 } else { CURRENT_VERSION };
                let entry = Entry {
                    at: seq,
                    kind: "request".into(),
                    person: "alice".into(),
                    identity: "console:alice".into(),
                    source: if version == 1 {
                        String::new()
                    } else {
                        "console".into()
                    },
                    channel: None,
                    command: Some("queue stats".into()),
                    args: None,
                    outcome: "ok".into(),
                    detail: None,
                };
                let hash = hash_as(version, &prev, seq, &entry).unwrap();
                let r = Record {
                    seq,
                    entry,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                    version,
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn chain(n: i64) -> Vec<Record> {
        mixed_chain(n, 0)
    }

    fn head(c: &[Record]) -> Head {
        c.last().map_or(
            Head {
                seq: 0,
                hash: GENESIS.into(),
            },
            |r| Head {
                seq: r.seq,
                hash: r.hash.clone(),
            },
        )
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify(&c, &head(&c)), Ok(5));
        assert_eq!(verify(&[], &head(&[])), Ok(0));
    }

    #[test]
    fn edits_removals_and_reorders_are_found() {
        let mut c = chain(5);
        let h = head(&c);
        c[2].entry.person = "mallory".into();
        assert_eq!(verify(&c, &h), Err(Broken::Hash { seq: 3 }));
        let mut c = chain(5);
        c[2].entry.source = "slack".into();
        assert_eq!(verify(&c, &h), Err(Broken::Hash { seq: 3 }), "source is covered");
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c, &h), Err(Broken::Link { seq: 3 }));
        let mut c = chain(5);
        c.swap(3, 4);
        assert!(verify(&c, &h).is_err());
    }

    #[test]
    fn a_removed_tail_is_found_against_the_head() {
        let mut c = chain(5);
        let h = head(&c);
        c.truncate(3);
        assert_eq!(verify(&c, &h), Err(Broken::Truncated { last: 3, head: 5 }));
        assert_eq!(verify(&[], &h), Err(Broken::Truncated { last: 0, head: 5 }));
        // Rows appended after the head was read are fine.
        let c = chain(5);
        assert_eq!(verify(&c, &head(&c[..4])), Ok(5));
        // A tail replaced by a different, self-consistent one is not.
        let mut other = chain(5);
        other[4].entry.detail = Some("x".into());
        other[4].hash = hash_as(2, &other[4].prev_hash, 5, &other[4].entry).unwrap();
        assert_eq!(verify(&other, &h), Err(Broken::Head { seq: 5 }));
    }

    #[test]
    fn old_v1_rows_still_verify_and_cannot_be_mixed_back_in() {
        let c = mixed_chain(6, 3);
        assert_eq!(verify(&c, &head(&c)), Ok(6));
        // A v1 row after a v2 row: a downgrade.
        let mut c = mixed_chain(4, 0);
        let e = c[3].entry.clone();
        c[3].version = 1;
        c[3].hash = hash_as(1, &c[3].prev_hash, 4, &e).unwrap();
        assert_eq!(verify(&c, &head(&c)), Err(Broken::Version { seq: 4, version: 1 }));
        assert_eq!(hash_as(9, GENESIS, 1, &e), None);
    }

    #[test]
    fn the_v1_encoding_is_the_old_serde_json_of_the_struct() {
        // Pinned: the hash of this entry as every row before v2 was written.
        let e = Entry {
            at: 1,
            kind: "request".into(),
            person: "alice".into(),
            identity: "console:alice".into(),
            source: String::new(),
            channel: None,
            command: Some("queue stats".into()),
            args: None,
            outcome: "ok".into(),
            detail: None,
        };
        let json = r#"{"at":1,"kind":"request","person":"alice","identity":"console:alice","channel":null,"command":"queue stats","args":null,"outcome":"ok","detail":null}"#;
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(1i64.to_be_bytes());
        h.update(json.as_bytes());
        assert_eq!(hash_v1(GENESIS, 1, &e), hex::encode(h.finalize()));
    }

    #[test]
    fn the_v2_encoding_separates_fields() {
        let mut a = chain(1).remove(0).entry;
        let mut b = a.clone();
        a.person = "al".into();
        a.identity = "ice".into();
        b.person = "ali".into();
        b.identity = "ce".into();
        assert_ne!(chain_hash(GENESIS, 1, &a), chain_hash(GENESIS, 1, &b));
        let mut c = a.clone();
        c.detail = Some(String::new());
        assert_ne!(
            chain_hash(GENESIS, 1, &a),
            chain_hash(GENESIS, 1, &c),
            "none vs empty"
        );
    }
}
