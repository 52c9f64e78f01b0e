//! The module's settings (`CONFIG GET tq.*`): names, defaults, bounds, and
//! the reading of the module arguments that set them at load.
//!
//! Module arguments are checked here rather than by the redis-module crate,
//! which ignores unknown names, reads `tq.auto-promote` as nothing and any
//! boolean other than `yes` as `no`: a mistyped argument must stop the load,
//! not run the server with a setting nobody asked for.

/// What a setting holds, its default and bounds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Int { default: i64, min: i64, max: i64 },
    Bool { default: bool },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setting {
    /// The name without the `tq.` that CONFIG puts before it.
    pub name: &'static str,
    pub kind: Kind,
}

pub const LEASE_MS: Setting =
    Setting { name: "lease-ms", kind: Kind::Int { default: 60_000, min: 100, max: 2_592_000_000 } };
pub const MAX_DELIVERIES: Setting =
    Setting { name: "max-deliveries", kind: Kind::Int { default: 5, min: 1, max: 1_000_000 } };
pub const TIMER_BATCH: Setting =
    Setting { name: "timer-batch", kind: Kind::Int { default: 250, min: 1, max: 1_000_000 } };
pub const AUTO_PROMOTE: Setting = Setting { name: "auto-promote", kind: Kind::Bool { default: true } };
pub const METRICS: Setting = Setting { name: "metrics", kind: Kind::Bool { default: true } };
/// How long a worker's open tally gathers its jobs before they go to their
/// minute's record (`metrics::carry`); a minute's end flushes it anyway.
pub const METRICS_FLUSH_MS: Setting =
    Setting { name: "metrics-flush-ms", kind: Kind::Int { default: 2_000, min: 100, max: 60_000 } };

/// Every setting the module registers.
pub const SETTINGS: [Setting; 6] = [LEASE_MS, MAX_DELIVERIES, TIMER_BATCH, AUTO_PROMOTE, METRICS, METRICS_FLUSH_MS];

impl Setting {
    /// An integer setting's default (0 for a yes/no one).
    pub const fn default_int(self) -> i64 {
        match self.kind {
            Kind::Int { default, .. } => default,
            Kind::Bool { .. } => 0,
        }
    }
}

/// A setting's value as given in the module arguments.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Value {
    Int(i64),
    Bool(bool),
}

/// Reads the module arguments: pairs of `[tq.]<name> <value>`, each name
/// once. One value per entry of `SETTINGS` (None: not given), or the
/// reason the arguments are refused, naming the argument.
pub fn parse_args(args: &[&[u8]]) -> Result<Vec<Option<Value>>, String> {
    let mut values: Vec<Option<Value>> = vec![None; SETTINGS.len()];
    let mut rest = args;
    while let [name, tail @ ..] = rest {
        let shown = String::from_utf8_lossy(name);
        // Case-insensitive, as the server reads setting names.
        let lower = name.to_ascii_lowercase();
        let bare = lower.strip_prefix(b"tq.").unwrap_or(&lower);
        let Some(i) = SETTINGS.iter().position(|s| s.name.as_bytes() == bare) else {
            let known: Vec<String> = SETTINGS.iter().map(|s| format!("tq.{}", s.name)).collect();
            return Err(format!("unknown module argument '{shown}' (the settings are {})", known.join(", ")));
        };
        let [value, after @ ..] = tail else {
            return Err(format!("module argument '{shown}' has no value"));
        };
        let (Some(setting), Some(slot)) = (SETTINGS.get(i), values.get_mut(i)) else {
            return Err(format!("module argument '{shown}': no such setting"));
        };
        if slot.is_some() {
            return Err(format!("module argument '{shown}' is given twice"));
        }
        let text = String::from_utf8_lossy(value);
        *slot = Some(match setting.kind {
            Kind::Int { min, max, .. } => {
                // Digits only (an optional minus): "1e3", "+5" or " 5" are refused.
                let digits = text.strip_prefix('-').unwrap_or(&text);
                let n = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| text.parse::<i64>().ok())
                    .flatten()
                    .ok_or_else(|| format!("module argument '{shown}': '{text}' is not an integer"))?;
                if n < min || n > max {
                    return Err(format!("module argument '{shown}': {n} is out of range ({min} to {max})"));
                }
                Value::Int(n)
            }
            Kind::Bool { .. } => match text.to_ascii_lowercase().as_str() {
                "yes" => Value::Bool(true),
                "no" => Value::Bool(false),
                _ => return Err(format!("module argument '{shown}': '{text}' is not yes or no")),
            },
        });
        rest = after;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<Option<Value>>, String> {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        parse_args(&raw)
    }

    #[test]
    fn both_spellings_of_every_setting() {
        let v = parse(&[
            "tq.lease-ms",
            "500",
            "max-deliveries",
            "2",
            "tq.timer-batch",
            "9",
            "tq.auto-promote",
            "no",
            "metrics",
            "no",
            "tq.metrics-flush-ms",
            "5000",
        ])
        .expect("accepted");
        assert_eq!(
            v,
            vec![
                Some(Value::Int(500)),
                Some(Value::Int(2)),
                Some(Value::Int(9)),
                Some(Value::Bool(false)),
                Some(Value::Bool(false)),
                Some(Value::Int(5000))
            ]
        );
        assert_eq!(parse(&["TQ.Auto-Promote", "YES"]).expect("accepted")[3], Some(Value::Bool(true)));
        assert_eq!(parse(&[]).expect("none"), vec![None; SETTINGS.len()]);
    }

    #[test]
    fn refusals_name_the_argument() {
        for (args, says) in [
            (&["tq.lease"][..], "unknown module argument 'tq.lease'"),
            (&["lease-ms", "1000", "tq.auto-promote"][..], "'tq.auto-promote' has no value"),
            (&["tq.auto-promote", "true"][..], "'tq.auto-promote': 'true' is not yes or no"),
            (&["tq.lease-ms", "1e3"][..], "'tq.lease-ms': '1e3' is not an integer"),
            (&["tq.lease-ms", "+5"][..], "'tq.lease-ms': '+5' is not an integer"),
            (&["tq.lease-ms", ""][..], "'tq.lease-ms': '' is not an integer"),
            (&["tq.lease-ms", "99999999999999999999"][..], "is not an integer"),
            (&["tq.lease-ms", "50"][..], "'tq.lease-ms': 50 is out of range (100 to 2592000000)"),
            (&["tq.max-deliveries", "0"][..], "'tq.max-deliveries': 0 is out of range"),
            (&["metrics-flush-ms", "60001"][..], "'metrics-flush-ms': 60001 is out of range (100 to 60000)"),
            (&["lease-ms", "500", "tq.lease-ms", "600"][..], "'tq.lease-ms' is given twice"),
            (&["tq-lease-ms", "500"][..], "unknown module argument 'tq-lease-ms'"),
        ] {
            let e = parse(args).expect_err(&format!("{args:?} refused"));
            assert!(e.contains(says), "{args:?}: {e}");
        }
    }
}
