//! [`GeneratorPosition`]: how far a [`NexmarkGenerator`](super::NexmarkGenerator)
//! subtask got, as it goes into a checkpoint, and how the positions of a checkpoint are
//! shared out on restore — with the same parallelism or another one.
//!
//! Subtask `k` of `p` emits the events of its table whose id is `k` modulo `p`, in id
//! order, while it runs the random stream over every event. So its progress is one
//! number, the id of the next event it looks at (`next_event`): every event of its
//! residue below it was emitted, none at or above it. The position also holds the
//! random stream's state before that event (624 words, 2.5 KiB), so that a restore
//! continues the stream at once instead of redrawing every earlier event, and the
//! model's seed, event count and rate, so that a restore into another model is refused.
//!
//! **Another parallelism.** Old subtask `j` of `q` emitted the events `e ≡ j (mod q)`
//! below `next_event[j]`. New subtask `k` of `p` starts at the smallest old
//! `next_event` (with that subtask's random state) and emits its events `e ≡ k (mod p)`
//! except those an old subtask already emitted (`e < next_event[e mod q]`). Until it
//! passes the largest old `next_event` its position carries the old ones
//! ([`Earlier`]); a checkpoint taken in that window can be restored with the same
//! parallelism, and another change of parallelism is refused until every subtask has
//! passed it (one layer of old positions is enough in practice: the subtasks of a
//! generator stay within a few buffers of each other, so the window is short).

use serde::{Deserialize, Serialize};

use eddy_engine::error::ConnectorError;
use eddy_engine::operators::source::SubtaskInfo;

use super::generator::GeneratorConfig;
use super::py_random::PyRandom;

/// How far one generator subtask got (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GeneratorPosition {
    /// The model's seed.
    pub(crate) seed: u64,
    /// The model's number of events.
    pub(crate) events: u64,
    /// The model's events per second of event time.
    pub(crate) event_rate: f64,
    /// The next event id this subtask looks at.
    pub(crate) next_event: u64,
    /// The random stream before `next_event`: its words and index (`None` once every
    /// event was generated).
    pub(crate) random: Option<(Vec<u32>, u32)>,
    /// Positions of a checkpoint taken with another parallelism that this subtask has
    /// not passed yet.
    pub(crate) earlier: Option<Earlier>,
}

/// The positions of the subtasks of an earlier parallelism (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Earlier {
    /// The old `next_event` of old subtask `j`, at index `j` (the old parallelism is
    /// the length).
    pub(crate) next_events: Vec<u64>,
}

impl Earlier {
    /// Whether an old subtask already emitted event `event_id`.
    #[inline]
    pub(crate) fn covers(&self, event_id: u64) -> bool {
        let old = (event_id % self.next_events.len() as u64) as usize;
        event_id < self.next_events[old]
    }

    /// The event from which on no old subtask emitted anything.
    pub(crate) fn end(&self) -> u64 {
        self.next_events.iter().copied().max().unwrap_or(0)
    }
}

/// Where a restored subtask starts: the next event, the random stream there, and the
/// old positions it must still respect.
#[derive(Debug, Clone)]
pub(crate) struct Resume {
    pub(crate) next_event: u64,
    /// `None`: every event was generated.
    pub(crate) random: Option<PyRandom>,
    pub(crate) earlier: Option<Earlier>,
}

impl GeneratorPosition {
    /// The position as it goes into a checkpoint.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, ConnectorError> {
        eddy_engine::checkpoint::encode(self)
    }

    /// Where subtask `subtask` resumes, out of the positions a checkpoint holds for a
    /// generator of `config` that ran with `old_parallelism` subtasks.
    pub(crate) fn resume(
        config: &GeneratorConfig,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<Resume, ConnectorError> {
        let mut decoded: Vec<(u32, GeneratorPosition)> = Vec::with_capacity(positions.len());
        for (old, bytes) in positions {
            let position: GeneratorPosition = eddy_engine::checkpoint::decode(bytes)?;
            position.check_model(config)?;
            decoded.push((*old, position));
        }
        decoded.sort_by_key(|(old, _)| *old);
        let complete = decoded.len() == old_parallelism as usize
            && decoded
                .iter()
                .enumerate()
                .all(|(index, (old, _))| *old as usize == index);
        if !complete {
            return Err(ConnectorError::new(format!(
                "the checkpoint holds positions of Nexmark generator subtasks {:?}, expected \
                 one for each of its {old_parallelism} subtasks",
                decoded.iter().map(|(old, _)| *old).collect::<Vec<_>>()
            )));
        }
        if old_parallelism as usize == subtask.parallelism {
            let (_, position) = decoded.swap_remove(subtask.index);
            return position.into_resume();
        }
        if decoded
            .iter()
            .any(|(_, position)| position.earlier.is_some())
        {
            return Err(ConnectorError::new(format!(
                "the Nexmark generator was checkpointed with parallelism {old_parallelism} \
                 shortly after a restore with another parallelism, before its subtasks \
                 caught up with each other; restore this checkpoint with parallelism \
                 {old_parallelism}, or a later one with any parallelism"
            )));
        }
        let next_events: Vec<u64> = decoded.iter().map(|(_, p)| p.next_event).collect();
        let (_, first) = decoded
            .into_iter()
            .min_by_key(|(_, position)| position.next_event)
            .ok_or_else(|| ConnectorError::new("no generator positions to restore"))?;
        let mut resume = first.into_resume()?;
        let earlier = Earlier { next_events };
        resume.earlier = (resume.next_event < earlier.end()).then_some(earlier);
        Ok(resume)
    }

    /// Refuses a position of another model.
    fn check_model(&self, config: &GeneratorConfig) -> Result<(), ConnectorError> {
        let same = self.seed == config.seed
            && self.events == config.events
            && self.event_rate.to_bits() == config.event_rate.to_bits();
        if same {
            Ok(())
        } else {
            Err(ConnectorError::new(format!(
                "the checkpoint's Nexmark generator had events={} seed={} rate={} (event \
                 time), this job's has events={} seed={} rate={}: a restore must generate \
                 the same events",
                self.events,
                self.seed,
                self.event_rate,
                config.events,
                config.seed,
                config.event_rate
            )))
        }
    }

    fn into_resume(self) -> Result<Resume, ConnectorError> {
        let random = match self.random {
            Some((words, index)) => {
                Some(PyRandom::from_state(&words, index as usize).ok_or_else(|| {
                    ConnectorError::new(
                        "a Nexmark generator position holds an invalid random state",
                    )
                })?)
            }
            None if self.next_event >= self.events => None,
            None => {
                return Err(ConnectorError::new(
                    "a Nexmark generator position lacks its random state",
                ))
            }
        };
        if self
            .earlier
            .as_ref()
            .is_some_and(|e| e.next_events.is_empty())
        {
            return Err(ConnectorError::new(
                "a Nexmark generator position holds an empty list of earlier positions",
            ));
        }
        if self.next_event > self.events {
            return Err(ConnectorError::new(format!(
                "a Nexmark generator position is at event {} of {}",
                self.next_event, self.events
            )));
        }
        Ok(Resume {
            next_event: self.next_event,
            random,
            earlier: self.earlier,
        })
    }
}
