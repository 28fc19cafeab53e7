-- Tax rates of an environment: a percentage (in ten-thousandths of a
-- percent) for a country, or for one region of it (`region` empty: the
-- whole country). At most one live rate per country and region.

CREATE TABLE tax_rates (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    name         TEXT NOT NULL,
    country      TEXT NOT NULL,
    region       TEXT NOT NULL,
    percentage   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    modified_at  BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX tax_rates_by_tenant ON tax_rates (org_id, environment, seq);
CREATE UNIQUE INDEX tax_rates_one_per_place ON tax_rates (org_id, environment, country, region) WHERE deleted_at IS NULL;
