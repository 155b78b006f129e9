//! Tests of `rollups.rs`: the stats columns named.

#[test]
fn the_stats_column_count_is_the_columns_named() {
    assert_eq!(super::STATS_COLUMNS.split(',').count(), super::STATS_COLUMN_COUNT);
}
