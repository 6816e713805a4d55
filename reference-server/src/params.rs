//! Form and query parameters with the RFC 6749 §3.1 rules applied: a repeated
//! parameter is an error, and a parameter without a value counts as absent.
//! axum's `Form` rejects bad input with a plain-text 422; OAuth needs an
//! OAuth error body, so endpoints parse with this instead.

use crate::error::OAuthError;

#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Result<Params, OAuthError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(raw)
            .map(Params)
            .map_err(|_| {
                OAuthError::InvalidRequest(
                    "the request parameters are not valid form encoding".into(),
                )
            })
    }

    pub fn from_query(query: Option<&str>) -> Result<Params, OAuthError> {
        Params::parse(query.unwrap_or_default().as_bytes())
    }

    /// The single value of `name`, if present and non-empty.
    pub fn get(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        let mut values = self.0.iter().filter(|(k, v)| k == name && !v.is_empty());
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(OAuthError::InvalidRequest(format!(
                "parameter `{name}` is repeated"
            )));
        }
        Ok(first)
    }

    /// A form field as text for a page to show back: empty when absent,
    /// empty or repeated (forms never need the protocol's precise errors).
    pub fn text(&self, name: &str) -> String {
        self.get(name).ok().flatten().unwrap_or_default().to_owned()
    }

    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)?
            .ok_or_else(|| OAuthError::InvalidRequest(format!("parameter `{name}` is required")))
    }

    /// Every value of a repeatable field (HTML checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Splits a space-delimited `scope` value (RFC 6749 §3.3), dropping duplicates but keeping order.
pub fn split_scopes(scope: Option<&str>) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for s in scope.unwrap_or_default().split_ascii_whitespace() {
        if !scopes.iter().any(|have| have == s) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

/// A JSON request body of the control and admin APIs; bad JSON is `invalid_request`.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OAuthError> {
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::InvalidRequest(format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_are_absent() {
        let p = Params::parse(b"a=1&a=2&b=&c=3").unwrap();
        assert!(matches!(p.get("a"), Err(OAuthError::InvalidRequest(_))));
        assert_eq!(p.get("b").unwrap(), None);
        assert_eq!(p.require("c").unwrap(), "3");
        assert!(p.require("d").is_err());
    }

    #[test]
    fn scopes_split_on_spaces_without_duplicates() {
        assert_eq!(split_scopes(Some(" a  b a ")), vec!["a", "b"]);
        assert!(split_scopes(None).is_empty());
    }
}
