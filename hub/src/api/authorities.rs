//! `GET /api/v1/authorities?q=&country=&procedure=&limit=`

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use imi_schemas::ids::{CountryCode, ProcedureCode};
use serde::{Deserialize, Serialize};

use super::{ApiError, Caller, ProblemView};
use crate::http::AppState;
use crate::registry::search::{self, AuthorityQuery, AuthorityRecord};

/// The query string as sent (parsed into `AuthorityQuery` at this edge).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchParams {
    /// Free text in any language (names, competences, id).
    q: Option<String>,
    /// A country code.
    country: Option<String>,
    /// Only authorities registered for this procedure.
    procedure: Option<String>,
    /// At most this many (default 50, at most 500).
    limit: Option<i64>,
}

impl TryFrom<SearchParams> for AuthorityQuery {
    type Error = ApiError;
    fn try_from(p: SearchParams) -> Result<Self, ApiError> {
        let bad = |e: imi_schemas::ids::IdError| ApiError::BadRequest(e.to_string());
        Ok(AuthorityQuery {
            text: p.q.filter(|q| q.len() <= 200),
            country: p
                .country
                .as_deref()
                .map(CountryCode::try_from)
                .transpose()
                .map_err(bad)?,
            procedure: p
                .procedure
                .as_deref()
                .map(ProcedureCode::try_from)
                .transpose()
                .map_err(bad)?,
            limit: p.limit.unwrap_or(50).clamp(1, 500),
        })
    }
}

/// The API's view of an authority (a wire type of the API, not the registry's).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuthorityView {
    id: String,
    country: String,
    names: BTreeMap<String, String>,
    competences: BTreeMap<String, String>,
    status: String,
    endpoint: String,
    procedures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

impl From<AuthorityRecord> for AuthorityView {
    fn from(r: AuthorityRecord) -> Self {
        Self {
            id: r.id,
            country: r.country,
            names: r.names,
            competences: r.competences,
            status: r.status,
            endpoint: r.endpoint,
            procedures: r.procedures,
            score: r.score,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SearchResult {
    authorities: Vec<AuthorityView>,
}

/// Multilingual search of competent authorities.
#[utoipa::path(get, path = "/api/v1/authorities", tag = "registry", params(SearchParams),
    responses((status = 200, body = SearchResult), (status = "4XX", description = "An RFC 9457 problem document", body = ProblemView)), security(("bearer" = [])))]
#[tracing::instrument(skip_all, fields(account = %caller.0.name))]
pub(crate) async fn search(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    let query = AuthorityQuery::try_from(params?.0)?;
    let found = search::search(&state.pool, &query).await?;
    Ok(Json(SearchResult {
        authorities: found.into_iter().map(AuthorityView::from).collect(),
    }))
}
