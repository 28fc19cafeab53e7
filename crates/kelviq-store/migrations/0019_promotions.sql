-- Purchasing-power-parity promotions (a JSON document each: countries,
-- percentages and coupon codes fixed when made) and an environment's own
-- country groups (replacing the default table's group of the same name).
-- A promotion's coupons are discount codes that name it.

CREATE TABLE promotions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    doc          TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX promotions_by_tenant ON promotions (org_id, environment, seq);

CREATE TABLE country_groups (
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    name         TEXT NOT NULL,
    countries    TEXT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment, name)
);

ALTER TABLE discounts ADD COLUMN promotion_id TEXT;
CREATE INDEX discounts_by_promotion ON discounts (promotion_id);
