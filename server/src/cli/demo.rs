//! `gridsync demo` and `gridsync serve --demo`: a living demo district in an empty database.
//!
//! Three rural townships and two urban streets with their villages, communities and grids,
//! people of every role, and six months of reports of the three built-in kinds, plus the two
//! forms the district published at runtime: anti-fraud home visits (from the example workbook)
//! and the canvass questionnaire's version 2. Every report is a real
//! automerge document edited by the people who would edit it (the grid worker, the village
//! cadre, the drug-control officer) at the times they would, and every edit reaches the database
//! through the server's own ingest, as a phone's push would: so the reports pass validation,
//! their history shows who changed what and when, and the conflicts are real concurrent edits.
//! Then a month of tasks is set (weekly interview quotas per grid, linked to the interviews of
//! their week, and village campaigns), and last month's district bulletin is published, as the
//! offices would have done.
//! A seed makes the district, the people and the report contents repeatable (for the same day:
//! the history ends today); automerge's actor ids, and so change hashes, are random.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use gridsync_core::DocId;
use gridsync_core::protocol::{Push, PushDoc, PushOutcome};
use gridsync_core::report::{Editor, ReportDoc};
use gridsync_core::time::rfc3339;
use rand::rngs::ChaCha8Rng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{Map, Value as Json, json};

use super::{Error, Result, say};
use crate::auth::password;
use crate::bulletin::{self, BulletinError, BulletinPeriod, Publisher, RankRules, Request};
use crate::catalogue::{self, Actor};
use crate::clock;
use crate::forms::{self, Format};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::scope::{Role, Scope};
use crate::stats::Day;
use crate::store::facts::LedgerQuery;
use crate::store::{Device, Level, OrgUnit, Store, StoreError, Via, Writer};
use crate::sync::Ingest;
use crate::tasks::{self, NewTask, TaskError, TaskView};
use gridsync_core::task::{self, Goal};

pub const DEFAULT_SEED: u64 = 1;
/// The password of every demo account, `admin` included.
pub const PASSWORD: &str = "gridsync-demo";

const DAY: i64 = 24 * 60 * 60;
const WEEK: i64 = 7 * DAY;
/// How far back the history goes.
const HISTORY_DAYS: i64 = 180;
/// Disputes found per grid over the history.
const DISPUTES_PER_GRID: usize = 30;
/// Documents per ingest batch: one transaction each.
const BATCH: usize = 200;

/// A township or street: id, name, level, the mean satisfaction of its residents (1 to 5),
/// interviews per grid in the last three months, and its villages or communities.
type TownshipSpec = (
    &'static str,
    &'static str,
    Level,
    f64,
    usize,
    [(&'static str, &'static str); 3],
);

const TOWNSHIPS: [TownshipSpec; 5] = [
    (
        "qingshan",
        "青山镇",
        Level::Township,
        4.6,
        45,
        [
            ("qingshan-cun", "青山村"),
            ("shiqiao", "石桥村"),
            ("taoyuan", "桃园村"),
        ],
    ),
    (
        "baisha",
        "白沙镇",
        Level::Township,
        4.1,
        40,
        [
            ("baisha-cun", "白沙村"),
            ("hekou", "河口村"),
            ("xintian", "新田村"),
        ],
    ),
    // Few interviews: its index must say so rather than rank it.
    (
        "liuhe",
        "柳河乡",
        Level::Township,
        3.8,
        2,
        [
            ("liuhe-cun", "柳河村"),
            ("yangjia", "杨家村"),
            ("shuikou", "水口村"),
        ],
    ),
    (
        "chengdong",
        "城东街道",
        Level::Street,
        4.5,
        50,
        [
            ("dongmen", "东门社区"),
            ("binjiang", "滨江社区"),
            ("wenhua", "文化社区"),
        ],
    ),
    (
        "chengxi",
        "城西街道",
        Level::Street,
        3.9,
        45,
        [
            ("xiguan", "西关社区"),
            ("renminlu", "人民路社区"),
            ("chunhui", "春晖社区"),
        ],
    ),
];
const GRIDS_PER_VILLAGE: usize = 3;
/// Canvass interviews this recent use the questionnaire's version 2, which the district
/// published then: one more satisfaction question.
const CANVASS_V2_DAYS: i64 = 30;
/// The canvass questionnaire's version 2, published by the demo as an office would.
const CANVASS_V2: &str = include_str!("../../../examples/forms/satisfaction_canvass.v2.json");
/// Anti-fraud home visits per grid, in the last two months (the campaign's form, published by
/// the demo from the example workbook).
const VISITS_PER_GRID: std::ops::RangeInclusive<usize> = 2..=5;
const SCAMS: [&str; 6] = [
    "impersonating_police",
    "order_brushing",
    "fake_investment",
    "online_loan",
    "fake_customer_service",
    "other",
];

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "建华", "桂兰",
];

/// Dispute categories with what typically causes them.
const CAUSES: [(&str, &[&str]); 7] = [
    (
        "neighbour",
        &[
            "宅前排水沟堵塞",
            "楼上漏水",
            "树木遮挡采光",
            "公共过道堆放杂物",
        ],
    ),
    (
        "family_marriage",
        &["赡养老人费用分担", "离婚后子女抚养", "婆媳矛盾", "遗产分配"],
    ),
    (
        "land_property",
        &["宅基地边界", "承包地流转费用", "林地界址", "房屋租赁押金"],
    ),
    ("labour_wages", &["工地拖欠工资", "工伤赔偿", "加班费结算"]),
    (
        "contract_debt",
        &["民间借贷逾期未还", "装修款结算", "货款拖欠"],
    ),
    (
        "environment_nuisance",
        &["养殖场异味", "广场舞噪音", "夜间施工噪音", "餐馆油烟"],
    ),
    ("other", &["停车位争议", "宠物伤人"]),
];
const METHODS: [&str; 5] = [
    "上门调解",
    "村委会调解室面对面调解",
    "电话沟通",
    "联合派出所民警调解",
    "邀请乡贤参与调解",
];
const OUTCOMES: [&str; 4] = [
    "双方情绪缓和，约定下周再谈",
    "一方同意部分让步",
    "双方达成初步意向",
    "分歧仍较大，继续跟进",
];
const WORRIES: [(&str, u32); 7] = [
    ("fraud", 30),
    ("public_order", 14),
    ("traffic", 14),
    ("disputes", 10),
    ("livelihood", 10),
    ("environment", 8),
    ("other", 3),
];

/// Someone in the demo district, with the device they sync from.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    role: Role,
    path: String,
    device: String,
}

/// One sitting of one person on one report: the changes they made, pushed together.
struct Session {
    at: i64,
    person: usize,
    doc: DocId,
    changes: Vec<Vec<u8>>,
}

/// What the demo made, for the summary it prints.
#[derive(Debug, Default)]
pub struct Summary {
    pub units: usize,
    pub users: usize,
    pub reports: HashMap<&'static str, usize>,
    pub sessions: usize,
}

/// The ingest `gridsync demo` writes through: it tells the servers on the same Postgres of
/// what it writes, as any node would.
pub async fn ingest_for(db: &str) -> Result<Ingest> {
    let live = crate::live::across_nodes(db, Hub::new())
        .await
        .map_err(StoreError::from)?;
    Ok(Ingest::new(
        Arc::new(catalogue::Catalogue::builtin()),
        Arc::new(Metrics::new()),
        live,
    ))
}

/// `gridsync demo`: fills the database, which must have no users yet.
pub async fn fill_empty(store: &dyn Store, ingest: &Ingest, seed: u64) -> Result<()> {
    if store.count_users().await? > 0 {
        return Err(Error::Invalid(
            "this database has users already: the demo fills an empty database only; name a \
             new one with --db, e.g. --db sqlite://demo.db"
                .into(),
        ));
    }
    fill(store, ingest, seed).await?;
    Ok(())
}

/// Creates the demo district, its reports written through `ingest` as the people's phones
/// would, and prints what it made and how to log in.
pub async fn fill(store: &dyn Store, ingest: &Ingest, seed: u64) -> Result<Summary> {
    let started = std::time::Instant::now();
    let now = clock::now();
    let today = now / DAY * DAY;
    let mut demo = Demo {
        rng: ChaCha8Rng::seed_from_u64(seed),
        today,
        now,
        people: Vec::new(),
        sessions: Vec::new(),
        summary: Summary::default(),
    };
    publish_forms(store).await?;
    let hash = password::hash(PASSWORD.into()).await?;
    demo.district(store, &hash).await?;
    demo.sessions.sort_by_key(|s| s.at);
    let mut summary = std::mem::take(&mut demo.summary);
    summary.sessions = demo.sessions.len();
    replay(
        store,
        ingest,
        &demo.people,
        std::mem::take(&mut demo.sessions),
    )
    .await?;
    let tasks = demo.set_tasks(store, ingest).await?;
    let bulletin = demo.publish_bulletin(store).await?;
    let kinds = [
        "dispute_check",
        "drug_control_case",
        "satisfaction_canvass",
        "anti_fraud_visit",
    ];
    say(&format!(
        "Demo district made in {:.1} s: {} org units, {} users, {} reports ({}), {} edit \
         sessions over {HISTORY_DAYS} days.\n\
         Log in as `admin` (district admin), `staff-qingshan` (township staff), `jd-qingshan` \
         (drug-control officer), `cadre-shiqiao` (village cadre) or `worker-shiqiao-1` (grid \
         worker); every demo password is `{PASSWORD}`. {tasks} tasks were set over the last \
         month, and the district's bulletin of {bulletin} is published.",
        started.elapsed().as_secs_f64(),
        summary.units,
        summary.users,
        summary.reports.values().sum::<usize>(),
        kinds
            .iter()
            .map(|k| format!("{} {k}", summary.reports.get(k).unwrap_or(&0)))
            .collect::<Vec<_>>()
            .join(", "),
        summary.sessions,
    ));
    Ok(summary)
}

struct Demo {
    rng: ChaCha8Rng,
    today: i64,
    now: i64,
    people: Vec<Person>,
    sessions: Vec<Session>,
    summary: Summary,
}

impl Demo {
    /// Writer of `person`'s edits at `now`.
    fn writer_of(person: &Person, now: i64) -> Writer {
        Writer {
            user_id: person.id.clone(),
            device_id: Some(person.device.clone()),
            scope: Scope::for_role(&person.id, person.role, &person.path),
            now,
            hold_out_of_scope: false,
            via: Via::Direct,
        }
    }

    /// A month of tasks as the offices set them: each township's staff a weekly quota of
    /// interviews for every grid, due on the Sundays of the last four weeks and this one, and
    /// each village cadre a poster campaign for their grids due in three days and a visit to the
    /// elderly living alone due two days ago. The interviews each grid worker filed in a week
    /// are linked to that week's quota, as their phone would have linked them. How many tasks.
    async fn set_tasks(&self, store: &dyn Store, ingest: &Ingest) -> Result<usize> {
        let today = Day::of_unix(self.now);
        let units = store.org_units().await?;
        let grids_under = |path: &str| -> Vec<OrgUnit> {
            units
                .iter()
                .filter(|u| u.level == Level::Grid && u.path.starts_with(path))
                .cloned()
                .collect()
        };
        let failed = |e: TaskError| Error::Demo(format!("tasks: {e}"));
        let mut written = Vec::new();
        for staff in self.people.iter().filter(|p| p.role == Role::TownshipStaff) {
            let weeks: Vec<Day> = (0..5)
                .rev()
                .map(|k| tasks::week_of(today.plus(-7 * k)).to)
                .collect();
            let new: Vec<NewTask> = grids_under(&staff.path)
                .iter()
                .flat_map(|grid| {
                    weeks.iter().map(|due| NewTask {
                        kind: task::TASK,
                        grid: grid.id.clone(),
                        fields: tasks::fields(
                            "本周完成3户群众满意度入户调查",
                            *due,
                            &Goal::CanvassQuota(3),
                            None,
                            None,
                        ),
                    })
                })
                .collect();
            let at = self.now - 28 * DAY;
            written.extend(
                tasks::create(store, ingest, &Self::writer_of(staff, at), new, today)
                    .await
                    .map_err(failed)?,
            );
        }
        for cadre in self.people.iter().filter(|p| p.role == Role::VillageCadre) {
            let mut new = Vec::new();
            for grid in grids_under(&cadre.path) {
                for (title, due) in [
                    ("张贴平安建设宣传海报", today.plus(3)),
                    ("走访独居老人，排查安全隐患", today.plus(-2)),
                ] {
                    new.push(NewTask {
                        kind: task::TASK,
                        grid: grid.id.clone(),
                        fields: tasks::fields(title, due, &Goal::Free, None, None),
                    });
                }
            }
            let at = self.now - 7 * DAY;
            written.extend(
                tasks::create(store, ingest, &Self::writer_of(cadre, at), new, today)
                    .await
                    .map_err(failed)?,
            );
        }
        self.link_interviews(store, ingest, &written, &units)
            .await?;
        Ok(written.len())
    }

    /// Links each grid's interviews of a week to that week's quota, as the grid worker's phone.
    async fn link_interviews(
        &self,
        store: &dyn Store,
        ingest: &Ingest,
        written: &[TaskView],
        units: &[OrgUnit],
    ) -> Result<()> {
        for t in written.iter().filter(|t| t.goal == "canvass_quota") {
            let (Some(grid), Some(due)) =
                (units.iter().find(|u| u.id == t.grid_id), Day::parse(&t.due))
            else {
                continue;
            };
            let Some(worker) = self
                .people
                .iter()
                .find(|p| p.role == Role::GridWorker && p.path == grid.path)
            else {
                continue;
            };
            let scope = Scope::for_role(&worker.id, worker.role, &worker.path);
            let week = tasks::week_of(due);
            let interviews = store
                .ledger_page(
                    &scope,
                    &LedgerQuery {
                        kind: "satisfaction_canvass".into(),
                        org_path: grid.path.clone(),
                        from: Some(week.from.to_string()),
                        to: Some(week.to.to_string()),
                        after: None,
                        limit: i64::from(t.quota.unwrap_or(0)),
                    },
                )
                .await?;
            if interviews.is_empty() {
                continue;
            }
            let id: DocId =
                t.id.parse()
                    .map_err(|_| Error::Demo(format!("task id {}", t.id)))?;
            let mut doc = store
                .load_doc(&id)
                .await?
                .ok_or_else(|| Error::Demo(format!("task {id} is not stored")))?;
            let heads = doc.heads();
            let at = (week.to.0 * DAY).min(self.now);
            let by = Editor::new(worker.id.clone(), at);
            for report in &interviews {
                let mut entry = Map::new();
                entry.insert("report".into(), json!(report.id.to_string()));
                doc.append_log(&entry, &by).map_err(demo)?;
            }
            let push = Push {
                docs: vec![PushDoc {
                    doc: id,
                    changes: doc.changes_since(&heads),
                }],
            };
            let result = ingest
                .push(store, &Self::writer_of(worker, at), &push)
                .await?;
            if let Some(bad) = result
                .docs
                .iter()
                .find(|d| !matches!(d.outcome, PushOutcome::Acked { .. }))
            {
                return Err(Error::Demo(format!("task {id}: {:?}", bad.outcome)));
            }
        }
        Ok(())
    }

    /// Publishes last month's district bulletin as the admin would; its name.
    async fn publish_bulletin(&self, store: &dyn Store) -> Result<String> {
        let today = Day::of_unix(self.now);
        let this_month = BulletinPeriod::parse(&today.to_string()[..7]);
        let period = this_month
            .and_then(|p| BulletinPeriod::parse(&p.previous_name))
            .ok_or_else(|| Error::Invalid(format!("no month before {today}")))?;
        let admin = self
            .people
            .iter()
            .find(|p| p.role == Role::DistrictAdmin)
            .ok_or_else(|| Error::Invalid("the demo district has no admin".into()))?;
        let district = store
            .org_units()
            .await?
            .into_iter()
            .find(|u| u.parent_id.is_none())
            .ok_or_else(|| Error::Invalid("the demo district has no root".into()))?;
        let catalogue = catalogue::Catalogue::builtin().fresh(store).await?;
        let rules = RankRules::current(store).await.map_err(bulletin_error)?;
        let request = Request {
            org: &district,
            period: &period,
            rules: &rules,
            today,
            now: self.now,
        };
        let scope = Scope::for_role(&admin.id, Role::DistrictAdmin, &admin.path);
        let by = Publisher {
            user: &admin.id,
            device: Some(&admin.device),
            via: "demo",
        };
        bulletin::publish(store, &catalogue.registry, &scope, &request, by, None)
            .await
            .map_err(bulletin_error)?;
        Ok(period.name)
    }

    /// The org tree, its people and their reports.
    async fn district(&mut self, store: &dyn Store, hash: &str) -> Result<()> {
        let root = unit("pingan", None, Level::District, "平安区", "/");
        self.unit(store, &root).await?;
        self.person(
            store,
            hash,
            "admin",
            "系统管理员",
            Role::DistrictAdmin,
            &root,
        )
        .await?;
        for (tid, tname, level, mean, interviews, villages) in TOWNSHIPS {
            let township = unit(tid, Some(&root), level, tname, &root.path);
            self.unit(store, &township).await?;
            let name = self.name();
            self.person(
                store,
                hash,
                &format!("staff-{tid}"),
                &name,
                Role::TownshipStaff,
                &township,
            )
            .await?;
            let name = self.name();
            let officer = self
                .person(
                    store,
                    hash,
                    &format!("jd-{tid}"),
                    &name,
                    Role::DrugControlOfficer,
                    &township,
                )
                .await?;
            for (vid, vname) in villages {
                let village_level = if level == Level::Street {
                    Level::Community
                } else {
                    Level::Village
                };
                let village = unit(vid, Some(&township), village_level, vname, &township.path);
                self.unit(store, &village).await?;
                let name = self.name();
                let cadre = self
                    .person(
                        store,
                        hash,
                        &format!("cadre-{vid}"),
                        &name,
                        Role::VillageCadre,
                        &village,
                    )
                    .await?;
                for n in 1..=GRIDS_PER_VILLAGE {
                    let gid = format!("{vid}-{n}");
                    let grid = unit(
                        &gid,
                        Some(&village),
                        Level::Grid,
                        &format!("{vname}第{n}网格"),
                        &village.path,
                    );
                    self.unit(store, &grid).await?;
                    let name = self.name();
                    let worker = self
                        .person(
                            store,
                            hash,
                            &format!("worker-{gid}"),
                            &name,
                            Role::GridWorker,
                            &grid,
                        )
                        .await?;
                    let place = format!("{tname}{vname}");
                    for _ in 0..DISPUTES_PER_GRID {
                        self.dispute(&gid, &place, worker, cadre)?;
                    }
                    let cases = self.rng.random_range(1..=3);
                    for _ in 0..cases {
                        self.drug_case(&gid, &place, worker, officer)?;
                    }
                    for _ in 0..interviews {
                        self.interview(&gid, worker, mean)?;
                    }
                    for _ in 0..self.rng.random_range(VISITS_PER_GRID) {
                        self.visit(&gid, worker)?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn unit(&mut self, store: &dyn Store, unit: &OrgUnit) -> Result<()> {
        store.insert_org_unit(unit).await?;
        self.summary.units += 1;
        Ok(())
    }

    /// Adds a user and the device they sync from; their index in `people`.
    async fn person(
        &mut self,
        store: &dyn Store,
        hash: &str,
        username: &str,
        display_name: &str,
        role: Role,
        unit: &OrgUnit,
    ) -> Result<usize> {
        let id = uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string();
        let created_at = self.today - HISTORY_DAYS * DAY - 30 * DAY;
        store
            .insert_user(&crate::store::User {
                id: id.clone(),
                username: username.into(),
                display_name: display_name.into(),
                password_hash: hash.into(),
                role,
                org_unit_id: unit.id.clone(),
                disabled: false,
                created_at,
            })
            .await?;
        let (device, device_name) = match role {
            Role::GridWorker | Role::DrugControlOfficer => {
                (format!("{username}-phone"), format!("{display_name}的手机"))
            }
            _ => (
                format!("{username}-pc"),
                format!("{display_name}的办公电脑"),
            ),
        };
        store
            .upsert_device(&Device {
                id: device.clone(),
                user_id: id.clone(),
                name: device_name,
                created_at,
                last_seen_at: self.today,
                revoked_at: None,
                cursor: 0,
                pending_changes: None,
                pending_at: None,
                retiring_at: None,
                scope_key: None,
                public_key: None,
            })
            .await?;
        self.summary.users += 1;
        self.people.push(Person {
            id,
            role,
            path: unit.path.clone(),
            device,
        });
        Ok(self.people.len() - 1)
    }

    fn name(&mut self) -> String {
        format!(
            "{}{}",
            SURNAMES.choose(&mut self.rng).expect("not empty"),
            GIVEN.choose(&mut self.rng).expect("not empty")
        )
    }

    fn phone(&mut self) -> String {
        format!(
            "1{}{:09}",
            self.rng.random_range(3..=9),
            self.rng.random_range(0..1_000_000_000)
        )
    }

    /// A time of a working day `days` ago.
    fn at(&mut self, days: i64) -> i64 {
        self.today - days * DAY + self.rng.random_range(8 * 3600..18 * 3600)
    }

    fn new_report(&mut self, kind: &'static str, grid: &str, by: usize, at: i64) -> Result<Draft> {
        self.new_version(kind, 1, grid, by, at)
    }

    fn new_version(
        &mut self,
        kind: &'static str,
        version: u32,
        grid: &str,
        by: usize,
        at: i64,
    ) -> Result<Draft> {
        let id = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let editor = self.editor(by, at);
        let doc = ReportDoc::create(id, kind, version, grid, &editor).map_err(demo)?;
        *self.summary.reports.entry(kind).or_default() += 1;
        Ok(Draft {
            doc,
            base: Vec::new(),
        })
    }

    /// Records what `draft` gained since its last session as a session of `person` at `at`.
    fn session(&mut self, draft: &mut Draft, person: usize, at: i64) {
        let changes = draft.doc.changes_since(&draft.base);
        draft.base = draft.doc.heads();
        self.sessions.push(Session {
            at,
            person,
            doc: draft.doc.id(),
            changes,
        });
    }

    /// A dispute found by the grid worker and mediated with the village cadre: most settle
    /// within weeks, some are referred or escalated, the rest stay open with follow-ups (some
    /// overdue), and a few were edited on two devices at once.
    fn dispute(&mut self, grid: &str, place: &str, worker: usize, cadre: usize) -> Result<()> {
        let age = self.rng.random_range(0..HISTORY_DAYS);
        let found = self.at(age);
        let mut draft = self.new_report("dispute_check", grid, worker, found)?;
        let (category, causes) = *CAUSES.choose(&mut self.rng).expect("not empty");
        let cause = *causes.choose(&mut self.rng).expect("not empty");
        let risk = *["low", "low", "low", "medium", "medium", "high"]
            .choose(&mut self.rng)
            .expect("not empty");
        let parties = format!("{}、{}", self.name(), self.name());
        let phones = format!("{}、{}", self.phone(), self.phone());
        let group = self.rng.random_range(1..=12);
        let w = self.editor(worker, found);
        draft.set(
            json!({
                "category": category,
                "parties": parties,
                "party_phones": phones,
                "description": format!("{cause}引发纠纷，双方多次争执，需上门调解。"),
                "place": format!("{place}{group}组"),
                "found_on": date(found),
                "risk_level": risk,
                "status": "reported",
            }),
            &w,
        )?;
        self.session(&mut draft, worker, found);
        if age < 3 {
            return Ok(());
        }
        // The cadre takes it up within days and mediates; the worker follows up.
        let mut day = age - self.rng.random_range(1..=2);
        let mut who = cadre;
        let closes = age > 20 && self.rng.random_bool(0.8);
        let close_day = if closes {
            age - self.rng.random_range(5..=20.min(age - 1))
        } else {
            -1
        };
        loop {
            let at = self.at(day);
            let e = self.editor(who, at);
            let mediator = self.people[who].id.clone();
            draft.step(
                json!({
                    "date": date(at),
                    "mediator": mediator,
                    "method": *METHODS.choose(&mut self.rng).expect("not empty"),
                    "outcome": *OUTCOMES.choose(&mut self.rng).expect("not empty"),
                }),
                &e,
            )?;
            if day <= close_day {
                let end = if self.rng.random_bool(0.85) {
                    json!({
                        "status": "resolved",
                        "agreement": "经调解双方达成一致，签订人民调解协议书。",
                        "resolved_on": date(at),
                    })
                } else if self.rng.random_bool(0.6) {
                    json!({
                        "status": "referred",
                        "referred_from": "people",
                        "mediation_track": "administrative",
                    })
                } else {
                    json!({"status": "escalated"})
                };
                draft.set(end, &e)?;
                self.session(&mut draft, who, at);
                return Ok(());
            }
            let next = self.rng.random_range(7..=14);
            draft.set(
                json!({
                    "status": "mediating",
                    "mediation_track": "people",
                    "next_follow_up": date(at + next * DAY),
                }),
                &e,
            )?;
            self.session(&mut draft, who, at);
            // Follow-ups are sometimes late: the gap can run past the date set.
            let gap = next + self.rng.random_range(-3..=12);
            if day - gap < 1 {
                break;
            }
            day -= gap;
            who = if who == cadre { worker } else { cadre };
        }
        // Edited offline on two devices at once: the worker raises the risk on the phone while
        // the cadre, at the office, changes it otherwise, or closes the case while the worker
        // adds a step.
        if day <= 14 && self.rng.random_bool(0.12) {
            // Before the last session's day, so the forks come after it.
            let days_ago = self.rng.random_range(0..day);
            let at = self.at(days_ago);
            let mut office = draft.clone();
            let (w, c) = (self.editor(worker, at), self.editor(cadre, at + 600));
            if self.rng.random_bool(0.7) {
                draft.set(json!({"risk_level": "high"}), &w)?;
                office.set(json!({"risk_level": "low"}), &c)?;
            } else {
                let mediator = self.people[worker].id.clone();
                draft.step(
                    json!({"date": date(at), "mediator": mediator, "method": "上门回访",
                           "outcome": "一方反悔，要求重新协商"}),
                    &w,
                )?;
                office.set(
                    json!({"status": "resolved", "agreement": "双方口头达成和解。",
                           "resolved_on": date(at)}),
                    &c,
                )?;
            }
            self.session(&mut draft, worker, at);
            self.session(&mut office, cadre, at + 600);
        }
        Ok(())
    }

    /// A person in community rehabilitation or detox in the worker's grid, opened by the
    /// township's drug-control officer and visited monthly by the worker: a few visits are
    /// overdue, a few people relapse.
    fn drug_case(&mut self, grid: &str, place: &str, worker: usize, officer: usize) -> Result<()> {
        let since = self.rng.random_range(60..HISTORY_DAYS * 2);
        let opened = self.at(since.min(HISTORY_DAYS));
        let start = self.today - since * DAY;
        let mut draft = self.new_report("drug_control_case", grid, officer, opened)?;
        let o = self.editor(officer, opened);
        let name = self.name();
        let assigned = self.people[worker].id.clone();
        let id_number = format!(
            "4401{:02}{}{:03}{}",
            self.rng.random_range(1..=20),
            self.rng.random_range(1970..=2002) * 10_000
                + self.rng.random_range(1..=12) * 100
                + self.rng.random_range(1..=28),
            self.rng.random_range(0..1000),
            self.rng.random_range(0..10)
        );
        draft.set(
            json!({
                "subject_name": name,
                "subject_id_number": id_number,
                "subject_address": format!("{place}{}号", self.rng.random_range(1..=200)),
                "programme": if self.rng.random_bool(0.7) { "community_rehabilitation" } else { "community_detox" },
                "programme_start": date(start),
                "programme_end": date(start + 3 * 365 * DAY),
                "assigned_worker": assigned,
                "status": "active",
            }),
            &o,
        )?;
        self.session(&mut draft, officer, opened);
        // Visits about monthly; one case in five has fallen behind.
        let stop = if self.rng.random_bool(0.2) {
            self.rng.random_range(35..70)
        } else {
            1
        };
        let mut day = since.min(HISTORY_DAYS) - self.rng.random_range(3..10);
        let mut visit = 0;
        while day >= stop {
            let at = self.at(day);
            let w = self.editor(worker, at);
            let visitor = self.people[worker].id.clone();
            let test = if visit % 2 == 0 {
                "urine"
            } else if visit % 7 == 3 {
                "hair"
            } else {
                "none"
            };
            let positive = test != "none" && self.rng.random_bool(0.02);
            let mut entry = json!({
                "date": date(at),
                "visitor": visitor,
                "place": *["家中", "社区服务站", "工作单位"].choose(&mut self.rng).expect("not empty"),
                "test": test,
                "notes": "情绪稳定，按时报到。",
                "next_visit_due": date(at + 30 * DAY),
            });
            if test != "none" {
                entry["test_result"] = json!(if positive { "positive" } else { "negative" });
            }
            draft.step(entry, &w)?;
            self.session(&mut draft, worker, at);
            if positive {
                let at = at + DAY;
                let o = self.editor(officer, at);
                draft.set(json!({"status": "relapsed"}), &o)?;
                self.session(&mut draft, officer, at);
                break;
            }
            visit += 1;
            day -= self.rng.random_range(26..=34);
        }
        Ok(())
    }

    /// An anonymous household interview in the last three months, answers drawn around the
    /// township's level.
    fn interview(&mut self, grid: &str, worker: usize, mean: f64) -> Result<()> {
        let days_ago = self.rng.random_range(0..92);
        let at = self.at(days_ago);
        let version = if days_ago < CANVASS_V2_DAYS { 2 } else { 1 };
        let mut draft = self.new_version("satisfaction_canvass", version, grid, worker, at)?;
        let mut answers = Map::new();
        let questions = [
            "safety_overall",
            "safety_night",
            "satisfaction_police",
            "satisfaction_courts",
            "satisfaction_mediation",
            "satisfaction_services",
            "satisfaction_grid_service",
        ];
        let asked = if version == 2 { 7 } else { 6 };
        for field in &questions[..asked] {
            answers.insert((*field).into(), json!(self.answer(mean)));
        }
        let mut worries: Vec<&str> = Vec::new();
        for _ in 0..self.rng.random_range(0..=2) {
            let worry = self.worry();
            if !worries.contains(&worry) {
                worries.push(worry);
            }
        }
        let canvasser = self.people[worker].id.clone();
        let household = *[
            "local_resident",
            "local_resident",
            "local_resident",
            "migrant",
            "business",
        ]
        .choose(&mut self.rng)
        .expect("not empty");
        answers.insert("household_type".into(), json!(household));
        answers.insert("canvasser".into(), json!(canvasser));
        answers.insert("interviewed_at".into(), json!(rfc3339(at)));
        answers.insert("worries".into(), json!(worries));
        let w = self.editor(worker, at);
        draft.set(Json::Object(answers), &w)?;
        self.session(&mut draft, worker, at);
        Ok(())
    }

    /// An anti-fraud home visit by the grid worker in the last two months: whether the family
    /// has the national anti-fraud app, and any scam calls or losses they tell of.
    fn visit(&mut self, grid: &str, worker: usize) -> Result<()> {
        let days_ago = self.rng.random_range(0..60);
        let at = self.at(days_ago);
        let mut draft = self.new_report("anti_fraud_visit", grid, worker, at)?;
        let yes_no = |yes: bool| if yes { "yes" } else { "no" };
        let contacted = self.rng.random_bool(0.35);
        let mut values = json!({
            "visited_on": date(at),
            "household_head": self.name(),
            "people_home": self.rng.random_range(1..=6),
            "app_installed": yes_no(self.rng.random_bool(0.6)),
            "suspicious_contact": yes_no(contacted),
            "leaflet_given": true,
            "status": *["visited", "visited", "visited", "follow_up", "not_home"]
                .choose(&mut self.rng)
                .expect("not empty"),
        });
        if contacted {
            let scam = *SCAMS.choose(&mut self.rng).expect("not empty");
            values["scam_types"] = json!([scam]);
            if self.rng.random_bool(0.1) {
                values["money_lost"] = json!(self.rng.random_range(200..20_000));
            }
        }
        let w = self.editor(worker, at);
        draft.set(values, &w)?;
        self.session(&mut draft, worker, at);
        Ok(())
    }

    /// A 1–5 answer around `mean`, or now and then "don't know".
    fn answer(&mut self, mean: f64) -> String {
        if self.rng.random_bool(0.03) {
            return "dont_know".into();
        }
        let noise: f64 = (0..3).map(|_| self.rng.random::<f64>()).sum::<f64>() - 1.5;
        let score = (mean + noise * 1.1).round().clamp(1.0, 5.0);
        format!("{score}")
    }

    fn worry(&mut self) -> &'static str {
        let total: u32 = WORRIES.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        for (worry, weight) in WORRIES {
            if pick < weight {
                return worry;
            }
            pick -= weight;
        }
        "other"
    }

    /// `person` editing at `at`, or now if `at` is later: today's working hours may not be over.
    fn editor(&self, person: usize, at: i64) -> Editor {
        Editor::new(self.people[person].id.clone(), at.min(self.now))
    }
}

/// A report being written, and the heads its last session ended at.
#[derive(Clone)]
struct Draft {
    doc: ReportDoc,
    base: Vec<automerge::ChangeHash>,
}

impl Draft {
    fn set(&mut self, values: Json, by: &Editor) -> Result<()> {
        let Json::Object(values) = values else {
            return Err(Error::Demo("fields must be an object".into()));
        };
        self.doc.set_fields(&values, by).map_err(demo)
    }

    fn step(&mut self, values: Json, by: &Editor) -> Result<()> {
        let Json::Object(values) = values else {
            return Err(Error::Demo("a log entry must be an object".into()));
        };
        self.doc.append_log(&values, by).map(drop).map_err(demo)
    }
}

/// Publishes what the district added at runtime: the anti-fraud home visit from the example
/// workbook, and the canvass questionnaire's version 2.
async fn publish_forms(store: &dyn Store) -> Result<()> {
    const DEMO: Actor<'static> = Actor {
        user: None,
        device: None,
        via: "demo",
    };
    let visit = forms::parse(forms::EXAMPLE_XLSX, Format::Xlsx)?;
    let canvass = forms::parse(CANVASS_V2.as_bytes(), Format::Json)?;
    for (schema, format) in [(visit, Format::Xlsx), (canvass, Format::Json)] {
        catalogue::save_draft(store, &schema, format.as_str(), DEMO).await?;
        catalogue::publish(store, &schema.kind, schema.version, DEMO).await?;
    }
    Ok(())
}

fn unit(
    id: &str,
    parent: Option<&OrgUnit>,
    level: Level,
    name: &str,
    parent_path: &str,
) -> OrgUnit {
    OrgUnit {
        id: id.into(),
        parent_id: parent.map(|p| p.id.clone()),
        level,
        name: name.into(),
        path: format!("{parent_path}{id}/"),
    }
}

fn date(at: i64) -> String {
    rfc3339(at)[..10].to_owned()
}

fn bulletin_error(e: BulletinError) -> Error {
    match e {
        BulletinError::Store(e) => Error::Store(e),
        other => Error::Invalid(other.to_string()),
    }
}

fn demo(e: gridsync_core::Error) -> Error {
    Error::Demo(e.to_string())
}

/// Pushes the sessions through the server's ingest as each person's device would. Sessions go
/// week by week, and within a week in rounds that hold at most one session per report (its
/// earliest not yet sent), each person's share of a round in one batch: so every change finds
/// its dependencies stored, a report's stored times are right to the week, and the district
/// takes a few thousand transactions rather than one per session.
async fn replay(
    store: &dyn Store,
    ingest: &Ingest,
    people: &[Person],
    sessions: Vec<Session>,
) -> Result<()> {
    let bar = indicatif::ProgressBar::new(sessions.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} edit sessions")
            .expect("the template is valid"),
    );
    let mut weeks: Vec<Vec<Session>> = Vec::new();
    for session in sessions {
        let week = session.at.div_euclid(WEEK);
        match weeks.last_mut() {
            Some(last) if last.first().is_some_and(|s| s.at.div_euclid(WEEK) == week) => {
                last.push(session);
            }
            _ => weeks.push(vec![session]),
        }
    }
    for mut remaining in weeks {
        while !remaining.is_empty() {
            let mut taken: HashSet<DocId> = HashSet::new();
            let mut later = Vec::new();
            let mut round: HashMap<usize, Vec<Session>> = HashMap::new();
            for session in remaining {
                if taken.insert(session.doc) {
                    round.entry(session.person).or_default().push(session);
                } else {
                    later.push(session);
                }
            }
            let mut persons: Vec<usize> = round.keys().copied().collect();
            persons.sort_unstable();
            for person in persons {
                let mut sessions = round.remove(&person).unwrap_or_default();
                while !sessions.is_empty() {
                    let rest = sessions.split_off(sessions.len().min(BATCH));
                    let sent = sessions.len() as u64;
                    send(store, ingest, &people[person], sessions).await?;
                    bar.inc(sent);
                    sessions = rest;
                }
            }
            remaining = later;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

async fn send(
    store: &dyn Store,
    ingest: &Ingest,
    person: &Person,
    sessions: Vec<Session>,
) -> Result<()> {
    let writer = Writer {
        user_id: person.id.clone(),
        device_id: Some(person.device.clone()),
        scope: Scope::for_role(&person.id, person.role, &person.path),
        now: sessions.iter().map(|s| s.at).max().unwrap_or(0),
        hold_out_of_scope: false,
        via: Via::Direct,
    };
    let docs = sessions
        .into_iter()
        .map(|s| PushDoc {
            doc: s.doc,
            changes: s.changes,
        })
        .collect();
    let result = ingest.push(store, &writer, &Push { docs }).await?;
    for doc in result.docs {
        if !matches!(doc.outcome, PushOutcome::Acked { .. }) {
            return Err(Error::Demo(format!(
                "report {}: {:?}",
                doc.doc, doc.outcome
            )));
        }
    }
    Ok(())
}
