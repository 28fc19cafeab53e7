use crate::{json_col, tenant_binds, uuid_col, Result, Store};
use kelviq_core::events::OutboxEvent;
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::{Any, Row, Transaction};

/// Writes an event inside the caller's transaction, with one delivery to
/// each endpoint that wants it: they commit or roll back with the change
/// that caused them. Returns how many deliveries it queued.
pub(crate) async fn insert_event(tx: &mut Transaction<'_, Any>, tenant: &Tenant, event: &OutboxEvent) -> Result<usize> {
    write_event(tx, tenant, event).await?;
    let subscribers = crate::webhooks::subscribers(tx, tenant).await?;
    crate::webhooks::fan_out(tx, tenant, &subscribers, event).await
}

/// Writes an event without delivering it to anyone.
pub(crate) async fn write_event(tx: &mut Transaction<'_, Any>, tenant: &Tenant, event: &OutboxEvent) -> Result<()> {
    let (org, env) = tenant_binds(tenant);
    sqlx::query(
        "INSERT INTO events (id, org_id, environment, event_type, payload, created_at, customer_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(event.id.to_string())
    .bind(org)
    .bind(env)
    .bind(&event.event_type)
    .bind(event.payload.to_string())
    .bind(to_micros(event.created_at))
    .bind(kelviq_core::webhooks::event_customer(&event.payload))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The tenant's events after outbox position `after_seq`, oldest first,
    /// each with its position.
    pub async fn list_events(&self, tenant: &Tenant, after_seq: i64, limit: i64) -> Result<Vec<(i64, OutboxEvent)>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT seq, id, event_type, payload, created_at FROM events \
             WHERE org_id = $1 AND environment = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(org)
        .bind(env)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("seq")?,
                    OutboxEvent {
                        id: uuid_col(row, "id")?,
                        event_type: row.try_get("event_type")?,
                        payload: json_col(row, "payload")?,
                        created_at: from_micros(row.try_get("created_at")?),
                    },
                ))
            })
            .collect()
    }
}
