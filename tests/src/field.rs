//! Fixtures of the field-client tests: a district with one grid, two people who edit its reports
//! on phones, and a TCP relay that counts bytes and can cut the line.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gridsync_fixtures::fixture::Fixture;
use gridsync_fixtures::org::OrgTree;
use gridsync_fixtures::people::Person;
use gridsync_mobile::{ClientConfig, GeoPoint, NewAttachment};
use gridsync_server::scope::Role;

pub use gridsync_fixtures::databases::fresh_postgres_database;

/// The password of every seeded user (and of the first admin, `admin`).
pub const PASSWORD: &str = "field test password";
/// The grid every seeded report belongs to.
pub const GRID: &str = "g1";

/// People seeded by [`seed`]: (username, role, org unit). Both phones' users may edit reports
/// of grid g1: the grid worker of the grid and a cadre of its village. `admin` is seeded too,
/// since a server that already has users creates no first admin.
pub const PEOPLE: [(&str, Role, &str); 3] = [
    ("wang", Role::GridWorker, "g1"),
    ("li", Role::VillageCadre, "v1"),
    ("admin", Role::DistrictAdmin, "d"),
];

/// The org tree d → t1 → v1 → g1 and [`PEOPLE`].
pub fn district() -> Fixture {
    Fixture::new(OrgTree::one_grid())
        .people(PEOPLE.map(|(name, role, unit)| person(name, role, unit)))
}

/// A person of the field tests: id `user-NAME`, password [`PASSWORD`].
pub fn person(name: &str, role: Role, unit: &str) -> Person {
    Person::new(name, role, unit)
        .id(&format!("user-{name}"))
        .password(PASSWORD)
}

/// Revokes `device` as the first admin, over the HTTP API, from a blocking thread of a test's
/// runtime.
pub fn revoke(base: &str, device: &str) {
    tokio::runtime::Handle::current().block_on(async {
        let admin =
            gridsync_fixtures::phone::Phone::login(base, "admin", PASSWORD, "admin-console")
                .await
                .expect("login");
        let status = reqwest::Client::new()
            .post(format!("{base}/api/v1/devices/{device}/revoke"))
            .bearer_auth(&admin.token)
            .send()
            .await
            .expect("revoke")
            .status();
        assert_eq!(status.as_u16(), 204);
    });
}

/// Seeds [`district`] into the database at `db` (migrating it first). Run before the server
/// starts.
pub async fn seed(db: &str) {
    district()
        .seed_database(db)
        .await
        .expect("seed the field district");
}

/// A TCP relay on 127.0.0.1 in front of a server: counts the bytes each way (headers included:
/// what a phone's radio carries, less TLS) and can refuse connections, like a phone offline.
/// Clones share the relay, so another thread can cut it.
#[derive(Clone)]
pub struct Relay {
    /// `http://127.0.0.1:PORT` of the relay.
    pub base: String,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    online: Arc<AtomicBool>,
    /// Phone-side ends of the open connections, cut when the relay goes offline.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    /// Starts relaying to `target` (`http://HOST:PORT`) on threads that live as long as the test.
    pub fn start(target: &str) -> Relay {
        let target = target
            .strip_prefix("http://")
            .expect("an http:// address")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let relay = Relay {
            base,
            up: Arc::default(),
            down: Arc::default(),
            online: Arc::new(AtomicBool::new(true)),
            open: Arc::default(),
        };
        let (up, down, online) = (relay.up.clone(), relay.down.clone(), relay.online.clone());
        let open = relay.open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !online.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                if let Ok(end) = client.try_clone() {
                    open.lock().unwrap_or_else(|e| e.into_inner()).push(end);
                }
                pipe(&client, &server, up.clone());
                pipe(&server, &client, down.clone());
            }
        });
        relay
    }

    /// Bytes from the phone to the server so far.
    pub fn sent(&self) -> u64 {
        self.up.load(Ordering::SeqCst)
    }

    /// Bytes from the server to the phone so far.
    pub fn received(&self) -> u64 {
        self.down.load(Ordering::SeqCst)
    }

    /// Going offline cuts every open connection; while offline, new ones are closed at once.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::SeqCst);
        if !online {
            for stream in self
                .open
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

fn pipe(from: &TcpStream, to: &TcpStream, count: Arc<AtomicU64>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    count.fetch_add(n as u64, Ordering::SeqCst);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// A phone library configuration for tests: short timeouts and retries, so the offline cases
/// fail in well under a second, and small pages and chunks, so paging and resuming are exercised.
pub fn quick() -> ClientConfig {
    ClientConfig {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 20_000,
        max_attempts: 2,
        retry_base_delay_ms: 20,
        push_max_bytes: 256 * 1024,
        pull_byte_budget: 64 * 1024,
        upload_chunk_bytes: 64 * 1024,
        attachment_cache_bytes: 1024 * 1024,
    }
}

/// A dispute check's site photo named `name`, taken in the village, as the app attaches one.
pub fn site_photo(name: &str) -> NewAttachment {
    NewAttachment {
        field: "site_photos".into(),
        entry: None,
        name: Some(name.into()),
        media_type: "image/jpeg".into(),
        taken_at: Some("2026-11-03T10:00:00+08:00".into()),
        location: Some(GeoPoint {
            lat: 30.27,
            lon: 120.15,
            accuracy_m: Some(8.0),
        }),
    }
}
