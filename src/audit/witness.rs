//! The second witness: somewhere outside the trail's own files (the run store) that remembers
//! which trail this is and how far it got, so that a trail deleted, emptied or cut short
//! together with its head is noticed.
//!
//! The files alone cannot show that: an empty directory looks like a trail never written, and
//! a plain trail truncated with a re-sealed head looks whole. The writer tells the witness
//! where the trail stands after every durable batch; opening the trail for writing and
//! `audit verify` compare the files with what the witness last saw. The audit module only
//! defines the seam ([`Witness`]); the run store implements it.

use std::path::Path;

use super::chain::Linker;
use super::error::AuditError;

/// Where a trail stood: its id, a record's sequence number and that record's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The trail id (every record's `trail`).
    pub trail: uuid::Uuid,
    /// Sequence number of the last record witnessed.
    pub seq: u64,
    /// Hash of that record.
    pub hash: String,
}

/// A place that remembers how far one trail got. Implemented by the run store; the writer
/// calls it from its own blocking thread, never from async code.
pub trait Witness: Send + Sync {
    /// The last mark recorded for this trail, `None` if it never saw the trail.
    fn last_seen(&self) -> Result<Option<Mark>, AuditError>;

    /// Remember that the trail has durably reached `mark` (replacing the previous mark).
    fn record(&self, mark: &Mark) -> Result<(), AuditError>;
}

/// What the trail's files show, to be compared with a mark.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'a> {
    /// Trail id and last `(seq, hash)`; `None` when no record is left.
    pub last: Option<(uuid::Uuid, u64, &'a str)>,
    /// The hash of the record at the mark's seq, when it was read (`None`: not read).
    pub at_mark: Option<&'a str>,
}

/// Compare the files with the witness's mark: the trail must be the same one, reach at least
/// the mark, and (where the record was read) hold the very record witnessed there.
pub(crate) fn check(trail: &Path, mark: &Mark, found: Found<'_>) -> Result<(), AuditError> {
    let vanished = |found: String| vanished(trail, mark, found);
    let Some((id, last_seq, last_hash)) = found.last else {
        return Err(vanished("no record of it is left".into()));
    };
    if id != mark.trail {
        return Err(vanished(format!("trail {id} is there instead")));
    }
    if last_seq < mark.seq {
        return Err(vanished(format!("the trail ends at seq {last_seq}")));
    }
    let at_mark = if last_seq == mark.seq {
        Some(last_hash)
    } else {
        found.at_mark
    };
    if let Some(hash) = at_mark
        && !Linker::same(hash, &mark.hash)
    {
        return Err(vanished(format!(
            "record seq {} is not the record witnessed there (rewritten)",
            mark.seq
        )));
    }
    Ok(())
}

/// The error for a trail that is not where `mark` saw it; `found` says what is there instead.
pub(crate) fn vanished(trail: &Path, mark: &Mark, found: String) -> AuditError {
    AuditError::Vanished {
        path: trail.to_owned(),
        trail: mark.trail,
        seq: mark.seq,
        found,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A witness in memory, for the audit module's own tests.
    #[derive(Debug, Default)]
    pub(crate) struct MemoryWitness {
        pub mark: Mutex<Option<Mark>>,
        pub writes: Mutex<u64>,
    }

    impl Witness for MemoryWitness {
        fn last_seen(&self) -> Result<Option<Mark>, AuditError> {
            Ok(self.mark.lock().unwrap().clone())
        }
        fn record(&self, mark: &Mark) -> Result<(), AuditError> {
            *self.mark.lock().unwrap() = Some(mark.clone());
            *self.writes.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn mark(seq: u64, hash: &str) -> Mark {
        Mark {
            trail: uuid::Uuid::from_u128(7),
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn the_files_must_reach_the_mark_with_the_same_trail_and_record() {
        let p = Path::new("audit.jsonl");
        let id = uuid::Uuid::from_u128(7);
        let m = mark(5, "aa");
        let ok = |last, at_mark| check(p, &m, Found { last, at_mark });
        assert!(ok(Some((id, 5, "aa")), None).is_ok());
        assert!(ok(Some((id, 9, "ff")), Some("aa")).is_ok());
        assert!(
            ok(Some((id, 9, "ff")), None).is_ok(),
            "not read: not judged"
        );
        for (last, at_mark, why) in [
            (None, None, "no record"),
            (
                Some((uuid::Uuid::from_u128(8), 9, "ff")),
                None,
                "is there instead",
            ),
            (Some((id, 4, "aa")), None, "ends at seq 4"),
            (Some((id, 5, "bb")), None, "rewritten"),
            (Some((id, 9, "ff")), Some("bb"), "rewritten"),
        ] {
            let err = ok(last, at_mark).unwrap_err();
            assert!(matches!(err, AuditError::Vanished { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains(why), "{text}");
            assert!(text.contains("audit new-trail"), "{text}");
        }
    }
}
