use crate::Error;

/// The (core, edge) hosts of a Kelviq environment name, or `None` if unknown.
pub fn hosts_for(environment: &str) -> Option<(&'static str, &'static str)> {
    match environment {
        "prod" | "production" => Some(("https://api.kelviq.com", "https://edge.api.kelviq.com")),
        "sandbox" => Some(("https://sandboxapi.kelviq.com", "https://edge.sandboxapi.kelviq.com")),
        "staging" => Some(("https://stagingapi.kelviq.com", "https://edge.stagingapi.kelviq.com")),
        _ => None,
    }
}

/// Resolves the `environment` option from the `KELVIQ_ENV` convention: `value`
/// or else the variable; unset or empty ⇒ `sandbox`; `production`/`prod` ⇒
/// `production`; anything else is an error naming the value.
pub fn environment_from_env(value: Option<&str>) -> Result<&'static str, Error> {
    let raw = match value {
        Some(v) => v.to_string(),
        None => std::env::var("KELVIQ_ENV").unwrap_or_default(),
    };
    match raw.trim().to_lowercase().as_str() {
        "" | "sandbox" => Ok("sandbox"),
        "production" | "prod" => Ok("production"),
        _ => Err(Error::invalid_request(
            format!("Invalid KELVIQ_ENV value \"{raw}\". Use \"production\" or \"sandbox\"."),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution() {
        assert_eq!(environment_from_env(Some("")).unwrap(), "sandbox");
        assert_eq!(environment_from_env(Some("  PROD ")).unwrap(), "production");
        assert_eq!(environment_from_env(Some("Production")).unwrap(), "production");
        assert_eq!(environment_from_env(Some("sandbox")).unwrap(), "sandbox");
        let e = environment_from_env(Some("staging")).unwrap_err();
        assert_eq!(e.message(), "Invalid KELVIQ_ENV value \"staging\". Use \"production\" or \"sandbox\".");
        assert_eq!(hosts_for("sandbox").unwrap().1, "https://edge.sandboxapi.kelviq.com");
        assert!(hosts_for("mars").is_none());
    }
}
