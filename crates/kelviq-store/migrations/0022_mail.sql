-- Mail the server sends (portal sign-in codes): every message is kept in
-- the outbox, with when it was handed to the SMTP server or why not; with
-- no SMTP server configured the outbox is where development reads it
-- (`kelviq mail list`). And the sign-in codes waiting to be typed, one per
-- address (only an HMAC of each), with the wrong tries and any lock.

CREATE TABLE mail_outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    to_addr      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT,
    error        TEXT
);
CREATE INDEX mail_outbox_by_time ON mail_outbox (created_at);

CREATE TABLE portal_codes (
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    email         TEXT NOT NULL,
    code_hash     TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    tries         BIGINT NOT NULL,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, email)
);
CREATE INDEX customers_by_email ON customers (org_id, environment, email);
