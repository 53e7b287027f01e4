//! Built-in jobs, written with the public DataStream API as examples users can read.

pub mod copy;
pub mod nexmark;
pub mod preview;
pub mod wordcount;
