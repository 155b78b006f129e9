//! The committed `.sqlx/` metadata is what the build checks queries against. It must describe
//! each query exactly as the migrated schema does today; otherwise the build would accept SQL
//! that fails at run time. Regenerate it with `cargo xtask prepare`.

use sqlx::{AssertSqlSafe, Executor, PgPool, SqlSafeStr};
use std::path::Path;

#[sqlx::test(migrations = "../migrations")]
async fn committed_query_metadata_matches_the_migrated_schema(pool: PgPool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.sqlx");
    let mut checked = 0;
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&dir).expect(".sqlx/ is committed") {
        let path = entry.unwrap().path();
        let stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let query = stored["query"].as_str().expect("a query").to_string();
        let fresh = match (&pool).describe(AssertSqlSafe(query.clone()).into_sql_str()).await {
            Ok(describe) => serde_json::to_value(&describe).unwrap(),
            Err(error) => serde_json::json!({ "error": error.to_string() }),
        };
        if fresh != stored["describe"] {
            stale.push(format!("{}:\n  stored: {}\n  now:    {fresh}", path.display(), stored["describe"]));
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} query files in .sqlx/");
    assert!(stale.is_empty(), "stale query metadata; run `cargo xtask prepare`:\n{}", stale.join("\n"));
}
