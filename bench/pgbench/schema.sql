DROP TABLE IF EXISTS usage_events, usage_counters, change_feed, ev2, ctr2, pending, statement_pending;
DROP SEQUENCE IF EXISTS ks;
CREATE SEQUENCE ks;
CREATE TABLE usage_events (seq BIGSERIAL, org_id TEXT COLLATE "C" NOT NULL, environment TEXT COLLATE "C" NOT NULL,
  idempotency_key TEXT COLLATE "C" NOT NULL, customer_id TEXT COLLATE "C" NOT NULL, event_name TEXT NOT NULL, event_at BIGINT NOT NULL,
  resource_id TEXT, properties TEXT NOT NULL, received_at BIGINT NOT NULL, unfolded TEXT NOT NULL,
  PRIMARY KEY (idempotency_key, org_id, environment));
CREATE TABLE usage_counters (org_id TEXT COLLATE "C" NOT NULL, environment TEXT COLLATE "C" NOT NULL, customer_id TEXT COLLATE "C" NOT NULL,
  feature TEXT COLLATE "C" NOT NULL, period_start BIGINT NOT NULL, value BIGINT NOT NULL, value_at BIGINT NOT NULL, alerts TEXT NOT NULL,
  updated_at BIGINT NOT NULL, PRIMARY KEY (customer_id, feature, period_start, org_id, environment)) WITH (fillfactor=70);
CREATE TABLE change_feed (seq BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, subject TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX ON change_feed (created_at);
-- integer tenant variant
CREATE TABLE ev2 (seq BIGSERIAL, tenant BIGINT NOT NULL, idempotency_key TEXT COLLATE "C" NOT NULL, customer_id TEXT COLLATE "C" NOT NULL,
  event_name TEXT NOT NULL, event_at BIGINT NOT NULL, resource_id TEXT, properties TEXT NOT NULL, received_at BIGINT NOT NULL, unfolded TEXT NOT NULL,
  PRIMARY KEY (idempotency_key, tenant));
CREATE TABLE ctr2 (tenant BIGINT NOT NULL, customer_id TEXT COLLATE "C" NOT NULL, feature TEXT COLLATE "C" NOT NULL, period_start BIGINT NOT NULL,
  value BIGINT NOT NULL, value_at BIGINT NOT NULL, alerts TEXT NOT NULL, updated_at BIGINT NOT NULL,
  PRIMARY KEY (customer_id, feature, period_start, tenant)) WITH (fillfactor=70);
CREATE TABLE pending (tenant BIGINT NOT NULL, customer_id TEXT NOT NULL, feature TEXT NOT NULL, period_start BIGINT NOT NULL, d BIGINT NOT NULL);
-- statement-pending variant: one row per statement holding its counter additions
CREATE TABLE statement_pending (id BIGSERIAL PRIMARY KEY, additions TEXT NOT NULL);
INSERT INTO usage_counters SELECT '0b6f1c2e-1111-4222-8333-944455556666','sandbox','c'||g,'requests',1764547200000000,0,0,'',0 FROM generate_series(0,99999) g;
INSERT INTO ctr2 SELECT 1,'c'||g,'requests',1764547200000000,0,0,'',0 FROM generate_series(0,99999) g;
VACUUM ANALYZE;
