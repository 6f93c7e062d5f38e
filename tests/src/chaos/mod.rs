//! `make chaos`: a month of the deployed stack's schedules under faults, with invariants checked after every run
//! and figures at the end (the book's guide/chaos.md says what is injected and what is not).

pub mod invariants;
