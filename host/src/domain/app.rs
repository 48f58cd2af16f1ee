//! Apps: the explicit namespaces every automation, config, run and app key
//! belongs to. An app is created (`POST /apps`) before anything can live in
//! it; a path under an app that does not exist is a 404.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::AppId;

/// The app every fresh data directory starts with: the CLI's default `--app`.
pub const DEFAULT_APP: &str = "default";

/// An app as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct App {
    /// 1–64 characters of `[A-Za-z0-9_-]`, chosen at creation.
    pub id: AppId,
    /// Display name.
    pub name: String,
    /// When it was created (for an app found in data written before apps
    /// were explicit: when it was migrated).
    pub created_at: DateTime<Utc>,
    /// The key that created it (`key_…`); absent for apps the host made
    /// itself (the first start's `default`, migrated apps) and without
    /// authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
}

/// The body of `POST /apps`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApp {
    /// 1–64 characters of `[A-Za-z0-9_-]`.
    #[schema(value_type = String, example = "acme")]
    pub id: AppId,
    /// Display name, 1–200 characters without control characters (default: the id).
    #[serde(default)]
    pub name: Option<String>,
}

impl App {
    /// A new app from its request; `by` is the creating key's id.
    pub fn create(new: NewApp, at: DateTime<Utc>, by: Option<String>) -> Result<App, AppNameError> {
        let name = new.name.unwrap_or_else(|| new.id.to_string());
        validate_name(&name)?;
        Ok(App {
            id: new.id,
            name,
            created_at: at,
            created_by: by,
        })
    }

    /// An app the host creates itself (first start, migration): named by its id.
    pub fn implicit(id: AppId, at: DateTime<Utc>) -> App {
        App {
            name: id.to_string(),
            id,
            created_at: at,
            created_by: None,
        }
    }
}

/// Why an app's name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `name`: {0}")]
pub struct AppNameError(&'static str);

fn validate_name(name: &str) -> Result<(), AppNameError> {
    if name.trim().is_empty() {
        return Err(AppNameError("must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(AppNameError("longer than 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(AppNameError("must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, name: Option<&str>) -> NewApp {
        NewApp {
            id: id.parse().unwrap(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn the_name_defaults_to_the_id_and_is_checked() {
        let at = DateTime::from_timestamp(1_772_000_000, 0).unwrap();
        let app = App::create(new("acme", None), at, Some("key_x".into())).unwrap();
        assert_eq!(
            (app.name.as_str(), app.created_by.as_deref()),
            ("acme", Some("key_x"))
        );
        assert_eq!(
            App::create(new("a", Some("Acme Inc")), at, None)
                .unwrap()
                .name,
            "Acme Inc"
        );
        for bad in [" ", "a\nb", &"x".repeat(201)] {
            let error = App::create(new("a", Some(bad)), at, None).unwrap_err();
            assert!(error.to_string().starts_with("invalid `name`"), "{error}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_ids_are_refused() {
        assert!(serde_json::from_str::<NewApp>(r#"{"id":"a","nmae":"x"}"#).is_err());
        assert!(serde_json::from_str::<NewApp>(r#"{"id":"a b"}"#).is_err());
        assert!(serde_json::from_str::<NewApp>(r#"{"id":"ok"}"#).is_ok());
    }
}
