//! The module's integration tests use the shared test kit (`testkit/`, crate
//! `tq-testkit`), as the client's and the CLI's do.
pub use tq_testkit::*;
