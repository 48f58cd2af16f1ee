//! The secrets a run is granted: its automation's `capabilities.secrets`,
//! each opened with the host's key, or the reason it has no value (not set,
//! cannot be opened). Read in the same trip to the store as the run.

use crate::domain::automation::Automation;
use crate::domain::ids::AppId;
use crate::domain::secret::SecretName;
use crate::runner::RunSecrets;
use crate::service::secret_key::SecretKey;
use crate::store::{Store, StoreError};

/// The secrets `automation` grants, for a run in `app`; none without a
/// grant (no store read then).
pub(super) fn granted(
    store: &dyn Store,
    key: Option<&SecretKey>,
    app: &AppId,
    automation: Option<&Automation>,
) -> Result<RunSecrets, StoreError> {
    let Some(names) = automation
        .map(|a| &a.capabilities.secrets)
        .filter(|names| !names.is_empty())
    else {
        return Ok(RunSecrets::default());
    };
    let mut grants = Vec::with_capacity(names.len());
    for name in names {
        let value = match name.parse::<SecretName>() {
            Err(error) => Err(error.to_string()),
            Ok(parsed) => match store.secret(app, &parsed)? {
                None => Err(format!(
                    "not set in app `{app}` (`automata set secret {name}`)"
                )),
                Some(record) => match key {
                    None => Err("this host has no secret key".to_owned()),
                    Some(key) => key.open(app, &parsed, &record.sealed).map_err(|error| {
                        tracing::warn!(%app, secret = %name, "a granted secret cannot be opened: {error}");
                        format!("cannot be opened: {error}")
                    }),
                },
            },
        };
        grants.push((name.clone(), value));
    }
    Ok(RunSecrets::new(grants))
}
