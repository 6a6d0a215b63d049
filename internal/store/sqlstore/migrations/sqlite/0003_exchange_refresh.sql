-- deputy schema, version 3 (SQLite): refresh tokens issued by a token exchange
-- (RFC 8693 requested_token_type refresh_token, or alongside an exchanged access
-- token where the policy allows it). They keep the facts every access token
-- refreshed from them carries: the policy rule that allowed the exchange, the act
-- claim (JSON) and the identity claims (a JSON object). '' for sign-in tokens.

ALTER TABLE refresh_tokens ADD COLUMN rule   TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN act    TEXT NOT NULL DEFAULT '';
ALTER TABLE refresh_tokens ADD COLUMN claims TEXT NOT NULL DEFAULT '';
