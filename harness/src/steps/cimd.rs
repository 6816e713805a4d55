//! The CIMD host: a client whose client_id is the https URL of its metadata
//! document (draft-ietf-oauth-client-id-metadata-document), served by the
//! harness on loopback; and the SSRF probe, an address the target must
//! never fetch.

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::act::{Act, ActionInfo};
use super::credentials::{CIMD_CLIENT_KEY, CIMD_CLIENT_KID};
use super::defaults::self_name;
use super::failure::{precondition, StepError};
use super::parties::Registered;
use super::run::Run;
use crate::recipe::Operation;

const CIMD: ActionInfo = ActionInfo::new(
    "CIMD host",
    "The client's identity is an https URL serving its metadata document (a Client ID Metadata Document): the hub fetches it, with SSRF guards, instead of a registration. The harness hosts the document and counts what the hub fetched.",
    "draft-ietf-oauth-client-id-metadata-document-01 §4",
    "https://datatracker.ietf.org/doc/html/draft-ietf-oauth-client-id-metadata-document-01#section-4",
);

/// What is wrong with a hosted client metadata document, if anything.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CimdVariant {
    #[default]
    Valid,
    /// `client_id` differs from the document's URL.
    ClientIdMismatch,
    /// A clearly abusive size: over 1 MiB (the draft's SHOULD limit the response size).
    Oversize,
    /// Just over the draft's recommended 5 kilobytes: 6 KiB.
    OverRecommended,
    /// Declares `client_secret_basic`.
    SharedSecret,
    /// The URL answers 302 to another URL that serves a valid document.
    Redirect,
    /// Declares `private_key_jwt` with a `jwks_uri` the host also serves (CIMD §6.2).
    PrivateKeyJwt,
}

/// CIMD host: serve a Client ID Metadata Document on loopback, tell the target
/// to trust that origin (operation `trust_cimd_origin`), and use the document's URL
/// as the client_id of the client named `as`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostClientMetadata {
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
    #[serde(default)]
    pub variant: CimdVariant,
    /// Serve with `Cache-Control: max-age=N`.
    #[serde(default)]
    pub max_age: Option<u32>,
    /// Answer the first fetch with HTTP 500.
    #[serde(default)]
    pub fail_first: bool,
}

impl Act for HostClientMetadata {
    const INFO: ActionInfo = CIMD;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.host_client_metadata(&self.name, self.variant, self.max_age, self.fail_first)
            .await
    }
}

/// CIMD host: how many times the target fetched the document of client `as`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CimdFetchCount {
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
}

impl Act for CimdFetchCount {
    const INFO: ActionInfo = CIMD;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.cimd_fetch_count(&self.name).await
    }
}

/// SSRF probe: listen on an untrusted loopback address (`[cimd_host]
/// ssrf_probe_address`, 127.0.0.2 by default) and make
/// client `as` an https client_id URL pointing there. Nothing should connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListenForSsrf {
    #[serde(default = "self_name", rename = "as")]
    pub name: String,
    /// `ipv4_mapped`: name the (IPv4) probe address in the URL as an
    /// IPv4-mapped IPv6 address, `[::ffff:127.0.0.2]`, which reaches the
    /// same listener on a dual-stack host.
    #[serde(default)]
    pub form: Option<String>,
}

impl Act for ListenForSsrf {
    const INFO: ActionInfo = CIMD;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        run.listen_for_ssrf(&self.name, self.form.as_deref()).await
    }
}

/// SSRF probe: how many connections the probe listener accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SsrfConnections {}

impl Act for SsrfConnections {
    const INFO: ActionInfo = CIMD;

    async fn perform(&self, run: &mut Run<'_>) -> Result<Value, StepError> {
        Ok(json!({
            "count": run
                .cimd
                .ssrf_probe
                .as_ref()
                .map(|(count, _)| count.load(std::sync::atomic::Ordering::SeqCst))
                .ok_or_else(|| precondition("no SSRF probe is listening"))?
        }))
    }
}

impl Run<'_> {
    /// Starts the CIMD host on first use: a loopback wiremock server, behind
    /// an https front when the profile names a certificate and key.
    async fn cimd_origin(&mut self) -> Result<String, StepError> {
        if self.cimd.host.is_none() {
            self.cimd.host = Some(wiremock::MockServer::start().await);
        }
        let host = self
            .cimd
            .host
            .as_ref()
            .ok_or_else(|| precondition("no CIMD host"))?;
        let settings = &self.profile.cimd_host;
        let (Some(certificate), Some(key)) = (&settings.tls_certificate, &settings.tls_key) else {
            return Ok(host.uri());
        };
        if self.cimd.tls.is_none() {
            let config = crate::tls_front::server_config(certificate, key)
                .map_err(|e| precondition(e.to_string()))?;
            let front = crate::tls_front::start(config, *host.address())
                .await
                .map_err(|e| precondition(e.to_string()))?;
            self.cimd.tls = Some(front);
        }
        Ok(self
            .cimd
            .tls
            .as_ref()
            .map(crate::tls_front::TlsFront::origin)
            .unwrap_or_default())
    }

    async fn host_client_metadata(
        &mut self,
        name: &str,
        variant: CimdVariant,
        max_age: Option<u32>,
        fail_first: bool,
    ) -> Result<Value, StepError> {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, ResponseTemplate};
        let origin = self.cimd_origin().await?;
        let (origin, trust) = {
            // Plain http on loopback is fetchable only by a target told to
            // trust it (no recipe: the scenario is skip); over https (the
            // profile's certificate) a target that trusts the issuer needs
            // no recipe to announce the host.
            let announce =
                crate::operation::recipe(self.profile, Operation::TrustCimdOrigin).is_ok();
            let trust = if announce || self.cimd.tls.is_none() {
                self.operation_facts(Operation::TrustCimdOrigin, json!({"origin": origin}))
                    .await?
            } else {
                json!({"ok": true, "status": null, "not_needed": true})
            };
            (origin, trust)
        };
        // A fresh path per run: the target may cache documents by URL.
        let doc_path = format!("/clients/{}/{name}.json", crate::random_token());
        let url = format!("{origin}{doc_path}");
        let mut doc = json!({
            "client_id": url,
            "client_name": format!("conform CIMD client ({name})"),
            "redirect_uris": [self.profile.callback],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        });
        match variant {
            CimdVariant::Valid | CimdVariant::Redirect => {}
            CimdVariant::ClientIdMismatch => {
                doc["client_id"] = json!(format!("{url}-someone-else"))
            }
            CimdVariant::Oversize => doc["padding"] = json!("x".repeat((1 << 20) + 1024)),
            CimdVariant::OverRecommended => doc["padding"] = json!("x".repeat(6 * 1024)),
            CimdVariant::SharedSecret => {
                doc["token_endpoint_auth_method"] = json!("client_secret_basic")
            }
            CimdVariant::PrivateKeyJwt => {
                let jwks_path = format!("{doc_path}.jwks");
                let key = jsonwebtoken::EncodingKey::from_ec_pem(CIMD_CLIENT_KEY.as_bytes())
                    .map_err(|e| precondition(format!("the harness's CIMD key: {e}")))?;
                let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256)
                    .map_err(|e| precondition(format!("the harness's CIMD key: {e}")))?;
                jwk.common.key_id = Some(CIMD_CLIENT_KID.to_owned());
                let server = self
                    .cimd
                    .host
                    .as_ref()
                    .ok_or_else(|| precondition("no CIMD host"))?;
                Mock::given(method("GET"))
                    .and(path(jwks_path.clone()))
                    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"keys": [jwk]})))
                    .mount(server)
                    .await;
                doc["token_endpoint_auth_method"] = json!("private_key_jwt");
                doc["jwks_uri"] = json!(format!("{origin}{jwks_path}"));
            }
        }
        let mut ok = ResponseTemplate::new(200).set_body_json(doc);
        if let Some(seconds) = max_age {
            ok = ok.insert_header("cache-control", format!("max-age={seconds}").as_str());
        }
        let server = self
            .cimd
            .host
            .as_ref()
            .ok_or_else(|| precondition("no CIMD host"))?;
        if fail_first {
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(ResponseTemplate::new(500))
                .up_to_n_times(1)
                .with_priority(1)
                .mount(server)
                .await;
        }
        if variant == CimdVariant::Redirect {
            let real = format!("{doc_path}.real");
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(
                    ResponseTemplate::new(302)
                        .insert_header("location", format!("{origin}{real}").as_str()),
                )
                .mount(server)
                .await;
            Mock::given(method("GET"))
                .and(path(real))
                .respond_with(ok)
                .mount(server)
                .await;
        } else {
            Mock::given(method("GET"))
                .and(path(doc_path.clone()))
                .respond_with(ok)
                .with_priority(2)
                .mount(server)
                .await;
        }
        self.client.registered.insert(
            name.to_owned(),
            Registered {
                client_id: url.clone(),
                redirect_uri: self.profile.callback.clone(),
            },
        );
        self.cimd.paths.insert(name.to_owned(), doc_path);
        Ok(json!({"status": trust["status"], "ok": trust["ok"], "url": url, "trust": trust}))
    }

    async fn listen_for_ssrf(
        &mut self,
        name: &str,
        form: Option<&str>,
    ) -> Result<Value, StepError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Loopback (127.0.0.2 unless the profile names another), but not an
        // address the target runs on or was told to trust.
        let address = self.profile.cimd_host.ssrf_probe_address;
        let listener = tokio::net::TcpListener::bind((address, 0))
            .await
            .map_err(|e| precondition(format!("cannot listen on {address}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| precondition(e.to_string()))?
            .port();
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        if let Some((_, old)) = self.cimd.ssrf_probe.replace((count, task)) {
            old.abort();
        }
        let host = match (form, address) {
            (None, _) => std::net::SocketAddr::from((address, port)).to_string(),
            (Some("ipv4_mapped"), std::net::IpAddr::V4(v4)) => {
                format!("[{}]:{port}", v4.to_ipv6_mapped())
            }
            (Some("ipv4_mapped"), std::net::IpAddr::V6(_)) => {
                return Err(super::failure::undeclared(format!(
                    "the profile's ssrf_probe_address {address} is IPv6: it has no IPv4-mapped form"
                )))
            }
            (Some(other), _) => {
                return Err(precondition(format!(
                    "listen_for_ssrf form `{other}` is not `ipv4_mapped`"
                )))
            }
        };
        let url = format!(
            "https://{host}/clients/{}/{name}.json",
            crate::random_token()
        );
        self.client.registered.insert(
            name.to_owned(),
            Registered {
                client_id: url.clone(),
                redirect_uri: self.profile.callback.clone(),
            },
        );
        Ok(json!({"url": url}))
    }

    async fn cimd_fetch_count(&mut self, name: &str) -> Result<Value, StepError> {
        let doc_path = self
            .cimd
            .paths
            .get(name)
            .cloned()
            .ok_or_else(|| precondition(format!("no document is hosted for `{name}`")))?;
        let server = self
            .cimd
            .host
            .as_ref()
            .ok_or_else(|| precondition("no CIMD host"))?;
        let requests = server.received_requests().await.unwrap_or_default();
        let count = requests
            .iter()
            .filter(|r| r.url.path().starts_with(&doc_path))
            .count();
        Ok(json!({"count": count}))
    }
}
