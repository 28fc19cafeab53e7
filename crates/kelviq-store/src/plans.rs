//! Versioned plans. Every edit of a plan whose newest version is published
//! first copies that version into a new draft (version + 1), inside the same
//! transaction as the edit.

use crate::{json_col, tenant_binds, uuid_col, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::plans::{NewPlan, PlanStatus, PlanVersion};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::{FieldErrors, Tenant};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

const PLAN_COLUMNS: &str = "id, identifier, version, product_id, name, fields, prices, entitlements, status, \
     created_at, modified_at, published_at, archived_at";

fn plan_from_row(row: &AnyRow) -> Result<PlanVersion> {
    let status: String = row.try_get("status")?;
    let corrupt = |what: &str, e: serde_json::Error| StoreError::Corrupt(format!("{what}: {e}"));
    Ok(PlanVersion {
        id: uuid_col(row, "id")?,
        identifier: row.try_get("identifier")?,
        version: row.try_get("version")?,
        product_id: uuid_col(row, "product_id")?,
        name: row.try_get("name")?,
        fields: serde_json::from_value(json_col(row, "fields")?).map_err(|e| corrupt("fields", e))?,
        prices: serde_json::from_value(json_col(row, "prices")?).map_err(|e| corrupt("prices", e))?,
        entitlements: serde_json::from_value(json_col(row, "entitlements")?).map_err(|e| corrupt("entitlements", e))?,
        status: PlanStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("plan status {status}")))?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
        published_at: row.try_get::<Option<i64>, _>("published_at")?.map(from_micros),
        archived_at: row.try_get::<Option<i64>, _>("archived_at")?.map(from_micros),
    })
}

fn unique_to_conflict(e: sqlx::Error, what: &'static str) -> StoreError {
    if StoreError::is_unique_violation(&e) {
        StoreError::Conflict(what)
    } else {
        e.into()
    }
}

async fn insert_version(tx: &mut Transaction<'_, Any>, tenant: &Tenant, p: &PlanVersion) -> Result<()> {
    let (org, env) = tenant_binds(tenant);
    sqlx::query(
        "INSERT INTO plans (id, org_id, environment, identifier, version, product_id, name, fields, prices, entitlements, \
         status, created_at, modified_at, published_at, archived_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(p.id.to_string())
    .bind(org)
    .bind(env)
    .bind(&p.identifier)
    .bind(p.version)
    .bind(p.product_id.to_string())
    .bind(&p.name)
    .bind(serde_json::to_string(&p.fields).expect("fields serialise"))
    .bind(serde_json::to_string(&p.prices).expect("prices serialise"))
    .bind(serde_json::to_string(&p.entitlements).expect("entitlements serialise"))
    .bind(p.status.as_str())
    .bind(to_micros(p.created_at))
    .bind(to_micros(p.modified_at))
    .bind(p.published_at.map(to_micros))
    .bind(p.archived_at.map(to_micros))
    .execute(&mut **tx)
    .await
    .map_err(|e| unique_to_conflict(e, "plan version"))?;
    Ok(())
}

async fn save_version(tx: &mut Transaction<'_, Any>, p: &PlanVersion) -> Result<()> {
    sqlx::query(
        "UPDATE plans SET name = $1, fields = $2, prices = $3, entitlements = $4, status = $5, modified_at = $6, \
         published_at = $7 WHERE id = $8",
    )
    .bind(&p.name)
    .bind(serde_json::to_string(&p.fields).expect("fields serialise"))
    .bind(serde_json::to_string(&p.prices).expect("prices serialise"))
    .bind(serde_json::to_string(&p.entitlements).expect("entitlements serialise"))
    .bind(p.status.as_str())
    .bind(to_micros(p.modified_at))
    .bind(p.published_at.map(to_micros))
    .bind(p.id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The newest live version of a plan, locked for the transaction.
    async fn lock_newest_plan(
        &self,
        tx: &mut Transaction<'_, Any>,
        tenant: &Tenant,
        identifier: &str,
    ) -> Result<PlanVersion> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 \
             AND archived_at IS NULL ORDER BY version DESC LIMIT 1{}",
            self.backend.for_update()
        ))
        .bind(org)
        .bind(env)
        .bind(identifier)
        .fetch_optional(&mut **tx)
        .await?;
        plan_from_row(&row.ok_or(StoreError::NotFound)?)
    }

    /// Creates version 1 of a plan, as a draft.
    pub async fn insert_plan(
        &self,
        tenant: &Tenant,
        new: &NewPlan,
        product_id: uuid::Uuid,
        now: DateTime<Utc>,
    ) -> Result<PlanVersion> {
        let identifier = if new.identifier_generated {
            self.free_identifier("plans", tenant, &new.identifier).await?
        } else {
            new.identifier.clone()
        };
        let plan = PlanVersion {
            id: uuid::Uuid::new_v4(),
            identifier,
            version: 1,
            product_id,
            name: new.name.clone(),
            fields: new.fields.clone(),
            prices: Vec::new(),
            entitlements: Vec::new(),
            status: PlanStatus::Draft,
            created_at: now,
            modified_at: now,
            published_at: None,
            archived_at: None,
        };
        let mut tx = self.begin_write().await?;
        let (org, env) = tenant_binds(tenant);
        let taken = sqlx::query(
            "SELECT 1 AS one FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 LIMIT 1",
        )
        .bind(org)
        .bind(env)
        .bind(&plan.identifier)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict("identifier"));
        }
        insert_version(&mut tx, tenant, &plan).await.map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::Conflict("identifier"),
            other => other,
        })?;
        tx.commit().await?;
        Ok(plan)
    }

    /// A live plan: the given version, or the newest one.
    pub async fn find_plan(
        &self,
        tenant: &Tenant,
        identifier: &str,
        version: Option<i64>,
    ) -> Result<Option<PlanVersion>> {
        let (org, env) = tenant_binds(tenant);
        let row = match version {
            Some(v) => {
                sqlx::query(&format!(
                    "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 \
                     AND archived_at IS NULL AND version = $4"
                ))
                .bind(org)
                .bind(env)
                .bind(identifier)
                .bind(v)
                .fetch_optional(self.read_pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 \
                     AND archived_at IS NULL ORDER BY version DESC LIMIT 1"
                ))
                .bind(org)
                .bind(env)
                .bind(identifier)
                .fetch_optional(self.read_pool())
                .await?
            }
        };
        row.as_ref().map(plan_from_row).transpose()
    }

    /// The published version of a plan, if any.
    pub async fn find_published_plan(&self, tenant: &Tenant, identifier: &str) -> Result<Option<PlanVersion>> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 \
             AND archived_at IS NULL AND status = 'published'"
        ))
        .bind(org)
        .bind(env)
        .bind(identifier)
        .fetch_optional(self.read_pool())
        .await?;
        row.as_ref().map(plan_from_row).transpose()
    }

    /// Newest live versions, one per plan, of plans whose product is live.
    const LIST_PLANS: &'static str = "FROM plans p WHERE p.org_id = $1 AND p.environment = $2 AND p.archived_at IS NULL \
         AND p.version = (SELECT MAX(q.version) FROM plans q WHERE q.org_id = p.org_id AND q.environment = p.environment AND q.identifier = p.identifier) \
         AND p.product_id IN (SELECT r.id FROM products r WHERE r.archived_at IS NULL)";

    pub async fn count_plans(&self, tenant: &Tenant) -> Result<i64> {
        let (org, env) = tenant_binds(tenant);
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n {}", Self::LIST_PLANS))
            .bind(org)
            .bind(env)
            .fetch_one(self.read_pool())
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Plans, newest first (by when the plan was first created).
    pub async fn list_plans(&self, tenant: &Tenant, limit: i64, offset: i64) -> Result<Vec<PlanVersion>> {
        let (org, env) = tenant_binds(tenant);
        let cols = PLAN_COLUMNS.split(", ").map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let rows = sqlx::query(&format!(
            "SELECT {cols} {} ORDER BY (SELECT MIN(f.pk) FROM plans f WHERE f.org_id = p.org_id AND f.environment = p.environment \
             AND f.identifier = p.identifier) DESC LIMIT $3 OFFSET $4",
            Self::LIST_PLANS
        ))
        .bind(org)
        .bind(env)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(plan_from_row).collect()
    }

    /// Applies `edit` to the plan's draft, first making one from the published
    /// version when the newest version is published. All in one transaction;
    /// an `Err` from `edit` writes nothing.
    pub async fn edit_plan<F>(
        &self,
        tenant: &Tenant,
        identifier: &str,
        now: DateTime<Utc>,
        edit: F,
    ) -> Result<PlanVersion>
    where
        F: FnOnce(&mut PlanVersion) -> std::result::Result<(), FieldErrors>,
    {
        let mut tx = self.begin_write().await?;
        let newest = self.lock_newest_plan(&mut tx, tenant, identifier).await?;
        let (mut draft, is_new) = match newest.status {
            PlanStatus::Draft => (newest, false),
            _ => {
                let mut d = newest.clone();
                d.id = uuid::Uuid::new_v4();
                d.version = newest.version + 1;
                d.status = PlanStatus::Draft;
                d.created_at = now;
                d.published_at = None;
                (d, true)
            }
        };
        edit(&mut draft).map_err(StoreError::Invalid)?;
        draft.modified_at = now;
        if is_new {
            insert_version(&mut tx, tenant, &draft).await?;
        } else {
            save_version(&mut tx, &draft).await?;
        }
        tx.commit().await?;
        Ok(draft)
    }

    /// Publishes the newest version (a draft): it becomes the one on offer and
    /// the previously published version is superseded.
    pub async fn publish_plan(&self, tenant: &Tenant, identifier: &str, now: DateTime<Utc>) -> Result<PlanVersion> {
        let mut tx = self.begin_write().await?;
        // (publish_in records the change-feed entry every server acts on.)
        let draft = publish_in(&mut tx, self.backend, tenant, identifier, now).await?;
        tx.commit().await?;
        Ok(draft)
    }

    /// Deletes the newest version if it is a draft; a plan that was never
    /// published disappears with its only draft.
    pub async fn discard_plan_draft(&self, tenant: &Tenant, identifier: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let newest = self.lock_newest_plan(&mut tx, tenant, identifier).await?;
        if newest.status != PlanStatus::Draft {
            return Err(StoreError::Conflict("already published"));
        }
        sqlx::query("DELETE FROM plans WHERE id = $1").bind(newest.id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Archives every version. An archived plan is `Conflict("already archived")`.
    pub async fn archive_plan(&self, tenant: &Tenant, identifier: &str, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, CAST(COALESCE(SUM(CASE WHEN archived_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS live \
             FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3",
        )
        .bind(&org)
        .bind(env)
        .bind(identifier)
        .fetch_one(&mut *tx)
        .await?;
        let (total, live): (i64, i64) = (row.try_get("total")?, row.try_get("live")?);
        if total == 0 {
            return Err(StoreError::NotFound);
        }
        if live == 0 {
            return Err(StoreError::Conflict("already archived"));
        }
        sqlx::query(
            "UPDATE plans SET archived_at = $1, modified_at = $1 WHERE org_id = $2 AND environment = $3 AND identifier = $4 AND archived_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(org)
        .bind(env)
        .bind(identifier)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Identifiers of a product's published, live plans.
    pub async fn published_plan_identifiers(&self, tenant: &Tenant, product_id: uuid::Uuid) -> Result<Vec<String>> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(
            "SELECT identifier FROM plans WHERE org_id = $1 AND environment = $2 AND product_id = $3 \
             AND status = 'published' AND archived_at IS NULL ORDER BY pk",
        )
        .bind(org)
        .bind(env)
        .bind(product_id.to_string())
        .fetch_all(self.read_pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("identifier")?)).collect()
    }
}

/// How deep a chain of parent plans may go.
pub const MAX_PLAN_DEPTH: usize = 8;

impl Store {
    /// The version a child inherits from: the published one, else the newest.
    pub async fn inheritable_plan(&self, tenant: &Tenant, identifier: &str) -> Result<Option<PlanVersion>> {
        match self.find_published_plan(tenant, identifier).await? {
            Some(p) => Ok(Some(p)),
            None => self.find_plan(tenant, identifier, None).await,
        }
    }

    /// The plan's entitlements with inheritance resolved, up its parent chain.
    pub async fn effective_entitlements(
        &self,
        tenant: &Tenant,
        plan: &PlanVersion,
    ) -> Result<Vec<kelviq_core::plans::EffectiveEntitlement>> {
        let mut chain = vec![plan.entitlements.clone()];
        let mut seen = vec![plan.identifier.clone()];
        let mut next = plan.fields.parent.clone();
        while let Some(parent) = next {
            if seen.contains(&parent) || seen.len() > MAX_PLAN_DEPTH {
                break;
            }
            let Some(p) = self.inheritable_plan(tenant, &parent).await? else { break };
            chain.push(p.entitlements.clone());
            seen.push(parent);
            next = p.fields.parent.clone();
        }
        let mut resolved = Vec::new();
        for own in chain.iter().rev() {
            resolved = kelviq_core::plans::resolve_entitlements(own, &resolved);
        }
        Ok(resolved)
    }

    /// Why `child` may not inherit from `parent` (missing, itself, a cycle,
    /// too deep), or `Ok`.
    pub async fn check_plan_parent(
        &self,
        tenant: &Tenant,
        child: &str,
        parent: &str,
    ) -> Result<std::result::Result<(), String>> {
        if parent == child {
            return Ok(Err("A plan cannot inherit from itself.".into()));
        }
        let mut next = Some(parent.to_string());
        let mut depth = 0;
        while let Some(id) = next {
            let Some(p) = self.inheritable_plan(tenant, &id).await? else {
                return Ok(Err(format!("Plan \"{id}\" does not exist.")));
            };
            depth += 1;
            if depth >= MAX_PLAN_DEPTH {
                return Ok(Err(format!("Plans inherit at most {MAX_PLAN_DEPTH} levels deep.")));
            }
            next = p.fields.parent.clone();
            if next.as_deref() == Some(child) {
                return Ok(Err(format!("\"{parent}\" already inherits from \"{child}\"; that would be a cycle.")));
            }
        }
        Ok(Ok(()))
    }
}

impl Store {
    /// One plan version by its id, archived or not (subscriptions point at versions).
    pub async fn find_plan_version(&self, tenant: &Tenant, id: uuid::Uuid) -> Result<Option<PlanVersion>> {
        plan_version(self.read_pool(), tenant, id).await
    }
}

impl crate::Work {
    /// [`Store::find_plan_version`], read inside this transaction.
    pub async fn find_plan_version(&mut self, id: uuid::Uuid) -> Result<Option<PlanVersion>> {
        let tenant = self.tenant().clone();
        plan_version(&mut **self.tx(), &tenant, id).await
    }
}

async fn plan_version<'e>(
    on: impl sqlx::Executor<'e, Database = Any>,
    tenant: &Tenant,
    id: uuid::Uuid,
) -> Result<Option<PlanVersion>> {
    let (org, env) = tenant_binds(tenant);
    let row =
        sqlx::query(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND id = $3"))
            .bind(org)
            .bind(env)
            .bind(id.to_string())
            .fetch_optional(on)
            .await?;
    row.as_ref().map(plan_from_row).transpose()
}

async fn publish_in(
    tx: &mut Transaction<'_, Any>,
    backend: crate::Backend,
    tenant: &Tenant,
    identifier: &str,
    now: DateTime<Utc>,
) -> Result<PlanVersion> {
    let (org, env) = tenant_binds(tenant);
    let row = sqlx::query(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 \
         AND archived_at IS NULL ORDER BY version DESC LIMIT 1{}",
        backend.for_update()
    ))
    .bind(&org)
    .bind(env)
    .bind(identifier)
    .fetch_optional(&mut **tx)
    .await?;
    let mut draft = plan_from_row(&row.ok_or(StoreError::NotFound)?)?;
    if draft.status != PlanStatus::Draft {
        return Err(StoreError::Conflict("already published"));
    }
    let row = sqlx::query(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE org_id = $1 AND environment = $2 AND identifier = $3 AND status = 'published'"
    ))
    .bind(&org)
    .bind(env)
    .bind(identifier)
    .fetch_optional(&mut **tx)
    .await?;
    let published = row.as_ref().map(plan_from_row).transpose()?;
    draft
        .check_publishable(published.as_ref())
        .map_err(|m| StoreError::Invalid(FieldErrors::single("non_field_errors", m)))?;
    if let Some(mut old) = published {
        old.status = PlanStatus::Superseded;
        old.modified_at = now;
        save_version(tx, &old).await?;
    }
    draft.status = PlanStatus::Published;
    draft.published_at = Some(now);
    draft.modified_at = now;
    save_version(tx, &draft).await?;
    // What subscribers hold may change (new versions, children inheriting).
    let subject = format!("{}:{}", tenant.org_id, tenant.env.as_str());
    crate::changes::record_change(tx, backend, crate::TOPIC_CATALOG, &subject, now).await?;
    Ok(draft)
}

impl crate::Work {
    /// Publishes a plan's newest draft inside this work, so that moving its
    /// subscribers to the new version commits with it.
    pub async fn publish_plan(&mut self, identifier: &str, now: DateTime<Utc>) -> Result<PlanVersion> {
        let (backend, tenant) = (self.backend(), self.tenant().clone());
        publish_in(self.tx(), backend, &tenant, identifier, now).await
    }
}
