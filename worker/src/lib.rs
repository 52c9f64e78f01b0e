//! tq's client side: the `tq` command and the library behind it.
//!
//! - [`client`]: a typed wrapper over the module's `TQ.*` commands;
//! - [`paired`]: `tq paired`, a command run under an expiring pair lock;
//! - [`duration`]: `30s`-style durations;
//! - [`cli`]: the command line (clap), dispatched by `main.rs`;
//! - [`sys`]: the few libc calls (signals, process groups, host name).
//!
//! This crate never links the module (`tq-module`): the module installs
//! Redis's allocator, which aborts outside a server.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod cli;
pub mod client;
pub mod duration;
pub mod paired;
pub mod sys;
