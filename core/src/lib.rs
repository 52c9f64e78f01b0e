//! tq-core: the pure part of tq, shared by the Redis module and the worker.
//!
//! Nothing here touches Redis or allocates through it: the queue logic plans
//! its writes over the [`store::Store`] trait with an injected clock, and is
//! unit-tested against [`store::MemStore`].

// Code reachable from a Redis command must not panic: a panic there would
// take the user's server down (the dispatcher catches them, but the goal is
// to have none).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod codec;
pub mod error;
pub mod inspect;
pub mod json;
pub mod keys;
pub mod lock;
pub mod metrics;
pub mod packed;
pub mod parse;
pub mod pause;
pub mod queue;
pub mod records;
pub mod recur;
pub mod settings;
pub mod staged;
pub mod stats;
pub mod store;
pub mod time;
pub mod work;

pub use error::{Result, TqError};
