//! Multilingual search of competent authorities: by country, by procedure,
//! and by free text in any language over names and competences —
//! case- and accent-insensitive (unaccent) and tolerant of small typos
//! (pg_trgm word similarity).

use std::collections::BTreeMap;

use imi_schemas::ids::{CountryCode, ProcedureCode};
use sqlx::PgPool;
use tracing::instrument;

/// What to search for; every part is optional.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthorityQuery {
    pub text: Option<String>,
    pub country: Option<CountryCode>,
    pub procedure: Option<ProcedureCode>,
    pub limit: i64,
}

/// One authority as the registry knows it.
#[derive(Debug, Clone)]
pub(crate) struct AuthorityRecord {
    pub id: String,
    pub country: String,
    pub names: BTreeMap<String, String>,
    pub competences: BTreeMap<String, String>,
    pub status: String,
    pub endpoint: String,
    pub procedures: Vec<String>,
    /// How well the text matched (1 = exact word), absent without text.
    pub score: Option<f32>,
}

/// A matching authority as the query returns it.
#[derive(sqlx::FromRow)]
struct AuthorityRow {
    id: String,
    country: String,
    names: serde_json::Value,
    competences: serde_json::Value,
    status: String,
    endpoint_id: String,
    procedures: Vec<String>,
    score: Option<f32>,
}

/// How similar a query word must be to a word of the document to count as a
/// typo of it.
const SIMILARITY: f32 = 0.45;

#[instrument(skip_all, fields(text = query.text.as_deref().unwrap_or(""), country = ?query.country))]
pub(crate) async fn search(
    pool: &PgPool,
    query: &AuthorityQuery,
) -> Result<Vec<AuthorityRecord>, sqlx::Error> {
    let text = query
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let rows: Vec<AuthorityRow> = sqlx::query_as(
        "WITH q AS (SELECT imi_fold($1) AS text)
         SELECT a.id, a.country, a.names, a.competences, a.status, a.endpoint_id,
                coalesce(array_agg(p.procedure ORDER BY p.procedure) FILTER (WHERE p.procedure IS NOT NULL), '{}') AS procedures,
                CASE WHEN q.text IS NULL THEN NULL
                     ELSE word_similarity(q.text, imi_authority_document(a.id, a.names, a.competences)) END AS score
         FROM authorities a
         CROSS JOIN q
         LEFT JOIN authority_procedures p ON p.authority_id = a.id
         WHERE ($2::text IS NULL OR a.country = $2)
           AND ($3::text IS NULL OR EXISTS (SELECT 1 FROM authority_procedures x
                                            WHERE x.authority_id = a.id AND x.procedure = $3))
           AND (q.text IS NULL
                OR imi_authority_document(a.id, a.names, a.competences) LIKE '%' || q.text || '%'
                OR word_similarity(q.text, imi_authority_document(a.id, a.names, a.competences)) >= $4)
         GROUP BY a.id, q.text
         ORDER BY score DESC NULLS LAST, a.id
         LIMIT $5",
    )
    .bind(text)
    .bind(query.country.map(|c| c.as_str().to_owned()))
    .bind(query.procedure.as_ref().map(|p| p.as_str().to_owned()))
    .bind(SIMILARITY)
    .bind(query.limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AuthorityRecord {
            id: row.id,
            country: row.country,
            names: serde_json::from_value(row.names).unwrap_or_default(),
            competences: serde_json::from_value(row.competences).unwrap_or_default(),
            status: row.status,
            endpoint: row.endpoint_id,
            procedures: row.procedures,
            score: row.score,
        })
        .collect())
}
