//! The seeded dice of the randomized tests: splitmix64, small and the same
//! sequence for a seed for ever (a replay must not depend on a crate's
//! version).

pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)] // a dice roll, not an iterator
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// True `pct` times in 100.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next() % 100 < pct
    }

    /// True `n` times in 10,000.
    pub fn per_10k(&mut self, n: u64) -> bool {
        self.next() % 10_000 < n
    }
}

/// The seed of a randomized test: `var`'s value when set (a replay), else
/// one from the clock and the process id.
pub fn seed(var: &str) -> u64 {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        t ^ u64::from(std::process::id())
    })
}

/// A step count from `var` when set, else `default`.
pub fn steps(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}
