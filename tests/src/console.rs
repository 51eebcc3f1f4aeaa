//! A console user over plain HTTP, as a browser without script would be:
//! it keeps its cookies, follows no redirect by itself (tests look at
//! them), and reads the CSRF token from the forms it is shown.

use std::collections::BTreeMap;

use imi_hub::accounts::{self, AccountRole, Scope};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use sqlx::PgPool;

/// A person with a console account.
pub struct ConsoleUser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    pub name: String,
    pub password: String,
}

/// An account with a console password; returns its name and password.
pub async fn console_account(
    pool: &PgPool,
    name: &str,
    role: AccountRole,
    scope: Scope,
) -> (String, String) {
    let (account, _token) = accounts::create(pool, name, role, scope)
        .await
        .expect("account");
    let password = format!("pw-{name}-long-enough");
    accounts::set_password(pool, account.id, &password)
        .await
        .expect("password");
    (name.to_owned(), password)
}

/// What a response said, with its page.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first `name="csrf"` field of the page's forms.
    pub fn csrf(&self) -> Option<String> {
        let at = self.body.find("name=\"csrf\" value=\"")?;
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        Some(rest[..rest.find('"')?].to_owned())
    }
}

impl ConsoleUser {
    pub fn new(hub: &str, name: &str, password: &str) -> ConsoleUser {
        ConsoleUser {
            base: hub.to_owned(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
            name: name.to_owned(),
            password: password.to_owned(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, response: Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || text.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("console answers");
        self.take(response).await
    }

    /// Posts a form as given (the caller adds `csrf`, or leaves it out).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("console answers");
        self.take(response).await
    }

    /// Posts a form with the CSRF token of the page at `from`.
    pub async fn post_from(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.csrf().expect("the page has a form");
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &csrf));
        self.post(path, &fields).await
    }

    /// Logs in with `password`; returns the login's response.
    pub async fn log_in_with(&mut self, password: &str) -> Page {
        let form = self.get("/console/login").await;
        let csrf = form.csrf().expect("the login page has a token");
        let name = self.name.clone();
        self.post(
            "/console/login",
            &[("name", &name), ("password", password), ("csrf", &csrf)],
        )
        .await
    }

    /// Logs in with its own password, asserting it worked.
    pub async fn log_in(&mut self) {
        let password = self.password.clone();
        let page = self.log_in_with(&password).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "login of {}: {}",
            self.name,
            page.body
        );
    }
}
