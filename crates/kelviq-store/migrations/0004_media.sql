-- Media: presigned uploads, and the files attached to products (images, files) and
-- plans (downloads). File bytes live on disk; these rows say whose they are.

-- Process-wide secrets shared by every server on this database.
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE uploads (
    file_key      TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    uploaded_at   BIGINT,
    size          BIGINT,
    consumed_at   BIGINT
);

CREATE TABLE media_files (
    pk            INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations (id),
    environment   TEXT NOT NULL,
    owner_kind    TEXT NOT NULL CHECK (owner_kind IN ('product_image', 'product_file', 'plan_file')),
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
CREATE INDEX media_files_by_owner ON media_files (org_id, environment, owner_kind, owner_id, ordering);
