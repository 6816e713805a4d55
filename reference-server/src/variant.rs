//! Named variants: compliant alternatives to the hub's usual answers.
//!
//! Where a standard allows two answers, the conformance suite must accept
//! both. The hub gives one of them; a variant makes it give the other, so the
//! suite can prove that each "one of" expectation really accepts the second
//! answer (the acceptance proof in `harness/src/sensitivity.rs`). Unlike a
//! [`crate::fault::Fault`], a variant breaks no requirement: each doc comment
//! names the text that allows it. Variants are listed apart from faults
//! (`hub --list-variants`) and are never on unless named.

use crate::switch::{switches, Switches};

switches! {
    /// One compliant alternative answer.
    Variant, "variant";
    /// A token request whose client credentials failed and did not come in an Authorization header is answered 400 invalid_client, not 401 (RFC 6749 §5.2: 401 is a MAY then).
    InvalidClient400 => "invalid-client-400",
    /// client_credentials and token exchange grant the allowed part of a requested scope and name it in `scope`, instead of refusing with invalid_scope (RFC 6749 §3.3).
    NarrowUnallowedScope => "narrow-unallowed-scope",
    /// Token exchange without requested_token_type names its token `urn:ietf:params:oauth:token-type:jwt` (RFC 8693 §2.1 leaves the type to the server; the hub's access tokens are JWTs).
    ExchangeIssuesJwtType => "exchange-issues-jwt-type",
    /// Token exchange leaves `scope` out of its response when it is exactly the scope requested (RFC 6749 §5.1: OPTIONAL if identical).
    OmitScopeAsRequested => "omit-scope-as-requested",
    /// Registration drops a client_uri, logo_uri, tos_uri or policy_uri that is not an https URL and registers the client without it, instead of refusing (RFC 7591 §3.2.1 lets the server replace values).
    DcrDropsUnsafeUris => "dcr-drops-unsafe-uris",
    /// An authorization request naming a scope outside the client's configuration is refused with invalid_scope, instead of narrowed to the configured scopes (seed 002, "Scope request": "the request returns an error").
    RefuseScopeBeyondClientConfig => "refuse-scope-beyond-client-config",
    /// Registrations over the per-source limit are answered 503 Service Unavailable with Retry-After, not 429 (RFC 7591 fixes no status for a limit).
    RegistrationLimit503 => "registration-limit-503",
}

/// The set of variants a running hub has switched on.
pub type Variants = Switches<Variant>;
