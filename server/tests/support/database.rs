//! What tests and benchmarks share (the benchmarks include this file): a database of one's own
//! on DATABASE_URL's server, and a machine token holding every scope.

use sqlx::{Connection, PgConnection, PgPool};

/// Drops and recreates database `name`, migrated; returns its pool and URL.
pub async fn fresh_database(url: &str, name: &str) -> (PgPool, String) {
    let mut admin = PgConnection::connect(url).await.expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let db_url = format!("{}/{name}", url.rsplit_once('/').expect("DATABASE_URL names a database").0);
    let pool = PgPool::connect(&db_url).await.unwrap();
    server::db::MIGRATOR.run(&pool).await.unwrap();
    (pool, db_url)
}

/// Makes an API token named `name` with every scope straight in the store; returns its secret.
pub async fn all_scopes_token(pool: &PgPool, name: &str, now: app::domain::units::Timestamp) -> String {
    let secret = server::auth::new_secret();
    server::store::Store::new(pool.clone())
        .create_token(name, &server::auth::digest(&secret), &app::domain::access::Scope::ALL, "set-up", now)
        .await
        .expect("a token");
    secret
}
