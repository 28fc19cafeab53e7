-- Customer portal sessions: the link a merchant's server asks for
-- (POST /portal/session/) carries a token of the form cpt-<uuid>:<uuid>;
-- only its SHA-256 is kept. A session is one customer's, until it expires.

CREATE TABLE portal_sessions (
    token_hash   TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX portal_sessions_by_expiry ON portal_sessions (expires_at);
