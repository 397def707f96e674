//! Gridsync server library.
