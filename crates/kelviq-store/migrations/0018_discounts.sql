-- Discount codes of an environment (the terms as a JSON document) and
-- their redemptions: HELD by an open checkout until it expires, REDEEMED
-- by a completed one, RELEASED when that checkout expired unpaid or the
-- order was refunded in full. A deleted code is kept for its redemptions.

CREATE TABLE discounts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    org_id          TEXT NOT NULL REFERENCES organizations (id),
    environment     TEXT NOT NULL,
    code            TEXT NOT NULL,
    doc             TEXT NOT NULL,
    times_redeemed  BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    modified_at     BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX discounts_by_tenant ON discounts (org_id, environment, seq);
CREATE UNIQUE INDEX discounts_one_per_code ON discounts (org_id, environment, code) WHERE deleted_at IS NULL;

CREATE TABLE discount_redemptions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    discount_id  TEXT NOT NULL,
    customer_id  TEXT,
    session_id   TEXT,
    order_id     TEXT,
    status       TEXT NOT NULL,
    expires_at   BIGINT,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL
);
CREATE INDEX discount_redemptions_of ON discount_redemptions (discount_id, status);
CREATE UNIQUE INDEX discount_redemptions_by_session ON discount_redemptions (session_id);
CREATE INDEX discount_redemptions_by_order ON discount_redemptions (order_id);
CREATE INDEX orders_by_customer ON orders (org_id, environment, customer_id);
