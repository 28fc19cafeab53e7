//! Per-customer values of every tenant, found by a borrowed customer id (a
//! lookup on the hot paths allocates nothing).

use kelviq_core::{Environment, Tenant};
use std::collections::HashMap;

#[derive(Debug)]
pub struct TenantMap<V> {
    tenants: HashMap<(uuid::Uuid, Environment), HashMap<Box<str>, V>>,
}

impl<V> Default for TenantMap<V> {
    fn default() -> Self {
        TenantMap { tenants: HashMap::new() }
    }
}

impl<V> TenantMap<V> {
    pub fn get(&self, tenant: &Tenant, customer_id: &str) -> Option<&V> {
        self.tenants.get(&(tenant.org_id, tenant.env))?.get(customer_id)
    }

    pub fn get_mut(&mut self, tenant: &Tenant, customer_id: &str) -> Option<&mut V> {
        self.tenants.get_mut(&(tenant.org_id, tenant.env))?.get_mut(customer_id)
    }

    /// The customers of one tenant, to change many at one lookup of the tenant.
    pub fn tenant_mut(&mut self, tenant: &Tenant) -> &mut HashMap<Box<str>, V> {
        self.tenants.entry((tenant.org_id, tenant.env)).or_default()
    }

    pub fn insert(&mut self, tenant: &Tenant, customer_id: &str, value: V) {
        self.tenant_mut(tenant).insert(customer_id.into(), value);
    }

    pub fn remove(&mut self, org: uuid::Uuid, env: Environment, customer_id: &str) -> Option<V> {
        let customers = self.tenants.get_mut(&(org, env))?;
        let removed = customers.remove(customer_id);
        if customers.is_empty() {
            self.tenants.remove(&(org, env));
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.tenants.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(HashMap::is_empty)
    }

    pub fn clear(&mut self) {
        self.tenants.clear();
    }

    /// Every entry: (org, environment, customer id, value).
    pub fn iter(&self) -> impl Iterator<Item = (uuid::Uuid, Environment, &str, &V)> {
        self.tenants.iter().flat_map(|((org, env), customers)| customers.iter().map(|(c, v)| (*org, *env, &**c, v)))
    }
}

/// A stable hash of a customer of a tenant (for spreading customers over
/// slots and usage writers): FNV-1a of the organisation's bytes, the
/// environment and the customer id, the same in every process and version
/// (recovery assigns stored events to writers' fold marks by it).
pub fn customer_hash(org: uuid::Uuid, env: Environment, customer_id: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let env = [match env {
        Environment::Sandbox => 0u8,
        Environment::Production => 1u8,
    }];
    let bytes = org.as_bytes().iter().chain(&env).chain(customer_id.as_bytes());
    let h = bytes.fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME));
    // FNV's low bits mix poorly; the slots are taken modulo small numbers.
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(n: u128, env: Environment) -> Tenant {
        Tenant { org_id: uuid::Uuid::from_u128(n), org_seq: 0, env }
    }

    #[test]
    fn tenants_are_apart() {
        let (a, b) = (tenant(1, Environment::Sandbox), tenant(1, Environment::Production));
        let mut m = TenantMap::default();
        m.insert(&a, "c1", 1);
        m.insert(&b, "c1", 2);
        *m.tenant_mut(&a).entry("c2".into()).or_insert(0) += 3;
        assert_eq!((m.get(&a, "c1"), m.get(&b, "c1"), m.get(&a, "c2")), (Some(&1), Some(&2), Some(&3)));
        assert_eq!(m.len(), 3);
        assert_eq!(m.remove(a.org_id, a.env, "c1"), Some(1));
        assert_eq!(m.remove(a.org_id, a.env, "c1"), None);
        assert_eq!(m.get(&tenant(2, Environment::Sandbox), "c1"), None);
        let mut all: Vec<_> = m.iter().map(|(_, env, c, v)| (env, c.to_string(), *v)).collect();
        all.sort_by_key(|e| e.2);
        assert_eq!(
            all,
            vec![(Environment::Production, "c1".to_string(), 2), (Environment::Sandbox, "c2".to_string(), 3)]
        );
        m.clear();
        assert!(m.is_empty());
    }
}
