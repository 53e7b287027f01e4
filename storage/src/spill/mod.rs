//! Spill files (work in progress).
