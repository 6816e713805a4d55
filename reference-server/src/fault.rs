//! Named faults: deliberate, narrowly scoped breakages of one requirement each.
//!
//! They exist so the conformance suite can prove every check is able to fail
//! (the sensitivity test). A fault is never on unless named on the command line
//! or in [`crate::config::HubConfig::faults`]; each one breaks exactly the requirement
//! its doc comment names and nothing else. Their compliant counterparts, which
//! take another answer a standard allows, are [`crate::variant`]s.

use crate::switch::{switches, Switches};

switches! {
    /// One deliberate deviation from the specifications.
    Fault, "fault";
    /// Metadata advertises an issuer that differs from the one used to build its URL (RFC 8414 §3.3).
    WrongIssuerInMetadata => "wrong-issuer-in-metadata",
    /// Metadata omits code_challenge_methods_supported (MCP authorization, RFC 8414 §2).
    OmitPkceMethodsInMetadata => "omit-pkce-methods-in-metadata",
    /// A protected MCP endpoint answers 401 without any WWW-Authenticate header (RFC 6750 §3).
    NoChallengeHeader => "no-challenge-header",
    /// The 401 challenge from a protected MCP endpoint has no resource_metadata parameter (RFC 9728 §5.1).
    NoResourceMetadataInChallenge => "no-resource-metadata-in-challenge",
    /// Protected Resource Metadata names a resource other than the one it describes (RFC 9728 §3.3).
    WrongResourceInPrm => "wrong-resource-in-prm",
    /// The MCP endpoints (the demo ones and the Agenda server) answer requests from any `Origin` (MCP transports, Streamable HTTP security warning).
    McpIgnoresOrigin => "mcp-ignores-origin",
    /// No endpoint answers CORS: browser-based clients cannot call the token, registration or metadata endpoints (RFC 9700 §2.6).
    NoCors => "no-cors",
    /// The authorization endpoint answers CORS preflights (RFC 9700 §2.6: MUST NOT).
    CorsOnAuthorize => "cors-on-authorize",
    /// The demo MCP endpoints answer `ping` with "method not found" (MCP ping utility).
    McpPingUnanswered => "mcp-ping-unanswered",
    /// The demo MCP endpoints accept a revoked access token until it expires (MCP authorization, Token Handling; RFC 7009 §2.1).
    RsAcceptsRevokedToken => "rs-accepts-revoked-token",
    /// The Agenda MCP server accepts a revoked access token until it expires (MCP authorization, Token Handling; RFC 7009 §2.1).
    AgendaAcceptsRevokedToken => "agenda-accepts-revoked-token",
    /// The demo MCP endpoint runs a tool without checking the token carries the tool's scope (RFC 6750 §3.1).
    SkipToolScopeCheck => "skip-tool-scope-check",
    /// The demo MCP endpoint accepts tokens issued for another resource (RFC 8707 §2, MCP token audience validation).
    RsSkipAudCheck => "rs-skip-aud-check",
    /// DCR responses leave out registered metadata (RFC 7591 §3.2.1).
    DcrOmitRegisteredMetadata => "dcr-omit-registered-metadata",
    /// DCR accepts `javascript:` and `data:` URLs as client_uri and logo_uri (RFC 7591 §2).
    DcrAcceptScriptUris => "dcr-accept-script-uris",
    /// A metadata-document client may use any redirect URI, listed in its document or not (CIMD §4.5).
    CimdAnyRedirect => "cimd-any-redirect",
    /// A metadata document declaring private_key_jwt is treated as a public client (CIMD §6.2).
    CimdIgnoreRegisteredAuth => "cimd-ignore-registered-auth",
    /// The jwt-bearer authorization grant (RFC 7523 §2.1) is not supported.
    JwtBearerUnsupported => "jwt-bearer-unsupported",
    /// JWT assertions are accepted without verifying their signature (RFC 7523 §3).
    SkipAssertionSignatureCheck => "skip-assertion-signature-check",
    /// Policies are not applied: every scope the client may have is offered and issued.
    SkipPolicyFilter => "skip-policy-filter",
    /// Several matching policies give the intersection of their scopes instead of the union.
    PolicyUnionAsIntersection => "policy-union-as-intersection",
    /// `not_in` conditions are ignored (treated as always true).
    PolicyIgnoreNotIn => "policy-ignore-not-in",
    /// The conditions of a policy are ORed instead of ANDed.
    PolicyConditionsOred => "policy-conditions-ored",
    /// Policies are applied to client_credentials tokens, which the client's configuration alone governs.
    ApplyPoliciesToClientCredentials => "apply-policies-to-client-credentials",
    /// Policy changes are not seen until restart: the cache is never refreshed.
    StalePolicyCache => "stale-policy-cache",
    /// Policies are checked at consent only, not again when tokens are issued or refreshed.
    PolicyOnlyAtConsent => "policy-only-at-consent",
    /// Invalid policies (unknown key or operator, missing value, unknown server or scope) are stored.
    AcceptInvalidPolicy => "accept-invalid-policy",
    /// The consent page and decision answer anyone holding the request's handle, not only the browser that signed in (RFC 6749 §10.12).
    ConsentWithoutSession => "consent-without-session",
    /// The test clock can be set to any moment, i64::MAX included (docs/control-api.md).
    UnboundedTestClock => "unbounded-test-clock",
    /// Sign-in forms check every password, however many wrong ones came before (RFC 6749 §10.10).
    NoSignInThrottle => "no-sign-in-throttle",
    /// Scopes the user unticked on the consent page are granted anyway.
    IgnoreUncheckedScopes => "ignore-unchecked-scopes",
    /// A client's registered `scope` does not limit what it is offered.
    IgnoreClientScopeConfig => "ignore-client-scope-config",
    /// Token exchange issues the token without the `act` claim (RFC 8693 §4.1).
    ExchangeDropAct => "exchange-drop-act",
    /// Token exchange replaces an existing `act` instead of nesting it (RFC 8693 §4.1).
    ExchangeFlatChain => "exchange-flat-chain",
    /// Token exchange grants scopes beyond the subject token's.
    ExchangeAllowWidening => "exchange-allow-widening",
    /// Token exchange ignores the requested scope and issues every scope the subject token holds.
    ExchangeIgnoreRequestedScope => "exchange-ignore-requested-scope",
    /// The token exchange response leaves out issued_token_type (RFC 8693 §2.2.1).
    ExchangeOmitIssuedTokenType => "exchange-omit-issued-token-type",
    /// `contains` on a list is evaluated as `equal` (the list must be exactly the value).
    PolicyContainsAsEqual => "policy-contains-as-equal",
    /// Token exchange accepts any audience, registered MCP server or not.
    ExchangeAnyAudience => "exchange-any-audience",
    /// Decommissioning an agent leaves its tokens valid.
    DecommissionKeepsTokens => "decommission-keeps-tokens",
    /// An agent's allowed source ranges are not enforced.
    AgentIgnoreSourceRanges => "agent-ignore-source-ranges",
    /// An agent's allowed time windows are not enforced.
    AgentIgnoreTimeWindows => "agent-ignore-time-windows",
    /// Consent decisions are not audited.
    DropConsentAudit => "drop-consent-audit",
    /// Refusals (`*.refused`) are not audited.
    DropRefusalAudit => "drop-refusal-audit",
    /// The issued access token is written into the audit trail.
    LeakTokenInAudit => "leak-token-in-audit",
    /// Exchanged tokens are audited without their delegation chain (`act`).
    MissingActInAudit => "missing-act-in-audit",
    /// The audit webhook starts from the newest event after a restart, losing what was not yet delivered.
    WebhookLosesEventsOnRestart => "webhook-loses-events-on-restart",
    /// Tool executions on the demo MCP server are not audited.
    DropToolAudit => "drop-tool-audit",
    /// The audit query ignores its client_id filter.
    AuditQueryIgnoresFilters => "audit-query-ignores-filters",
    /// A failed audit write is ignored and the action goes ahead unaudited.
    AuditFailureIgnored => "audit-failure-ignored",
    /// The hub forgets consent: a client asking again shows the user every scope, not only the new ones.
    ForgetConsent => "forget-consent",
    /// Step-up consent issues only the newly granted scopes, dropping those granted before.
    StepUpDropsPrior => "step-up-drops-prior",
    /// Revoking a consent has no effect: the next request is approved without asking.
    ConsentRevocationIgnored => "consent-revocation-ignored",
    /// DCR has no per-source rate limit (RFC 7591 §3).
    NoRegistrationRateLimit => "no-registration-rate-limit",
    /// DCR answers its rate limit with a bare 429: no body explaining the condition (RFC 6585 §4).
    BareRateLimitRefusal => "bare-rate-limit-refusal",
    /// DCR accepts any number of redirect URIs and metadata of any size.
    DcrNoMetadataCaps => "dcr-no-metadata-caps",
    /// DCR accepts plain-http redirect URIs on non-loopback hosts (OAuth 2.1 §2.3.1, MCP authorization).
    AcceptHttpRedirect => "accept-http-redirect",
    /// DCR accepts redirect URIs with a fragment (RFC 6749 §3.1.2).
    AcceptFragmentRedirect => "accept-fragment-redirect",
    /// The authorization response leaves out `iss` (RFC 9207 §2).
    OmitIssInResponse => "omit-iss-in-response",
    /// Error redirects leave out `iss`; successful ones keep it (MCP 2026-07-28
    /// authorization, Authorization Response Validation: "including error responses").
    ErrorResponseOmitsIss => "error-response-omits-iss",
    /// MCP servers offer `offline_access` in their Protected Resource Metadata
    /// `scopes_supported` and 401 challenges (MCP 2026-07-28 authorization, Refresh Tokens).
    OfflineAccessAdvertised => "offline-access-advertised",
    /// The demo MCP endpoints answer `server/discover` with "method not found" (MCP 2026-07-28 server/discover: servers MUST implement it).
    NoServerDiscover => "no-server-discover",
    /// The demo MCP endpoints serve a modern request of any `MCP-Protocol-Version` instead of refusing one they lack with `-32022` (MCP 2026-07-28 transports, Protocol Version Header).
    UnsupportedVersionServed => "unsupported-version-served",
    /// The demo MCP endpoints take a modern request whose `MCP-Protocol-Version`, `Mcp-Method` or `Mcp-Name` header differs from its body (MCP 2026-07-28 transports, Server Validation).
    McpHeadersUnchecked => "mcp-headers-unchecked",
    /// The demo MCP endpoints take a modern request whose `_meta` lacks a required field (MCP 2026-07-28 basic, Per-request protocol fields).
    RequestMetaUnchecked => "request-meta-unchecked",
    /// The demo MCP endpoints answer a modern request for a method they lack with HTTP 200 instead of 404 (MCP 2026-07-28 transports, Protocol Version Header).
    UnknownMethodAnswered200 => "unknown-method-answered-200",
    /// The demo MCP endpoints' modern `tools/list` results leave out the cache hints `ttlMs` and `cacheScope` (MCP 2026-07-28 caching, Cacheable Results).
    ToolsListWithoutCacheHints => "tools-list-without-cache-hints",
    /// Authorization server metadata leaves out `authorization_response_iss_parameter_supported` although authorization responses carry `iss` (MCP 2026-07-28 authorization, RFC 9207 §2.3).
    IssSupportNotAdvertised => "iss-support-not-advertised",
    /// The authorization endpoint never reuses a sign-in: a signed-in browser types the password again for every authorization (product: the user's sign-in session, docs/signin.md).
    SigninSessionIgnored => "signin-session-ignored",
    /// `prompt=login` is ignored: a signed-in browser is not asked to sign in again (OIDC Core §3.1.2.1).
    PromptLoginIgnored => "prompt-login-ignored",
    /// `max_age` is ignored: a sign-in older than it is reused (OIDC Core §3.1.2.1).
    MaxAgeIgnored => "max-age-ignored",
    /// `prompt=none` without a sign-in shows the login page instead of redirecting back with `login_required` (OIDC Core §3.1.2.1, §3.1.2.6).
    PromptNoneShowsLogin => "prompt-none-shows-login",
    /// `prompt=none` with scopes the user never consented to issues a code without asking instead of `consent_required` (OIDC Core §3.1.2.6; RFC 6749 §10.12).
    PromptNoneSkipsConsent => "prompt-none-skips-consent",
    /// Sign-out clears the cookie but keeps the session: the old cookie still signs the browser in (product: the user's sign-in session).
    SignoutKeepsSession => "signout-keeps-session",
    /// The MCP endpoints' insufficient_scope challenges (the demo ones and the Agenda server) name only the scopes the call needs, not those the token already holds, so a client that asks for exactly them loses its other tools (product: step-up keeps what was granted).
    ChallengeDropsHeldScopes => "challenge-drops-held-scopes",
    /// The consent page offers an MCP server's required scopes as optional, and an approval without one is granted without it (product: mandatory and optional scopes).
    MandatoryScopeOptional => "mandatory-scope-optional",
    /// A user whose tenant requires a second factor is signed in by the password alone (product: second factors, docs/mfa.md).
    SecondFactorNotRequired => "second-factor-not-required",
    /// Any six digits pass as the TOTP code (RFC 6238 §5.2: the verifier compares the code with the ones it computes).
    TotpAnyCodeAccepted => "totp-any-code-accepted",
    /// A TOTP code is accepted again after it was used (RFC 6238 §5.2: MUST NOT accept the second attempt).
    TotpReplayAccepted => "totp-replay-accepted",
    /// A recovery code can be used again (product: recovery codes are single-use, docs/mfa.md).
    RecoveryCodeReusable => "recovery-code-reusable",
    /// Access tokens leave out `auth_time`, `acr` and `amr` (product: the token shows how the user signed in, docs/mfa.md; RFC 9068 §2.2.1).
    AmrNotInToken => "amr-not-in-token",
    /// Single sign-on accepts an ID token whose `nonce` is not the one sent (OIDC Core §3.1.3.7 step 11).
    SsoNonceUnchecked => "sso-nonce-unchecked",
    /// Single sign-on accepts an ID token whose `iss` is not the provider's issuer (OIDC Core §3.1.3.7 step 2).
    SsoIssuerUnchecked => "sso-issuer-unchecked",
    /// Single sign-on completes a redirect back whose `state` is not the one sent (RFC 6749 §10.12).
    SsoStateUnchecked => "sso-state-unchecked",
    /// Single sign-on ignores the groups in the ID token: the user gets no mapped role (product: SSO groups mapped to roles, docs/sso.md).
    SsoGroupsNotMapped => "sso-groups-not-mapped",
    /// The authorization response drops `state` (RFC 6749 §4.1.2).
    DropState => "drop-state",
    /// Access tokens carry `typ: JWT` instead of `at+jwt` (RFC 9068 §2.1).
    PlainJwtTyp => "plain-jwt-typ",
    /// Access tokens are signed with a key the JWKS does not publish (RFC 9068 §4, RFC 8414 §2 `jwks_uri`).
    SignWithUnpublishedKey => "sign-with-unpublished-key",
    /// Rotating the signing key stops publishing the previous one at once (OIDC Core §10.1.1).
    DropOldKeyOnRotation => "drop-old-key-on-rotation",
    /// Token responses are sent without `Cache-Control: no-store` (RFC 6749 §5.1).
    CacheableTokenResponse => "cacheable-token-response",
    /// Authorization requests without a code_challenge are accepted (OAuth 2.1 §4.1.1).
    AllowMissingPkce => "allow-missing-pkce",
    /// `code_challenge_method=plain` is accepted (MCP authorization, OAuth 2.1 §4.1.1).
    AcceptPlainPkce => "accept-plain-pkce",
    /// The code_verifier is not checked against the code_challenge (RFC 7636 §4.6).
    SkipPkceVerify => "skip-pkce-verify",
    /// Authorization codes live an hour instead of at most 60 seconds (RFC 6749 §4.1.2).
    LongLivedCodes => "long-lived-codes",
    /// A user's denial at the consent page still issues a code (RFC 6749 §4.1.2.1 access_denied).
    IgnoreConsentDenial => "ignore-consent-denial",
    /// An authorization code can be redeemed more than once (OAuth 2.1 §4.1.3).
    AllowCodeReplay => "allow-code-replay",
    /// Redirect URIs are matched by prefix instead of exact string comparison (OAuth 2.1 §2.3.1).
    LooseRedirectMatch => "loose-redirect-match",
    /// An authorization request from an unknown client_id is answered by redirecting the error to its redirect_uri (RFC 6749 §4.1.2.1).
    UnknownClientRedirects => "unknown-client-redirects",
    /// A code the hub never issued is refused with invalid_request instead of invalid_grant (RFC 6749 §5.2).
    UnknownCodeInvalidRequest => "unknown-code-invalid-request",
    /// A code can be redeemed by a client other than the one it was issued to (RFC 6749 §4.1.3).
    SkipCodeClientBinding => "skip-code-client-binding",
    /// A code can be redeemed with a redirect_uri other than the one it was issued for (RFC 6749 §4.1.3).
    SkipCodeRedirectBinding => "skip-code-redirect-binding",
    /// The `resource` parameter is ignored: tokens are valid for every MCP server (RFC 8707 §2).
    IgnoreResource => "ignore-resource",
    /// Unknown `resource` values are accepted instead of refused with invalid_target (RFC 8707 §2).
    AcceptUnknownResource => "accept-unknown-resource",
    /// client_credentials access tokens carry the client's display name as `client_id` instead of its id (RFC 9068 §2.2).
    CcTokenNamesClientByName => "cc-token-names-client-by-name",
    /// client_credentials grants any scope of the resource, not only the client's configured ones (RFC 6749 §3.3).
    SkipClientScopeLimit => "skip-client-scope-limit",
    /// Refreshing returns the same refresh token and leaves it valid (RFC 9700 §4.14.2 rotation).
    NoRefreshRotation => "no-refresh-rotation",
    /// A refresh is rotated before it is validated: a refused refresh (a widened scope, a wrong resource) uses the token up (RFC 6749 §6).
    RefusedRefreshRotates => "refused-refresh-rotates",
    /// Reuse of a rotated refresh token is refused but the family stays valid (RFC 9700 §4.14.2).
    RefreshReuseKeepsFamily => "refresh-reuse-keeps-family",
    /// A refresh may ask for scopes the user never granted (RFC 6749 §6).
    RefreshAllowsWidening => "refresh-allows-widening",
    /// A refresh token is accepted from a client other than the one it was issued to (RFC 6749 §10.4).
    RefreshAnyClient => "refresh-any-client",
    /// The revocation endpoint answers 200 but revokes nothing (RFC 7009 §2.1).
    RevocationIgnored => "revocation-ignored",
    /// Introspection reports revoked access tokens as active (RFC 7662 §2.2).
    IntrospectionIgnoresRevocation => "introspection-ignores-revocation",
    /// Introspecting a token the server never issued is answered with an error instead of `active: false` (RFC 7662 §2.2).
    IntrospectionUnknownTokenError => "introspection-unknown-token-error",
    /// The introspection endpoint answers a request that carries no client authentication (RFC 7662 §2.1).
    IntrospectionOpen => "introspection-open",
    /// A private_key_jwt assertion's jti can be used again (RFC 7523 §3 item 7).
    AllowAssertionReplay => "allow-assertion-replay",
    /// A private_key_jwt assertion for another audience is accepted (RFC 7523 §3 item 3).
    SkipAssertionAudCheck => "skip-assertion-aud-check",
    /// An expired private_key_jwt assertion is accepted (RFC 7523 §3 item 4).
    SkipAssertionExpCheck => "skip-assertion-exp-check",
    /// A Client ID Metadata Document whose client_id differs from its URL is accepted (CIMD §4.1).
    CimdSkipClientIdMatch => "cimd-skip-client-id-match",
    /// Redirects from a client_id URL are followed (CIMD security considerations).
    CimdFollowRedirects => "cimd-follow-redirects",
    /// Client metadata documents of any size are read (CIMD security considerations).
    CimdNoSizeLimit => "cimd-no-size-limit",
    /// Client metadata documents up to 64 KiB are read, beyond the recommended 5 kilobytes (CIMD §6.6).
    CimdLenientSizeLimit => "cimd-lenient-size-limit",
    /// A metadata document declaring a shared-secret auth method is accepted (CIMD §4.1).
    CimdAllowSharedSecret => "cimd-allow-shared-secret",
    /// Metadata documents are refetched on every use, ignoring their max-age (CIMD §4.3).
    CimdIgnoreCache => "cimd-ignore-cache",
    /// A failed metadata fetch is cached and served again (CIMD §4.3).
    CimdCacheErrors => "cimd-cache-errors",
    /// client_id URLs on special-use addresses are fetched (CIMD security considerations, SSRF).
    CimdNoSsrfGuard => "cimd-no-ssrf-guard",
    /// The SSRF guard lets an IPv4-mapped IPv6 address (`[::ffff:127.0.0.2]`) through (CIMD draft-01 §6.5).
    CimdSsrfMissesIpv4Mapped => "cimd-ssrf-misses-ipv4-mapped",
    /// Client secrets are not verified at the token endpoint (RFC 6749 §2.3.1).
    SkipClientSecretVerify => "skip-client-secret-verify",
    /// An invalid_client answer of the token endpoint carries no WWW-Authenticate challenge, even to a client that used HTTP Basic (RFC 6749 §5.2).
    InvalidClientNoChallenge => "invalid-client-no-challenge",
    /// A grant_type the server does not support is answered invalid_request instead of unsupported_grant_type (RFC 6749 §5.2).
    UnknownGrantInvalidRequest => "unknown-grant-invalid-request",
    /// An expired stored connection token is returned as it is, never refreshed (docs/connections.md, Refresh).
    NoVaultRefresh => "no-vault-refresh",
    /// Concurrent requests for one expired connection token each refresh it upstream (no single flight).
    RefreshWithoutSingleFlight => "refresh-without-single-flight",
    /// A refresh token the provider rotated is not stored; the next refresh reuses the old one (RFC 6749 §6).
    DropRotatedRefreshToken => "drop-rotated-refresh-token",
    /// A user's connection request is granted although no Connections Policy matches.
    IgnoreConnectionPolicy => "ignore-connection-policy",
    /// A connection token carries every stored scope, not only those the matching policies allow.
    ConnectionPolicyIgnoresScopes => "connection-policy-ignores-scopes",
    /// A user with no token of their own gets another user's token for the connection.
    CrossUserConnection => "cross-user-connection",
    /// A tenant's connection token is returned to users of another tenant.
    CrossTenantConnection => "cross-tenant-connection",
    /// Connections Policies are applied to agent (client_credentials) tokens as well.
    ConnectionPolicyOnAgents => "connection-policy-on-agents",
    /// An agent not in the connection's allowed clients still gets its token.
    IgnoreAllowedClients => "ignore-allowed-clients",
    /// A provider invalid_grant does not mark the connection; every request retries the refresh upstream.
    RetryAfterInvalidGrant => "retry-after-invalid-grant",
    /// Provider calls have no timeout: a provider that never answers holds the request.
    UnboundedProviderTimeout => "unbounded-provider-timeout",
    /// A provider answering garbage makes the hub fail with a 500 instead of a precise 502 error.
    ProviderErrorsAs500 => "provider-errors-as-500",
    /// The connect flow sends no PKCE code_challenge to the provider (RFC 7636 §4.3, RFC 9700 §2.1.1).
    ConnectWithoutPkce => "connect-without-pkce",
    /// The connect form accepts a sign-in posted from another site's page (RFC 6749 §10.12).
    ConnectAcceptsForeignOrigin => "connect-accepts-foreign-origin",
    /// The connect callback accepts a state it never issued (RFC 6749 §10.12).
    ConnectIgnoresState => "connect-ignores-state",
    /// connection.token.issued and connection refresh events are not audited.
    DropConnectionAudit => "drop-connection-audit",
    /// The connection token's value is written into its connection.token.issued audit event.
    LeakConnectionTokenInAudit => "leak-connection-token-in-audit",
    /// Connection tokens are stored in the database without encryption.
    PlaintextVault => "plaintext-vault",
    /// The Agenda MCP server forwards the caller's hub token to the provider instead of the vault token.
    McpTokenPassthrough => "mcp-token-passthrough",
    /// A connection whose endpoint is not an absolute http(s) URL is accepted at creation.
    AcceptMalformedConnectionEndpoint => "accept-malformed-connection-endpoint",
    /// The Agenda MCP server runs a tool without the scope the tool needs.
    AgendaSkipToolScope => "agenda-skip-tool-scope",
    /// An API-key connection's key is handed out as a Bearer access token, not as `N_A`.
    ApiKeyAsBearer => "api-key-as-bearer",
    /// A connection token is looked up in the tenant before the subject's own.
    TenantTokenBeforeOwn => "tenant-token-before-own",
    /// The authorization endpoint's error page repeats the request's `redirect_uri` without escaping it (RFC 6749 §10.14).
    ErrorPageReflectsRequest => "error-page-reflects-request",
    /// The token endpoint's `unsupported_grant_type` description repeats the request body, credentials included (RFC 6749 §10.3, §10.14).
    TokenErrorEchoesRequest => "token-error-echoes-request",
    /// A repeated `grant_type` at the token endpoint is answered 500 instead of 400 `invalid_request` (RFC 6749 §3.2, §5.2).
    RepeatedGrantTypeServerError => "repeated-grant-type-server-error",
    /// The listener waits for a request's headers without any time limit: a client that sends half a request holds its socket for ever (RFC 9112 §9.5).
    NoHeaderReadTimeout => "no-header-read-timeout",
    /// A resource server may file tool-execution audit events for any MCP server the hub protects, not only its own.
    ToolReportForAnyServer => "tool-report-for-any-server",
    /// Dynamic registration accepts a `client_name` with bidirectional overrides and other invisible controls, which can make one client's name read as another's on the consent page.
    ClientNameAllowsBidi => "client-name-allows-bidi",
    /// The Origin checks (console, sign-in and consent forms, MCP endpoints) accept an `Origin` equal to the request's own `Host`, which a DNS-rebinding page controls.
    OriginTrustsHost => "origin-trusts-host",
    /// After a crash, the audit JSON Lines file keeps a last line cut short and appends after it.
    JsonlKeepsCutLine => "jsonl-keeps-cut-line",
    /// Access tokens issued in the same second share a `jti` (RFC 9068 §2.2, RFC 7519 §4.1.7: unique); only concurrent load shows it.
    JtiRepeats => "jti-repeats",
    /// The authorization endpoint never answers a request whose `state` is over 1 KiB.
    AuthorizeStallsOnLongState => "authorize-stalls-on-long-state",
    /// Concurrent refreshes of one refresh token may all succeed: the rotation trusts the read that found the token unused instead of a write guarded on it (RFC 9700 §4.14.2; OAuth 2.1 §4.3.1); only concurrent load shows it.
    RefreshRotationRaces => "refresh-rotation-races",
    /// One token request in 100 is answered 500, as a server whose connection pool times out under load would (RFC 6749 §5.2 has no such answer); only load shows it.
    TokenServerErrorUnderLoad => "token-server-error-under-load",
    /// One introspection in 64 says a live token is inactive, as a cache that evicts live entries under load would (RFC 7662 §2.2); only load shows it.
    IntrospectionForgetsLiveTokens => "introspection-forgets-live-tokens",
}

/// Whether this is the `n`th call counted by `ticks`: how the faults that
/// only load shows fail one request in `n`, whatever the request.
pub fn one_in(n: u64, ticks: &std::sync::atomic::AtomicU64) -> bool {
    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n == n - 1
}

/// The set of faults a running hub has switched on.
pub type Faults = Switches<Fault>;
