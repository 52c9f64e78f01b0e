//! Retry policies and per-class / per-queue job settings, and the JSON file
//! `tq work --retry-config` reads them from:
//!
//! ```json
//! {
//!   "default": { "retry": 3, "backoff": "1s,5s,30s", "timeout": "30s" },
//!   "queues":  { "mail":   { "retry": 5, "backoff": ["10s", "1m"] } },
//!   "classes": { "Resize": { "retry": 1, "timeout": "5m" } }
//! }
//! ```
//!
//! Every part is optional. An entry may set `retry` (attempts in all, the
//! first run included, as node-resque's Retry plugin's `retryLimit` and
//! `TQ.FAIL ... RETRY`; 0 or 1 = no retry), `backoff` (delays before the
//! 2nd, 3rd, ... attempt, the last repeated; a comma list or an array of
//! durations, a bare number being ms) and `timeout` (0 = none). Each setting
//! of a job comes from the first place that has it: its class's entry, its
//! queue's entry, the command line (`--retry`, `--backoff`, `--timeout`),
//! then `default`. Unknown keys are errors, so typos do not pass silently.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::duration::{millis, parse_duration};

/// `TQ.FAIL ... RETRY <attempts> BACKOFF <ms>,...`: a failed job that has
/// been delivered fewer than `attempts` times runs again after a delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries in all, the first included (at least 2 to retry at all).
    pub attempts: u32,
    /// Delay before attempt n+1 is `backoff[min(n-1, len-1)]`; empty means
    /// the module's default (node-resque's 5 s).
    pub backoff: Vec<Duration>,
}

impl RetryPolicy {
    pub fn new(attempts: u32, backoff: Vec<Duration>) -> RetryPolicy {
        RetryPolicy { attempts, backoff }
    }

    /// The `BACKOFF` argument (`100,5000`), None when empty.
    pub fn backoff_arg(&self) -> Option<String> {
        if self.backoff.is_empty() {
            return None;
        }
        Some(self.backoff.iter().map(|d| millis(*d).to_string()).collect::<Vec<_>>().join(","))
    }

    /// The delay the module applies after a failed delivery number
    /// `delivery` (1 = first), mirroring its rule.
    pub fn delay_after(&self, delivery: u32) -> Duration {
        let i = usize::try_from(delivery.saturating_sub(1)).unwrap_or(usize::MAX);
        self.backoff.get(i).or(self.backoff.last()).copied().unwrap_or(Duration::from_millis(5000))
    }
}

/// Settings of one entry; None = not set here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub retry: Option<u32>,
    pub backoff: Option<Vec<Duration>>,
    /// Zero means no timeout.
    pub timeout: Option<Duration>,
}

impl Settings {
    fn is_empty(&self) -> bool {
        self.retry.is_none() && self.backoff.is_none() && self.timeout.is_none()
    }
}

/// Where a job's settings come from: its class, its queue, the command line,
/// the file's default, in that order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub classes: HashMap<String, Settings>,
    pub queues: HashMap<String, Settings>,
    /// From the command line (or set by a library user).
    pub cli: Settings,
    /// The file's `default`.
    pub default: Settings,
}

impl Rules {
    /// No retries, no timeouts.
    pub fn none() -> Rules {
        Rules::default()
    }

    /// One retry policy for every job.
    pub fn retry_all(policy: RetryPolicy) -> Rules {
        Rules {
            cli: Settings { retry: Some(policy.attempts), backoff: Some(policy.backoff), timeout: None },
            ..Rules::default()
        }
    }

    fn lookup<T: Clone>(&self, class: &str, queue: &str, get: impl Fn(&Settings) -> Option<T>) -> Option<T> {
        self.classes
            .get(class)
            .and_then(&get)
            .or_else(|| self.queues.get(queue).and_then(&get))
            .or_else(|| get(&self.cli))
            .or_else(|| get(&self.default))
    }

    /// The retry policy of a job of `class` from `queue`; None = fail at once.
    pub fn retry_for(&self, class: &str, queue: &str) -> Option<RetryPolicy> {
        let attempts = self.lookup(class, queue, |s| s.retry)?;
        if attempts <= 1 {
            return None;
        }
        let backoff = self.lookup(class, queue, |s| s.backoff.clone()).unwrap_or_default();
        Some(RetryPolicy { attempts, backoff })
    }

    /// The time limit of a job; None = no limit.
    pub fn timeout_for(&self, class: &str, queue: &str) -> Option<Duration> {
        self.lookup(class, queue, |s| s.timeout).filter(|d| !d.is_zero())
    }

    /// Reads the JSON file format described in the module documentation;
    /// `cli` is left empty.
    pub fn from_json(text: &str) -> Result<Rules, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(top) = v else { return Err("the top level must be a JSON object".into()) };
        let mut rules = Rules::default();
        for (k, v) in &top {
            match k.as_str() {
                "default" => rules.default = settings(v, "default")?,
                "classes" | "queues" => {
                    let Value::Object(entries) = v else {
                        return Err(format!("\"{k}\" must be an object of name -> settings"));
                    };
                    for (name, s) in entries {
                        let parsed = settings(s, &format!("{k}.{name}"))?;
                        if parsed.is_empty() {
                            continue;
                        }
                        let map = if k == "classes" { &mut rules.classes } else { &mut rules.queues };
                        map.insert(name.clone(), parsed);
                    }
                }
                other => return Err(format!("unknown key \"{other}\" (expected default, queues, classes)")),
            }
        }
        Ok(rules)
    }
}

fn settings(v: &Value, at: &str) -> Result<Settings, String> {
    let Value::Object(m) = v else { return Err(format!("{at}: must be an object")) };
    let mut s = Settings::default();
    for (k, v) in m {
        match k.as_str() {
            "retry" => {
                let n = v.as_u64().ok_or_else(|| format!("{at}.retry: expected a whole number of attempts"))?;
                s.retry = Some(
                    u32::try_from(n)
                        .ok()
                        .filter(|&n| n <= 1_000_000)
                        .ok_or(format!("{at}.retry: at most 1000000 attempts"))?,
                );
            }
            "backoff" => s.backoff = Some(backoff_value(v).map_err(|e| format!("{at}.backoff: {e}"))?),
            "timeout" => s.timeout = Some(duration_value(v).map_err(|e| format!("{at}.timeout: {e}"))?),
            other => return Err(format!("{at}: unknown key \"{other}\" (expected retry, backoff, timeout)")),
        }
    }
    Ok(s)
}

fn duration_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(n) => {
            n.as_u64().map(Duration::from_millis).ok_or_else(|| format!("{n} is not a whole number of ms"))
        }
        Value::String(s) => parse_duration(s),
        other => Err(format!("expected a duration such as \"30s\" or a number of ms, got {other}")),
    }
}

fn backoff_value(v: &Value) -> Result<Vec<Duration>, String> {
    let list = match v {
        Value::Array(items) => items.iter().map(duration_value).collect::<Result<Vec<_>, _>>()?,
        Value::String(s) => parse_backoff(s)?,
        other => vec![duration_value(other)?],
    };
    if list.is_empty() {
        return Err("give at least one delay".into());
    }
    Ok(list)
}

/// `1s,5s,30s` (each a duration; a bare number is ms).
pub fn parse_backoff(text: &str) -> Result<Vec<Duration>, String> {
    let list = text.split(',').map(parse_duration).collect::<Result<Vec<_>, _>>()?;
    if list.is_empty() {
        return Err("give at least one delay".into());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn backoff_lists() {
        assert_eq!(parse_backoff("1s,5s,30s"), Ok(vec![ms(1000), ms(5000), ms(30000)]));
        assert_eq!(parse_backoff("100"), Ok(vec![ms(100)]));
        assert!(parse_backoff("1s,,2s").is_err());
        assert!(parse_backoff("").is_err());
        let p = RetryPolicy::new(4, vec![ms(100), ms(2000)]);
        assert_eq!(p.backoff_arg().as_deref(), Some("100,2000"));
        assert_eq!([1, 2, 3, 9].map(|n| p.delay_after(n)), [ms(100), ms(2000), ms(2000), ms(2000)]);
        assert_eq!(RetryPolicy::new(2, vec![]).backoff_arg(), None);
        assert_eq!(RetryPolicy::new(2, vec![]).delay_after(1), ms(5000));
    }

    #[test]
    fn file_format() {
        let r = Rules::from_json(
            r#"{
              "default": {"retry": 3, "backoff": "1s,5s", "timeout": "30s"},
              "queues": {"mail": {"retry": 5, "backoff": ["10s", 60000]}, "empty": {}},
              "classes": {"Resize": {"retry": 1, "timeout": 0}, "Slow": {"timeout": "5m"}}
            }"#,
        )
        .expect("parses");
        assert_eq!(r.retry_for("Other", "q"), Some(RetryPolicy::new(3, vec![ms(1000), ms(5000)])));
        assert_eq!(r.retry_for("Other", "mail"), Some(RetryPolicy::new(5, vec![ms(10_000), ms(60_000)])));
        assert_eq!(r.retry_for("Resize", "mail"), None, "class first; 1 attempt = no retry");
        // Per setting: Slow has only a timeout; its retry comes from the queue.
        assert_eq!(r.retry_for("Slow", "mail").map(|p| p.attempts), Some(5));
        assert_eq!(r.timeout_for("Slow", "mail"), Some(ms(300_000)));
        assert_eq!(r.timeout_for("Resize", "q"), None, "0 = no limit");
        assert_eq!(r.timeout_for("Other", "q"), Some(ms(30_000)));
        assert!(!r.queues.contains_key("empty"));
    }

    #[test]
    fn command_line_comes_between_entries_and_default() {
        let mut r = Rules::from_json(r#"{"default": {"retry": 3, "timeout": "1s"}, "queues": {"q": {"retry": 7}}}"#)
            .expect("parses");
        r.cli = Settings { retry: Some(2), backoff: Some(vec![ms(100)]), timeout: None };
        assert_eq!(r.retry_for("C", "other"), Some(RetryPolicy::new(2, vec![ms(100)])));
        assert_eq!(r.retry_for("C", "q"), Some(RetryPolicy::new(7, vec![ms(100)])));
        assert_eq!(r.timeout_for("C", "other"), Some(ms(1000)), "the file's default where the CLI says nothing");
        assert_eq!(Rules::none().retry_for("C", "q"), None);
        assert_eq!(
            Rules::retry_all(RetryPolicy::new(3, vec![])).retry_for("C", "q"),
            Some(RetryPolicy::new(3, vec![]))
        );
    }

    #[test]
    fn file_errors_name_the_place() {
        for (text, want) in [
            ("[]", "top level"),
            ("{", "not valid JSON"),
            (r#"{"defaults": {}}"#, "unknown key \"defaults\""),
            (r#"{"classes": {"A": {"retries": 2}}}"#, "classes.A: unknown key \"retries\""),
            (r#"{"classes": {"A": {"retry": -1}}}"#, "classes.A.retry"),
            (r#"{"classes": {"A": {"retry": 1.5}}}"#, "classes.A.retry"),
            (r#"{"queues": {"q": {"backoff": "1x"}}}"#, "queues.q.backoff"),
            (r#"{"queues": {"q": {"backoff": []}}}"#, "queues.q.backoff"),
            (r#"{"default": {"timeout": true}}"#, "default.timeout"),
            (r#"{"queues": []}"#, "\"queues\" must be an object"),
        ] {
            let e = Rules::from_json(text).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
