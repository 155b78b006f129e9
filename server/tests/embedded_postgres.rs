//! Rampart's private Postgres cluster: created on first use, reused while it runs, stopped on
//! request, and its data kept across restarts.

use server::embedded_pg::EmbeddedPostgres;
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_private_cluster_starts_keeps_its_data_and_stops() {
    let dir = std::env::temp_dir().join(format!("rampart-embedded-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let start = {
        let d = dir.clone();
        move || EmbeddedPostgres::start(&d).expect("the cluster starts")
    };
    let first = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    assert!(first.started_here);
    let mut conn = PgConnection::connect(&first.url("postgres")).await.expect("connect");
    sqlx::query("CREATE TABLE kept (v int)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO kept VALUES (42)").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    // While it runs, a second start reuses it rather than starting another.
    let reused = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    assert!(!reused.started_here);
    assert_eq!(reused.port(), first.port());

    tokio::task::spawn_blocking(move || first.stop()).await.unwrap().expect("the cluster stops");
    assert!(PgConnection::connect(&reused.url("postgres")).await.is_err(), "stopped means stopped");

    let again = tokio::task::spawn_blocking(start).await.unwrap();
    assert!(again.started_here);
    let mut conn = PgConnection::connect(&again.url("postgres")).await.expect("connect after restart");
    let v: i32 = sqlx::query_scalar("SELECT v FROM kept").fetch_one(&mut conn).await.unwrap();
    assert_eq!(v, 42, "data survives a restart");
    conn.close().await.unwrap();
    tokio::task::spawn_blocking(move || again.stop()).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
