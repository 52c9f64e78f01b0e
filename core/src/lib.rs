//! tq-core: the pure part of tq, shared by the Redis module and the worker.
//!
//! Nothing here touches Redis or allocates through it: the queue logic plans
//! its writes over the [`store::Store`] trait with an injected clock, and is
//! unit-tested against [`store::MemStore`].

pub mod error;
pub mod json;
pub mod keys;
pub mod parse;
pub mod queue;
pub mod records;
pub mod store;
pub mod time;

pub use error::{Result, TqError};
