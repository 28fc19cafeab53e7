\set w random(0, 24000)
WITH e AS MATERIALIZED (SELECT 'b' || :client_id || '-' || (currval_base.b * 160 + g) AS k, 'c' || (:client_id * 25000 + :w + g) AS c, 'api.call' AS n, 1764600000000000::bigint AS t, NULL::text AS r, '{"tokens":10}' AS p FROM generate_series(1,160) g, (SELECT nextval('ks') AS b) currval_base),
ins AS (INSERT INTO usage_events (org_id, environment, idempotency_key, customer_id, event_name, event_at, resource_id, properties, received_at, unfolded)
  SELECT '0b6f1c2e-1111-4222-8333-944455556666', 'sandbox', e.k, e.c, e.n, e.t, e.r, e.p, 1764600000000000, '' FROM e ON CONFLICT DO NOTHING RETURNING idempotency_key, customer_id),
adds AS (SELECT ins.customer_id AS c, 'requests' AS f, 1764547200000000::bigint AS s, COUNT(*)::bigint AS d FROM ins GROUP BY 1),
updated AS (UPDATE usage_counters u SET value = u.value + adds.d, updated_at = 1764600000000000 FROM adds
  WHERE u.customer_id = adds.c AND u.feature = adds.f AND u.period_start = adds.s
  AND u.org_id = '0b6f1c2e-1111-4222-8333-944455556666' AND u.environment = 'sandbox' RETURNING u.customer_id),
counted AS (INSERT INTO usage_counters (org_id, environment, customer_id, feature, period_start, value, value_at, alerts, updated_at)
  SELECT '0b6f1c2e-1111-4222-8333-944455556666', 'sandbox', adds.c, adds.f, adds.s, adds.d, 0, '', 1764600000000000 FROM adds
  WHERE NOT EXISTS (SELECT 1 FROM updated WHERE updated.customer_id = adds.c)
  ON CONFLICT (org_id, environment, customer_id, feature, period_start) DO UPDATE SET value = usage_counters.value + excluded.value, updated_at = excluded.updated_at),
announced AS (INSERT INTO change_feed (topic, subject, created_at) SELECT 'usage', 'x', 1 WHERE EXISTS (SELECT 1 FROM adds))
SELECT e.k FROM e WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.idempotency_key = e.k);
