//! The user's authenticator (a party's state, kept by the run): its TOTP
//! secret and recovery codes, and the code the user types on the server's
//! second-factor page: the current TOTP (RFC 6238), a wrong one, one typed
//! before, or a recovery code.

use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Secret, TOTP};

use super::failure::{precondition, undeclared, StepError};

/// What the user has to prove a second factor with, and what they typed
/// so far in this run.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    /// The TOTP shared secret, base32.
    pub secret: String,
    pub recovery_codes: Vec<String>,
    /// The TOTP code last typed.
    pub last_code: Option<String>,
    /// The recovery codes typed, in order.
    pub used_recovery_codes: Vec<String>,
}

/// What the user types on the second-factor page.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorEntry {
    /// The authenticator's current code.
    #[default]
    Totp,
    /// Six digits that are none of the codes around the current time.
    Wrong,
    /// The TOTP code typed last time, again.
    Replay,
    /// A recovery code not typed before.
    Recovery,
    /// The recovery code typed last time, again.
    ReplayRecovery,
}

/// The TOTP of `base32` at `unix` seconds, as authenticator apps compute it
/// (SHA-1, six digits, 30 s steps: the `otpauth` defaults).
fn code_at(base32: &str, unix: u64) -> Result<String, StepError> {
    let secret = Secret::Encoded(base32.replace([' ', '-'], "").to_uppercase())
        .to_bytes()
        .map_err(|e| precondition(format!("the TOTP secret is not base32: {e:?}")))?;
    Ok(TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, secret).generate(unix))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Authenticator {
    /// The `(code, recovery_code)` the user types for `entry`; one of the
    /// two is empty. Remembers what was typed.
    pub fn entry(&mut self, entry: SecondFactorEntry) -> Result<(String, String), StepError> {
        let typed = match entry {
            SecondFactorEntry::Totp => {
                let code = code_at(&self.secret, now())?;
                self.last_code = Some(code.clone());
                (code, String::new())
            }
            SecondFactorEntry::Wrong => {
                let t = now();
                let near: Vec<String> = [t.saturating_sub(30), t, t + 30]
                    .iter()
                    .map(|&at| code_at(&self.secret, at))
                    .collect::<Result<_, _>>()?;
                let mut wrong: u32 = near[1].parse().unwrap_or_default();
                loop {
                    wrong = (wrong + 500_001) % 1_000_000;
                    let text = format!("{wrong:06}");
                    if !near.contains(&text) {
                        break (text, String::new());
                    }
                }
            }
            SecondFactorEntry::Replay => {
                let code = self.last_code.clone().ok_or_else(|| {
                    precondition("no TOTP code was typed earlier in this scenario to replay")
                })?;
                (code, String::new())
            }
            SecondFactorEntry::Recovery => {
                let code = self
                    .recovery_codes
                    .iter()
                    .find(|c| !self.used_recovery_codes.contains(c))
                    .cloned()
                    .ok_or_else(|| undeclared("the user has no recovery code left to type"))?;
                self.used_recovery_codes.push(code.clone());
                (String::new(), code)
            }
            SecondFactorEntry::ReplayRecovery => {
                let code = self.used_recovery_codes.last().cloned().ok_or_else(|| {
                    precondition("no recovery code was typed earlier in this scenario to replay")
                })?;
                (String::new(), code)
            }
        };
        Ok(typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (SHA-1, its ASCII secret), six digits.
    #[test]
    fn codes_follow_rfc_6238() {
        let base32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(code_at(base32, 59).unwrap(), "287082");
        assert_eq!(code_at(base32, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn each_entry_types_what_it_says() {
        let mut auth = Authenticator {
            secret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".into(),
            recovery_codes: vec!["AAAA-BBBB".into(), "CCCC-DDDD".into()],
            ..Authenticator::default()
        };
        assert!(auth.entry(SecondFactorEntry::Replay).is_err());
        let (code, none) = auth.entry(SecondFactorEntry::Totp).unwrap();
        assert_eq!((code.len(), none.as_str()), (6, ""));
        assert_eq!(auth.entry(SecondFactorEntry::Replay).unwrap().0, code);
        let (wrong, _) = auth.entry(SecondFactorEntry::Wrong).unwrap();
        assert_ne!(wrong, code);
        assert_eq!(wrong.len(), 6);
        let (_, first) = auth.entry(SecondFactorEntry::Recovery).unwrap();
        assert_eq!(first, "AAAA-BBBB");
        assert_eq!(
            auth.entry(SecondFactorEntry::ReplayRecovery).unwrap().1,
            first
        );
        assert_eq!(
            auth.entry(SecondFactorEntry::Recovery).unwrap().1,
            "CCCC-DDDD"
        );
        assert!(auth.entry(SecondFactorEntry::Recovery).is_err());
    }
}
