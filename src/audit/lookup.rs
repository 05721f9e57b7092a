//! Finding records by sequence number, so a fact stored elsewhere (an approval in the run
//! store) can be checked against the record that announced it. The trail is walked with every
//! chain check of `verify`, so a record is found only where the chain holds up to it.

use std::collections::{BTreeMap, BTreeSet};

use super::config::AuditConfig;
use super::error::AuditError;
use super::files::discover;
use super::record::Record;
use super::verify::for_each_record;

/// The records of the trail `config` names whose `seq` is in `wanted`, by seq. A seq the
/// trail does not hold is absent from the map. Fails when the trail's chain is broken before
/// the last wanted record.
pub fn find(
    config: &AuditConfig,
    wanted: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, Record>, AuditError> {
    let mut found = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let files = discover(&config.path)?;
    let key = config.load_key()?;
    for_each_record(&files, key.as_ref(), |record, _| {
        if wanted.contains(&record.seq) {
            found.insert(record.seq, record.clone());
        }
    })?;
    Ok(found)
}
