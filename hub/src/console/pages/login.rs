//! Logging in and out.

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use crate::console::auth::{
    self, cookie, set_cookie, LoginOutcome, Viewer, LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::console::i18n::{t, tf};
use crate::console::layout::{self, bare};
use crate::http::AppState;

#[derive(Deserialize, Default)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after logging in: a console page, never elsewhere.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.starts_with("//") => n,
        _ => "/console",
    }
}

fn login_page(
    next: &str,
    message: Option<String>,
    secure: bool,
    status: StatusCode,
    headers: &HeaderMap,
) -> Response {
    // The browser's own login token if it has one (two tabs, a reload),
    // else a fresh one.
    let token = cookie(headers, LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .unwrap_or_else(auth::new_token);
    let body = html! {
        @if let Some(m) = message { p class="error" role="alert" { (m) } }
        form method="post" action="/console/login" class="login" {
            input type="hidden" name="csrf" value=(token);
            input type="hidden" name="next" value=(next);
            label for="name" { (t("login.name")) }
            input id="name" name="name" type="text" autocomplete="username" required autofocus;
            label for="password" { (t("login.password")) }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { (t("login.submit")) }
        }
    };
    let mut response = (status, Html(bare(t("login.title"), body).into_string())).into_response();
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(LOGIN_COOKIE, &token, secure, None));
    response
}

pub(crate) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    login_page(
        safe_next(q.next.as_deref()),
        None,
        state.console.secure_cookies,
        StatusCode::OK,
        &headers,
    )
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let secure = state.console.secure_cookies;
    let next = safe_next(f.next.as_deref()).to_owned();
    // The login form's token must be the one its page set in a cookie.
    if cookie(&headers, LOGIN_COOKIE) != Some(f.csrf.as_str()) {
        return login_page(
            &next,
            Some(t("error.csrf").to_owned()),
            secure,
            StatusCode::FORBIDDEN,
            &headers,
        );
    }
    match auth::log_in(&state.pool, f.name.trim(), &f.password).await {
        Ok(LoginOutcome::Opened(token)) => auth::opened(&token, &next, secure),
        Ok(LoginOutcome::WrongCredentials) => login_page(
            &next,
            Some(t("login.wrong").to_owned()),
            secure,
            StatusCode::UNAUTHORIZED,
            &headers,
        ),
        Ok(LoginOutcome::Locked(until)) => login_page(
            &next,
            Some(tf("login.locked", &[("until", &until.format("%H:%M UTC"))])),
            secure,
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
        ),
        Err(error) => {
            tracing::error!(%error, "Login failed for want of the database.");
            login_page(
                &next,
                Some(t("error.internal").to_owned()),
                secure,
                StatusCode::SERVICE_UNAVAILABLE,
                &headers,
            )
        }
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Err(error) = auth::log_out(&state.pool, token, &viewer).await {
            tracing::error!(%error, "Logout could not end the session.");
            return layout_error(&viewer);
        }
    }
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", state.console.secure_cookies, Some(0)),
    );
    response
}

fn layout_error(viewer: &Viewer) -> Response {
    let body = html! { p class="error" role="alert" { (t("error.internal")) } };
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(layout::page(viewer, "", t("error.title"), body).into_string()),
    )
        .into_response()
}
