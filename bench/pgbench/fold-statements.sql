WITH gone AS (DELETE FROM statement_pending WHERE id IN (SELECT id FROM statement_pending ORDER BY id FOR UPDATE) RETURNING additions),
sums AS (SELECT a.c, a.f, a.s, SUM(a.d)::bigint AS d
  FROM gone, json_to_recordset(gone.additions::json) AS a(c text, f text, s bigint, d bigint) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3)
INSERT INTO usage_counters (org_id, environment, customer_id, feature, period_start, value, value_at, alerts, updated_at)
SELECT '0b6f1c2e-1111-4222-8333-944455556666', 'sandbox', sums.c, sums.f, sums.s, sums.d, 0, '', 1 FROM sums
ON CONFLICT (org_id, environment, customer_id, feature, period_start) DO UPDATE SET value = usage_counters.value + excluded.value, updated_at = excluded.updated_at;
