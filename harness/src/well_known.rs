//! Where metadata lives: the well-known URLs an MCP client derives from an
//! issuer (RFC 8414 §3.1, OpenID Connect Discovery 1.0 §4, in the order of the
//! MCP authorization spec's "Authorization Server Metadata Discovery") and
//! from a protected resource (RFC 9728 §3.1). Pure URL rules, shared by the
//! discovery actions and `conform init`.

use url::Url;

/// The authorization server metadata URLs to try for `issuer`, in order:
/// path insertion for RFC 8414 and OIDC, then OIDC path appending.
pub fn authorization_server_metadata_urls(issuer: &str) -> Result<Vec<String>, url::ParseError> {
    let issuer = Url::parse(issuer)?;
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    Ok(if path.is_empty() {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server"),
            format!("{origin}/.well-known/openid-configuration"),
        ]
    } else {
        vec![
            format!("{origin}/.well-known/oauth-authorization-server{path}"),
            format!("{origin}/.well-known/openid-configuration{path}"),
            format!("{origin}{path}/.well-known/openid-configuration"),
        ]
    })
}

/// The protected resource metadata URL of `resource` (RFC 9728 §3.1: the
/// well-known suffix inserted between the origin and the path).
pub fn protected_resource_metadata_url(resource: &str) -> Result<String, url::ParseError> {
    let parsed = Url::parse(resource)?;
    let path = parsed.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-protected-resource{path}",
        parsed.origin().ascii_serialization()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_with_a_path_gets_insertion_then_appending() {
        assert_eq!(
            authorization_server_metadata_urls("https://as.example/tenant1/").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant1",
                "https://as.example/.well-known/openid-configuration/tenant1",
                "https://as.example/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            authorization_server_metadata_urls("https://as.example").unwrap(),
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn resource_metadata_is_inserted_before_the_path() {
        assert_eq!(
            protected_resource_metadata_url("https://rs.example/mcp").unwrap(),
            "https://rs.example/.well-known/oauth-protected-resource/mcp"
        );
    }
}
