//! Autonomous-agent conditions: where and when an agent acting as itself may
//! get tokens. They live in the agent's own configuration (its metadata), never
//! in policies, and apply to client_credentials and the jwt-bearer grant.
//!
//! The source address is the TCP peer, or what a proxy the operator trusts
//! (`--trusted-proxy`) put last in `X-Forwarded-For`; anyone else can write
//! that header, so it is otherwise ignored (`Hub::source_address`).

use std::net::IpAddr;

use chrono::{Datelike, Timelike, Weekday};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// An agent's conditions; an empty list means "no restriction" for that kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AgentConditions {
    /// CIDR ranges the agent's requests must come from, e.g. `10.0.0.0/8`.
    #[serde(default)]
    pub source_ranges: Vec<IpNet>,
    /// UTC windows in which the agent may get tokens.
    #[serde(default)]
    pub time_windows: Vec<TimeWindow>,
}

/// Days of the week and an hour range, UTC: `from_hour` inclusive, `to_hour` exclusive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// `mon` … `sun`; all days when empty.
    #[serde(default)]
    pub days: Vec<String>,
    pub from_hour: u32,
    pub to_hour: u32,
}

/// Why a request falls outside the agent's conditions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionViolation {
    #[error("requests from {0} are outside this agent's allowed source ranges")]
    SourceAddress(IpAddr),
    #[error("{0} UTC is outside this agent's allowed time windows")]
    Time(String),
}

fn weekday(name: &str) -> Option<Weekday> {
    name.parse().ok()
}

impl AgentConditions {
    /// Checks the shape: hours within 0..=24, from before to, known day names.
    pub fn validate(&self) -> Result<(), String> {
        for w in &self.time_windows {
            if w.from_hour >= w.to_hour || w.to_hour > 24 {
                return Err(format!(
                    "time window {}–{} is not a range of hours within a day",
                    w.from_hour, w.to_hour
                ));
            }
            if let Some(bad) = w.days.iter().find(|d| weekday(d).is_none()) {
                return Err(format!("`{bad}` is not a day of the week"));
            }
        }
        Ok(())
    }

    pub fn check_source(&self, source: IpAddr) -> Result<(), ConditionViolation> {
        // An IPv4 peer may arrive as an IPv4-mapped IPv6 address.
        let source = match source {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(source),
            v4 => v4,
        };
        if self.source_ranges.is_empty() || self.source_ranges.iter().any(|r| r.contains(&source)) {
            Ok(())
        } else {
            Err(ConditionViolation::SourceAddress(source))
        }
    }

    /// `now` in seconds since the Unix epoch, on the hub's clock.
    pub fn check_time(&self, now: i64) -> Result<(), ConditionViolation> {
        if self.time_windows.is_empty() {
            return Ok(());
        }
        let at = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
        let inside = self.time_windows.iter().any(|w| {
            let day_ok =
                w.days.is_empty() || w.days.iter().any(|d| weekday(d) == Some(at.weekday()));
            day_ok && (w.from_hour..w.to_hour).contains(&at.hour())
        });
        if inside {
            Ok(())
        } else {
            Err(ConditionViolation::Time(at.format("%a %H:%M").to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_windows() {
        let c = AgentConditions {
            source_ranges: vec![
                "127.0.0.1/32".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            time_windows: vec![TimeWindow {
                days: vec!["mon".into(), "tue".into()],
                from_hour: 9,
                to_hour: 17,
            }],
        };
        assert!(c.validate().is_ok());
        assert!(c.check_source("127.0.0.1".parse().unwrap()).is_ok());
        assert!(c.check_source("10.1.2.3".parse().unwrap()).is_ok());
        assert!(c.check_source("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(c.check_source("127.0.0.2".parse().unwrap()).is_err());
        // 2026-11-23 is a Monday.
        let monday_10 = 1_795_428_000 - (1_795_428_000 % 86_400) + 10 * 3600;
        assert!(c.check_time(monday_10).is_ok());
        assert!(
            c.check_time(monday_10 + 8 * 3600).is_err(),
            "18:00 is outside"
        );
        assert!(
            c.check_time(monday_10 + 5 * 86_400).is_err(),
            "saturday is outside"
        );
        let bad = AgentConditions {
            time_windows: vec![TimeWindow {
                days: vec!["someday".into()],
                from_hour: 1,
                to_hour: 2,
            }],
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }
}
