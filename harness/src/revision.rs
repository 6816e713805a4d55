//! MCP specification revisions: which one a run judges by (`conform --spec`).
//!
//! Implementers ship against one revision, and a requirement's level, words
//! and section move between revisions (dynamic registration is a SHOULD in
//! one and deprecated in the next). A scenario that cites MCP says where it
//! stands in every revision (`[[mcp]]` in its file, see `scenario::McpRef`);
//! a run resolves each scenario for its one revision, and `--spec all` runs
//! once per revision and writes the matrix.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A published revision of the MCP specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Revision {
    #[serde(rename = "2025-06-18")]
    R2025_06_18,
    #[serde(rename = "2025-11-25")]
    R2025_11_25,
    #[serde(rename = "2026-07-28")]
    R2026_07_28,
}

impl Revision {
    /// Every revision the suite judges by, oldest first.
    pub const ALL: [Revision; 3] = [
        Revision::R2025_06_18,
        Revision::R2025_11_25,
        Revision::R2026_07_28,
    ];
    /// The default: the current revision.
    pub const LATEST: Revision = Revision::R2026_07_28;

    /// Modern (2026-07-28 on): no `initialize` handshake and no session;
    /// each request carries its version and the client's capabilities.
    pub fn is_stateless(self) -> bool {
        self >= Revision::R2026_07_28
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Revision::R2025_06_18 => "2025-06-18",
            Revision::R2025_11_25 => "2025-11-25",
            Revision::R2026_07_28 => "2026-07-28",
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Revision {
    type Err = String;

    fn from_str(text: &str) -> Result<Revision, String> {
        Revision::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown MCP revision `{text}`; the suite knows {}",
                    Revision::ALL.map(Revision::as_str).join(", ")
                )
            })
    }
}

/// What `--spec` asks for: one revision, or each in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecChoice {
    One(Revision),
    All,
}

impl SpecChoice {
    /// The revisions to run, oldest first.
    pub fn revisions(self) -> Vec<Revision> {
        match self {
            SpecChoice::One(revision) => vec![revision],
            SpecChoice::All => Revision::ALL.to_vec(),
        }
    }
}

impl FromStr for SpecChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<SpecChoice, String> {
        match text {
            "all" => Ok(SpecChoice::All),
            other => other.parse().map(SpecChoice::One),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_parse_and_print_as_their_dates() {
        for revision in Revision::ALL {
            assert_eq!(revision.as_str().parse::<Revision>(), Ok(revision));
        }
        assert_eq!("all".parse::<SpecChoice>(), Ok(SpecChoice::All));
        let unknown = "2024-11-05".parse::<Revision>().unwrap_err();
        assert!(
            unknown.contains("2025-06-18, 2025-11-25, 2026-07-28"),
            "{unknown}"
        );
        assert_eq!(Revision::LATEST, *Revision::ALL.last().unwrap());
    }
}
