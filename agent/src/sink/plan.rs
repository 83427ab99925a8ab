//! Backend-independent decisions of the sink: batch deduplication, what to do with each record
//! given the stored state, which columns changed, and the journal rows that describe it.

use std::collections::HashMap;

use crate::records::{Entity, Record, Value};

/// A `mutation.op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// One journal (`mutation`) row to write.
#[derive(Debug, Clone)]
pub(crate) struct JournalEntry {
    pub(crate) employer_id: String,
    pub(crate) entity: Entity,
    pub(crate) entity_id: String,
    pub(crate) op: Op,
    pub(crate) changed_fields: Vec<&'static str>,
}

impl JournalEntry {
    pub(crate) fn new(
        entity: Entity,
        employer_id: &str,
        entity_id: &str,
        op: Op,
        changed_fields: Vec<&'static str>,
    ) -> JournalEntry {
        JournalEntry {
            employer_id: employer_id.to_owned(),
            entity,
            entity_id: entity_id.to_owned(),
            op,
            changed_fields,
        }
    }

    /// `changed_fields` as a JSON array of column names.
    pub(crate) fn changed_fields_json(&self) -> String {
        // Column names are plain identifiers ([a-z_]), so they need no JSON escaping.
        if self.changed_fields.is_empty() {
            return "[]".to_owned();
        }
        format!("[\"{}\"]", self.changed_fields.join("\",\""))
    }
}

/// `changed_fields` of a soft delete.
pub(crate) const SOFT_DELETE_FIELDS: &[&str] = &["deleted_at"];

/// All column names of an entity (`changed_fields` of an insert and of a hard delete).
pub(crate) fn all_columns(entity: Entity) -> Vec<&'static str> {
    entity.columns().iter().map(|c| c.name).collect()
}

/// Keeps the last record of every `(entity, employer_id, id)` key, then orders the batch parents
/// first (by [`Entity::ALL`]), keeping the batch order within an entity.
pub(crate) fn dedupe(batch: Vec<Record>) -> Vec<Record> {
    let mut last_index: HashMap<(Entity, String, String), usize> = HashMap::new();
    for (i, r) in batch.iter().enumerate() {
        last_index.insert(
            (r.entity(), r.employer_id().to_owned(), r.id().to_owned()),
            i,
        );
    }
    let mut kept: Vec<(usize, Record)> = batch
        .into_iter()
        .enumerate()
        .filter(|(i, r)| {
            last_index.get(&(r.entity(), r.employer_id().to_owned(), r.id().to_owned())) == Some(i)
        })
        .collect();
    kept.sort_by_key(|(i, r)| (r.entity(), *i));
    kept.into_iter().map(|(_, r)| r).collect()
}

/// What the sink found stored for a key.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) hash: String,
    pub(crate) deleted: bool,
}

/// First decision, from the stored hash alone.
pub(crate) enum Classified {
    Insert,
    Unchanged,
    /// Same content, but soft-deleted: only clear `deleted_at`.
    Revive,
    /// The hash differs: the stored values must be compared.
    Compare {
        deleted: bool,
    },
}

pub(crate) fn classify(stored: Option<&Stored>, new_hash: &str) -> Classified {
    match stored {
        None => Classified::Insert,
        Some(s) if s.hash == new_hash && s.deleted => Classified::Revive,
        Some(s) if s.hash == new_hash => Classified::Unchanged,
        Some(s) => Classified::Compare { deleted: s.deleted },
    }
}

/// Final decision for a record whose hash differs from the stored one.
pub(crate) enum Compared {
    /// Write every column, the new hash, and clear `deleted_at`; journal `update` with these fields.
    Update(Vec<&'static str>),
    /// The values are equal (the hash encoding or a sink-side change moved the hash): store the new
    /// hash only, no journal row.
    RefreshHash,
}

pub(crate) fn compare(new: &[(&'static str, Value)], old: &[Value], deleted: bool) -> Compared {
    let mut changed: Vec<&'static str> = new
        .iter()
        .zip(old)
        .filter(|((_, n), o)| n != *o)
        .map(|((name, _), _)| *name)
        .collect();
    if deleted {
        changed.push("deleted_at");
    }
    if changed.is_empty() {
        Compared::RefreshHash
    } else {
        Compared::Update(changed)
    }
}

/// Counts of one `apply`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// New rows.
    pub inserted: u64,
    /// Rows whose values changed or that came back after a soft delete.
    pub updated: u64,
    /// Rows deleted (always 0 for `apply`; filled when stats of deletions are added up).
    pub deleted: u64,
    /// Rows whose content was already stored.
    pub unchanged: u64,
}

impl std::ops::AddAssign for ApplyStats {
    fn add_assign(&mut self, other: ApplyStats) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.unchanged += other.unchanged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Department;

    fn dept(id: &str, name: &str) -> Record {
        Department {
            id: id.into(),
            employer_id: "er".into(),
            code: None,
            name: Some(name.into()),
            parent_id: None,
        }
        .into()
    }

    #[test]
    fn dedupe_keeps_last_and_orders_parents_first() {
        let employer = Record::from(crate::records::Employer {
            id: "er".into(),
            source: "loket".into(),
            employer_number: None,
            name: "x".into(),
            chamber_of_commerce_number: None,
        });
        let out = dedupe(vec![
            dept("a", "1"),
            dept("b", "1"),
            dept("a", "2"),
            employer.clone(),
        ]);
        assert_eq!(out, vec![employer, dept("b", "1"), dept("a", "2")]);
    }

    #[test]
    fn changed_fields_json_is_a_json_array_of_names() {
        for fields in [vec![], vec!["bsn"], vec!["last_name", "email"]] {
            let entry = JournalEntry::new(Entity::Employee, "er", "ee", Op::Update, fields.clone());
            let parsed: Vec<String> =
                serde_json::from_str(&entry.changed_fields_json()).expect("valid JSON");
            assert_eq!(parsed, fields);
        }
        for entity in Entity::ALL {
            for c in entity.columns() {
                assert!(c.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            }
        }
    }

    #[test]
    fn compare_names_changed_columns_only() {
        let new = dept("a", "new").columns();
        let old: Vec<Value> = dept("a", "old")
            .columns()
            .into_iter()
            .map(|c| c.1)
            .collect();
        match compare(&new, &old, false) {
            Compared::Update(fields) => assert_eq!(fields, vec!["name"]),
            Compared::RefreshHash => panic!("name changed"),
        }
        let same: Vec<Value> = new.iter().map(|c| c.1.clone()).collect();
        assert!(matches!(compare(&new, &same, false), Compared::RefreshHash));
        match compare(&new, &same, true) {
            Compared::Update(fields) => assert_eq!(fields, vec!["deleted_at"]),
            Compared::RefreshHash => panic!("revived"),
        }
    }
}
