//! Unknown query parameters are refused on every endpoint: a route takes the
//! query parameters its OpenAPI operation lists, and nothing else.
//!
//! The handlers that take parameters refuse unknown ones themselves (their
//! query types deny unknown fields); this middleware covers the rest, which
//! would otherwise ignore `?limit=5` or a misspelt filter silently. Reading
//! the allowed names from the generated OpenAPI document keeps one source of
//! truth: a parameter a handler takes but the document does not list is
//! refused, so the document cannot fall behind.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};

use super::error::ApiError;

/// The query parameter names of every documented operation, by method and
/// route (`/apps/{app_id}/…`, as axum and OpenAPI both write it).
#[derive(Debug, Default)]
pub struct QueryParameters {
    by_route: HashMap<(Method, String), BTreeSet<String>>,
}

impl QueryParameters {
    /// The parameters `doc` lists with `in: query`, per operation (path-level
    /// ones included).
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let mut by_route = HashMap::new();
        for (route, item) in &doc.paths.paths {
            for (method, operation) in operations(item) {
                let names = item
                    .parameters
                    .iter()
                    .chain(&operation.parameters)
                    .flatten()
                    .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                    .map(|p| p.name.clone())
                    .collect();
                by_route.insert((method, route.clone()), names);
            }
        }
        QueryParameters { by_route }
    }

    /// Checks a request's query string against what `method` on `route`
    /// takes: a 400 naming the first unknown parameter and the known ones.
    pub fn check(&self, method: &Method, route: &str, query: &str) -> Result<(), ApiError> {
        let pairs: Vec<(String, String)> = Query::try_from_uri(
            &format!("/?{query}")
                .parse()
                .map_err(|_| ApiError::invalid("invalid query string"))?,
        )
        .map(|Query(pairs)| pairs)
        .map_err(|e| ApiError::invalid(format!("invalid query string: {}", e.body_text())))?;
        // HEAD is answered by the GET handler.
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let empty = BTreeSet::new();
        let known = self
            .by_route
            .get(&(method.clone(), route.to_owned()))
            .unwrap_or(&empty);
        let Some((unknown, _)) = pairs.iter().find(|(name, _)| !known.contains(name)) else {
            return Ok(());
        };
        let takes = if known.is_empty() {
            "takes no query parameters".to_owned()
        } else {
            let names: Vec<String> = known.iter().map(|n| format!("`{n}`")).collect();
            format!("takes only {}", names.join(", "))
        };
        Err(ApiError::invalid(format!(
            "unknown query parameter `{unknown}`: {method} {route} {takes}"
        )))
    }
}

fn operations(item: &PathItem) -> impl Iterator<Item = (Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation.as_ref()?)))
}

/// Middleware: refuses a request whose query string names a parameter its
/// route does not take. Requests matching no route (404, 405) pass through.
pub async fn refuse_unknown_query(
    State(parameters): State<Arc<QueryParameters>>,
    request: Request,
    next: Next,
) -> Response {
    // The console's pages read their own query parameters (and refuse
    // unknown ones on the page).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .filter(|route| !crate::console::is_console_route(route.as_str()));
    if let (Some(route), Some(query)) = (route, request.uri().query())
        && let Err(error) = parameters.check(request.method(), route.as_str(), query)
    {
        return error.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi as _;

    use super::*;
    use crate::api::ApiDoc;

    fn parameters() -> QueryParameters {
        QueryParameters::from_openapi(&ApiDoc::openapi())
    }

    fn message(result: Result<(), ApiError>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        error.message().to_owned()
    }

    #[test]
    fn documented_parameters_pass() {
        let parameters = parameters();
        let runs = "/apps/{app_id}/automations/{id}/runs";
        assert!(
            parameters
                .check(&Method::GET, runs, "status=failed&limit=5&cursor=x")
                .is_ok()
        );
        assert!(
            parameters
                .check(&Method::GET, "/apps/{app_id}/automations", "type=trigger")
                .is_ok()
        );
        assert!(
            parameters
                .check(&Method::POST, "/apps/{app_id}/configs", "name=a")
                .is_ok()
        );
        assert!(
            parameters
                .check(&Method::GET, "/apps/{app_id}/configs", "")
                .is_ok()
        );
    }

    #[test]
    fn anything_else_is_named() {
        let parameters = parameters();
        assert_eq!(
            message(parameters.check(&Method::GET, "/apps/{app_id}/configs", "limit=5")),
            "unknown query parameter `limit`: GET /apps/{app_id}/configs takes no query parameters"
        );
        assert_eq!(
            message(parameters.check(
                &Method::GET,
                "/apps/{app_id}/automations/{id}/runs",
                "limit=5&stauts=failed"
            )),
            "unknown query parameter `stauts`: GET /apps/{app_id}/automations/{id}/runs \
             takes only `automation_id`, `cursor`, `latest_attempt`, `limit`, `since`, \
             `status`, `trigger`, `until`"
        );
        // A parameter of the GET on the same path is not one of the POST's.
        assert!(
            message(parameters.check(&Method::POST, "/apps/{app_id}/automations", "type=trigger"))
                .contains("`type`")
        );
        // A route the document does not describe takes none.
        assert!(
            message(parameters.check(&Method::GET, "/openapi.json", "x"))
                .contains("takes no query parameters")
        );
    }
}
