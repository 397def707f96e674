//! The migrated schema equals the expected one, checked in as `tests/schema/{sqlite,postgres}.txt`
//! (a sorted, readable dump of tables, columns, keys, constraints and indexes), the two
//! backends' migrations stay in step, and a migration that moves rows keeps them. After an
//! intended schema change, rewrite the expected files with
//! `GRIDSYNC_BLESS=1 cargo nextest run --workspace -E 'binary(migrations)'` and review the diff.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::{Connection, PgConnection, SqliteConnection};

/// One table of a dump: its column names (to compare the backends) and its lines.
struct Table {
    name: String,
    columns: Vec<String>,
    lines: Vec<String>,
}

fn render(tables: &[Table]) -> String {
    let tables: Vec<String> = tables
        .iter()
        .map(|t| {
            let mut out = format!("table {}\n", t.name);
            for line in &t.lines {
                out.push_str(&format!("  {line}\n"));
            }
            out
        })
        .collect();
    tables.join("\n")
}

/// Collapses runs of whitespace, so the dump does not depend on how the SQL was laid out.
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn sqlite_dump(conn: &mut SqliteConnection) -> Vec<Table> {
    // sqlite_% tables (sqlite_sequence for AUTOINCREMENT) belong to SQLite itself.
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list tables");
    let mut out = Vec::new();
    for (name, sql) in tables {
        let columns: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
            // table_xinfo also lists generated columns (hidden 2 and 3), which table_info leaves
            // out; hidden 1 marks a virtual table's own columns.
            "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_xinfo(?1) \
             WHERE hidden <> 1 ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .expect("columns");
        let mut lines: Vec<String> = columns
            .iter()
            .map(|(col, ty, not_null, default, _)| {
                column_line(col, ty, *not_null, default.as_deref())
            })
            .collect();
        let mut rest = Vec::new();
        let mut pk: Vec<&(String, String, bool, Option<String>, i64)> =
            columns.iter().filter(|c| c.4 > 0).collect();
        pk.sort_by_key(|c| c.4);
        if !pk.is_empty() {
            let cols: Vec<&str> = pk.iter().map(|c| c.0.as_str()).collect();
            let autoincrement = sql.to_ascii_uppercase().contains("AUTOINCREMENT");
            rest.push(format!(
                "primary key ({}){}",
                cols.join(", "),
                if autoincrement { " autoincrement" } else { "" }
            ));
        }
        rest.extend(
            sqlite_checks(&sql)
                .into_iter()
                .map(|c| format!("check ({c})")),
        );
        rest.extend(sqlite_foreign_keys(conn, &name).await);
        rest.extend(sqlite_indexes(conn, &name).await);
        rest.sort();
        lines.extend(rest);
        out.push(Table {
            name,
            columns: columns.into_iter().map(|c| c.0).collect(),
            lines,
        });
    }
    out
}

fn column_line(name: &str, ty: &str, not_null: bool, default: Option<&str>) -> String {
    let mut line = format!(
        "column {name}: {ty} {}",
        if not_null { "NOT NULL" } else { "NULL" }
    );
    if let Some(default) = default {
        line.push_str(&format!(" DEFAULT {}", squash(default)));
    }
    line
}

/// One column of a foreign key, as `pragma_foreign_key_list` lists it.
#[derive(sqlx::FromRow)]
struct ForeignKeyColumn {
    id: i64,
    parent: String,
    from_column: String,
    /// NULL when the key names the parent table only (its primary key).
    to_column: Option<String>,
    on_update: String,
    on_delete: String,
    match_kind: String,
}

async fn sqlite_foreign_keys(conn: &mut SqliteConnection, table: &str) -> Vec<String> {
    let rows: Vec<ForeignKeyColumn> = sqlx::query_as(
        "SELECT id, \"table\" AS parent, \"from\" AS from_column, \"to\" AS to_column, \
         on_update, on_delete, \"match\" AS match_kind \
         FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .expect("foreign keys");
    let mut keys: BTreeMap<i64, Vec<ForeignKeyColumn>> = BTreeMap::new();
    for row in rows {
        keys.entry(row.id).or_default().push(row);
    }
    keys.values()
        .map(|cols| {
            let first = &cols[0];
            let from: Vec<&str> = cols.iter().map(|c| c.from_column.as_str()).collect();
            let to: Vec<&str> = cols
                .iter()
                .map(|c| c.to_column.as_deref().unwrap_or("<primary key>"))
                .collect();
            format!(
                "foreign key ({}) references {} ({}) on update {} on delete {} match {}",
                from.join(", "),
                first.parent,
                to.join(", "),
                first.on_update,
                first.on_delete,
                first.match_kind
            )
        })
        .collect()
}

async fn sqlite_indexes(conn: &mut SqliteConnection, table: &str) -> Vec<String> {
    let indexes: Vec<(String, bool, String)> =
        sqlx::query_as("SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY name")
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .expect("indexes");
    let mut out = Vec::new();
    for (name, unique, origin) in indexes {
        let cols: Vec<(Option<String>,)> =
            sqlx::query_as("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .bind(&name)
                .fetch_all(&mut *conn)
                .await
                .expect("index columns");
        let cols: Vec<&str> = cols
            .iter()
            .map(|c| c.0.as_deref().unwrap_or("<expression>"))
            .collect();
        let cols = cols.join(", ");
        match origin.as_str() {
            // The primary key is listed with the columns.
            "pk" => {}
            // UNIQUE in CREATE TABLE: the index's name (sqlite_autoindex_…_N) is SQLite's own.
            "u" => out.push(format!("unique ({cols})")),
            _ => {
                let (sql,): (Option<String>,) = sqlx::query_as(
                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                )
                .bind(&name)
                .fetch_one(&mut *conn)
                .await
                .expect("index sql");
                let predicate = sql
                    .as_deref()
                    .map(squash)
                    .and_then(|s| {
                        let at = s.to_ascii_uppercase().find(" WHERE ")?;
                        Some(format!(" where {}", &s[at + 7..]))
                    })
                    .unwrap_or_default();
                out.push(format!(
                    "{}index {name} ({cols}){predicate}",
                    if unique { "unique " } else { "" }
                ));
            }
        }
    }
    out
}

/// The CHECK expressions of a CREATE TABLE statement (SQLite keeps no catalog of them).
fn sqlite_checks(sql: &str) -> Vec<String> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\'' {
            in_string = !in_string;
        } else if !in_string && bytes[i..].starts_with(b"--") {
            // A comment runs to the end of the line; a CHECK in it is no constraint.
            i += bytes[i..]
                .iter()
                .position(|&c| c == b'\n')
                .unwrap_or(bytes.len() - i);
            continue;
        } else if !in_string
            && bytes.len() >= i + 5
            && bytes[i..i + 5].eq_ignore_ascii_case(b"CHECK")
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
        {
            let rest = &sql[i + 5..];
            let open = i + 5 + (rest.len() - rest.trim_start().len());
            if bytes.get(open) == Some(&b'(') {
                let (inner, end) = parenthesised(sql, open);
                out.push(squash(inner));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// The text inside the parentheses opening at `open`, and the index after the closing one.
fn parenthesised(sql: &str, open: usize) -> (&str, usize) {
    let bytes = sql.as_bytes();
    let mut depth = 0;
    let mut in_string = false;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'\'' => in_string = !in_string,
            b'(' if !in_string => depth += 1,
            b')' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return (&sql[open + 1..i], i + 1);
                }
            }
            _ => {}
        }
    }
    (&sql[open + 1..], sql.len())
}

async fn postgres_dump(conn: &mut PgConnection) -> Vec<Table> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await
    .expect("list tables");
    let mut out = Vec::new();
    for (name,) in tables {
        let columns: Vec<(String, String, bool, Option<String>)> = sqlx::query_as(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
             pg_get_expr(d.adbin, d.adrelid) \
             FROM pg_attribute a \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass \
             AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .expect("columns");
        let mut lines: Vec<String> = columns
            .iter()
            .map(|(col, ty, not_null, default)| column_line(col, ty, *not_null, default.as_deref()))
            .collect();
        // Named, because later migrations alter constraints by name. NOT NULL is in the columns
        // (and, from Postgres 18, would also appear here as contype 'n').
        let constraints: Vec<(String, String)> = sqlx::query_as(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = (quote_ident(current_schema()) || '.' || quote_ident($1))::regclass \
             AND contype IN ('p', 'u', 'f', 'c', 'x') ORDER BY conname",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .expect("constraints");
        lines.extend(
            constraints
                .into_iter()
                .map(|(n, def)| format!("constraint {n}: {}", squash(&def))),
        );
        // Indexes that back a constraint are listed as that constraint.
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT i.indexname::text, i.indexdef FROM pg_indexes i \
             WHERE i.schemaname = current_schema() AND i.tablename = $1 \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                 WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass) \
             ORDER BY i.indexname",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .expect("indexes");
        lines.extend(
            indexes
                .into_iter()
                .map(|(n, def)| format!("index {n}: {}", squash(&def))),
        );
        out.push(Table {
            name,
            columns: columns.into_iter().map(|c| c.0).collect(),
            lines,
        });
    }
    out
}

fn expected_path(backend: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schema")
        .join(format!("{backend}.txt"))
}

/// Compares `actual` with the checked-in dump, or rewrites the dump under GRIDSYNC_BLESS=1.
fn check_against_file(backend: &str, actual: &str) {
    let path = expected_path(backend);
    if std::env::var_os("GRIDSYNC_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write expected schema");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with GRIDSYNC_BLESS=1",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "the migrated {backend} schema differs from {} (- expected, + migrated):\n{}\n\
             If the change is intended, rerun with GRIDSYNC_BLESS=1 and review the file's diff.",
            path.display(),
            line_diff(&expected, actual)
        );
    }
}

/// A line diff (longest common subsequence), showing only the changed lines and their tables.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let mut table = "";
    let mut shown_table = "";
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let (sign, line) = if i < a.len() && j < b.len() && a[i] == b[j] {
            if a[i].starts_with("table ") {
                table = a[i];
            }
            i += 1;
            j += 1;
            continue;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            i += 1;
            ('-', a[i - 1])
        } else {
            j += 1;
            ('+', b[j - 1])
        };
        // Name the table a changed line belongs to, once.
        if table != shown_table && !line.starts_with("table ") {
            out.push_str(&format!("  {table}\n"));
            shown_table = table;
        }
        out.push_str(&format!("{sign} {line}\n"));
    }
    out
}

#[tokio::test]
async fn migrated_sqlite_schema_equals_the_expected_one() {
    let t = support::sqlite().await;
    let mut conn = SqliteConnection::connect(&t.url).await.expect("connect");
    check_against_file("sqlite", &render(&sqlite_dump(&mut conn).await));
}

#[tokio::test]
async fn migrated_postgres_schema_equals_the_expected_one() {
    let t = support::postgres().await;
    let mut conn = PgConnection::connect(&t.url).await.expect("connect");
    check_against_file("postgres", &render(&postgres_dump(&mut conn).await));
}

/// A report and its change log as a database before migration 0027 held them; `blob` writes the
/// dialect's expression for the bytes of a hex string.
fn change_log_before_0027(blob: fn(&str) -> String) -> String {
    let mut sql = format!(
        "INSERT INTO org_units (id, parent_id, level, name, path) VALUES ('g1', NULL, 'grid', 'G1', '/g1/');
         INSERT INTO documents (id, kind, schema_version, grid_id, org_path, restricted, seq, heads,
             snapshot, snapshot_seq, incremental_bytes, projection, created_by, created_at, updated_at)
         VALUES ('{OLD_REPORT}', 'dispute_check', 1, 'g1', '/g1/', FALSE, 3, {head},
             {snapshot}, 0, 30, '{{}}', 'w1', 1, 3);",
        head = blob(&old_hash(3)),
        snapshot = blob("00")
    );
    for seq in 1..=3 {
        sql.push_str(&format!(
            "INSERT INTO changes (hash, doc_id, seq, deps, author, device_id, time, bytes)
             VALUES ({hash}, '{OLD_REPORT}', {seq}, {deps}, 'w1', 'phone-1', {seq}, {bytes});",
            hash = blob(&old_hash(seq)),
            deps = blob(""),
            bytes = blob("0a0b")
        ));
    }
    sql
}

const OLD_REPORT: &str = "0190a000-0000-7000-8000-000000000001";

/// The hash of the old report's change `seq`, in hex.
fn old_hash(seq: i64) -> String {
    format!("{seq:02x}").repeat(32)
}

/// Opens the database at `url`, migrated to 0026 and holding [`change_log_before_0027`], as this
/// version does, and checks every change is still there, in order.
async fn assert_change_log_kept(url: &str) {
    let store = gridsync_server::store::open(url)
        .await
        .expect("open and upgrade");
    let id: gridsync_core::DocId = OLD_REPORT.parse().expect("id");
    let rows = store.changes_of(&id).await.expect("changes");
    let kept: Vec<(String, i64, Option<String>)> = rows
        .iter()
        .map(|r| (r.hash.to_string(), r.seq, r.device_id.clone()))
        .collect();
    let expected: Vec<(String, i64, Option<String>)> = (1..=3)
        .map(|seq| (old_hash(seq), seq, Some("phone-1".to_owned())))
        .collect();
    assert_eq!(kept, expected);
    store.close().await;
}

/// Migrates the database `conn` is connected to up to 0026, as `backend`, fills it with
/// [`change_log_before_0027`], and closes it.
async fn fill_before_0027<C>(mut conn: C, backend: &str, blob: fn(&str) -> String)
where
    C: Connection + sqlx::migrate::Migrate,
    for<'c> &'c mut C:
        sqlx::Acquire<'c, Connection = &'c mut C> + sqlx::Executor<'c, Database = C::Database>,
{
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    sqlx::migrate::Migrator::new(folder)
        .await
        .expect("migrations")
        .run_to(26, &mut conn)
        .await
        .expect("migrate to 0026");
    sqlx::raw_sql(sqlx::AssertSqlSafe(change_log_before_0027(blob)))
        .execute(&mut conn)
        .await
        .expect("an old change log");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn upgrading_a_sqlite_database_keeps_its_change_log_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let conn = SqliteConnection::connect(&url).await.expect("connect");
    fill_before_0027(conn, "sqlite", |hex| format!("unhex('{hex}')")).await;
    assert_change_log_kept(&url).await;
}

#[tokio::test]
async fn upgrading_a_postgres_database_keeps_its_change_log_in_order() {
    let url = gridsync_fixtures::databases::fresh_postgres_database("gridsync_log").await;
    let conn = PgConnection::connect(&url).await.expect("connect");
    fill_before_0027(conn, "postgres", |hex| format!("decode('{hex}', 'hex')")).await;
    assert_change_log_kept(&url).await;
}

/// File names of a migrations folder, sorted.
fn migration_files(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 file name")
        })
        .collect();
    names.sort();
    names
}

#[test]
fn migration_folders_hold_the_same_versions_and_file_stems() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    assert_eq!(
        sqlite, postgres,
        "migrations/sqlite and migrations/postgres must hold the same files"
    );
    // What the stores embed: the same versions and descriptions, in the same order.
    let versions = |m: &sqlx::migrate::Migrator| -> Vec<(i64, String)> {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    };
    let sqlite = versions(&sqlx::migrate!("../migrations/sqlite"));
    let postgres = versions(&sqlx::migrate!("../migrations/postgres"));
    assert!(!sqlite.is_empty(), "no migrations found");
    assert_eq!(sqlite, postgres, "embedded migration versions differ");
}

#[tokio::test]
async fn both_backends_have_the_same_tables_and_columns() {
    let lite = support::sqlite().await;
    let pg = support::postgres().await;
    let mut lite_conn = SqliteConnection::connect(&lite.url).await.expect("connect");
    let mut pg_conn = PgConnection::connect(&pg.url).await.expect("connect");
    // Columns as sets: types differ by dialect and order does not matter to the code.
    let columns = |tables: Vec<Table>| -> BTreeMap<String, std::collections::BTreeSet<String>> {
        tables
            .into_iter()
            .map(|t| (t.name, t.columns.into_iter().collect()))
            .collect()
    };
    let lite = columns(sqlite_dump(&mut lite_conn).await);
    let pg = columns(postgres_dump(&mut pg_conn).await);
    assert!(!lite.is_empty(), "no tables after migrating");
    assert_eq!(
        lite, pg,
        "tables and columns differ (left: SQLite, right: Postgres)"
    );
}
