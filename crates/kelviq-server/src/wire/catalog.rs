//! Catalog records as the API shows them.

use kelviq_core::casing::camelize;
use kelviq_core::catalog::Feature;
use kelviq_core::timefmt::iso_micros;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeatureOut {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub description: String,
    pub feature_type: String,
    #[schema(value_type = Object)]
    pub feature_details: Value,
    #[schema(value_type = Object)]
    pub meter: Value,
    #[schema(value_type = Object)]
    pub details: Value,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub is_archived: bool,
    pub modified_on: String,
}

impl From<Feature> for FeatureOut {
    fn from(f: Feature) -> Self {
        FeatureOut {
            id: f.id.to_string(),
            identifier: f.identifier,
            name: f.name,
            description: f.description,
            feature_type: f.feature_type.as_str().to_string(),
            feature_details: camelize(f.feature_details),
            meter: f.meter.map(camelize).unwrap_or_else(|| Value::Object(Map::new())),
            details: Value::Object(Map::new()),
            metadata: f.metadata,
            is_archived: f.archived_at.is_some(),
            modified_on: iso_micros(f.modified_at),
        }
    }
}
