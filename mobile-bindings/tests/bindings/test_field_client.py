"""The field client through its generated Python bindings, against a real `gridsync serve`.

Run by scripts/test-bindings (which builds the library, generates the bindings and sets the
environment harness.py documents).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

import gridsync_mobile as gm
from harness import GRID, PASSWORD, Hub, Server, log, phone, projection, text, texts

HERE = Path(__file__).resolve().parent



class PhotoOnADisputeCheck(unittest.TestCase):
    """A phone attaches a photo offline and syncs; an office user sees its thumbnail through the
    API; a second phone syncs without downloading the photo, and fetches it when asked."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-photo-"))

    def tearDown(self):
        self.server.close()

    def test_a_photo_attached_offline_reaches_the_office_and_the_other_phone_only_on_demand(self):
        base = self.server.base
        wang = phone(self.dir / "wang", base)
        li = phone(self.dir / "li", base)
        wang.login("wang", PASSWORD, "wang's phone")
        li.login("li", PASSWORD, "li's phone")
        photo_path = HERE / "site_photo.jpg"
        photo = photo_path.read_bytes()

        self.server.stop()
        rid = wang.create_report("dispute_check", GRID)
        wang.set_fields(
            rid,
            texts(
                category="land_property",
                parties="张三, 李四",
                description="围墙越界",
                found_on="2026-11-02",
                risk_level="medium",
                status="reported",
            ),
        )
        new = gm.NewAttachment(
            field="site_photos",
            entry=None,
            name=None,
            media_type="image/jpeg",
            taken_at="2026-11-02T09:30:00+08:00",
            location=gm.GeoPoint(lat=30.27, lon=120.15, accuracy_m=6.0),
        )
        sha = wang.attach_file(rid, new, str(photo_path))
        [mine] = wang.attachments(rid)
        self.assertEqual((mine.name, mine.size, mine.pending_upload), ("site_photo.jpg", len(photo), True))
        with self.assertRaises(gm.ClientError.Validation):
            wang.attach_bytes(rid, gm.NewAttachment(
                field="site_photos", entry=None, name="a.pdf", media_type="application/pdf",
                taken_at=None, location=None), b"%PDF-1.4")
        with self.assertRaises(gm.ClientError.Network):
            wang.sync()

        self.server.start()
        summary = wang.sync()
        self.assertEqual((summary.uploaded_attachments, summary.pending_uploads), (1, 0))
        self.assertFalse(wang.attachments(rid)[0].pending_upload)

        # The office sees the photo listed with its thumbnail.
        token = self.server.admin_token()
        report = self.server.get_json(f"/api/v1/reports/{rid}", token)
        [listed] = report["attachments"]
        self.assertEqual(
            (listed["sha256"], listed["field"], listed["attached_by"], listed["uploaded"]),
            (sha, "site_photos", "user-wang", True),
        )
        req = urllib.request.Request(
            f"{base}{listed['thumbnail']}", headers={"authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            self.assertEqual(r.headers["content-type"], "image/jpeg")
            thumbnail = r.read()
        self.assertTrue(thumbnail.startswith(b"\xff\xd8"), "a JPEG")
        self.assertLess(len(thumbnail), len(photo))

        # The second phone learns of the photo but does not download it until asked.
        pulled = li.sync()
        self.assertLess(pulled.bytes_received, len(photo) // 4)
        [theirs] = li.attachments(rid)
        self.assertEqual((theirs.sha256, theirs.local), (sha, False))
        self.assertEqual(li.fetch_attachment(rid, sha), photo)
        self.assertTrue(li.attachments(rid)[0].local)
        self.server.stop()
        self.assertEqual(li.fetch_attachment(rid, sha), photo)


class TwoPhonesOffline(unittest.TestCase):
    """Two phones edit one dispute check offline; the server records the conflict and both steps;
    an admin resolves it; both phones end with the same report as the server."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-phones-"))

    def tearDown(self):
        self.server.close()

    def test_offline_edits_merge_and_an_admin_resolution_reaches_both_phones(self):
        base = self.server.base
        wang = phone(self.dir / "wang", base)
        li = phone(self.dir / "li", base)
        me = wang.login("wang", PASSWORD, "wang's phone")
        self.assertEqual((me.role, me.scope_path), ("grid_worker", "/d/t1/v1/g1/"))
        li.login("li", PASSWORD, "li's phone")

        rid = wang.create_report("dispute_check", GRID)
        wang.set_fields(
            rid,
            texts(
                category="land_property",
                parties="张三, 李四",
                description="宅基地边界争议",
                found_on="2026-11-02",
                risk_level="medium",
                status="reported",
            ),
        )
        self.assertEqual(wang.validate_report(rid), [])
        self.assertEqual(wang.sync().pushed_reports, 1)
        li.sync()
        self.assertEqual(projection(li, rid), projection(wang, rid))

        # The server goes away: both phones work offline.
        self.server.stop()
        wang.set_field(rid, "risk_level", text("high"))
        wang.set_field(rid, "status", text("mediating"))
        wang.append_log(rid, texts(date="2026-11-03", mediator="user-wang", method="上门调解"))
        li.set_field(rid, "place", text("村委会"))
        li.set_field(rid, "status", text("escalated"))
        li.append_log(rid, texts(date="2026-11-03", mediator="user-li", method="电话沟通"))
        for client in (wang, li):
            self.assertEqual(client.pending_changes(), 3)
            with self.assertRaises(gm.ClientError.Network):
                client.sync()
            self.assertEqual(client.pending_changes(), 3)

        self.server.start()
        wang.sync()
        li.sync()
        wang.sync()
        seen = self.server.report(rid)
        open_conflicts = [c["path"] for c in seen["conflicts"] if not c["resolved"]]
        self.assertEqual(open_conflicts, ["fields.status"])
        self.assertEqual(len(seen["projection"]["log"]), 2)
        self.assertEqual(
            sorted(step["method"] for step in seen["projection"]["log"]), ["上门调解", "电话沟通"]
        )
        self.assertEqual(seen["projection"]["fields"]["risk_level"], "high")
        self.assertEqual(seen["projection"]["fields"]["place"], "村委会")
        for client in (wang, li):
            conflicts = client.conflicts(rid)
            self.assertEqual([c.path for c in conflicts], ["fields.status"])
            self.assertEqual(
                sorted(v.value_json for v in conflicts[0].values), ['"escalated"', '"mediating"']
            )
            self.assertEqual(client.report(rid).heads, seen["heads"])

        # The admin resolves the conflict at the office, through the HTTP API.
        self.server.resolve_over_http(rid, "fields.status", "mediating")

        for client in (wang, li):
            summary = client.sync()
            self.assertEqual((summary.open_conflicts, summary.pending_changes), (0, 0))
        seen = self.server.report(rid)
        self.assertEqual([c for c in seen["conflicts"] if not c["resolved"]], [])
        self.assertEqual(projection(wang, rid), projection(li, rid))
        self.assertEqual(projection(wang, rid), seen["projection"])
        self.assertEqual(projection(wang, rid)["fields"]["status"], "mediating")
        self.assertEqual(wang.report(rid).heads, seen["heads"])
        self.assertEqual(li.report(rid).heads, seen["heads"])
        steps = wang.report(rid).log
        self.assertEqual(len(steps), 2)
        self.assertIn(gm.FieldEntry(field="method", value=text("电话沟通")), steps[0].fields + steps[1].fields)


class KilledMidSync(unittest.TestCase):
    """A process syncing in a loop is SIGKILLed mid-sync, again and again; restarted, it finishes
    with nothing lost and nothing duplicated."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-kill-"))

    def tearDown(self):
        self.server.close()

    def child(self, data, mode):
        return subprocess.Popen(
            [sys.executable, str(HERE / "sync_child.py"), str(data), self.server.base, mode],
            stdout=subprocess.PIPE,
            text=True,
        )

    def kill_after(self, data, lines):
        """Runs a syncing child and SIGKILLs it once it has reported `lines` progress lines."""
        proc = self.child(data, "loop")
        seen = 0
        for line in proc.stdout:
            if line.startswith("progress"):
                seen += 1
                if seen >= lines:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.wait(timeout=30)
        proc.stdout.close()
        log(f"killed after {seen} progress lines (exit {proc.returncode})")
        self.assertEqual(proc.returncode, -signal.SIGKILL, "the child was killed mid-sync")

    def finish(self, data):
        proc = self.child(data, "once")
        out, _ = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, out)
        return json.loads(out.strip().splitlines()[-1])

    def test_a_killed_sync_resumes_and_loses_and_duplicates_nothing(self):
        wang_dir = self.dir / "wang"
        wang = phone(wang_dir, self.server.base)
        wang.login("wang", PASSWORD, "wang's phone")
        ids = []
        for i in range(15):
            rid = wang.create_report("dispute_check", GRID)
            wang.set_field(rid, "description", text(f"纠纷 {i}"))
            wang.append_log(rid, texts(date="2026-11-03", mediator="user-wang", method="走访"))
            ids.append(rid)
        expected = {rid: projection(wang, rid) for rid in ids}
        self.assertEqual(wang.pending_changes(), 45)
        del wang

        for lines in (2, 5, 9):
            self.kill_after(wang_dir, lines)
        done = self.finish(wang_dir)
        self.assertEqual(done["pending"], 0)
        for rid in ids:
            seen = self.server.report(rid)
            self.assertEqual(seen["changes"], 3, "every change stored once")
            self.assertEqual(len(seen["projection"]["log"]), 1, "no step duplicated")
            self.assertEqual(seen["projection"], expected[rid])

        # A second phone's first pull is killed part-way, twice, then completes.
        li_dir = self.dir / "li"
        li = phone(li_dir, self.server.base)
        li.login("li", PASSWORD, "li's phone")
        del li
        self.kill_after(li_dir, 3)
        self.kill_after(li_dir, 4)
        done = self.finish(li_dir)
        self.assertEqual(sorted(done["reports"]), sorted(ids))
        li = phone(li_dir, self.server.base)
        for rid in ids:
            self.assertEqual(projection(li, rid), expected[rid])
            self.assertEqual(li.report(rid).heads, self.server.report(rid)["heads"])


class RevokedDevice(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-revoke-"))

    def tearDown(self):
        self.server.close()

    def test_a_revoked_phone_is_refused_and_wipes_its_data(self):
        data = self.dir / "wang"
        wang = phone(data, self.server.base)
        wang.login("wang", PASSWORD, "lost phone")
        device = wang.device_id()
        rid = wang.create_report("dispute_check", GRID)
        wang.set_field(rid, "parties", text("王五"))
        wang.sync()

        self.server.revoke(device)
        with self.assertRaises(gm.ClientError.DeviceRevoked):
            wang.sync()
        self.assertIsNone(wang.current_user())
        self.assertEqual(wang.list_reports(None), [])
        self.assertNotEqual(wang.device_id(), device)
        stored = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
        self.assertNotIn("王五".encode(), stored)


class ReassignedCase(unittest.TestCase):
    """A drug-control case is reassigned at the office while its worker records a visit offline:
    the visit waits on the server as held work, the phone drops the case only once the server
    holds it, and the office merges it into the case."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-reassign-"))
        self.zhao = self.server.add_user("zhao", "grid_worker", GRID)
        self.server.add_user("zhou", "drug_control_officer", "t1")

    def tearDown(self):
        self.server.close()

    def test_a_visit_recorded_offline_on_a_reassigned_case_is_held_then_merged(self):
        base = self.server.base
        officer = phone(self.dir / "zhou", base)
        officer.login("zhou", PASSWORD, "officer")
        wang = phone(self.dir / "wang", base)
        worker = wang.login("wang", PASSWORD, "wang's phone").id
        case = officer.create_report("drug_control_case", GRID)
        officer.set_fields(
            case,
            texts(
                subject_name="赵某",
                subject_id_number="110105194912310021",
                programme="community_rehabilitation",
                programme_start="2026-01-05",
                assigned_worker=worker,
                status="active",
            ),
        )
        officer.sync()
        wang.sync()
        self.assertEqual(projection(wang, case)["fields"]["assigned_worker"], worker)

        # Offline: a visit with a positive urine test, and the case set to relapsed.
        self.server.stop()
        wang.append_log(case, texts(date="2026-11-20", visitor=worker, test="urine", test_result="positive"))
        wang.set_field(case, "status", text("relapsed"))
        with self.assertRaises(gm.ClientError.Network):
            wang.sync()
        self.server.start()

        # Meanwhile the office reassigns the case to zhao, of the same grid.
        status, patched = self.server.call(
            "PATCH", f"/api/v1/reports/{case}", {"fields": {"assigned_worker": self.zhao}}
        )
        self.assertEqual(status, 200, patched)

        summary = wang.sync()
        self.assertEqual([(h.id, h.code) for h in summary.held], [(case, "out_of_scope")], summary)
        self.assertEqual(summary.pending_changes, 0, "the server holds the work")
        with self.assertRaises(gm.ClientError.NotFound):
            wang.report(case)
        self.assertEqual(self.server.device(wang.device_id())["pending_changes"], 0)

        # The case is unchanged until the office decides; the office sees the held visit.
        status, report = self.server.call("GET", f"/api/v1/reports/{case}")
        self.assertEqual((status, report["fields"]["status"]), (200, "active"))
        status, held = self.server.call("GET", f"/api/v1/held?report={case}")
        self.assertEqual(status, 200, held)
        [item] = held["items"]
        self.assertEqual((item["author_id"], item["code"]), (worker, "out_of_scope"))
        status, merged = self.server.call("POST", f"/api/v1/held/{item['id']}/merge", {"note": "核实属实"})
        self.assertEqual((status, merged["state"]), (200, "merged"), merged)

        status, report = self.server.call("GET", f"/api/v1/reports/{case}")
        self.assertEqual(status, 200, report)
        self.assertEqual(report["fields"]["status"], "relapsed")
        self.assertEqual(report["fields"]["assigned_worker"], self.zhao)
        [visit] = report["log"]
        self.assertEqual((visit["visitor"], visit["test_result"]), (worker, "positive"))

        # The new worker receives the case with the visit.
        zhao = phone(self.dir / "zhao", base)
        zhao.login("zhao", PASSWORD, "zhao's phone")
        zhao.sync()
        self.assertEqual(projection(zhao, case)["fields"]["status"], "relapsed")
        self.assertEqual(len(zhao.report(case).log), 1)


class RetiredPhone(unittest.TestCase):
    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-retire-"))

    def tearDown(self):
        self.server.close()

    def test_a_retired_phone_delivers_its_offline_edit_before_it_wipes_itself(self):
        wang = phone(self.dir / "wang", self.server.base)
        wang.login("wang", PASSWORD, "old phone")
        rid = wang.create_report("dispute_check", GRID)
        wang.set_field(rid, "parties", text("王家"))
        wang.sync()
        device = wang.device_id()
        # Recorded after the last sync: the office does not know of it yet.
        wang.set_field(rid, "description", text("交回手机前的最后一条"))

        status, _ = self.server.call("POST", f"/api/v1/devices/{device}/retire")
        self.assertEqual(status, 204)
        self.assertEqual(self.server.device(device)["state"], "retiring")

        with self.assertRaises(gm.ClientError.DeviceRetired):
            wang.sync()
        status, report = self.server.call("GET", f"/api/v1/reports/{rid}")
        self.assertEqual(status, 200, report)
        self.assertEqual(report["fields"]["description"], "交回手机前的最后一条", "delivered before the wipe")
        self.assertEqual(wang.list_reports(None), [])
        self.assertIsNone(wang.current_user())
        self.assertNotEqual(wang.device_id(), device)
        self.assertEqual(self.server.device(device)["state"], "retired")


class MovedWorker(unittest.TestCase):
    """The office moves a worker to a grid of another village while their phone holds an unsent
    edit: the phone keeps its session and device, the edit is held for the old grid."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-moved-"))
        self.server.add_org_unit("v2", "t1", "village")
        self.server.add_org_unit("g3", "v2", "grid")

    def tearDown(self):
        self.server.close()

    def test_a_moved_worker_keeps_their_phone_and_their_unsent_edit_is_held(self):
        wang = phone(self.dir / "wang", self.server.base)
        me = wang.login("wang", PASSWORD, "wang's phone")
        rid = wang.create_report("dispute_check", GRID)
        wang.set_field(rid, "parties", text("王家"))
        wang.sync()
        device = wang.device_id()
        wang.set_field(rid, "description", text("又吵起来了"))

        status, moved = self.server.call("PATCH", f"/api/v1/users/{me.id}", {"org_unit_id": "g3"})
        self.assertEqual(status, 200, moved)
        self.assertEqual(moved["retiring_devices"], [])
        self.assertEqual(self.server.device(device)["state"], "active")

        summary = wang.sync()
        self.assertTrue(summary.rescoped, summary)
        self.assertEqual([(h.id, h.code) for h in summary.held], [(rid, "out_of_scope")], summary)
        self.assertEqual(summary.pending_changes, 0)
        self.assertEqual(wang.device_id(), device, "not wiped")
        self.assertEqual(wang.current_user().org_unit_id, "g3")
        self.assertEqual(wang.list_reports(None), [], "g1 dropped once delivered")

        # The old grid's report is unchanged; the edit waits for its people.
        status, report = self.server.call("GET", f"/api/v1/reports/{rid}")
        self.assertEqual(status, 200, report)
        self.assertIsNone(report["fields"].get("description"))
        status, held = self.server.call("GET", f"/api/v1/held?report={rid}")
        self.assertEqual(status, 200, held)
        [item] = held["items"]
        self.assertEqual((item["author_id"], item["device_id"]), (me.id, device))


class LocalWork(unittest.TestCase):
    """What a form needs without any server: schemas, validation, log entries, search, keys."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-local-"))

    def tearDown(self):
        self.server.close()

    def test_forms_validation_log_and_search(self):
        client = phone(self.dir / "p", self.server.base)
        kinds = {k.kind: k for k in client.schemas()}
        self.assertEqual(sorted(kinds), ["dispute_check", "drug_control_case", "satisfaction_canvass"])
        risk = next(f for f in kinds["dispute_check"].fields if f.id == "risk_level")
        self.assertEqual(risk.field_type, gm.FieldType.SINGLE_CHOICE)
        self.assertEqual([c.id for c in risk.choices], ["low", "medium", "high"])

        with self.assertRaises(gm.ClientError.Unauthorized):
            client.create_report("dispute_check", GRID)
        client.login("wang", PASSWORD, "phone")
        rid = client.create_report("dispute_check", GRID)
        with self.assertRaises(gm.ClientError.Validation):
            client.set_field(rid, "risk_level", text("extreme"))
        with self.assertRaises(gm.ClientError.NotFound):
            client.set_field(rid, "no_such_field", text("x"))
        problems = client.validate_value("dispute_check", "found_on", False, text("yesterday"))
        self.assertEqual([p.code for p in problems], ["invalid_date"])
        missing = {p.field for p in client.validate_report(rid) if p.code == "required"}
        self.assertLessEqual({"category", "parties", "description"}, missing)

        client.set_field(rid, "parties", text("赵六"))
        entry = client.append_log(rid, texts(date="2026-11-04", mediator="user-wang", method="调解"))
        client.edit_log(rid, entry, texts(outcome="和解"))
        self.assertEqual(
            {f.field: f.value for f in client.report(rid).log[0].fields}["outcome"], text("和解")
        )
        other = client.create_report("dispute_check", GRID)
        client.remove_log(rid, entry)
        self.assertEqual(client.report(rid).log, [])
        self.assertEqual([s.id for s in client.search_reports("赵六")], [rid])
        self.assertEqual(len(client.list_reports("dispute_check")), 2)
        self.assertIn(other, [s.id for s in client.list_reports(None)])
        self.assertGreater(client.pending_changes(), 0)
        del client

        with self.assertRaises(gm.ClientError.WrongKey):
            gm.FieldClient(str(self.dir / "p"), self.server.base, bytes(32))


class FormsPublishedAtRuntime(unittest.TestCase):
    """An office publishes a new report kind from an Excel workbook through the API; the phone
    gets it at its next sync with no new app, fills one in offline, and syncs it."""

    def setUp(self):
        self.server = Server()
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-forms-"))

    def tearDown(self):
        self.server.close()

    def publish_workbook(self, path):
        token = self.server.admin_token()
        req = urllib.request.Request(
            f"{self.server.base}/api/v1/schemas",
            data=path.read_bytes(),
            method="POST",
            headers={
                "authorization": f"Bearer {token}",
                "content-type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            },
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            draft = json.loads(r.read())
        self.assertEqual(draft["state"], "draft")
        status, published = self.server.call(
            "POST", f"/api/v1/schemas/{draft['kind']}/{draft['version']}/publish", token=token
        )
        self.assertEqual(status, 200, published)
        return draft["kind"]

    def test_a_kind_published_from_a_workbook_reaches_the_phone_and_a_visit_filed_offline_reaches_the_server(self):
        wang = phone(self.dir / "wang", self.server.base)
        wang.login("wang", PASSWORD, "wang's phone")
        wang.sync()
        self.assertNotIn("anti_fraud_visit", [k.kind for k in wang.schemas()])

        kind = self.publish_workbook(HERE.parents[2] / "examples" / "forms" / "anti_fraud_visit.xlsx")
        summary = wang.sync()
        self.assertEqual(summary.new_schemas, 1)
        form = {k.kind: k for k in wang.schemas()}[kind]
        self.assertEqual(form.label.zh, "反诈宣传入户")
        head = next(f for f in form.fields if f.id == "household_head")
        self.assertTrue(head.sensitive)

        self.server.stop()
        rid = wang.create_report(kind, GRID)
        wang.set_fields(
            rid,
            texts(
                visited_on="2026-12-04",
                household_head="赵六",
                app_installed="yes",
                suspicious_contact="no",
                status="visited",
            ),
        )
        self.assertEqual(wang.validate_report(rid), [])
        self.server.start()
        delivered = wang.sync()
        self.assertEqual((delivered.pushed_reports, delivered.pending_changes), (1, 0))
        held = self.server.report(rid)
        log("server holds", held["projection"]["fields"])
        self.assertEqual(held["projection"]["fields"]["household_head"], "赵六")
        self.assertEqual(held["projection"]["kind"], kind)


class VillageOfficeHub(unittest.TestCase):
    """Two phones that cannot reach the server sync with the village office hub and see each
    other's work; the hub's acknowledgements leave it owed to the server, a photo too; once the
    office's uplink is back the hub relays, and the server's receipts settle the phones' work and
    the photo through the hub, without the phones reaching the server."""

    OFFLINE = "http://127.0.0.1:9"

    def setUp(self):
        self.server = Server()
        self.hub = Hub(self.server)
        self.dir = Path(tempfile.mkdtemp(prefix="gridsync-hub-phones-"))

    def tearDown(self):
        self.hub.close()
        self.server.close()

    def until(self, check, what):
        for _ in range(150):
            result = check()
            if result:
                return result
            time.sleep(0.2)
        self.fail(f"{what}: not within 30 s")

    def test_phones_sync_through_the_hub_and_receipts_settle_what_they_owe_the_server(self):
        for name in ("wang", "li"):
            client = phone(self.dir / name, self.server.base)
            client.login(name, PASSWORD, f"{name}'s phone")
            client.set_office_hub(self.hub.base)
            client.sync()
            self.assertEqual(client.office_hub(), self.hub.base)
            del client

        # The phones are out of the server's reach (reopened on an address where nothing
        # listens), and so is the office: the server is down.
        wang = phone(self.dir / "wang", self.OFFLINE)
        li = phone(self.dir / "li", self.OFFLINE)
        self.server.stop()
        rid = wang.create_report("dispute_check", GRID)
        wang.set_fields(rid, texts(parties="张三, 李四", description="打谷场纠纷"))
        photo_path = HERE / "site_photo.jpg"
        new = gm.NewAttachment(
            field="site_photos", entry=None, name=None, media_type="image/jpeg",
            taken_at="2026-11-02T09:30:00+08:00", location=None,
        )
        sha = wang.attach_file(rid, new, str(photo_path))
        owed = wang.pending_changes()

        def at_hub():
            try:
                return wang.sync()
            except gm.ClientError.Network:
                # The hub lets phones in once it has reached the server once.
                return None

        summary = self.until(at_hub, "the hub lets wang in")
        self.assertEqual(summary.via_hub, self.hub.id)
        self.assertEqual(summary.pending_changes, owed, "a hub's ack settles nothing owed")
        self.assertEqual((summary.attachments_at_hub, summary.pending_uploads), (1, 1))
        self.assertTrue(wang.attachments(rid)[0].pending_upload, "the photo stays on the phone")
        pulled = li.sync()
        self.assertEqual(pulled.via_hub, self.hub.id)
        self.assertEqual(projection(li, rid)["fields"]["description"], "打谷场纠纷")
        self.assertEqual(li.pending_changes(), 0, "wang's work is not li's to deliver")

        # The office's uplink is back: the hub relays, and the receipts come back through it.
        self.server.start()

        receipts = []

        def settled():
            done = wang.sync()
            receipts.append(done.receipts)
            return done if sum(receipts) > 0 and done.pending_changes == 0 and done.pending_uploads == 0 else None

        done = self.until(settled, "the server's receipts settle wang's work and photo")
        self.assertEqual(done.via_hub, self.hub.id)
        self.assertFalse(wang.attachments(rid)[0].pending_upload)
        token = self.server.admin_token()
        [listed] = self.server.get_json(f"/api/v1/reports/{rid}", token)["attachments"]
        self.assertEqual((listed["sha256"], listed["uploaded"]), (sha, True))
        held = self.server.report(rid)
        self.assertEqual(held["projection"]["fields"]["description"], "打谷场纠纷")
        self.assertEqual(held["projection"]["created_by"], "user-wang")


if __name__ == "__main__":
    unittest.main(verbosity=2)
