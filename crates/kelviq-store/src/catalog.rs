//! Products and features.

use crate::{json_col, search_binds, search_filter, tenant_binds, uuid_col, Result, Store, StoreError};
use chrono::{DateTime, Utc};
use kelviq_core::catalog::{
    Feature, FeatureChanges, FeatureType, NewFeature, NewProduct, Product, ProductChanges, ProductSettings,
};
use kelviq_core::timefmt::{from_micros, to_micros};
use kelviq_core::Tenant;
use sqlx::any::AnyRow;
use sqlx::Row;

/// The catalog tables whose rows are addressed by id or identifier.
#[derive(Debug, Clone, Copy)]
enum Table {
    Products,
    Features,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Products => "products",
            Table::Features => "features",
        }
    }

    fn columns(self) -> &'static str {
        match self {
            Table::Products => PRODUCT_COLUMNS,
            Table::Features => FEATURE_COLUMNS,
        }
    }

    /// What `search` matches.
    fn searched(self) -> &'static [&'static str] {
        &["name", "identifier", "description"]
    }
}

const PRODUCT_COLUMNS: &str =
    "id, identifier, name, description, tax_code, created_by, settings, created_at, modified_at, archived_at";
const FEATURE_COLUMNS: &str = "id, identifier, name, description, feature_type, feature_details, meter, metadata, created_at, modified_at, archived_at";

fn product_from_row(row: &AnyRow) -> Result<Product> {
    let settings: String = row.try_get("settings")?;
    Ok(Product {
        id: uuid_col(row, "id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        tax_code: row.try_get("tax_code")?,
        created_by: row.try_get("created_by")?,
        settings: serde_json::from_str(&settings).map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
        archived_at: row.try_get::<Option<i64>, _>("archived_at")?.map(from_micros),
    })
}

fn feature_from_row(row: &AnyRow) -> Result<Feature> {
    let ty: String = row.try_get("feature_type")?;
    let meter: Option<String> = row.try_get("meter")?;
    Ok(Feature {
        id: uuid_col(row, "id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        feature_type: FeatureType::parse(&ty).ok_or_else(|| StoreError::Corrupt(format!("feature_type {ty}")))?,
        feature_details: json_col(row, "feature_details")?,
        meter: meter
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("meter: {e}")))?,
        metadata: json_col(row, "metadata")?,
        created_at: from_micros(row.try_get("created_at")?),
        modified_at: from_micros(row.try_get("modified_at")?),
        archived_at: row.try_get::<Option<i64>, _>("archived_at")?.map(from_micros),
    })
}

impl Store {
    /// An explicit identifier as given (a clash is reported on insert); a
    /// generated one made free with a numeric suffix.
    async fn identifier_for(&self, table: Table, tenant: &Tenant, identifier: &str, generated: bool) -> Result<String> {
        if generated {
            self.free_identifier(table.name(), tenant, identifier).await
        } else {
            Ok(identifier.to_string())
        }
    }

    /// A free identifier in `table`: `base` itself, else `base-2`, `base-3`, …
    pub(crate) async fn free_identifier(&self, table: &str, tenant: &Tenant, base: &str) -> Result<String> {
        let (org, env) = tenant_binds(tenant);
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT identifier FROM {table} WHERE org_id = $1 AND environment = $2 \
             AND (identifier = $3 OR identifier LIKE $4)"
        ))
        .bind(org)
        .bind(env)
        .bind(base)
        .bind(format!("{base}-%"))
        .fetch_all(self.read_pool())
        .await?;
        let taken: std::collections::HashSet<String> =
            rows.iter().map(|r| r.try_get::<String, _>("identifier")).collect::<std::result::Result<_, _>>()?;
        Ok((1..)
            .map(|n| if n == 1 { base.to_string() } else { format!("{base}-{n}") })
            .find(|c| !taken.contains(c))
            .expect("infinite"))
    }

    /// A row by UUID or identifier; archived rows only when `archived` is true.
    async fn find_catalog_row(
        &self,
        table: Table,
        columns: &str,
        tenant: &Tenant,
        key: &str,
        archived: bool,
    ) -> Result<Option<AnyRow>> {
        catalog_row(self.read_pool(), table, columns, tenant, key, archived).await
    }

    /// Archives a live row; an archived one is `Conflict("already archived")`.
    async fn archive_catalog_row(&self, table: Table, tenant: &Tenant, key: &str, now: DateTime<Utc>) -> Result<()> {
        let (org, env) = tenant_binds(tenant);
        let row =
            self.find_catalog_row(table, "id, archived_at", tenant, key, true).await?.ok_or(StoreError::NotFound)?;
        if row.try_get::<Option<i64>, _>("archived_at")?.is_some() {
            return Err(StoreError::Conflict("already archived"));
        }
        let id: String = row.try_get("id")?;
        let done = sqlx::query(&format!(
            "UPDATE {} SET archived_at = $1, modified_at = $1 WHERE org_id = $2 AND environment = $3 AND id = $4 AND archived_at IS NULL",
            table.name()
        ))
        .bind(to_micros(now))
        .bind(org)
        .bind(env)
        .bind(id)
        .execute(self.write_pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict("already archived"));
        }
        Ok(())
    }

    async fn count_catalog(&self, table: Table, tenant: &Tenant, search: Option<&str>) -> Result<i64> {
        let (org, env) = tenant_binds(tenant);
        let (search, pattern) = search_binds(search);
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {} WHERE {}",
            table.name(),
            search_filter(table.searched())
        ))
        .bind(org)
        .bind(env)
        .bind(search)
        .bind(pattern)
        .fetch_one(self.read_pool())
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn list_catalog(
        &self,
        table: Table,
        tenant: &Tenant,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<AnyRow>> {
        let (org, env) = tenant_binds(tenant);
        let (search, pattern) = search_binds(search);
        Ok(sqlx::query(&format!(
            "SELECT {} FROM {} WHERE {} ORDER BY created_at DESC, pk DESC LIMIT $5 OFFSET $6",
            table.columns(),
            table.name(),
            search_filter(table.searched())
        ))
        .bind(org)
        .bind(env)
        .bind(search)
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.read_pool())
        .await?)
    }

    /// Inserts a product. A taken explicit identifier is `Conflict("identifier")`;
    /// a generated one gets a numeric suffix instead.
    pub async fn insert_product(
        &self,
        tenant: &Tenant,
        new: &NewProduct,
        created_by: &str,
        now: DateTime<Utc>,
    ) -> Result<Product> {
        let identifier =
            self.identifier_for(Table::Products, tenant, &new.identifier, new.identifier_generated).await?;
        let product = Product {
            id: uuid::Uuid::new_v4(),
            identifier,
            name: new.name.clone(),
            description: new.description.clone(),
            tax_code: new.tax_code.clone(),
            created_by: created_by.to_string(),
            settings: ProductSettings::default(),
            created_at: now,
            modified_at: now,
            archived_at: None,
        };
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO products (id, org_id, environment, identifier, name, description, tax_code, created_by, settings, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(product.id.to_string())
        .bind(org)
        .bind(env)
        .bind(&product.identifier)
        .bind(&product.name)
        .bind(&product.description)
        .bind(&product.tax_code)
        .bind(&product.created_by)
        .bind(serde_json::to_string(&product.settings).expect("settings serialise"))
        .bind(to_micros(now))
        .execute(self.write_pool())
        .await
        .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict("identifier") } else { e.into() })?;
        Ok(product)
    }

    /// A live product by UUID or identifier.
    pub async fn find_product(&self, tenant: &Tenant, key: &str) -> Result<Option<Product>> {
        let row = self.find_catalog_row(Table::Products, PRODUCT_COLUMNS, tenant, key, false).await?;
        row.as_ref().map(product_from_row).transpose()
    }

    pub async fn count_products(&self, tenant: &Tenant, search: Option<&str>) -> Result<i64> {
        self.count_catalog(Table::Products, tenant, search).await
    }

    /// Live products, newest first; `search` matches name, identifier or description.
    pub async fn list_products(
        &self,
        tenant: &Tenant,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Product>> {
        let rows = self.list_catalog(Table::Products, tenant, search, limit, offset).await?;
        rows.iter().map(product_from_row).collect()
    }

    pub async fn update_product(
        &self,
        tenant: &Tenant,
        key: &str,
        changes: &ProductChanges,
        now: DateTime<Utc>,
    ) -> Result<Product> {
        let mut p = self.find_product(tenant, key).await?.ok_or(StoreError::NotFound)?;
        if let Some(n) = &changes.name {
            p.name = n.clone();
        }
        if let Some(d) = &changes.description {
            p.description = d.clone();
        }
        if let Some(t) = &changes.tax_code {
            p.tax_code = t.clone();
        }
        p.modified_at = now;
        sqlx::query("UPDATE products SET name = $1, description = $2, tax_code = $3, modified_at = $4 WHERE id = $5 AND archived_at IS NULL")
            .bind(&p.name)
            .bind(&p.description)
            .bind(&p.tax_code)
            .bind(to_micros(now))
            .bind(p.id.to_string())
            .execute(self.write_pool())
            .await?;
        Ok(p)
    }

    pub async fn update_product_settings(
        &self,
        tenant: &Tenant,
        key: &str,
        settings: &ProductSettings,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let p = self.find_product(tenant, key).await?.ok_or(StoreError::NotFound)?;
        sqlx::query("UPDATE products SET settings = $1, modified_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(settings).expect("settings serialise"))
            .bind(to_micros(now))
            .bind(p.id.to_string())
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    pub async fn archive_product(&self, tenant: &Tenant, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.archive_catalog_row(Table::Products, tenant, key, now).await
    }

    /// Inserts a feature (identifier rules as for products).
    pub async fn insert_feature(&self, tenant: &Tenant, new: &NewFeature, now: DateTime<Utc>) -> Result<Feature> {
        let identifier =
            self.identifier_for(Table::Features, tenant, &new.identifier, new.identifier_generated).await?;
        let feature = Feature {
            id: uuid::Uuid::new_v4(),
            identifier,
            name: new.name.clone(),
            description: new.description.clone(),
            feature_type: new.feature_type,
            feature_details: new.feature_details.clone(),
            meter: new.meter.clone(),
            metadata: new.metadata.clone(),
            created_at: now,
            modified_at: now,
            archived_at: None,
        };
        let (org, env) = tenant_binds(tenant);
        sqlx::query(
            "INSERT INTO features (id, org_id, environment, identifier, name, description, feature_type, feature_details, meter, metadata, created_at, modified_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        )
        .bind(feature.id.to_string())
        .bind(org)
        .bind(env)
        .bind(&feature.identifier)
        .bind(&feature.name)
        .bind(&feature.description)
        .bind(feature.feature_type.as_str())
        .bind(feature.feature_details.to_string())
        .bind(feature.meter.as_ref().map(|m| m.to_string()))
        .bind(feature.metadata.to_string())
        .bind(to_micros(now))
        .execute(self.write_pool())
        .await
        .map_err(|e| if StoreError::is_unique_violation(&e) { StoreError::Conflict("identifier") } else { e.into() })?;
        Ok(feature)
    }

    /// A feature by UUID or identifier, archived ones included (they say so).
    pub async fn find_feature(&self, tenant: &Tenant, key: &str) -> Result<Option<Feature>> {
        let row = self.find_catalog_row(Table::Features, FEATURE_COLUMNS, tenant, key, true).await?;
        row.as_ref().map(feature_from_row).transpose()
    }

    pub async fn count_features(&self, tenant: &Tenant, search: Option<&str>) -> Result<i64> {
        self.count_catalog(Table::Features, tenant, search).await
    }

    /// Live features, newest first.
    pub async fn list_features(
        &self,
        tenant: &Tenant,
        search: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Feature>> {
        let rows = self.list_catalog(Table::Features, tenant, search, limit, offset).await?;
        rows.iter().map(feature_from_row).collect()
    }

    /// Changes a live feature's name, description or metadata.
    pub async fn update_feature(
        &self,
        tenant: &Tenant,
        key: &str,
        changes: &FeatureChanges,
        now: DateTime<Utc>,
    ) -> Result<Feature> {
        let mut f =
            self.find_feature(tenant, key).await?.filter(|f| f.archived_at.is_none()).ok_or(StoreError::NotFound)?;
        if let Some(n) = &changes.name {
            f.name = n.clone();
        }
        if let Some(d) = &changes.description {
            f.description = d.clone();
        }
        if let Some(m) = &changes.metadata {
            f.metadata = m.clone();
        }
        f.modified_at = now;
        sqlx::query("UPDATE features SET name = $1, description = $2, metadata = $3, modified_at = $4 WHERE id = $5 AND archived_at IS NULL")
            .bind(&f.name)
            .bind(&f.description)
            .bind(f.metadata.to_string())
            .bind(to_micros(now))
            .bind(f.id.to_string())
            .execute(self.write_pool())
            .await?;
        Ok(f)
    }

    pub async fn archive_feature(&self, tenant: &Tenant, key: &str, now: DateTime<Utc>) -> Result<()> {
        self.archive_catalog_row(Table::Features, tenant, key, now).await
    }
}

impl Store {
    /// Every feature of the tenant, archived ones included (subscriptions
    /// keep granting what they were sold), keyed by id.
    pub async fn features_by_id(&self, tenant: &Tenant) -> Result<std::collections::HashMap<uuid::Uuid, Feature>> {
        features_by_id(self.read_pool(), tenant).await
    }
}

/// A product or feature by id or identifier, on a pool or a transaction.
async fn catalog_row<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Any>,
    table: Table,
    columns: &str,
    tenant: &Tenant,
    key: &str,
    archived: bool,
) -> Result<Option<AnyRow>> {
    let (org, env) = tenant_binds(tenant);
    let live = if archived { "" } else { " AND archived_at IS NULL" };
    Ok(sqlx::query(&format!(
        "SELECT {columns} FROM {} WHERE org_id = $1 AND environment = $2 AND (id = $3 OR identifier = $3){live}",
        table.name()
    ))
    .bind(org)
    .bind(env)
    .bind(key)
    .fetch_optional(on)
    .await?)
}

async fn features_by_id<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Any>,
    tenant: &Tenant,
) -> Result<std::collections::HashMap<uuid::Uuid, Feature>> {
    let (org, env) = crate::tenant_binds(tenant);
    let rows = sqlx::query(&format!("SELECT {FEATURE_COLUMNS} FROM features WHERE org_id = $1 AND environment = $2"))
        .bind(org)
        .bind(env)
        .fetch_all(on)
        .await?;
    rows.iter().map(|r| feature_from_row(r).map(|f| (f.id, f))).collect()
}

impl crate::Work {
    /// [`Store::find_product_any`], read inside this transaction.
    pub async fn find_product_any(&mut self, key: &str) -> Result<Option<Product>> {
        let tenant = self.tenant().clone();
        let row = catalog_row(&mut **self.tx(), Table::Products, PRODUCT_COLUMNS, &tenant, key, true).await?;
        row.as_ref().map(product_from_row).transpose()
    }

    /// [`Store::features_by_id`], read inside this transaction.
    pub async fn features_by_id(&mut self) -> Result<std::collections::HashMap<uuid::Uuid, Feature>> {
        let tenant = self.tenant().clone();
        features_by_id(&mut **self.tx(), &tenant).await
    }
}

impl Store {
    /// A product by UUID or identifier, archived or not (what was sold stays named).
    pub async fn find_product_any(&self, tenant: &Tenant, key: &str) -> Result<Option<Product>> {
        let row = self.find_catalog_row(Table::Products, PRODUCT_COLUMNS, tenant, key, true).await?;
        row.as_ref().map(product_from_row).transpose()
    }
}
