//! What tests and benchmarks share (the benchmarks include this file): a database of one's own
//! on DATABASE_URL's server, a machine token holding every scope, and clients that carry
//! headers such as a signed-in session.

use sqlx::{Connection, PgConnection, PgPool};

/// Drops and recreates database `name`, migrated; returns its pool and URL.
pub async fn fresh_database(url: &str, name: &str) -> (PgPool, String) {
    let mut admin = PgConnection::connect(url).await.expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let db_url = format!("{}/{name}", url.rsplit_once('/').expect("DATABASE_URL names a database").0);
    let pool = server::db::pool_options().connect(&db_url).await.unwrap();
    server::db::MIGRATOR.run(&pool).await.unwrap();
    (pool, db_url)
}

/// Makes an API token named `name` with every scope straight in the store; returns its secret.
pub async fn all_scopes_token(pool: &PgPool, name: &str, now: app::domain::units::Timestamp) -> String {
    let secret = server::random::new_secret();
    server::store::Store::new(pool.clone())
        .create_token(name, &server::auth::digest(&secret), &app::domain::access::Scope::ALL, "set-up", now)
        .await
        .expect("a token");
    secret
}

/// A client sending these headers with every request.
pub fn client_with(headers: &[(&str, &str)]) -> reqwest::Client {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        map.insert(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    reqwest::Client::builder().default_headers(map).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The session id a sign-in answer sets.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("rampart_session=").map(|rest| rest.split(';').next().unwrap_or("").to_string()))
        .filter(|v| !v.is_empty())
}
