//! The seam between the one SQL implementation and the two databases: which pool a read or a
//! write takes, how a transaction begins, the few fragments the dialects spell apart, and running
//! a statement, written once with `$N` placeholders (sqlx binds them alike on both; the values of
//! multi-row INSERTs are spelled by [`Dialect::placeholder`]), on either.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Arguments, AssertSqlSafe, Encode, FromRow, Postgres, Sqlite, Transaction, Type};

use super::{PoolUse, Result, StoreError, postgres, sqlite};

/// Write transactions on SQLite take the write lock up front: a deferred one that reads first
/// and then upgrades fails with SQLITE_BUSY at once, without waiting, when another process (say
/// `gridsync migrate`, or a second command on the same file) holds the lock.
const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// Reads that must see one state of the database (a pull's several queries, a document's
/// snapshot and changes) run in one snapshot; read-only REPEATABLE READ never fails to
/// serialize.
const POSTGRES_BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
/// The advisory lock key that orders pulls after the ingests in flight on Postgres: every
/// ingest holds it shared, a pull takes it exclusively for a moment ([`Db::begin_pull`]).
const INGEST_LOCK: i64 = 0x6772_6964_7379_6e63;
/// The first key of the advisory locks that order writers of one grid's canvass roll-ups on
/// Postgres ([`Tx::lock_rollups`]); the second is a hash of the grid's org path.
const ROLLUP_LOCKS: i32 = 0x726f_6c6c;

/// Which database is underneath, for the fragments of SQL that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `column`, compared byte by byte. Postgres's linguistic collations may ignore the
    /// slashes of an org path; SQLite compares bytes already.
    pub fn bytewise(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => column.to_owned(),
            Dialect::Postgres => format!("{column} COLLATE \"C\""),
        }
    }

    /// The length in bytes of a blob.
    pub fn byte_length(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("length({expr})"),
            Dialect::Postgres => format!("CAST(octet_length({expr}) AS BIGINT)"),
        }
    }

    /// The larger of two values.
    pub fn greatest(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Sqlite => format!("MAX({a}, {b})"),
            Dialect::Postgres => format!("GREATEST({a}, {b})"),
        }
    }

    /// The placeholder of the `n`th value (1-based) of a statement whose values all come in
    /// order, each once, as a multi-row INSERT's do. SQLite takes them as bare `?`: sqlx looks
    /// up the name of every numbered placeholder it binds, a linear search of the statement's
    /// names, which made binding a few hundred values cost as much as the INSERT itself.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".to_owned(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// LIKE without regard to case (SQLite's LIKE already ignores ASCII case).
    pub fn ilike(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// The elements of the JSON array of strings bound to `param`, as a subquery.
    pub fn json_strings(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT value FROM json_each({param})"),
            Dialect::Postgres => {
                format!("SELECT jsonb_array_elements_text(CAST({param} AS jsonb))")
            }
        }
    }

    /// The byte strings written in hex in the JSON array of strings bound to `param`, as a
    /// subquery: a list of keys of any length bound as one value, which both databases prepare
    /// once.
    pub fn json_hex_blobs(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => format!("SELECT unhex(value) FROM json_each({param})"),
            Dialect::Postgres => {
                format!("SELECT decode(jsonb_array_elements_text(CAST({param} AS jsonb)), 'hex')")
            }
        }
    }

    /// A JSON text bound to `param`, as the projection columns take it (jsonb on Postgres).
    pub fn json(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => param.to_owned(),
            Dialect::Postgres => format!("CAST({param} AS jsonb)"),
        }
    }

    /// Whether the JSON array at `key` of the projection `doc` holds an object whose `sha256`
    /// is `hash`.
    pub fn lists_sha256(self, doc: &str, key: &str, hash: &str) -> String {
        match self {
            Dialect::Sqlite => format!(
                "EXISTS (SELECT 1 FROM json_each({doc}, '$.{key}') j WHERE CASE WHEN \
                 j.type = 'object' THEN json_extract(j.value, '$.sha256') END = {hash})"
            ),
            Dialect::Postgres => format!(
                "{doc} -> '{key}' @> jsonb_build_array(jsonb_build_object('sha256', {hash}))"
            ),
        }
    }

    /// The last sequence number given out, as a scalar subquery. Postgres hands them out from
    /// a sequence, which reports its start value before it was ever called.
    pub fn last_seq(self) -> &'static str {
        match self {
            Dialect::Sqlite => "(SELECT value FROM counters WHERE name = 'seq')",
            Dialect::Postgres => {
                "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM change_seq)"
            }
        }
    }

    /// The migrations this binary has for the database.
    pub fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &sqlite::MIGRATOR,
            Dialect::Postgres => &postgres::MIGRATOR,
        }
    }

    /// Whether the migrations table exists, as one boolean.
    pub fn migrations_tracked(self) -> &'static str {
        match self {
            Dialect::Sqlite => sqlite::MIGRATIONS_TRACKED,
            Dialect::Postgres => postgres::MIGRATIONS_TRACKED,
        }
    }

    /// `FOR UPDATE` (of the tables `of`, when given) on Postgres, where a row lock orders writers.
    /// SQLite's one writer holds the whole database already.
    pub fn for_update(self, of: &str) -> String {
        match (self, of) {
            (Dialect::Sqlite, _) => String::new(),
            (Dialect::Postgres, "") => " FOR UPDATE".to_owned(),
            (Dialect::Postgres, of) => format!(" FOR UPDATE OF {of}"),
        }
    }

    /// `FOR SHARE OF of` on Postgres: holds the rows against `FOR UPDATE` and changes, but not
    /// against other readers or the key checks of rows referencing them.
    pub fn for_share(self, of: &str) -> String {
        match self {
            Dialect::Sqlite => String::new(),
            Dialect::Postgres => format!(" FOR SHARE OF {of}"),
        }
    }
}

/// The connection pools.
pub(crate) enum Db {
    /// One writer connection (SQLite has one writer anyway, and one connection avoids
    /// lock-upgrade deadlocks) beside a pool of read-only readers.
    Sqlite { write: SqlitePool, read: SqlitePool },
    /// One pool whose connections write at the same time; row locks order them, and pulls
    /// wait for the ingests in flight.
    Postgres(PgPool),
}

impl Db {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite { write, .. } => sqlite::MIGRATOR.run(write).await?,
            Db::Postgres(pool) => postgres::MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// Where a statement that only reads runs.
    pub fn read(&self) -> On<'_> {
        match self {
            Db::Sqlite { read, .. } => On::SqlitePool(read),
            Db::Postgres(pool) => On::PgPool(pool),
        }
    }

    /// Where a statement that writes, outside a transaction, runs.
    pub fn write(&self) -> On<'_> {
        match self {
            Db::Sqlite { write, .. } => On::SqlitePool(write),
            Db::Postgres(pool) => On::PgPool(pool),
        }
    }

    /// A transaction that writes.
    pub async fn begin_write(&self) -> Result<Tx> {
        Ok(Tx(match self {
            Db::Sqlite { write, .. } => Open::Sqlite(write.begin_with(SQLITE_BEGIN_WRITE).await?),
            Db::Postgres(pool) => Open::Postgres(pool.begin().await?),
        }))
    }

    /// A transaction that writes an ingest and takes sequence numbers. On Postgres its first
    /// statement takes the ingest lock shared, before any row lock, and holds it to the
    /// commit, so that a pull can wait for every ingest that could hold a number it is about to
    /// pass ([`Db::begin_pull`]).
    pub async fn begin_ingest(&self) -> Result<Tx> {
        let mut tx = self.begin_write().await?;
        if self.dialect() == Dialect::Postgres {
            sql("SELECT pg_advisory_xact_lock_shared($1)")
                .bind(INGEST_LOCK)
                .execute(&mut tx)
                .await?;
        }
        Ok(tx)
    }

    /// A read transaction for a pull, and the last sequence number all of whose changes it
    /// sees: a cursor may pass it. On SQLite, whose one writer commits numbers in order, that
    /// is the counter as the snapshot sees it. On Postgres ingests commit side by side and
    /// take numbers from a sequence, so a number given out may belong to a transaction still
    /// in flight: the pull reads the last number given out, waits for every ingest in flight to
    /// end (the ingest lock taken exclusively and let go at once; ingests that begin meanwhile
    /// wait behind it), and only then opens its snapshot, which holds every change up to that
    /// number and maybe some committed after it.
    pub async fn begin_pull(&self) -> Result<(Tx, i64)> {
        let query = format!("SELECT {}", self.dialect().last_seq());
        match self {
            Db::Sqlite { .. } => {
                let mut tx = self.begin_read().await?;
                let last = sql(query).fetch_value(&mut tx).await?;
                Ok((tx, last))
            }
            Db::Postgres(pool) => {
                let last = sql(query).fetch_value(On::PgPool(pool)).await?;
                // Outside any transaction, the lock ends with the statement.
                sql("SELECT pg_advisory_xact_lock($1)")
                    .bind(INGEST_LOCK)
                    .execute(On::PgPool(pool))
                    .await?;
                Ok((self.begin_read().await?, last))
            }
        }
    }

    /// A transaction that only reads, and sees one state of the database throughout.
    pub async fn begin_read(&self) -> Result<Tx> {
        Ok(Tx(match self {
            Db::Sqlite { read, .. } => Open::Sqlite(read.begin().await?),
            Db::Postgres(pool) => Open::Postgres(pool.begin_with(POSTGRES_BEGIN_READ).await?),
        }))
    }

    /// Closes every connection, waiting until each has closed.
    pub async fn close(&self) {
        match self {
            // The writer last: the last connection to close checkpoints the write-ahead log
            // into the file and deletes it, which a read-only one cannot.
            Db::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }

    pub fn pool_use(&self) -> Vec<PoolUse> {
        match self {
            Db::Sqlite { write, read } => vec![pool_use("write", write), pool_use("read", read)],
            Db::Postgres(pool) => vec![pool_use("main", pool)],
        }
    }
}

fn pool_use<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> PoolUse {
    PoolUse {
        pool,
        max: p.options().get_max_connections(),
        open: p.size(),
        idle: u32::try_from(p.num_idle()).unwrap_or(u32::MAX),
    }
}

/// An open transaction; dropped without [`Tx::commit`], it rolls back.
pub struct Tx(Open);

enum Open {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    /// Takes `count` sequence numbers for an ingest begun with [`Db::begin_ingest`], in
    /// ascending order. SQLite's one writer takes them from the counter, a run without gaps.
    /// Postgres takes them from a sequence, which no transaction holds, so pushes commit side
    /// by side and their numbers may interleave, and a rolled-back push leaves its numbers
    /// unused; a pull waits for the ingests in flight instead ([`Db::begin_pull`]).
    pub async fn take_seqs(&mut self, count: i64) -> Result<Vec<i64>> {
        match self.dialect() {
            Dialect::Sqlite => {
                let last: i64 = sql(
                    "UPDATE counters SET value = value + $1 WHERE name = 'seq' RETURNING value",
                )
                .bind(count)
                .fetch_value(self)
                .await?;
                Ok((last - count + 1..=last).collect())
            }
            Dialect::Postgres => {
                let seqs: Vec<(i64,)> = sql("SELECT nextval('change_seq') AS seq \
                     FROM generate_series(1, CAST($1 AS BIGINT)) ORDER BY seq")
                .bind(count)
                .fetch_all(self)
                .await?;
                Ok(seqs.into_iter().map(|(seq,)| seq).collect())
            }
        }
    }

    /// Before an ingest writes canvass interviews of the grids at `org_paths`: on Postgres,
    /// takes a lock per grid, in one order for every writer, held to the commit. The
    /// statistics triggers add each interview to its grid's monthly roll-up rows
    /// (`canvass_months`, `canvass_worry_months`), and two pushes that updated the same rows in
    /// opposite orders would deadlock: Postgres notices only after a second, during which the
    /// stuck push holds the ingest lock and every pull waits. Pushes of other grids, and of
    /// other kinds, still write side by side. SQLite's one writer needs none.
    pub async fn lock_rollups(&mut self, org_paths: &[&str]) -> Result<()> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(());
        }
        let mut keys: Vec<i32> = org_paths.iter().map(|p| grid_key(p)).collect();
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            sql("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(ROLLUP_LOCKS)
                .bind(key)
                .execute(&mut *self)
                .await?;
        }
        Ok(())
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match &self.0 {
            Open::Sqlite(_) => Dialect::Sqlite,
            Open::Postgres(_) => Dialect::Postgres,
        }
    }

    pub async fn commit(self) -> Result<()> {
        match self.0 {
            Open::Sqlite(tx) => tx.commit().await?,
            Open::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// A grid's roll-up lock key: the first four bytes of its org path's SHA-256, the same in every
/// process. Two grids sharing a key only take turns.
fn grid_key(org_path: &str) -> i32 {
    let digest = Sha256::digest(org_path.as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Where a statement runs: a pool (any free connection) or a transaction's connection.
pub(crate) enum On<'e> {
    SqlitePool(&'e SqlitePool),
    Sqlite(&'e mut SqliteConnection),
    PgPool(&'e PgPool),
    Postgres(&'e mut PgConnection),
}

impl<'e> From<&'e mut Tx> for On<'e> {
    fn from(tx: &'e mut Tx) -> Self {
        match &mut tx.0 {
            Open::Sqlite(tx) => On::Sqlite(tx),
            Open::Postgres(tx) => On::Postgres(tx),
        }
    }
}

/// A value both databases bind, borrowing for `'v` at most.
pub(crate) trait Value<'v>: Send + 'v {
    fn add_to_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError>;
    fn add_to_postgres(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError>;
}

impl<'v, T> Value<'v> for T
where
    T: Encode<'v, Sqlite> + Type<Sqlite> + Encode<'v, Postgres> + Type<Postgres> + Send + 'v,
{
    fn add_to_sqlite(self: Box<Self>, args: &mut SqliteArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }

    fn add_to_postgres(self: Box<Self>, args: &mut PgArguments) -> Result<(), BoxDynError> {
        args.add(*self)
    }
}

/// A row both databases decode: a `#[derive(sqlx::FromRow)]` struct, or a one-column tuple.
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow>
{
}

impl<T> Record for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> {}

/// A statement and the values for its placeholders, in order.
pub(crate) struct Sql<'q> {
    text: Cow<'static, str>,
    values: Vec<Box<dyn Value<'q> + 'q>>,
}

/// A statement written with `$N` placeholders; values are always bound, never spliced.
pub(crate) fn sql<'q>(text: impl Into<Cow<'static, str>>) -> Sql<'q> {
    Sql {
        text: text.into(),
        values: Vec::new(),
    }
}

/// A statement whose first values were gathered with its text (see `filters::Conditions`).
pub(crate) fn sql_with<'q>(
    text: impl Into<Cow<'static, str>>,
    values: Vec<Box<dyn Value<'q> + 'q>>,
) -> Sql<'q> {
    Sql {
        text: text.into(),
        values,
    }
}

/// Runs `$body` with the statement `$sql` made a query of the database `$on` names (mapped to
/// rows of `$T` when given), and `$exec` the executor to run it on.
macro_rules! run {
    ($sql:ident, $on:ident, |$q:ident, $exec:ident| $body:expr) => {
        run!(@ $sql, $on, |$q, $exec| $body, query_with)
    };
    ($sql:ident, $on:ident, as $T:ty, |$q:ident, $exec:ident| $body:expr) => {
        run!(@ $sql, $on, |$q, $exec| $body, query_as_with::<_, $T, _>)
    };
    (@ $sql:ident, $on:ident, |$q:ident, $exec:ident| $body:expr, $($query:tt)+) => {{
        let Sql { text, values } = $sql;
        let text = AssertSqlSafe(text);
        match $on.into() {
            On::SqlitePool($exec) => {
                let $q = sqlx::$($query)+(text, sqlite_args(values)?);
                $body
            }
            On::Sqlite($exec) => {
                let $q = sqlx::$($query)+(text, sqlite_args(values)?);
                $body
            }
            On::PgPool($exec) => {
                let $q = sqlx::$($query)+(text, postgres_args(values)?);
                $body
            }
            On::Postgres($exec) => {
                let $q = sqlx::$($query)+(text, postgres_args(values)?);
                $body
            }
        }
    }};
}

impl<'q> Sql<'q> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Value<'q>) -> Self {
        self.values.push(Box::new(value));
        self
    }

    /// Runs the statement; how many rows it changed.
    pub async fn execute(self, on: impl Into<On<'_>>) -> Result<u64> {
        Ok(run!(self, on, |q, exec| q
            .execute(exec)
            .await?
            .rows_affected()))
    }

    pub async fn fetch_all<T: Record + Send + Unpin>(
        self,
        on: impl Into<On<'_>>,
    ) -> Result<Vec<T>> {
        Ok(run!(self, on, as T, |q, exec| q.fetch_all(exec).await?))
    }

    pub async fn fetch_optional<T: Record + Send + Unpin>(
        self,
        on: impl Into<On<'_>>,
    ) -> Result<Option<T>> {
        Ok(run!(self, on, as T, |q, exec| q.fetch_optional(exec).await?))
    }

    pub async fn fetch_one<T: Record + Send + Unpin>(self, on: impl Into<On<'_>>) -> Result<T> {
        Ok(run!(self, on, as T, |q, exec| q.fetch_one(exec).await?))
    }

    /// The one column of the one row the statement returns.
    pub async fn fetch_value<T: Send + Unpin>(self, on: impl Into<On<'_>>) -> Result<T>
    where
        (T,): Record,
    {
        Ok(self.fetch_one::<(T,)>(on).await?.0)
    }
}

fn sqlite_args(values: Vec<Box<dyn Value<'_> + '_>>) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for v in values {
        v.add_to_sqlite(&mut args).map_err(encode_error)?;
    }
    Ok(args)
}

fn postgres_args(values: Vec<Box<dyn Value<'_> + '_>>) -> Result<PgArguments> {
    let mut args = PgArguments::default();
    for v in values {
        v.add_to_postgres(&mut args).map_err(encode_error)?;
    }
    Ok(args)
}

fn encode_error(e: BoxDynError) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(e))
}
