//! A fleet of phones for the crash and fault tests: the real phone library (gridsync-mobile's
//! `Client`), each phone with its own store directory, editing the reports of grid g1 and syncing
//! in a loop as an app would; what each phone was told the server saved; and the checks of the
//! server's database against them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use automerge::ChangeHash;
use gridsync_core::DocId;
use gridsync_mobile::client::Client;
use gridsync_mobile::{ClientConfig, ClientError, FieldValue};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::field::{GRID, PASSWORD};
use crate::integrity::{self, Checked};

/// The phones' store key.
const KEY: [u8; 32] = [0x5a; 32];
/// Server errors and failed syncs whose message a tally keeps, for the report.
const KEPT_MESSAGES: usize = 5;

/// Short timeouts and a few quick retries: a phone on a link that keeps failing.
pub fn config() -> ClientConfig {
    ClientConfig {
        connect_timeout_ms: 2_000,
        request_timeout_ms: 10_000,
        max_attempts: 3,
        retry_base_delay_ms: 50,
        push_max_bytes: 256 * 1024,
        pull_byte_budget: 64 * 1024,
        upload_chunk_bytes: 64 * 1024,
        attachment_cache_bytes: 1024 * 1024,
    }
}

/// A logged-in phone.
pub struct Phone {
    pub client: Client,
    pub user: &'static str,
    pub device: String,
}

impl Phone {
    /// Opens a store in `dir` for `base` and logs `user` in (retrying while the link fails).
    pub fn open(dir: &Path, base: &str, user: &'static str, device: String) -> Phone {
        let client = Client::open(dir, base, &KEY, config()).expect("open the phone's store");
        let phone = Phone {
            client,
            user,
            device,
        };
        phone.login();
        phone
    }

    /// Logs in, retrying while the link fails; for a sound link.
    fn login(&self) {
        let mut last = String::new();
        for _ in 0..100 {
            match self.try_login() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{} could not log in in 100 tries: {last}", self.device);
    }

    /// One login; a failed link is an `Err` to try again later, anything else a panic.
    fn try_login(&self) -> Result<(), String> {
        match self.client.login(self.user, PASSWORD, &self.device) {
            Ok(_) => Ok(()),
            Err(ClientError::Network(e) | ClientError::Server(e)) => Err(e),
            Err(e) => panic!("{} cannot log in: {e}", self.device),
        }
    }

    /// A sync that must succeed: the link is sound now. Retries network failures a few times,
    /// since the server may still be starting.
    pub fn sync_cleanly(&self) {
        let mut last = None;
        for _ in 0..20 {
            match self.client.sync(None) {
                Ok(summary) => {
                    assert!(
                        summary.rejected.is_empty(),
                        "{}: the server refused {:?}",
                        self.device,
                        summary.rejected
                    );
                    return;
                }
                Err(ClientError::Network(e)) => last = Some(e),
                Err(ClientError::Unauthorized(_)) => self.login(),
                Err(e) => panic!("{}: a clean sync failed: {e}", self.device),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{}: no clean sync in 20 tries: {last:?}", self.device);
    }
}

/// Phones, alternately the grid worker's and the village cadre's, and an office (the district
/// admin, who pulls every report), each with a store directory of its own.
pub struct Fleet {
    pub phones: Vec<Arc<Phone>>,
    pub office: Arc<Phone>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<Tally>>,
    office_loop: Option<JoinHandle<u64>>,
}

impl Fleet {
    /// Opens `phones` phones and the office under `dir`, all logged in to `base`.
    pub fn open(dir: &Path, base: &str, phones: usize) -> Fleet {
        let phones = (0..phones)
            .map(|i| {
                let user = if i % 2 == 0 { "wang" } else { "li" };
                let device = format!("{user}'s phone {i}");
                Arc::new(Phone::open(
                    &dir.join(format!("phone{i}")),
                    base,
                    user,
                    device,
                ))
            })
            .collect();
        let office = Arc::new(Phone::open(
            &dir.join("office"),
            base,
            "admin",
            "office".into(),
        ));
        Fleet {
            phones,
            office,
            shared: Arc::default(),
            workers: Vec::new(),
            office_loop: None,
        }
    }

    /// Starts every phone's [`work`] loop (phone `i` on `seed + 1 + i`) and the office pulling
    /// every 50 ms, each on a thread of its own.
    pub fn start(&mut self, seed: u64) {
        for (i, phone) in self.phones.iter().enumerate() {
            let (phone, shared) = (phone.clone(), self.shared.clone());
            let seed = seed.wrapping_add(1 + i as u64);
            self.workers
                .push(std::thread::spawn(move || work(&phone, seed, &shared)));
        }
        let (office, shared) = (self.office.clone(), self.shared.clone());
        self.office_loop = Some(std::thread::spawn(move || {
            let mut pulls = 0;
            while !shared.stop.load(Ordering::SeqCst) {
                // Failures are what the test inflicts; the clean sync at the end must succeed.
                pulls += u64::from(office.client.sync(None).is_ok());
                std::thread::sleep(Duration::from_millis(50));
            }
            pulls
        }));
    }

    /// Phones inside a sync right now.
    pub fn syncing(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Ends the loops (each finishes its round) and answers the phones' tallies added up, and
    /// how many of the office's pulls succeeded.
    pub fn stop(&mut self) -> (Tally, u64) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let mut tally = Tally::default();
        for worker in self.workers.drain(..) {
            tally.add(worker.join().expect("a phone's loop"));
        }
        let pulls = self
            .office_loop
            .take()
            .map_or(0, |office| office.join().expect("the office's loop"));
        (tally, pulls)
    }

    /// One clean sync per phone, twice round (the first pushes everything, the second brings
    /// everyone's to everyone), then the office's.
    pub fn settle(&self) {
        for _ in 0..2 {
            for phone in &self.phones {
                phone.sync_cleanly();
            }
        }
        self.office.sync_cleanly();
    }

    /// The phones and the office.
    pub fn everyone(&self) -> Vec<&Phone> {
        let mut all: Vec<&Phone> = self.phones.iter().map(AsRef::as_ref).collect();
        all.push(&self.office);
        all
    }
}

/// Flags the driver and the phones' threads share.
#[derive(Default)]
struct Shared {
    /// Set when the phones should finish their loop.
    stop: AtomicBool,
    /// Phones inside a sync right now.
    in_flight: AtomicUsize,
}

/// What one phone's loop did and was told.
#[derive(Debug, Default)]
pub struct Tally {
    /// (report, head) pairs the server acknowledged: the heads of a report the phone holds no
    /// pending change of, read after each sync, finished or not.
    pub acked: BTreeSet<(DocId, ChangeHash)>,
    /// Edits (changes) of this phone among the acknowledged.
    pub acked_edits: u64,
    /// Changes made on the phone: one per edit, two per new report (created, form filled).
    pub edits: u64,
    pub created: u64,
    pub appended: u64,
    pub syncs: u64,
    pub failed_syncs: u64,
    /// Syncs that began with a refresh of the access token.
    pub refreshes: u64,
    /// Logins after a session ended (a refresh whose answer was lost after the server had
    /// rotated the token).
    pub logins: u64,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
}

impl Tally {
    /// Adds `other`'s counts and acknowledgements to these.
    fn add(&mut self, other: Tally) {
        self.acked.extend(other.acked);
        self.acked_edits += other.acked_edits;
        self.edits += other.edits;
        self.created += other.created;
        self.appended += other.appended;
        self.syncs += other.syncs;
        self.failed_syncs += other.failed_syncs;
        self.refreshes += other.refreshes;
        self.logins += other.logins;
        for failure in other.failures {
            if self.failures.len() < KEPT_MESSAGES {
                self.failures.push(failure);
            }
        }
    }
}

/// Edits and syncs on `phone` until `shared.stop`: each round one edit (a new report now and
/// then, a field, or a mediation step) of a random report of the grid, then a sync, then a
/// short pause. Failed syncs are left for the next round, as the app does. One round in 20
/// marks the access token expired first, so that sync starts with a refresh, as it does every
/// 15 minutes in the field.
fn work(phone: &Phone, seed: u64, shared: &Shared) -> Tally {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut reports: Vec<String> = Vec::new();
    // Edits per report not yet seen acknowledged.
    let mut unacked: HashMap<String, u64> = HashMap::new();
    let mut round = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        round += 1;
        if phone.client.current_user().is_none() {
            // The session ended; edits would still be kept, but only a login lets them sync.
            // One try a round: a server that keeps crashing may not finish a login for a while.
            if phone.try_login().is_ok() {
                tally.logins += 1;
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            continue;
        }
        if round % 10 == 1 {
            reports = phone
                .client
                .list_reports(None)
                .expect("list reports")
                .into_iter()
                .map(|r| r.id)
                .collect();
        }
        let (id, changes) = if reports.len() < 3 || rng.random_bool(0.08) {
            let id = create(phone, &mut rng);
            tally.created += 1;
            reports.push(id.clone());
            (id, 2)
        } else {
            let id = reports[rng.random_range(0..reports.len())].clone();
            if rng.random_bool(0.7) {
                let (field, value) = field_edit(&mut rng, &format!("{} {round}", phone.device));
                phone
                    .client
                    .set_field(&id, field, Some(text(&value)))
                    .expect("edit a field");
            } else {
                let step = [
                    ("date", "2026-11-03".to_owned()),
                    ("mediator", format!("user-{}", phone.user)),
                    (
                        "method",
                        format!("上门调解 {}", rng.random_range(0..1_000_000)),
                    ),
                ];
                phone
                    .client
                    .append_log(
                        &id,
                        step.iter().map(|(k, v)| ((*k).into(), text(v))).collect(),
                    )
                    .expect("add a mediation step");
                tally.appended += 1;
            }
            (id, 1)
        };
        tally.edits += changes;
        *unacked.entry(id).or_default() += changes;

        if rng.random_bool(0.05) {
            phone
                .client
                .expire_access_token()
                .expect("expire the token");
            tally.refreshes += 1;
        }
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let outcome = phone.client.sync(None);
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        tally.syncs += 1;
        match outcome {
            Ok(summary) => assert!(
                summary.rejected.is_empty(),
                "{}: the server refused {:?}",
                phone.device,
                summary.rejected
            ),
            Err(ClientError::Network(e) | ClientError::Server(e)) => {
                tally.failed_syncs += 1;
                if tally.failures.len() < KEPT_MESSAGES {
                    tally.failures.push(e);
                }
            }
            Err(ClientError::Unauthorized(_)) => tally.failed_syncs += 1,
            Err(e) => panic!("{}: sync failed: {e}", phone.device),
        }
        // Whatever the sync got through, finished or not, is what the phone was told was saved.
        unacked.retain(|id, edits| {
            let report = phone.client.report(id).expect("a report the phone holds");
            if report.pending_changes > 0 {
                return true;
            }
            let doc: DocId = id.parse().expect("report id");
            tally
                .acked
                .extend(report.heads.iter().map(|h| (doc, parse_hash(h))));
            tally.acked_edits += *edits;
            false
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
    }
    tally
}

/// A new dispute check with its form filled in: two changes.
fn create(phone: &Phone, rng: &mut ChaCha8Rng) -> String {
    let id = phone
        .client
        .create_report("dispute_check", GRID)
        .expect("create a report");
    let form = [
        ("category", "neighbour".to_owned()),
        (
            "parties",
            format!("张三, 李四 {}", rng.random_range(0..1000)),
        ),
        ("description", "宅基地边界争议".to_owned()),
        ("found_on", "2026-11-02".to_owned()),
        ("risk_level", "low".to_owned()),
        ("status", "reported".to_owned()),
    ];
    phone
        .client
        .set_fields(
            &id,
            form.iter().map(|(k, v)| ((*k).into(), text(v))).collect(),
        )
        .expect("fill the form");
    id
}

/// A text field and a value no one wrote before (`tag` is unique to the phone's round), so
/// every edit is a change: automerge makes none for a value a field already holds.
fn field_edit(rng: &mut ChaCha8Rng, tag: &str) -> (&'static str, String) {
    match rng.random_range(0..3) {
        0 => ("place", format!("村委会 {tag}")),
        1 => ("description", format!("纠纷情况 {tag}")),
        _ => ("party_phones", format!("138 {tag}")),
    }
}

fn text(value: &str) -> FieldValue {
    FieldValue::Text {
        value: value.into(),
    }
}

fn parse_hash(hex: &str) -> ChangeHash {
    let bytes: [u8; 32] = hex::decode(hex)
        .expect("hex head")
        .try_into()
        .expect("32-byte head");
    ChangeHash(bytes)
}

/// Every acknowledged (report, head) is in the stored report; answers how many were checked.
pub fn check_acknowledged(checked: &mut Checked, tally: &Tally) -> usize {
    for (id, head) in &tally.acked {
        let stored = checked
            .reports
            .get_mut(id)
            .unwrap_or_else(|| panic!("acknowledged report {id} is not stored"));
        assert!(
            stored.doc.has_change(head),
            "acknowledged change {head} of report {id} is not stored"
        );
    }
    tally.acked.len()
}

/// After clean syncs: every phone holds exactly the server's reports at the server's heads
/// with nothing pending, and everything is stored once: one report per creation, one log entry
/// per mediation step added, one stored change per edit.
pub fn check_converged(checked: &Checked, phones: &[&Phone], tally: &Tally) {
    let server: BTreeMap<String, Vec<String>> = checked
        .reports
        .iter()
        .map(|(id, stored)| {
            let mut heads: Vec<String> = stored.row.heads.iter().map(|h| h.to_string()).collect();
            heads.sort();
            (id.to_string(), heads)
        })
        .collect();
    for phone in phones {
        let held: BTreeSet<String> = phone
            .client
            .list_reports(None)
            .expect("list reports")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(
            held,
            server.keys().cloned().collect(),
            "{} does not hold the server's reports",
            phone.device
        );
        assert_eq!(phone.client.pending_changes(), 0, "{}", phone.device);
        for (id, heads) in &server {
            let report = phone.client.report(id).expect("held report");
            assert_eq!(
                &report.heads, heads,
                "{} holds report {id} at other heads than the server",
                phone.device
            );
        }
    }
    assert_eq!(
        checked.reports.len() as u64,
        tally.created,
        "reports stored against reports created"
    );
    let entries: usize = checked
        .reports
        .values()
        .map(|s| integrity::log_entry_ids(&s.row.projection).len())
        .sum();
    assert_eq!(
        entries as u64, tally.appended,
        "mediation-log entries stored against entries added"
    );
    assert_eq!(
        checked.changes as u64, tally.edits,
        "changes stored against edits made on the phones"
    );
}
