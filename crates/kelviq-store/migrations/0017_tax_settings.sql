-- An environment's tax settings (a JSON document): the tax behaviour of
-- prices that leave it UNSPECIFIED, and the B2B reverse charge.

CREATE TABLE tax_settings (
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    doc          TEXT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment)
);
