//! Who is looking: login with a password (argon2id), a session per login
//! (the cookie holds a random token; the database only its SHA-256),
//! lockout after repeated failures, logout, and the CSRF token every form
//! of a session carries. Every login, failed or not, is recorded.

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::{instrument, warn};
use uuid::Uuid;

use crate::accounts::{hash_password, verify_password, Account, AccountRole};
use crate::http::AppState;
use crate::views::audit;

/// The session cookie.
pub(crate) const SESSION_COOKIE: &str = "imi_console";
/// The login form's own CSRF token (there is no session yet).
pub(crate) const LOGIN_COOKIE: &str = "imi_console_login";
/// Failed logins in a row that lock an account.
pub(crate) const LOCK_AFTER: i32 = 5;
/// How long a locked account stays locked.
pub(crate) const LOCKED_FOR: Duration = Duration::minutes(15);
/// How long a session lasts without use.
const IDLE: Duration = Duration::hours(8);
/// Forms are small; a larger body is refused before it is read.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A fresh random token (244 random bits).
pub(crate) fn new_token() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The value of cookie `name` in a request's headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, scoped to the console,
/// Secure when the console is served over TLS.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    secure: bool,
    max_age: Option<i64>,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        text.push_str("; Secure");
    }
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&text).expect("cookie values are ASCII tokens")
}

/// The person behind a request, with their session's CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) account: Account,
    pub(crate) csrf: String,
}

impl Viewer {
    pub(crate) fn is_auditor(&self) -> bool {
        self.account.role == AccountRole::Auditor
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    name: String,
    role: String,
    country: Option<String>,
    area: Option<String>,
    region: Option<String>,
    csrf: String,
}

/// The session a token opens, if any (not expired, account not revoked);
/// using it extends it.
pub(crate) async fn session_of(pool: &PgPool, token: &str) -> Result<Option<Viewer>, sqlx::Error> {
    session(pool, token).await
}

#[instrument(skip_all)]
async fn session(pool: &PgPool, token: &str) -> Result<Option<Viewer>, sqlx::Error> {
    let row: Option<SessionRow> = sqlx::query_as(
        "UPDATE console_sessions s SET last_seen_at = now(), expires_at = now() + make_interval(secs => $2)
         FROM accounts a
         WHERE s.token_sha256 = $1 AND s.expires_at > now() AND a.id = s.account_id
           AND a.revoked_at IS NULL
         RETURNING a.id, a.name, a.role, a.country, a.area, a.region, s.csrf",
    )
    .bind(digest(token))
    .bind(IDLE.num_seconds() as f64)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| {
        let account = Account::from_parts(r.id, r.name, &r.role, r.country, r.area, r.region)?;
        Some(Viewer {
            account,
            csrf: r.csrf,
        })
    }))
}

/// Not logged in: pages send the browser to the login page, coming back
/// here afterwards.
pub(crate) struct LoginFirst(String);

impl IntoResponse for LoginFirst {
    fn into_response(self) -> Response {
        let next: String = url::form_urlencoded::byte_serialize(self.0.as_bytes()).collect();
        Redirect::to(&format!("/console/login?next={next}")).into_response()
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if let Some(viewer) = parts.extensions.get::<Viewer>() {
            return Ok(viewer.clone());
        }
        let here = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/console".into());
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(LoginFirst(here).into_response());
        };
        match session(&state.pool, token).await {
            Ok(Some(viewer)) => Ok(viewer),
            Ok(None) => Err(LoginFirst(here).into_response()),
            Err(error) => {
                warn!(%error, "Session lookup failed.");
                Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
            }
        }
    }
}

/// Every form posted to an action carries the session's CSRF token in its
/// `csrf` field; without it (or with another) the post is refused before
/// any handler runs. Auditors change nothing: their posts are refused too.
pub(crate) async fn require_csrf(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let viewer = match Viewer::from_request_parts(&mut parts, &state).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    let matches = sent.is_some_and(|s| constant_time_eq(s.as_bytes(), viewer.csrf.as_bytes()));
    if !matches {
        return super::error_page(StatusCode::FORBIDDEN, "error.csrf", &viewer);
    }
    if viewer.is_auditor() {
        return super::error_page(StatusCode::FORBIDDEN, "error.read_only", &viewer);
    }
    parts.extensions.insert(viewer);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How a login attempt ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LoginOutcome {
    /// The session token to set.
    Opened(String),
    WrongCredentials,
    /// Locked until then.
    Locked(DateTime<Utc>),
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    password_hash: Option<String>,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
}

/// Checks a name and password. A wrong password counts towards the lock; a
/// locked account stays out whatever it types until the lock ends. Every
/// attempt is recorded.
#[instrument(skip_all, fields(name = %name))]
pub(crate) async fn log_in(
    pool: &PgPool,
    name: &str,
    password: &str,
) -> Result<LoginOutcome, sqlx::Error> {
    let candidate: Option<Candidate> = sqlx::query_as(
        "SELECT id, password_hash, failed_logins, locked_until FROM accounts
         WHERE name = $1 AND revoked_at IS NULL",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    let now = Utc::now();
    let Some(candidate) = candidate else {
        // Hash anyway, so timing does not tell which names exist.
        let _ = verify_password(password, &hash_password("unknown-account"));
        audit::record(
            pool,
            None,
            name,
            "login_failed",
            None,
            serde_json::json!({"reason": "unknown"}),
        )
        .await?;
        return Ok(LoginOutcome::WrongCredentials);
    };
    if let Some(until) = candidate.locked_until.filter(|u| *u > now) {
        audit::record(
            pool,
            Some(candidate.id),
            name,
            "login_failed",
            None,
            serde_json::json!({"reason": "locked"}),
        )
        .await?;
        return Ok(LoginOutcome::Locked(until));
    }
    let good = candidate
        .password_hash
        .as_deref()
        .is_some_and(|h| verify_password(password, h));
    if !good {
        let failed = candidate.failed_logins + 1;
        let locked_until = (failed >= LOCK_AFTER).then(|| now + LOCKED_FOR);
        sqlx::query(
            "UPDATE accounts SET failed_logins = CASE WHEN $3::timestamptz IS NULL THEN $2 ELSE 0 END,
                                 locked_until = coalesce($3, locked_until)
             WHERE id = $1",
        )
        .bind(candidate.id)
        .bind(failed)
        .bind(locked_until)
        .execute(pool)
        .await?;
        let reason = if locked_until.is_some() {
            "locked_now"
        } else {
            "password"
        };
        audit::record(
            pool,
            Some(candidate.id),
            name,
            "login_failed",
            None,
            serde_json::json!({"reason": reason}),
        )
        .await?;
        return Ok(match locked_until {
            Some(until) => LoginOutcome::Locked(until),
            None => LoginOutcome::WrongCredentials,
        });
    }
    let token = new_token();
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE accounts SET failed_logins = 0, locked_until = NULL WHERE id = $1")
        .bind(candidate.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO console_sessions (token_sha256, account_id, csrf, expires_at)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(digest(&token))
    .bind(candidate.id)
    .bind(new_token())
    .bind(IDLE.num_seconds() as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    audit::record(
        pool,
        Some(candidate.id),
        name,
        "login",
        None,
        serde_json::json!({}),
    )
    .await?;
    Ok(LoginOutcome::Opened(token))
}

/// Ends the session behind `token`.
#[instrument(skip_all)]
pub(crate) async fn log_out(
    pool: &PgPool,
    token: &str,
    viewer: &Viewer,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM console_sessions WHERE token_sha256 = $1")
        .bind(digest(token))
        .execute(pool)
        .await?;
    audit::record_by(pool, &viewer.account, "logout", None, serde_json::json!({})).await
}

/// The response that sets the session cookie and goes on to `next`.
pub(crate) fn opened(token: &str, next: &str, secure: bool) -> Response {
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, set_cookie(SESSION_COOKIE, token, secure, None));
    headers.append(SET_COOKIE, set_cookie(LOGIN_COOKIE, "", secure, Some(0)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; imi_console=tok; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
        let set = set_cookie(SESSION_COOKIE, "t", true, None);
        let set = set.to_str().unwrap();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure")
        );
        assert!(!set_cookie(SESSION_COOKIE, "t", false, None)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }

    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
