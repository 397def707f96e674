//! The `gridsync` command line: its commands and flags (clap), and running each command. The
//! binary's `main` only sets up logging, calls [`run`] and turns an error into one line.

pub mod accounts;
pub mod backup;
pub mod bulletin;
pub mod demo;
pub mod export;
pub mod friendly;
pub mod hub;
pub mod org_import;
pub mod schema;
pub mod serve;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::auth::client_addr::Cidr;
use crate::scope::Role;
use crate::store::{self, Store, StoreError};
use crate::telemetry::LogFormat;
use settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "gridsync",
    version,
    about = "Gridsync: offline-first field reporting server"
)]
pub struct Cli {
    /// TOML file of settings; flags and GRIDSYNC_* variables override its keys.
    #[arg(long, env = "GRIDSYNC_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (created if missing) or postgres://USER@HOST/DB
    /// [default: sqlite://gridsync.db].
    #[arg(long, env = "GRIDSYNC_DB", global = true)]
    pub db: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (migrates the database first).
    Serve(ServeArgs),
    /// Create or upgrade the database schema.
    Migrate,
    /// Fill an empty database with a demo district: org tree, users, months of reports.
    Demo(DemoArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// List and revoke devices (phones, office PCs).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// The org tree.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Write a ledger (台账) of one report kind to a .csv or .xlsx file.
    Export(ExportArgs),
    /// Write a bulletin (the published one, else a draft counted now) to an .xlsx file.
    Bulletin(BulletinArgs),
    /// Write a consistent copy of a SQLite database, also while the server runs.
    Backup(BackupArgs),
    /// Replace a SQLite database with a backup (stop the server first).
    Restore(RestoreArgs),
    /// Report kinds written as forms (a .json schema or an .xlsx workbook).
    #[command(subcommand)]
    Schema(SchemaCommand),
    /// A village office hub on the office PC: enrol it once, then run it.
    #[command(subcommand)]
    Hub(HubCommand),
}

#[derive(Debug, Subcommand)]
pub enum HubCommand {
    /// Enrol this PC as the hub an admin registered, with the code the admin was given.
    Enrol {
        /// The server's address, e.g. https://gridsync.example.gov.cn
        #[arg(long, env = "GRIDSYNC_HUB_CENTRAL")]
        central: String,
        /// The one-time enrolment code (better given as GRIDSYNC_HUB_CODE, out of the process
        /// list).
        #[arg(long, env = "GRIDSYNC_HUB_CODE", hide_env_values = true)]
        code: String,
        /// The hub's folder: its identity, key and database.
        #[arg(long, env = "GRIDSYNC_HUB_DIR", default_value = "gridsync-hub")]
        dir: PathBuf,
        /// The hub's sealing key (64 hex digits), made here if the file does not exist. Keep it
        /// outside the folder, where a copy of the folder or a stolen disk does not take it: the
        /// README shows how to seal it to the PC's TPM.
        #[arg(long, env = "GRIDSYNC_HUB_KEY_FILE")]
        key_file: PathBuf,
    },
    /// Serve the phones of the office network, and relay to the server whenever it answers.
    Run {
        /// The hub's folder, as enrolled.
        #[arg(long, env = "GRIDSYNC_HUB_DIR", default_value = "gridsync-hub")]
        dir: PathBuf,
        /// The sealing key the hub was enrolled with.
        #[arg(long, env = "GRIDSYNC_HUB_KEY_FILE")]
        key_file: PathBuf,
        /// Address to listen on for phones; port 0 picks a free one (the address is printed).
        #[arg(long, env = "GRIDSYNC_HUB_BIND", default_value = "0.0.0.0:8090")]
        bind: SocketAddr,
        /// Seconds between contacts with the server (a phone's push prompts one sooner).
        #[arg(long, env = "GRIDSYNC_HUB_EVERY", default_value_t = 60)]
        every: u64,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one (the address is printed)
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "GRIDSYNC_BIND")]
    pub bind: Option<SocketAddr>,
    /// On a database without users, create the demo district first (as `gridsync demo`).
    #[arg(long)]
    pub demo: bool,
    /// Lifetime of access tokens, in minutes [default: 15].
    #[arg(long, env = "GRIDSYNC_ACCESS_TOKEN_MINUTES")]
    pub access_token_minutes: Option<u64>,
    /// Lifetime of refresh tokens, in days: how long a phone may stay offline [default: 60].
    #[arg(long, env = "GRIDSYNC_REFRESH_TOKEN_DAYS")]
    pub refresh_token_days: Option<u64>,
    /// Lifetime of offline grants, in days: how long a phone may log in at a village office
    /// hub that cannot reach the server [default: 14].
    #[arg(long, env = "GRIDSYNC_OFFLINE_GRANT_DAYS")]
    pub offline_grant_days: Option<u64>,
    /// Failed logins allowed per client address within the login window, and per account
    /// before its logins from new devices wait [default: 5].
    #[arg(long, env = "GRIDSYNC_LOGIN_MAX_FAILURES")]
    pub login_max_failures: Option<u32>,
    /// The login window, in minutes: how long an address's failures count, and the longest
    /// an account's logins from new devices wait [default: 15].
    #[arg(long, env = "GRIDSYNC_LOGIN_WINDOW_MINUTES")]
    pub login_window_minutes: Option<u64>,
    /// A reverse proxy whose X-Forwarded-For names the client: an address or a block such as
    /// 10.0.0.0/8; repeat the flag or separate with commas [default: none, the TCP peer is the
    /// client].
    #[arg(
        long = "trusted-proxy",
        env = "GRIDSYNC_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// Memory for sync work in flight, in MiB: pushes and pulls beyond it wait their turn
    /// [default: 4].
    #[arg(long, env = "GRIDSYNC_SYNC_MEMORY_MIB")]
    pub sync_memory_mib: Option<u64>,
    /// Log lines for a terminal (human) or for a log collector (json, one object per line).
    #[arg(long, env = "GRIDSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The report kind: dispute_check, drug_control_case, satisfaction_canvass or any kind
    /// published at runtime (`gridsync schema list`).
    #[arg(long)]
    pub kind: String,
    /// Only reports found, interviewed or running on or after this day (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Only those on or before this day (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// The org unit whose reports to export [default: the whole district].
    #[arg(long)]
    pub org: Option<String>,
    /// English column headers and labels instead of Chinese.
    #[arg(long)]
    pub english: bool,
    /// For a .csv file: the log entries (mediation steps, visits) rather than the reports.
    #[arg(long)]
    pub log: bool,
    /// The file to write; its extension, .csv or .xlsx, decides the format.
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BulletinArgs {
    /// A month (2026-11), a quarter (2026-Q4) or a year (2026).
    #[arg(long)]
    pub period: String,
    /// The district, a township or a street [default: the whole district].
    #[arg(long)]
    pub org: Option<String>,
    /// The .xlsx file to write.
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The same seed on the same day gives the same district, people and report contents.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from GRIDSYNC_NEW_PASSWORD, or is generated and
    /// printed once.
    Add {
        username: String,
        /// grid_worker, village_cadre, township_staff, drug_control_officer or district_admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Id of the org unit the user works in; it must fit the role.
        #[arg(long)]
        org: String,
        /// Name shown to others [default: the username].
        #[arg(long)]
        name: Option<String>,
    },
    /// List every user.
    List,
    /// Disable a user: they can no longer log in, and their devices deliver what they hold,
    /// then wipe themselves.
    Disable { username: String },
    /// Set a user's password (from GRIDSYNC_NEW_PASSWORD, or generated and printed once) and
    /// end every session of theirs; their devices log in again and keep what they hold.
    Passwd { username: String },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List devices, revoked ones included.
    List {
        /// Only the devices of this user.
        #[arg(long)]
        user: Option<String>,
    },
    /// Cut a device off (a lost or stolen phone): it wipes its data at its next contact,
    /// whatever it holds unsent (`device list` shows how much that is).
    Revoke { id: String },
    /// Retire a device (a phone handed in): it delivers everything it holds, then wipes itself.
    Retire { id: String },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Import org units and users' placements from a CSV file (see README: Importing the org
    /// tree). Nothing is imported when any row is bad; importing the same file again changes
    /// nothing.
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Check a form without a database: print every problem and fail, or print a summary.
    Check {
        /// A .json schema or an .xlsx workbook (see README: Writing a form in Excel).
        file: PathBuf,
        /// Print the schema JSON the form means instead of the summary.
        #[arg(long)]
        print_json: bool,
    },
    /// Publish a form: check it, keep it and publish it, so phones get it at their next sync.
    /// A new version of a kind must keep what its earlier versions mean (see README).
    Publish {
        /// A .json schema or an .xlsx workbook.
        file: PathBuf,
    },
    /// Retire a published version: phones stop offering it for new reports, and its reports
    /// stay readable and editable.
    Retire {
        /// The form file that was published, or the kind's id (then give --version).
        form: String,
        /// The version to retire, with a kind id.
        #[arg(long)]
        version: Option<u32>,
    },
    /// List every version of every kind in the registry, drafts included.
    List,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The copy to write; it must not exist yet.
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A copy written by `gridsync backup`.
    pub file: PathBuf,
    /// Replace the database even when it exists.
    #[arg(long)]
    pub force: bool,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse().map_err(|e: crate::scope::UnknownRole| {
        format!(
            "{e}: use grid_worker, village_cadre, township_staff, drug_control_officer or \
             district_admin"
        )
    })
}

/// Why a command failed. [`friendly::explain`] turns each into one line for the operator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database named on the command line could not be opened, migrated or checked.
    #[error("{url}: {source}")]
    Open { url: String, source: StoreError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// A bad value on the command line or in a file; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error("config file {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Rows of an import file that are wrong, each with its line number; nothing was imported.
    #[error("nothing was imported; fix these rows and import again:\n{}", .0.join("\n"))]
    Import(Vec<String>),
    /// The server refused the demo's own changes: a defect of the demo generator.
    #[error("the demo data was refused: {0}")]
    Demo(String),
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    /// A form that could not be read or does not pass the checks.
    #[error(transparent)]
    Form(#[from] crate::forms::FormError),
    /// A change to the schema registry that was refused.
    #[error(transparent)]
    Registry(#[from] crate::catalogue::RegistryError),
    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs one command of the command line.
pub async fn run(cli: Cli) -> Result<()> {
    let settings = Settings::resolve(&cli)?;
    match cli.command {
        Command::Serve(args) => serve::serve(&settings, args.demo).await,
        Command::Migrate => {
            with_store(&settings.db, Open::Migrate, async |_| Ok(())).await?;
            say(&format!("{} is migrated", settings.db));
            Ok(())
        }
        Command::Demo(args) => {
            with_store(&settings.db, Open::Migrate, async |store| {
                let ingest = demo::ingest_for(&settings.db).await?;
                demo::fill_empty(store, &ingest, args.seed).await
            })
            .await
        }
        Command::User(command) => {
            with_store(&settings.db, Open::Existing, async |store| {
                accounts::user(store, command).await
            })
            .await
        }
        Command::Device(command) => {
            with_store(&settings.db, Open::Existing, async |store| {
                accounts::device(store, command).await
            })
            .await
        }
        Command::Org(OrgCommand::Import { file }) => {
            with_store(&settings.db, Open::Existing, async |store| {
                org_import::import(store, &file).await
            })
            .await
        }
        Command::Export(args) => {
            with_store(&settings.db, Open::Existing, async |store| {
                export::export(store, &args).await
            })
            .await
        }
        Command::Bulletin(args) => {
            with_store(&settings.db, Open::Existing, async |store| {
                bulletin::bulletin(store, &args).await
            })
            .await
        }
        Command::Backup(args) => backup::backup(&settings.db, &args.file).await,
        Command::Restore(args) => backup::restore(&settings.db, &args.file, args.force).await,
        Command::Schema(SchemaCommand::Check { file, print_json }) => {
            schema::check(&file, print_json)
        }
        Command::Schema(SchemaCommand::Publish { file }) => {
            with_store(&settings.db, Open::Existing, async |store| {
                schema::publish(store, &file).await
            })
            .await
        }
        Command::Schema(SchemaCommand::Retire { form, version }) => {
            with_store(&settings.db, Open::Existing, async |store| {
                schema::retire(store, &form, version).await
            })
            .await
        }
        Command::Hub(HubCommand::Enrol {
            central,
            code,
            dir,
            key_file,
        }) => hub::enrol(&central, &code, &dir, &key_file).await,
        Command::Hub(HubCommand::Run {
            dir,
            key_file,
            bind,
            every,
        }) => {
            let every = std::time::Duration::from_secs(every.max(1));
            hub::run(&dir, &key_file, bind, every).await
        }
        Command::Schema(SchemaCommand::List) => {
            with_store(&settings.db, Open::Existing, async |store| {
                schema::list(store).await
            })
            .await
        }
    }
}

/// Runs `command` on the database, then closes it however the command ended. The SQLite library
/// (SQLCipher) frees its own state when the process exits, and a connection that sqlx is still
/// closing on its worker thread at that moment crashes the process: every command closes its
/// store before it returns.
pub async fn with_store<T>(
    url: &str,
    how: Open,
    command: impl AsyncFnOnce(&dyn Store) -> Result<T>,
) -> Result<T> {
    let store = open(url, how).await?;
    let outcome = command(store.as_ref()).await;
    store.close().await;
    outcome
}

/// How a command opens its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Create it if missing and apply pending migrations (`serve`, `migrate`, `demo`).
    Migrate,
    /// It must exist and be migrated to this version already: an admin command never upgrades a
    /// database behind the operator's back.
    Existing,
    /// It must exist; its migrations do not matter (a backup copies whatever is there).
    AsIs,
}

/// Opens the database; the caller closes it before it returns, as [`with_store`] does.
pub async fn open(url: &str, how: Open) -> Result<Arc<dyn Store>> {
    let failed = |source| Error::Open {
        url: url.to_owned(),
        source,
    };
    if how != Open::Migrate
        && let Some(path) = settings::sqlite_path(url)
        && !path.exists()
    {
        return Err(Error::Invalid(format!(
            "there is no database at {}: check --db (or GRIDSYNC_DB), or create it with \
             `gridsync migrate`",
            path.display()
        )));
    }
    let store = store::connect(url).await.map_err(failed)?;
    let checked = match how {
        Open::Migrate => store.migrate().await,
        Open::Existing => store.check_migrations().await,
        Open::AsIs => Ok(()),
    };
    if let Err(e) = checked {
        store.close().await;
        return Err(failed(e));
    }
    Ok(store)
}

/// What a command tells the operator goes to stdout, apart from the logs on stderr.
#[expect(clippy::print_stdout, reason = "talks to the operator on the terminal")]
pub fn say(message: &str) {
    println!("{message}");
}
