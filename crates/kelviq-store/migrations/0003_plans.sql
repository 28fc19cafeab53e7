-- Plans: one row per version. A version holds its prices and entitlements as
-- JSON documents, so a new draft is a copy of one row and a bulk price
-- replace is one UPDATE. At most one version of a plan is 'published'.

CREATE TABLE plans (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    identifier    TEXT NOT NULL,
    version       BIGINT NOT NULL,
    product_id    TEXT NOT NULL REFERENCES products (id),
    name          TEXT NOT NULL,
    fields        TEXT NOT NULL,
    prices        TEXT NOT NULL,
    entitlements  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('draft', 'published', 'superseded')),
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL,
    published_at  BIGINT,
    archived_at   BIGINT,
    UNIQUE (org_id, environment, identifier, version)
);
CREATE INDEX plans_by_identifier ON plans (org_id, environment, identifier, version DESC);
CREATE INDEX plans_by_product ON plans (product_id, status);
