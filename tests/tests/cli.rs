//! The real `gridsync` binary's commands: org import, users and devices, backup and restore,
//! configuration precedence, the friendly one-line errors, checking forms (`schema check`) and the
//! demo district, on SQLite and (where the command supports it) Postgres.

use std::process::Output;

use gridsync_e2e::field::fresh_postgres_database;
use gridsync_e2e::{Server, gridsync};
use gridsync_server::scope::{Role, Scope};
use gridsync_server::store::{
    self, ConflictQuery, Device, RefreshToken, ReportQuery, SessionStart, Via,
};

const PASSWORD: &str = "a good long password";

const TREE: &str = "\
id,parent_id,level,name,users
d,,district,平安区,
t1,d,township,青山镇,
s1,d,street,城东街道,
v1,t1,village,石桥村,
c1,s1,community,东门社区,
g1,v1,grid,石桥村第1网格,
g2,v1,grid,石桥村第2网格,
g3,c1,grid,东门社区第1网格,
";

fn sqlite(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command that must succeed, and returns what it printed.
fn ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = gridsync(args, env);
    assert!(
        out.status.success(),
        "gridsync {args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a command that must fail with one line on stderr, and returns that line.
fn fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = gridsync(args, env);
    assert!(
        !out.status.success(),
        "gridsync {args:?} succeeded: {}",
        stdout(&out)
    );
    let said = stderr(&out);
    let said = said.trim_end();
    assert!(
        !said.contains("panicked") && !said.contains("backtrace") && !said.contains("Caused by"),
        "no panic or error chain: {said}"
    );
    said.to_owned()
}

fn one_line(said: &str) -> &str {
    assert_eq!(said.lines().count(), 1, "one line, got: {said}");
    said
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

async fn postgres(prefix: &str) -> String {
    fresh_postgres_database(prefix).await
}

async fn org_import_places_users_and_changes_nothing_when_repeated(db: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(&["--db", db, "migrate"], &[]);
    let tree = write(&dir, "tree.csv", TREE);
    let said = ok(&["--db", db, "org", "import", &tree], &[]);
    assert!(said.contains("8 units created"), "{said}");
    ok(
        &[
            "--db",
            db,
            "user",
            "add",
            "wang",
            "--role",
            "grid_worker",
            "--org",
            "g1",
        ],
        &[("GRIDSYNC_NEW_PASSWORD", PASSWORD)],
    );
    let moved = write(
        &dir,
        "moved.csv",
        &TREE.replace(
            "g2,v1,grid,石桥村第2网格,",
            "g2,v1,grid,石桥村二组网格,wang",
        ),
    );
    let said = ok(&["--db", db, "org", "import", &moved], &[]);
    assert!(
        said.contains("0 units created, 1 renamed, 1 users placed"),
        "{said}"
    );
    let again = ok(&["--db", db, "org", "import", &moved], &[]);
    assert!(
        again.contains("0 units created, 0 renamed, 0 users placed"),
        "{again}"
    );
    let store = store::open(db).await.expect("open");
    let wang = store
        .user_by_username("wang")
        .await
        .expect("read")
        .expect("wang");
    assert_eq!(wang.org_unit_id, "g2");
    let g2 = store.org_unit("g2").await.expect("read").expect("g2");
    assert_eq!(g2.name, "石桥村二组网格");
    assert_eq!(g2.path, "/d/t1/v1/g2/");
    assert_eq!(store.org_units().await.expect("units").len(), 8);

    // A drug-control case of g2 is assigned to wang: moving him back to g1 would leave it with
    // nobody, so the import is refused whole.
    let admin = store::Writer {
        user_id: "admin".into(),
        device_id: None,
        scope: Scope::for_role("admin", Role::DistrictAdmin, "/d/"),
        now: 1_800_000_000,
        hold_out_of_scope: false,
        via: Via::Direct,
    };
    let mut case = gridsync_fixtures::reports::drug_case(1, "g2", "admin", &wang.id);
    let push = gridsync_fixtures::reports::push_all(&mut [&mut case]);
    gridsync_fixtures::reports::ingest(store.as_ref(), &admin, &push)
        .await
        .expect("ingest");
    let back = write(
        &dir,
        "back.csv",
        &TREE.replace("g1,v1,grid,石桥村第1网格,", "g1,v1,grid,石桥村第1网格,wang"),
    );
    let refused = fails(&["--db", db, "org", "import", &back], &[]);
    assert!(
        refused.contains("wang would no longer see the cases assigned to them"),
        "{refused}"
    );
    let wang = store
        .user_by_username("wang")
        .await
        .expect("read")
        .expect("wang");
    assert_eq!(wang.org_unit_id, "g2", "nothing imported");
}

#[tokio::test]
async fn org_import_places_users_and_changes_nothing_when_repeated_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    org_import_places_users_and_changes_nothing_when_repeated(&sqlite(&dir, "g.db")).await;
}

#[tokio::test]
async fn org_import_places_users_and_changes_nothing_when_repeated_on_postgres() {
    org_import_places_users_and_changes_nothing_when_repeated(&postgres("cli_import").await).await;
}

async fn org_import_with_bad_rows_names_each_line_and_imports_nothing(db: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(&["--db", db, "migrate"], &[]);
    let bad = write(
        &dir,
        "bad.csv",
        "id,parent_id,level,name,users\n\
         d,,district,平安区,\n\
         t1,d,town,青山镇,\n\
         v1,nowhere,village,石桥村,\n\
         g1,d,grid,第1网格,\n\
         Bad_Id,d,township,X,\n\
         s1,d,street\n\
         s2,d,street,城西街道,nobody\n",
    );
    let said = fails(&["--db", db, "org", "import", &bad], &[]);
    assert!(said.starts_with("gridsync: nothing was imported"), "{said}");
    for (line, what) in [
        (3, "level `town` must be"),
        (4, "parent nowhere is neither"),
        (5, "a grid cannot be placed under the district d"),
        (6, "id `Bad_Id` must be"),
        (7, "expected 5 columns, found 3"),
        (8, "there is no user nobody"),
    ] {
        assert!(
            said.contains(&format!("line {line}: {what}")),
            "line {line} is named with `{what}`: {said}"
        );
    }
    assert!(
        !said.contains("line 2:"),
        "the good row is not blamed: {said}"
    );
    let store = store::open(db).await.expect("open");
    assert!(
        store.org_units().await.expect("units").is_empty(),
        "nothing was imported"
    );
    let wrong_header = write(&dir, "header.csv", "id,name\nd,平安区\n");
    let said = fails(&["--db", db, "org", "import", &wrong_header], &[]);
    assert!(said.contains("line 1: the header must be"), "{said}");
}

#[tokio::test]
async fn org_import_with_bad_rows_names_each_line_and_imports_nothing_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    org_import_with_bad_rows_names_each_line_and_imports_nothing(&sqlite(&dir, "g.db")).await;
}

#[tokio::test]
async fn org_import_with_bad_rows_names_each_line_and_imports_nothing_on_postgres() {
    org_import_with_bad_rows_names_each_line_and_imports_nothing(&postgres("cli_bad_import").await)
        .await;
}

async fn user_and_device_commands_add_list_disable_and_revoke(db: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    ok(&["--db", db, "migrate"], &[]);
    ok(
        &["--db", db, "org", "import", &write(&dir, "t.csv", TREE)],
        &[],
    );
    let added = ok(
        &[
            "--db",
            db,
            "user",
            "add",
            "li",
            "--role",
            "village_cadre",
            "--org",
            "v1",
            "--name",
            "李敏",
        ],
        &[],
    );
    assert!(
        added.contains("password: "),
        "a generated password is shown once: {added}"
    );
    let misplaced = fails(
        &[
            "--db",
            db,
            "user",
            "add",
            "zhao",
            "--role",
            "grid_worker",
            "--org",
            "v1",
        ],
        &[("GRIDSYNC_NEW_PASSWORD", PASSWORD)],
    );
    assert!(
        one_line(&misplaced).contains("must be placed at a grid unit"),
        "{misplaced}"
    );
    let weak = fails(
        &[
            "--db",
            db,
            "user",
            "add",
            "zhao",
            "--role",
            "grid_worker",
            "--org",
            "g1",
        ],
        &[("GRIDSYNC_NEW_PASSWORD", "short")],
    );
    assert!(weak.contains("at least 10 characters"), "{weak}");
    let bad_role = gridsync(
        &[
            "--db", db, "user", "add", "zhao", "--role", "boss", "--org", "g1",
        ],
        &[],
    );
    assert!(!bad_role.status.success());
    assert!(
        stderr(&bad_role).contains("unknown role boss"),
        "{}",
        stderr(&bad_role)
    );

    let store = store::open(db).await.expect("open");
    let li = store
        .user_by_username("li")
        .await
        .expect("read")
        .expect("li");
    assert_eq!(
        (li.role, li.display_name.as_str()),
        (Role::VillageCadre, "李敏")
    );
    for id in ["li-phone", "li-pc"] {
        store
            .upsert_device(&Device {
                id: id.into(),
                user_id: li.id.clone(),
                // A phone names itself: an escape sequence in the name must not reach the
                // operator's terminal.
                name: format!("{id} of li\u{1b}[2J"),
                created_at: 1,
                last_seen_at: 2,
                revoked_at: None,
                cursor: 0,
                pending_changes: None,
                pending_at: None,
                retiring_at: None,
                scope_key: None,
                public_key: None,
            })
            .await
            .expect("device");
    }
    let list = ok(&["--db", db, "user", "list"], &[]);
    assert!(
        list.lines()
            .any(|l| l.starts_with("li ") && l.contains("village_cadre")),
        "{list}"
    );
    let devices = ok(&["--db", db, "device", "list", "--user", "li"], &[]);
    assert!(
        devices.contains("li-phone") && devices.contains("li-pc"),
        "{devices}"
    );
    assert!(
        !devices.contains('\u{1b}') && devices.contains("li-phone of li\\u{1b}[2J"),
        "device names are printed escaped: {devices:?}"
    );

    // A new password ends every session of the user; the devices stay theirs.
    let started = store
        .start_session(
            &RefreshToken {
                token_hash: vec![7; 32],
                device_id: "li-pc".into(),
                family: "li-session".into(),
                expires_at: i64::MAX,
                used_at: None,
                replaces: None,
            },
            &li.id,
            &li.password_hash,
        )
        .await
        .expect("session");
    assert_eq!(started, SessionStart::Started);
    let said = ok(
        &["--db", db, "user", "passwd", "li"],
        &[("GRIDSYNC_NEW_PASSWORD", "another good long password")],
    );
    assert!(said.contains("sessions ended: 1"), "{said}");
    assert!(
        !store
            .session_live("li-session", "li-pc")
            .await
            .expect("read"),
        "the session ended"
    );
    let li = store
        .user_by_username("li")
        .await
        .expect("read")
        .expect("li");
    assert!(
        gridsync_server::auth::password::verify(
            "another good long password".into(),
            Some(li.password_hash)
        )
        .await
        .expect("verify"),
        "the new password is set"
    );
    assert!(
        store
            .device("li-pc")
            .await
            .expect("read")
            .expect("pc")
            .revoked_at
            .is_none()
    );
    let generated = ok(&["--db", db, "user", "passwd", "li"], &[]);
    assert!(generated.contains("shown only this once"), "{generated}");
    assert!(
        fails(&["--db", db, "user", "passwd", "nobody"], &[]).contains("there is no user nobody"),
        "an unknown user is named"
    );

    ok(&["--db", db, "device", "revoke", "li-phone"], &[]);
    let phone = store
        .device("li-phone")
        .await
        .expect("read")
        .expect("phone");
    assert!(phone.revoked_at.is_some(), "the phone is revoked");
    let unknown = fails(&["--db", db, "device", "revoke", "nope"], &[]);
    assert!(
        one_line(&unknown).contains("there is no device nope"),
        "{unknown}"
    );

    let devices = ok(&["--db", db, "device", "list", "--user", "li"], &[]);
    assert!(
        devices
            .lines()
            .any(|l| l.contains("li-phone") && l.contains("revoked")),
        "{devices}"
    );
    let disabled = ok(&["--db", db, "user", "disable", "li"], &[]);
    assert!(
        disabled.contains("li-pc"),
        "the remaining device retires: it delivers, then wipes: {disabled}"
    );
    let li = store
        .user_by_username("li")
        .await
        .expect("read")
        .expect("li");
    assert!(li.disabled);
    let pc = store.device("li-pc").await.expect("read").expect("pc");
    assert!(
        pc.retiring_at.is_some() && pc.revoked_at.is_none(),
        "{pc:?}"
    );
    let devices = ok(&["--db", db, "device", "list", "--user", "li"], &[]);
    assert!(
        devices
            .lines()
            .any(|l| l.contains("li-pc") && l.contains("retiring")),
        "{devices}"
    );
    ok(&["--db", db, "device", "retire", "li-pc"], &[]);
    let gone = fails(&["--db", db, "device", "retire", "li-phone"], &[]);
    assert!(
        one_line(&gone).contains("no live device li-phone"),
        "{gone}"
    );
    let audit = store.audit_log(10).await.expect("audit");
    for action in [
        "user_create",
        "device_revoke",
        "user_update",
        "device_retire",
    ] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "{action} is audited: {audit:?}"
        );
    }
}

#[tokio::test]
async fn user_and_device_commands_add_list_disable_and_revoke_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    user_and_device_commands_add_list_disable_and_revoke(&sqlite(&dir, "g.db")).await;
}

#[tokio::test]
async fn user_and_device_commands_add_list_disable_and_revoke_on_postgres() {
    user_and_device_commands_add_list_disable_and_revoke(&postgres("cli_users").await).await;
}

#[tokio::test]
async fn a_backup_of_a_running_server_restores_the_data_as_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(&dir, "live.db");
    // The tree first: a server's first start would otherwise make a root of its own.
    ok(&["--db", &db, "migrate"], &[]);
    ok(
        &["--db", &db, "org", "import", &write(&dir, "t.csv", TREE)],
        &[],
    );
    let server = Server::start(&db, PASSWORD).await;
    let env = [("GRIDSYNC_NEW_PASSWORD", PASSWORD)];
    ok(
        &[
            "--db",
            &db,
            "user",
            "add",
            "wang",
            "--role",
            "grid_worker",
            "--org",
            "g1",
        ],
        &env,
    );
    let backup = dir.path().join("backup.db").display().to_string();
    ok(&["--db", &db, "backup", &backup], &[]);
    let again = fails(&["--db", &db, "backup", &backup], &[]);
    assert!(one_line(&again).contains("exists already"), "{again}");
    // After the backup: another user, and the server stops.
    ok(
        &[
            "--db",
            &db,
            "user",
            "add",
            "zhang",
            "--role",
            "grid_worker",
            "--org",
            "g2",
        ],
        &env,
    );
    assert!(server.stop().await.success());

    let refused = fails(&["--db", &db, "restore", &backup], &[]);
    assert!(one_line(&refused).contains("--force"), "{refused}");
    let not_a_backup = write(&dir, "junk.db", "not a database at all, just text");
    let junk = fails(&["--db", &db, "restore", "--force", &not_a_backup], &[]);
    assert!(one_line(&junk).contains("junk.db"), "{junk}");
    ok(&["--db", &db, "restore", "--force", &backup], &[]);

    let store = store::open(&db).await.expect("open the restored database");
    assert!(
        store
            .user_by_username("wang")
            .await
            .expect("read")
            .is_some()
    );
    assert!(
        store
            .user_by_username("zhang")
            .await
            .expect("read")
            .is_none(),
        "the user added after the backup is gone"
    );
    assert_eq!(store.org_units().await.expect("units").len(), 8);
    drop(store);
    // The restored database serves, and the first admin's password still works.
    let server = Server::start(&db, "not the password").await;
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(
            &serde_json::json!({"username": "admin", "password": PASSWORD,
            "device_id": "pc", "device_name": "pc"}),
        )
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    assert!(server.stop().await.success());
}

/// Commands, failed ones too, and a server stopped with SIGTERM close their SQLite database
/// before they exit: the writer, closed last, folds the write-ahead log into the file and removes
/// it. A connection left to close on its own thread as the process exits crashed it
/// (`Store::close`), and left the log behind.
#[tokio::test]
async fn commands_and_a_stopped_server_close_their_sqlite_database_before_exiting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(&dir, "closed.db");
    let log = dir.path().join("closed.db-wal");
    ok(&["--db", &db, "migrate"], &[]);
    assert!(!log.exists(), "migrate left the write-ahead log");
    ok(
        &["--db", &db, "org", "import", &write(&dir, "t.csv", TREE)],
        &[],
    );
    assert!(!log.exists(), "org import left the write-ahead log");
    fails(
        &[
            "--db",
            &db,
            "user",
            "add",
            "li",
            "--role",
            "village_cadre",
            "--org",
            "nowhere",
            "--name",
            "李敏",
        ],
        &[],
    );
    assert!(!log.exists(), "a failed user add left the write-ahead log");
    let server = Server::start(&db, PASSWORD).await;
    assert!(log.exists(), "a serving server keeps its write-ahead log");
    assert!(server.stop().await.success());
    assert!(!log.exists(), "a stopped server left the write-ahead log");
}

/// A server sent SIGTERM the moment it says it is serving still stops gracefully and closes its
/// database. Its signal handlers used to be set only when axum first ran its shutdown task, so a
/// signal sent that early killed it with SIGTERM's default action.
#[test]
fn a_server_sent_sigterm_as_soon_as_it_says_it_serves_stops_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(&dir, "early.db");
    let mut child = Command::new(gridsync_e2e::server_binary())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("GRIDSYNC_DB", &db)
        .env("GRIDSYNC_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start gridsync");
    // Kept open until the exit, so that nothing the server says on stopping meets a closed pipe.
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("read what gridsync says");
        if line.starts_with("gridsync is serving on ") {
            let pid = child.id().to_string();
            let kill = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(kill.expect("run kill").success());
            break;
        }
        said.push(line);
    }
    let status = child.wait().expect("wait for gridsync");
    drop(lines);
    assert!(status.success(), "{status} after saying {said:?}");
    assert!(
        !dir.path().join("early.db-wal").exists(),
        "the log was left"
    );
}

#[tokio::test]
async fn postgres_backup_and_restore_point_to_pg_dump_and_pg_restore() {
    let db = postgres("cli_pg_backup").await;
    ok(&["--db", &db, "migrate"], &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let to = dir.path().join("b.db").display().to_string();
    let said = fails(&["--db", &db, "backup", &to], &[]);
    assert!(one_line(&said).contains("pg_dump"), "{said}");
    let said = fails(&["--db", &db, "restore", &to], &[]);
    assert!(one_line(&said).contains("pg_restore"), "{said}");
}

#[tokio::test]
async fn settings_come_from_the_flag_then_the_environment_then_the_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("GRIDSYNC_NEW_PASSWORD", PASSWORD)];
    let tree = write(&dir, "t.csv", TREE);
    let dbs: Vec<String> = ["file", "env", "flag"]
        .iter()
        .map(|name| {
            let db = sqlite(&dir, &format!("{name}.db"));
            ok(&["--db", &db, "migrate"], &[]);
            ok(&["--db", &db, "org", "import", &tree], &[]);
            ok(
                &[
                    "--db",
                    &db,
                    "user",
                    "add",
                    &format!("in-{name}"),
                    "--role",
                    "grid_worker",
                    "--org",
                    "g1",
                ],
                &env,
            );
            db
        })
        .collect();
    let config = write(
        &dir,
        "gridsync.toml",
        &format!("db = \"{}\"\nbind = \"127.0.0.1:0\"\n", dbs[0]),
    );

    let listed = ok(&["--config", &config, "user", "list"], &[]);
    assert!(listed.contains("in-file"), "the file's db: {listed}");
    let listed = ok(&["user", "list"], &[("GRIDSYNC_CONFIG", &config)]);
    assert!(
        listed.contains("in-file"),
        "GRIDSYNC_CONFIG names the file: {listed}"
    );
    let listed = ok(
        &["--config", &config, "user", "list"],
        &[("GRIDSYNC_DB", &dbs[1])],
    );
    assert!(
        listed.contains("in-env"),
        "the variable beats the file: {listed}"
    );
    let listed = ok(
        &["--config", &config, "--db", &dbs[2], "user", "list"],
        &[("GRIDSYNC_DB", &dbs[1])],
    );
    assert!(
        listed.contains("in-flag"),
        "the flag beats the variable: {listed}"
    );

    let typo = write(
        &dir,
        "typo.toml",
        "db = \"sqlite://x.db\"\nbnid = \"127.0.0.1:1\"\n",
    );
    let said = fails(&["--config", &typo, "user", "list"], &[]);
    assert!(said.contains("line 2") && said.contains("bnid"), "{said}");
    let missing = dir.path().join("none.toml").display().to_string();
    let said = fails(&["--config", &missing, "user", "list"], &[]);
    assert!(
        one_line(&said).contains("none.toml does not exist"),
        "{said}"
    );
}

#[tokio::test]
async fn each_startup_failure_is_one_line_that_says_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");

    let said = fails(&["--db", "mysql://db/gridsync", "migrate"], &[]);
    assert!(one_line(&said).contains("use --db sqlite://PATH"), "{said}");

    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("addr").port();
    drop(free);
    let said = fails(
        &[
            "--db",
            &format!("postgres://gs:secret@127.0.0.1:{port}/g"),
            "migrate",
        ],
        &[],
    );
    assert!(one_line(&said).contains("connection refused"), "{said}");
    assert!(
        !said.contains("secret"),
        "the password is not repeated: {said}"
    );

    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    let db = sqlite(&dir, "g.db");
    let said = fails(&["--db", &db, "serve", "--bind", &addr], &[]);
    assert!(
        one_line(&said).contains("already in use") && said.contains("--bind"),
        "{said}"
    );

    let said = fails(
        &["--db", &sqlite(&dir, "nothing-here.db"), "user", "list"],
        &[],
    );
    assert!(one_line(&said).contains("gridsync migrate"), "{said}");

    let pg = postgres("cli_unmigrated").await;
    let said = fails(&["--db", &pg, "user", "list"], &[]);
    assert!(one_line(&said).contains("run `gridsync migrate`"), "{said}");

    for db in [db.clone(), pg] {
        ok(&["--db", &db, "migrate"], &[]);
        let store = store::connect(&db).await.expect("connect");
        drop(store);
        mark_migrated_by_a_newer_gridsync(&db).await;
        for command in [&["user", "list"][..], &["migrate"][..]] {
            let args: Vec<&str> = ["--db", db.as_str()]
                .iter()
                .chain(command)
                .copied()
                .collect();
            let said = fails(&args, &[]);
            assert!(
                one_line(&said).contains("migration 9999") && said.contains("newer gridsync"),
                "{said}"
            );
        }
    }

    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("dir");
    make_read_only(&locked);
    let said = fails(
        &[
            "--db",
            &format!("sqlite://{}/g.db", locked.display()),
            "migrate",
        ],
        &[],
    );
    assert!(one_line(&said).contains("writable"), "{said}");
    undo_read_only(&locked);
}

/// Records a migration this binary does not have, as a newer gridsync would have.
async fn mark_migrated_by_a_newer_gridsync(db: &str) {
    use sqlx::Connection;
    let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES (9999, 'from the future', TRUE, X'00', 0)";
    if db.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(db).await.expect("connect");
        sqlx::query(sql).execute(&mut c).await.expect("insert");
    } else {
        let mut c = sqlx::PgConnection::connect(db).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql.replace("X'00'", "'\\x00'::bytea")))
            .execute(&mut c)
            .await
            .expect("insert");
    }
}

/// A directory no one may write to. Root ignores permission bits, so as root the directory is
/// also made immutable; the test fails if the directory still takes a file.
fn make_read_only(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    if std::fs::write(dir.join("probe"), b"x").is_ok() {
        std::fs::remove_file(dir.join("probe")).expect("remove probe");
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .expect("run chattr");
        assert!(status.success(), "chattr +i {}", dir.display());
    }
    assert!(
        std::fs::write(dir.join("probe"), b"x").is_err(),
        "{} is still writable",
        dir.display()
    );
}

fn undo_read_only(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    // Fails harmlessly where the attribute was never set.
    let _ = std::process::Command::new("chattr")
        .arg("-i")
        .arg(dir)
        .status();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Checks the demo district in `db`, filled by `gridsync demo` or `gridsync serve --demo`.
async fn demo_data_passes_validation_and_holds_open_conflicts(db: &str) {
    let store = store::open(db).await.expect("open");
    let admin = store
        .user_by_username("admin")
        .await
        .expect("read")
        .expect("admin");
    let scope = Scope::for_role(&admin.id, Role::DistrictAdmin, "/pingan/");
    let now = gridsync_server::clock::now();
    let mut counts = std::collections::HashMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_reports(
                &scope,
                &ReportQuery {
                    after: after.clone(),
                    limit: 500,
                    ..ReportQuery::default()
                },
            )
            .await
            .expect("list");
        for report in &page.items {
            assert_eq!(
                report.problems,
                serde_json::json!([]),
                "report {} ({}) passes validation",
                report.id,
                report.kind
            );
            *counts.entry(report.kind.clone()).or_insert(0) += 1;
            let changes = store.changes_of(&report.id).await.expect("changes");
            assert!(
                changes.iter().all(|c| c.time <= now),
                "report {} has an edit dated in the future",
                report.id
            );
        }
        if !page.more {
            break;
        }
        let last = page.items.last().expect("a full page");
        after = Some((last.updated_at, last.id.to_string()));
    }
    assert!(counts["dispute_check"] > 1000, "{counts:?}");
    assert!(counts["drug_control_case"] > 50, "{counts:?}");
    assert!(counts["satisfaction_canvass"] > 1000, "{counts:?}");
    let conflicts = store
        .list_conflicts(
            &scope,
            &ConflictQuery {
                limit: 200,
                ..ConflictQuery::default()
            },
        )
        .await
        .expect("conflicts");
    assert!(conflicts.total >= 5, "open conflicts: {}", conflicts.total);
    assert!(
        conflicts
            .items
            .iter()
            .any(|c| c.conflict.path == "fields.risk_level")
    );
    exports_hold_every_report(db, &counts);
    bulletins_are_written_from_the_command_line(db);
    // A demo database is not filled twice.
    let said = fails(&["--db", db, "demo"], &[]);
    assert!(one_line(&said).contains("empty database"), "{said}");
}

/// `gridsync bulletin` writes last month's published bulletin of the demo district, this
/// month's as a draft, and refuses a period it cannot read or a file that is not a workbook.
fn bulletins_are_written_from_the_command_line(db: &str) {
    use gridsync_server::bulletin::BulletinPeriod;
    let dir = tempfile::tempdir().expect("dir");
    let today = gridsync_server::stats::Day::of_unix(gridsync_server::clock::now()).to_string();
    let this_month = BulletinPeriod::parse(&today[..7]).expect("this month");
    let out = dir.path().join("bulletin.xlsx");
    let out = out.to_str().expect("utf-8 path");
    let said = ok(
        &[
            "--db",
            db,
            "bulletin",
            "--period",
            &this_month.previous_name,
            out,
        ],
        &[],
    );
    assert!(said.contains("revision 1 as published"), "{said}");
    let bytes = std::fs::read(out).expect("the workbook");
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).expect("a workbook");
    use calamine::Reader;
    assert_eq!(book.sheet_names()[..3], ["概况", "乡镇排名", "街道排名"]);
    let towns = book.worksheet_range("乡镇排名").expect("townships");
    assert_eq!(towns.height(), 4, "three rural townships under the header");
    let said = ok(
        &[
            "--db",
            db,
            "bulletin",
            "--period",
            &this_month.name,
            "--org",
            "qingshan",
            out,
        ],
        &[],
    );
    assert!(said.contains("a draft"), "{said}");
    let said = fails(&["--db", db, "bulletin", "--period", "2026-13", out], &[]);
    assert!(one_line(&said).contains("--period"), "{said}");
    let said = fails(
        &["--db", db, "bulletin", "--period", "2026-11", "b.csv"],
        &[],
    );
    assert!(one_line(&said).contains(".xlsx"), "{said}");
}

/// `gridsync export` writes a ledger of every report of a kind, CSV or XLSX as the file name
/// says, and refuses a kind or a file name it cannot honour in one line.
fn exports_hold_every_report(db: &str, counts: &std::collections::HashMap<String, usize>) {
    let dir = tempfile::tempdir().expect("dir");
    for (kind, file) in [
        ("dispute_check", "disputes.csv"),
        ("drug_control_case", "drug.xlsx"),
    ] {
        let out = dir.path().join(file);
        let out = out.to_str().expect("utf-8 path");
        let said = ok(&["--db", db, "export", "--kind", kind, out], &[]);
        assert!(
            said.contains(&format!("{} reports of {kind}", counts[kind])),
            "{said}"
        );
        let bytes = std::fs::read(out).expect("the ledger was written");
        if file.ends_with(".csv") {
            assert!(
                bytes.starts_with("\u{feff}编号".as_bytes()),
                "BOM, then Chinese headers"
            );
        } else {
            assert!(bytes.starts_with(b"PK"), "an XLSX is a zip file");
        }
    }
    let out = dir.path().join("ledger.txt");
    let said = fails(
        &[
            "--db",
            db,
            "export",
            "--kind",
            "dispute_check",
            out.to_str().expect("path"),
        ],
        &[],
    );
    assert!(one_line(&said).contains(".csv or .xlsx"), "{said}");
    let out = dir.path().join("ledger.csv");
    let said = fails(
        &[
            "--db",
            db,
            "export",
            "--kind",
            "parking",
            out.to_str().expect("path"),
        ],
        &[],
    );
    assert!(one_line(&said).contains("parking"), "{said}");
    assert!(!out.exists(), "nothing written for a refused export");
}

#[tokio::test]
async fn serve_demo_serves_a_demo_district_that_passes_validation_and_holds_conflicts_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sqlite(&dir, "demo.db");
    let server = Server::start_with(&db, "unused: the demo makes admin", &["--demo"]).await;
    assert!(
        server.said.iter().any(|l| l.contains("gridsync-demo")),
        "the demo password is shown: {:?}",
        server.said
    );
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(
            &serde_json::json!({"username": "cadre-shiqiao", "password": "gridsync-demo",
            "device_id": "office", "device_name": "office pc"}),
        )
        .send()
        .await
        .expect("login")
        .error_for_status()
        .expect("a demo cadre logs in")
        .json()
        .await
        .expect("tokens");
    let reports: serde_json::Value = http
        .get(format!("{}/api/v1/reports?kind=dispute_check", server.base))
        .bearer_auth(tokens["access_token"].as_str().expect("token"))
        .send()
        .await
        .expect("reports")
        .json()
        .await
        .expect("report list");
    assert!(
        reports["total"].as_i64().is_some_and(|n| n > 50),
        "the cadre sees the village's disputes: {}",
        reports["total"]
    );
    assert!(server.stop().await.success());
    demo_data_passes_validation_and_holds_open_conflicts(&db).await;
}

#[tokio::test]
async fn demo_data_passes_validation_and_holds_open_conflicts_on_postgres() {
    let db = postgres("cli_demo").await;
    let said = ok(&["--db", &db, "demo", "--seed", "7"], &[]);
    assert!(
        said.contains("gridsync-demo"),
        "the demo password is shown: {said}"
    );
    demo_data_passes_validation_and_holds_open_conflicts(&db).await;
}

/// A small form written the way an office writes one in Excel; `broken` leaves out a label and
/// names an access mode that does not exist.
fn flood_check_workbook(dir: &tempfile::TempDir, name: &str, broken: bool) -> String {
    let mut book = rust_xlsxwriter::Workbook::new();
    let survey = book.add_worksheet().set_name("survey").unwrap();
    let rows: [[&str; 6]; 6] = [
        [
            "type",
            "name",
            "label::zh",
            "label::en",
            "required",
            "constraint",
        ],
        ["select_one levels", "level", "水位", "Level", "yes", ""],
        [
            "decimal",
            "depth",
            if broken { "" } else { "水深" },
            "Depth",
            "",
            ". >= 0",
        ],
        ["begin log", "checks", "巡查记录", "Checks", "", ""],
        ["date", "date", "巡查日期", "Date", "yes", ""],
        ["end log", "", "", "", "", ""],
    ];
    for (r, row) in rows.iter().enumerate() {
        survey.write_row(r as u32, 0, *row).unwrap();
    }
    let choices = book.add_worksheet().set_name("choices").unwrap();
    for (r, row) in [
        ["list_name", "name", "label::zh"],
        ["levels", "low", "低"],
        ["levels", "high", "高"],
    ]
    .iter()
    .enumerate()
    {
        choices.write_row(r as u32, 0, *row).unwrap();
    }
    let settings = book.add_worksheet().set_name("settings").unwrap();
    settings
        .write_row(
            0,
            0,
            [
                "form_id",
                "version",
                "form_title::zh",
                "form_title::en",
                "access",
            ],
        )
        .unwrap();
    let access = if broken { "secret" } else { "scope" };
    settings
        .write_row(
            1,
            0,
            ["flood_check", "1", "汛期排查", "Flood check", access],
        )
        .unwrap();
    let path = dir.path().join(name);
    book.save(&path).unwrap();
    path.display().to_string()
}

#[test]
fn schema_check_refuses_a_new_version_of_a_built_in_kind_that_breaks_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let v1: serde_json::Value = serde_json::from_str(include_str!(
        "../../sync-core/schemas/dispute_check.v1.json"
    ))
    .unwrap();
    let mut v2 = v1.clone();
    v2["version"] = 2.into();
    let fields = v2["fields"].as_array_mut().unwrap();
    let mut hotline = fields.iter().find(|f| f["id"] == "place").unwrap().clone();
    hotline["id"] = "hotline_ticket".into();
    fields.push(hotline);
    let additive = write(&dir, "v2.json", &v2.to_string());
    assert!(ok(&["schema", "check", &additive], &[]).starts_with("dispute_check version 2"));

    let fields = v2["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["id"] != "place");
    fields.iter_mut().find(|f| f["id"] == "found_on").unwrap()["type"] = "text".into();
    let breaking = write(&dir, "v2-breaking.json", &v2.to_string());
    let said = fails(&["schema", "check", &breaking], &[]);
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "gridsync: version 2 of dispute_check would change what its earlier reports mean:",
            "  field `place` of version 1 is missing",
            "  field `found_on` is date in version 1 and cannot become text",
        ],
        "{said}"
    );
    let same = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sync-core/schemas/dispute_check.v1.json"
    );
    assert!(ok(&["schema", "check", same], &[]).starts_with("dispute_check version 1"));
}

#[test]
fn schema_check_summarises_a_good_form_and_lists_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = flood_check_workbook(&dir, "flood.xlsx", false);
    let summary = ok(&["schema", "check", &good], &[]);
    for line in [
        "flood_check version 1: 汛期排查 / Flood check",
        "access: scope",
        "- level (single_choice, required): 水位 / Level",
        "    choices: low 低, high 高",
        "log checks: 巡查记录 / Checks",
        "  - date (date, required): 巡查日期 / Date",
    ] {
        assert!(
            summary.lines().any(|l| l == line),
            "{line:?} in:\n{summary}"
        );
    }
    let json = ok(&["schema", "check", "--print-json", &good], &[]);
    let schema = gridsync_core::schema::Schema::from_json(&json).expect("the printed JSON loads");
    assert_eq!(schema.field("depth").and_then(|f| f.min), Some(0.0));

    let builtin = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sync-core/schemas/drug_control_case.v1.json"
    );
    assert!(
        ok(&["schema", "check", builtin], &[]).contains("access: restricted to `assigned_worker`")
    );

    let bad = flood_check_workbook(&dir, "bad.xlsx", true);
    let said = fails(&["schema", "check", &bad], &[]);
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        [
            "gridsync: the workbook has problems; fix each and check again:",
            "survey!C3 (label::zh): missing",
            "settings!E2 (access): unknown access `secret`; use scope, restricted or anonymous",
        ]
    );

    let not_xlsx = write(&dir, "notes.xlsx", "kind,version\n");
    assert!(
        one_line(&fails(&["schema", "check", &not_xlsx], &[])).contains("not an XLSX workbook")
    );
    let csv = write(&dir, "form.csv", "kind,version\n");
    assert!(
        one_line(&fails(&["schema", "check", &csv], &[]))
            .contains("a .json schema or an .xlsx workbook")
    );
}
