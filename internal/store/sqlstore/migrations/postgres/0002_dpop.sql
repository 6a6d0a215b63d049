-- deputy schema, version 2 (PostgreSQL): DPoP (RFC 9449). A public client's refresh
-- token is bound to the DPoP key it was issued to (jkt, its RFC 7638 thumbprint);
-- an authorization request's dpop_jkt binds its code (RFC 9449 §10). '' = unbound.

ALTER TABLE refresh_tokens ADD COLUMN jkt      TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_codes     ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
