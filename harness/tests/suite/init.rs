//! `init::*`: `conform init` discovers a target and writes a starter profile
//! that loads, with capabilities proven by metadata and nothing guessed.

use libtest_mimic::{Failed, Trial};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("init::from-an-mcp-server-of-the-reference-hub", || {
            let hub = shared_target();
            let resource = &hub.resources["primary"].url;
            let found = runtime()
                .block_on(harness::init::discover(resource))
                .map_err(|e| Failed::from(e.to_string()))?;
            check(found.issuer == hub.issuer, || {
                format!("issuer {} instead of {}", found.issuer, hub.issuer)
            })?;
            let from_prm = found.resource.as_ref().ok_or("no resource found")?;
            check(&from_prm.url == resource, || {
                format!("resource {}", from_prm.url)
            })?;
            check(from_prm.scopes == hub.resources["primary"].scopes, || {
                format!("scopes {:?}", from_prm.scopes)
            })?;
            let present = proven(&found);
            check(
                present
                    == [
                        "dcr",
                        "cimd",
                        "client_credentials",
                        "jwt_bearer",
                        "token_exchange",
                        "revocation",
                        "introspection",
                        "rfc9207",
                    ],
                || format!("capabilities proven: {present:?}"),
            )?;
            // The starter profile loads and discovery-only scenarios pass through it.
            let dir = temp_dir("init");
            let file = dir.join("profile.toml");
            std::fs::write(&file, found.profile_toml(resource))
                .map_err(|e| Failed::from(e.to_string()))?;
            let output = conform(&[
                "--target",
                &file.to_string_lossy(),
                "--scenario",
                "metadata.*",
                "--out",
                &dir.join("out").to_string_lossy(),
            ]);
            check(code(&output) == 0, || {
                format!("the written profile did not run: {}", text(&output))
            })
        }),
        Trial::test("init::only-what-metadata-proves", || {
            runtime().block_on(async {
                let server = MockServer::start().await;
                let issuer = server.uri();
                // A plain authorization server: no registration, no revocation, no CIMD.
                Mock::given(method("GET"))
                    .and(path("/.well-known/oauth-authorization-server"))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                        "issuer": issuer,
                        "authorization_endpoint": format!("{issuer}/authorize"),
                        "token_endpoint": format!("{issuer}/token"),
                        "grant_types_supported": ["authorization_code", "refresh_token"],
                        "introspection_endpoint": format!("{issuer}/introspect"),
                    })))
                    .mount(&server)
                    .await;
                let found = harness::init::discover(&issuer)
                    .await
                    .map_err(|e| Failed::from(e.to_string()))?;
                let present = proven(&found);
                check(present == ["introspection"], || {
                    format!("capabilities proven: {present:?}")
                })?;
                check(found.resource.is_none(), || {
                    "a resource was invented".into()
                })?;
                let profile = found.profile_toml(&issuer);
                check(
                    profile.contains("dcr = false")
                        && profile.contains("TODO: a test user's name")
                        && profile.contains("# [resources.primary]"),
                    || format!("unexpected profile:\n{profile}"),
                )
            })
        }),
        Trial::test("init::refuses-a-foreign-issuer", || {
            runtime().block_on(async {
                let server = MockServer::start().await;
                Mock::given(method("GET"))
                    .and(path("/.well-known/oauth-authorization-server"))
                    .respond_with(
                        ResponseTemplate::new(200)
                            .set_body_json(json!({"issuer": "https://127.0.0.2/another-issuer"})),
                    )
                    .mount(&server)
                    .await;
                match harness::init::discover(&server.uri()).await {
                    Ok(_) => Err("metadata naming another issuer was accepted".into()),
                    Err(e) => check(e.to_string().contains("RFC 8414 §3.3"), || {
                        format!("unexpected error: {e}")
                    }),
                }
            })
        }),
        Trial::test("init::cli-keeps-an-existing-file", || {
            let dir = temp_dir("init-cli");
            let file = dir.join("mine.toml");
            std::fs::write(&file, "keep me").map_err(|e| Failed::from(e.to_string()))?;
            let output = conform(&[
                "init",
                "--target",
                "http://127.0.0.1:9/oauth",
                "--output",
                &file.to_string_lossy(),
            ]);
            let kept = std::fs::read_to_string(&file).unwrap_or_default();
            check(code(&output) == 2 && kept == "keep me", || {
                format!(
                    "exit {} and file {kept:?}: {}",
                    code(&output),
                    text(&output)
                )
            })
        }),
    ]
}

/// The capabilities discovery proved, by name.
fn proven(found: &harness::init::Discovery) -> Vec<&'static str> {
    found
        .capabilities()
        .into_iter()
        .filter(|c| c.present)
        .map(|c| c.name)
        .collect()
}
