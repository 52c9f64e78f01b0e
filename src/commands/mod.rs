//! One file per command family. Each command is a unit struct implementing
//! [`crate::command::Command`]; its doc comment is its synopsis.

pub mod enqueue;
pub mod inspect;
pub mod lock;
pub mod pause;
pub mod promote;
pub mod recur;
pub mod work;

use tq_core::{Result, TqError};

/// The optional last argument of a command, refusing extra ones.
fn optional<'a>(rest: &[&'a [u8]]) -> Result<Option<&'a [u8]>> {
    match rest {
        [] => Ok(None),
        [a] => Ok(Some(a)),
        _ => Err(TqError::Arity),
    }
}
