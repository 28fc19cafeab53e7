-- Stripe's webhook events as received: each event id is taken once, in
-- the same transaction as what it changes, so a delivery answered 2xx is
-- committed and a repeated one changes nothing.

CREATE TABLE stripe_events (
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    handled      BIGINT NOT NULL,
    created      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, event_id)
);
