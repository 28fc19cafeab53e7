WITH d AS (DELETE FROM pending RETURNING *), s AS (SELECT customer_id, feature, period_start, sum(d)::bigint AS d FROM d GROUP BY 1, 2, 3 ORDER BY 1)
INSERT INTO usage_counters (org_id, environment, customer_id, feature, period_start, value, value_at, alerts, updated_at)
SELECT '0b6f1c2e-1111-4222-8333-944455556666', 'sandbox', s.customer_id, s.feature, s.period_start, s.d, 0, '', 1 FROM s
ON CONFLICT (org_id, environment, customer_id, feature, period_start) DO UPDATE SET value = usage_counters.value + excluded.value, updated_at = excluded.updated_at;
