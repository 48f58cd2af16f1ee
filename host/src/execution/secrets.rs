//! The secrets a run is granted: its automation's `capabilities.secrets`,
//! each opened with the host's key, or the reason it has no value (not set,
//! cannot be opened). Read in the same trip to the store as the run.

use crate::domain::automation::Automation;
use crate::domain::ids::AppId;
use crate::domain::secret::{SecretName, SecretRecord};
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
            Ok(parsed) => match stored(store, app, &parsed)? {
                Err(why) => Err(why),
                Ok(None) => Err(format!(
                    "not set in app `{app}` (`automata set secret {name}`)"
                )),
                Ok(Some(record)) => match key {
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

/// The stored secret, or why it cannot be read: a record that does not
/// decode makes this secret unreadable, not the run unable to start.
fn stored(
    store: &dyn Store,
    app: &AppId,
    name: &SecretName,
) -> Result<Result<Option<SecretRecord>, String>, StoreError> {
    match store.secret(app, name) {
        Ok(found) => Ok(Ok(found)),
        Err(StoreError::Corrupt(error)) => {
            tracing::error!(%app, secret = %name, "a granted secret's record is damaged: {error}");
            Ok(Err("its stored record is damaged; set it again".to_owned()))
        }
        Err(other) => Err(other),
    }
}
