//! The API's OpenAPI 3.1 document, generated from the handlers and their
//! view types (`GET /api/v1/openapi.json`). `docs/openapi.json` is the
//! committed copy; a test fails when it, `docs/api.md` or the router drift
//! from the code.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// An RFC 9457 problem document, as every error is sent.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProblemView {
    /// A stable URN, e.g. `urn:imi:problem:forbidden`.
    #[serde(rename = "type")]
    problem_type: String,
    title: String,
    status: u16,
    /// What went wrong, for a person.
    detail: String,
}

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "IMI Hub API",
        description = "The JSON API of IMI Hub for operators, coordinators and auditors. \
                       Every route but applying needs a bearer token (`imi-hub account create`). \
                       Errors are RFC 9457 problem documents.",
        license(name = "EUPL-1.2"),
    ),
    modifiers(&Bearer),
    paths(
        super::authorities::search,
        super::registry::pending,
        super::registry::apply,
        super::registry::approve,
        super::registry::refuse,
        super::registry::suspend_authority,
        super::registry::events,
        super::registry::rotate,
        super::registry::suspend,
        super::registry::reassign,
        super::overdue::list,
        super::overdue::referred,
        super::figures::figures,
        super::alerts::gate_on,
        super::alerts::gate_off,
        super::alerts::pending,
        super::alerts::decide,
        super::alerts::deliveries,
        super::alerts::create_subscriber,
        super::exchanges::show,
        super::notices::list,
        super::notices::mark_read,
        super::refused::groups,
        super::refused::in_group,
        super::refused::redrive,
    ),
    components(schemas(ProblemView)),
    tags(
        (name = "registry", description = "Authorities, applications, endpoints"),
        (name = "coordination", description = "Overdue and referred requests, reassignment, notices"),
        (name = "alerts", description = "1:N exchanges: validation, deliveries, subscribers"),
        (name = "exchanges", description = "One case and its steps"),
        (name = "figures", description = "The Commission's figures"),
        (name = "refused", description = "Refused and dead-lettered messages: causes, re-drive"),
    )
)]
pub(crate) struct ApiDoc;

/// `GET /api/v1/openapi.json` (no token needed: it describes, it holds no
/// data).
pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    /// (method, path) of every operation in the document.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn the_document_is_openapi_3_1_and_committed_as_generated() {
        let text = serde_json::to_string_pretty(&ApiDoc::openapi()).unwrap() + "\n";
        assert!(text.contains("\"openapi\": \"3.1"), "not OpenAPI 3.1");
        let committed = root().join("docs/openapi.json");
        if std::env::var("IMI_BLESS").is_ok() {
            std::fs::write(&committed, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&committed).unwrap_or_default();
        assert!(
            on_disk == text,
            "docs/openapi.json is stale; run `IMI_BLESS=1 cargo test -p imi-hub openapi`"
        );
    }

    /// The router (api/mod.rs) and the document list the same operations.
    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let source = std::fs::read_to_string(root().join("hub/src/api/mod.rs")).unwrap();
        let mut routed = BTreeSet::new();
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let path_start = rest.find('"').unwrap() + 1;
            let path_end = path_start + rest[path_start..].find('"').unwrap();
            let path = &rest[path_start..path_end];
            // The handlers of this route, up to the next `.route(`.
            let until = rest.find(".route(").unwrap_or(rest.len());
            let handlers = &rest[path_end..until];
            for method in ["get", "post", "put", "delete"] {
                let call = format!("{method}(");
                // `get(` as a call of its own, not the end of `target(`.
                let called = handlers.match_indices(&call).any(|(i, _)| {
                    !handlers[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if called {
                    routed.insert((method.to_uppercase(), path.to_owned()));
                }
            }
        }
        routed.remove(&("GET".to_owned(), "/api/v1/openapi.json".to_owned()));
        assert!(routed.len() > 15, "the route scan found only {routed:?}");
        assert_eq!(routed, documented());
    }

    /// `docs/api.md` names every operation as `METHOD /path`.
    #[test]
    fn the_reference_page_names_every_route() {
        let page = std::fs::read_to_string(root().join("docs/api.md")).unwrap();
        let missing: Vec<String> = documented()
            .into_iter()
            .map(|(m, p)| format!("{m} {p}"))
            .filter(|op| !page.contains(op.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "docs/api.md does not describe {missing:?}"
        );
    }
}
