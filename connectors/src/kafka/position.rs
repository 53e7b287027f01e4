//! [`KafkaSourcePosition`]: the next offset of each topic-partition a source subtask
//! owns — what a checkpoint stores — and how positions of several subtasks merge and
//! are dealt to another parallelism on restore.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One topic-partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The next offset to read of each topic-partition (of one subtask, or merged over all
/// subtasks of a source). Serialised as a list of `{topic, partition, offset}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "Vec<PartitionOffset>", into = "Vec<PartitionOffset>")]
pub struct KafkaSourcePosition {
    offsets: BTreeMap<TopicPartition, i64>,
}

/// One entry of a serialised [`KafkaSourcePosition`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to read.
    pub offset: i64,
}

impl From<Vec<PartitionOffset>> for KafkaSourcePosition {
    fn from(entries: Vec<PartitionOffset>) -> Self {
        let mut position = KafkaSourcePosition::default();
        for entry in entries {
            position.set(
                TopicPartition {
                    topic: entry.topic,
                    partition: entry.partition,
                },
                entry.offset,
            );
        }
        position
    }
}

impl From<KafkaSourcePosition> for Vec<PartitionOffset> {
    fn from(position: KafkaSourcePosition) -> Self {
        position
            .offsets
            .into_iter()
            .map(|(tp, offset)| PartitionOffset {
                topic: tp.topic,
                partition: tp.partition,
                offset,
            })
            .collect()
    }
}

impl KafkaSourcePosition {
    /// Sets the next offset of `partition`.
    pub fn set(&mut self, partition: TopicPartition, offset: i64) {
        self.offsets.insert(partition, offset);
    }

    /// The next offset of `partition`, if known.
    pub fn get(&self, partition: &TopicPartition) -> Option<i64> {
        self.offsets.get(partition).copied()
    }

    /// The partitions and their next offsets, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&TopicPartition, i64)> {
        self.offsets.iter().map(|(tp, offset)| (tp, *offset))
    }

    /// How many partitions it knows.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether it knows no partition.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The union of the positions of several subtasks (each owns distinct partitions;
    /// should two name the same partition, the larger offset wins).
    pub fn merge(positions: impl IntoIterator<Item = KafkaSourcePosition>) -> Self {
        let mut merged = KafkaSourcePosition::default();
        for position in positions {
            for (tp, offset) in position.offsets {
                let entry = merged.offsets.entry(tp).or_insert(offset);
                *entry = (*entry).max(offset);
            }
        }
        merged
    }
}

/// Deals topic-partitions to the subtasks: sorted by (topic, partition), the `k`-th goes
/// to subtask `k % parallelism`. With one topic that is partition `p` to subtask
/// `p % parallelism`; the deal depends only on the partitions and the parallelism, so a
/// restore with another parallelism recomputes it and takes the offsets of its share
/// from the merged positions.
pub fn owned_partitions(
    mut partitions: Vec<TopicPartition>,
    index: usize,
    parallelism: usize,
) -> Vec<TopicPartition> {
    partitions.sort();
    partitions.dedup();
    let parallelism = parallelism.max(1);
    partitions
        .into_iter()
        .enumerate()
        .filter(|(k, _)| k % parallelism == index)
        .map(|(_, tp)| tp)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn every_partition_has_exactly_one_owner() {
        let all: Vec<TopicPartition> = (0..7)
            .map(|p| tp("a", p))
            .chain((0..3).map(|p| tp("b", p)))
            .collect();
        for parallelism in 1..=12 {
            let mut dealt: Vec<TopicPartition> = (0..parallelism)
                .flat_map(|i| owned_partitions(all.clone(), i, parallelism))
                .collect();
            dealt.sort();
            assert_eq!(dealt, all, "parallelism {parallelism}");
        }
        assert_eq!(
            owned_partitions((0..4).map(|p| tp("a", p)).collect(), 1, 2),
            [tp("a", 1), tp("a", 3)]
        );
    }

    #[test]
    fn positions_merge_and_round_trip_through_json() {
        let mut one = KafkaSourcePosition::default();
        one.set(tp("a", 0), 10);
        one.set(tp("a", 2), 5);
        let mut two = KafkaSourcePosition::default();
        two.set(tp("a", 1), 7);
        two.set(tp("a", 2), 6);
        let merged = KafkaSourcePosition::merge([one, two]);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.get(&tp("a", 2)), Some(6));
        let json = serde_json::to_string(&merged).unwrap();
        assert!(json.starts_with("[{\"topic\":\"a\""), "{json}");
        let back: KafkaSourcePosition = serde_json::from_str(&json).unwrap();
        assert_eq!(back, merged);
    }
}
