-- Consent records are per user, client and resource; they expire (the hub's
-- consent TTL) and can be revoked. A revoked or expired record no longer
-- spares the user the consent page.
ALTER TABLE consents ADD COLUMN expires_at INTEGER;
ALTER TABLE consents ADD COLUMN revoked_at INTEGER;
