//! Which Stripe secret key may serve which environment: a test key
//! (`sk_test_…`, `rk_test_…`) only the sandbox, a live key (`sk_live_…`,
//! `rk_live_…`) only production; anything else is not a Stripe secret key.

use crate::Environment;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    Test,
    Live,
}

/// The mode of a secret (or restricted) key, if it is one.
pub fn key_mode(key: &str) -> Option<KeyMode> {
    let rest = key.strip_prefix("sk_").or_else(|| key.strip_prefix("rk_"))?;
    let (mode, tail) = rest.split_once('_')?;
    if tail.len() < 8 || !tail.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    match mode {
        "test" => Some(KeyMode::Test),
        "live" => Some(KeyMode::Live),
        _ => None,
    }
}

/// Why a key cannot serve an environment, if it cannot.
pub fn check_key_for(key: &str, env: Environment) -> Result<KeyMode, &'static str> {
    match (key_mode(key), env) {
        (None, _) => Err("not a Stripe secret key (sk_test_…, sk_live_…, rk_test_… or rk_live_…)"),
        (Some(KeyMode::Live), Environment::Sandbox) => Err("a live key (sk_live_…) cannot serve the sandbox"),
        (Some(KeyMode::Test), Environment::Production) => {
            Err("a test key (sk_test_…) cannot serve production: use a live key")
        }
        (Some(mode), _) => Ok(mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_environments() {
        assert_eq!(key_mode("sk_test_4eC39HqLyjWDarjtT1zdp7dc"), Some(KeyMode::Test));
        assert_eq!(key_mode("rk_live_51Habcdefgh"), Some(KeyMode::Live));
        assert_eq!(key_mode("pk_test_abcdefgh"), None, "a publishable key is not a secret key");
        assert_eq!(key_mode("sk_test_"), None);
        assert_eq!(key_mode("sk_prod_abcdefgh"), None);
        assert!(check_key_for("sk_live_abcdefgh1", Environment::Sandbox).is_err());
        assert!(check_key_for("sk_test_abcdefgh1", Environment::Production).is_err());
        assert_eq!(check_key_for("sk_test_abcdefgh1", Environment::Sandbox), Ok(KeyMode::Test));
        assert_eq!(check_key_for("sk_live_abcdefgh1", Environment::Production), Ok(KeyMode::Live));
    }
}
