-- Catalog, part one: products and features. Identifiers are unique per
-- tenant, archived rows included (an identifier is never reused).

CREATE TABLE products (
    pk           INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    identifier   TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    tax_code     TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    settings     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    archived_at  BIGINT,
    UNIQUE (org_id, environment, identifier)
);
CREATE INDEX products_newest ON products (org_id, environment, created_at DESC, pk DESC);

CREATE TABLE features (
    pk               INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    org_id           TEXT NOT NULL REFERENCES organizations (id),
    environment      TEXT NOT NULL,
    identifier       TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    feature_type     TEXT NOT NULL CHECK (feature_type IN ('BOOLEAN', 'CUSTOMIZABLE', 'METER')),
    feature_details  TEXT NOT NULL,
    meter            TEXT,
    metadata         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    modified_at      BIGINT NOT NULL,
    archived_at      BIGINT,
    UNIQUE (org_id, environment, identifier)
);
CREATE INDEX features_newest ON features (org_id, environment, created_at DESC, pk DESC);
