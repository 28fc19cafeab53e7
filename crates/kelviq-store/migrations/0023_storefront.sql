-- An environment's storefront settings (a JSON document): what customers
-- may do in the portal and how the hosted pages look. And a fourth kind of
-- media file, the seller's logo: media_files is rebuilt with the wider check
-- (SQLite cannot alter a CHECK constraint).

CREATE TABLE storefront_settings (
    org_id       TEXT NOT NULL REFERENCES organizations (id),
    environment  TEXT NOT NULL,
    doc          TEXT NOT NULL,
    modified_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, environment)
);

CREATE TABLE media_files_v2 (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    owner_kind    TEXT NOT NULL CHECK (owner_kind IN ('product_image', 'product_file', 'plan_file', 'brand_logo')),
    owner_id      TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    storage_path  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    ordering      BIGINT NOT NULL,
    thumbnail     BIGINT NOT NULL,
    enabled       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    modified_at   BIGINT NOT NULL
);
INSERT INTO media_files_v2 (pk, id, org_id, environment, owner_kind, owner_id, name, content_type, storage_path, size,
    ordering, thumbnail, enabled, created_at, modified_at)
    SELECT pk, id, org_id, environment, owner_kind, owner_id, name, content_type, storage_path, size, ordering,
    thumbnail, enabled, created_at, modified_at FROM media_files;
DROP TABLE media_files;
ALTER TABLE media_files_v2 RENAME TO media_files;
CREATE INDEX media_files_by_owner ON media_files (org_id, environment, owner_kind, owner_id, ordering);
-- postgres: SELECT setval(pg_get_serial_sequence('media_files', 'pk'), COALESCE((SELECT MAX(pk) FROM media_files), 0) + 1, false);
