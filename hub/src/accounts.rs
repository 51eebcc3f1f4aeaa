//! Operator, coordinator and auditor accounts for the HTTP API (and the
//! console later), authenticated by bearer tokens stored only as hashes.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use imi_schemas::ids::{AreaCode, CountryCode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRole {
    Operator,
    Coordinator,
    Auditor,
}

impl AccountRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Coordinator => "coordinator",
            Self::Auditor => "auditor",
        }
    }
}

impl TryFrom<&str> for AccountRole {
    type Error = String;
    fn try_from(raw: &str) -> Result<Self, String> {
        match raw {
            "operator" => Ok(Self::Operator),
            "coordinator" => Ok(Self::Coordinator),
            "auditor" => Ok(Self::Auditor),
            other => Err(format!(
                "`{other}` is not a role (operator, coordinator, auditor)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub name: String,
    pub role: AccountRole,
    /// The country a coordinator acts for.
    pub country: Option<CountryCode>,
    /// The legislative area a delegated coordinator acts for.
    pub area: Option<AreaCode>,
    /// The region a delegated coordinator acts for. A coordinator with
    /// neither area nor region is its country's national coordinator.
    pub region: Option<String>,
}

/// What a new account may act for.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub country: Option<CountryCode>,
    pub area: Option<AreaCode>,
    pub region: Option<String>,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A fresh token: 244 random bits from two v4 UUIDs, prefixed so it is
/// recognisable in logs and secret scanners.
fn new_token() -> String {
    format!("imi_{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// Creates an account; returns it with its token, which is shown once and
/// never stored.
#[instrument(skip_all, fields(name = %name, role = role.as_str()))]
pub async fn create(
    pool: &PgPool,
    name: &str,
    role: AccountRole,
    scope: Scope,
) -> Result<(Account, String), sqlx::Error> {
    let Scope {
        country,
        area,
        region,
    } = scope;
    let token = new_token();
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO accounts (id, name, role, country, area, region, token_sha256)
         VALUES ($1, $2, $3, $4, $5, $7, $6)",
    )
    .bind(id)
    .bind(name)
    .bind(role.as_str())
    .bind(country.map(|c| c.as_str().to_owned()))
    .bind(area.as_ref().map(|a| a.as_str().to_owned()))
    .bind(digest(&token))
    .bind(&region)
    .execute(pool)
    .await?;
    let account = Account {
        id,
        name: name.to_owned(),
        role,
        country,
        area,
        region,
    };
    Ok((account, token))
}

/// An account as stored.
#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    name: String,
    role: String,
    country: Option<String>,
    area: Option<String>,
    region: Option<String>,
}

/// The active account a bearer token belongs to.
#[instrument(skip_all)]
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Account>, sqlx::Error> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT id, name, role, country, area, region FROM accounts WHERE token_sha256 = $1 AND revoked_at IS NULL",
    )
    .bind(digest(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| Account::from_parts(r.id, r.name, &r.role, r.country, r.area, r.region)))
}

impl Account {
    /// An account from its stored columns; `None` if its role is not one.
    pub(crate) fn from_parts(
        id: Uuid,
        name: String,
        role: &str,
        country: Option<String>,
        area: Option<String>,
        region: Option<String>,
    ) -> Option<Account> {
        Some(Account {
            id,
            name,
            role: AccountRole::try_from(role).ok()?,
            country: country
                .as_deref()
                .and_then(|c| CountryCode::try_from(c).ok()),
            area: area.as_deref().and_then(|a| AreaCode::try_from(a).ok()),
            region,
        })
    }
}

/// An argon2id hash (PHC string) of a password, for storing.
pub(crate) fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password")
        .to_string()
}

pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Sets (or replaces) an account's console password.
#[instrument(skip_all, fields(account = %account))]
pub async fn set_password(pool: &PgPool, account: Uuid, password: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE accounts SET password_hash = $2, failed_logins = 0, locked_until = NULL WHERE id = $1",
    )
    .bind(account)
    .bind(hash_password(password))
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_argon2id_and_verify() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct hors", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
