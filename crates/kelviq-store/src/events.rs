use crate::pending::Arg;
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

/// The statement head of an event's row (see [`event_row`]).
pub(crate) const EVENT_INSERT: &str =
    "INSERT INTO events (id, org_id, environment, event_type, payload, created_at, customer_id)";

/// An event's row for [`EVENT_INSERT`].
pub(crate) fn event_row(tenant: &Tenant, event: &OutboxEvent) -> Vec<Arg> {
    let (org, env) = tenant_binds(tenant);
    vec![
        Arg::Text(event.id.to_string()),
        Arg::Text(org),
        Arg::Text(env.to_string()),
        Arg::Text(event.event_type.clone()),
        Arg::Text(event.payload.to_string()),
        Arg::Int(to_micros(event.created_at)),
        Arg::OptText(kelviq_core::webhooks::event_customer(&event.payload)),
    ]
}

/// Writes an event without delivering it to anyone.
pub(crate) async fn write_event(tx: &mut Transaction<'_, Any>, tenant: &Tenant, event: &OutboxEvent) -> Result<()> {
    crate::pending::insert_row(tx, EVENT_INSERT, event_row(tenant, event)).await
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
