-- Charges made through a payment provider that answers over the network
-- (Stripe). An attempt is written, and committed, before the provider is
-- called with the attempt's key as its Idempotency-Key; the answer is
-- committed in its own transaction; the work that needed the charge then
-- runs again and reads the outcome here. A process that dies between the
-- provider's answer and that commit leaves the attempt pending: the next
-- run calls again with the same key and the provider replays its answer,
-- so a charge is made at most once. A charge no work used (the request
-- that asked for it died, or the work changed before it ran again) is
-- refunded by the sweeper.

CREATE TABLE payment_attempts (
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    environment     TEXT NOT NULL,
    attempt_key     TEXT NOT NULL,
    provider        TEXT NOT NULL,
    purpose         TEXT NOT NULL,
    customer_ref    TEXT NOT NULL,
    method_ref      TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    -- pending, succeeded, declined, requires_action; orphaned (succeeded,
    -- and no work used it: being refunded), orphan_refunded
    status          TEXT NOT NULL,
    -- 1 once committed work used the outcome (in that work's transaction)
    used            BIGINT NOT NULL DEFAULT 0,
    payment_ref     TEXT,
    error_code      TEXT,
    message         TEXT,
    created_at      BIGINT NOT NULL,
    resolved_at     BIGINT,
    PRIMARY KEY (org_id, environment, attempt_key)
);

CREATE INDEX payment_attempts_unused ON payment_attempts (used, created_at);

-- Which order a provider's payment paid (a Stripe PaymentIntent), for
-- what the provider reports about it later (a dispute).
CREATE TABLE provider_payments (
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    payment_ref  TEXT NOT NULL,
    order_id     TEXT NOT NULL,
    PRIMARY KEY (org_id, environment, payment_ref)
);
