// The two-phone scenario through the generated Kotlin bindings, against a real `gridsync serve`.
//
//   java -Djna.library.path=DIR_OF_LIBGRIDSYNC_MOBILE -cp scenario.jar:jna.jar FieldScenarioKt \
//       SERVER_URL FIELD_FIXTURE DB_URL WORK_DIR HUB_URL HUB_ID
//
// Two phones log in, go offline (their clients are reopened on an address where nothing
// listens), both edit the same dispute check - different fields and the same field - and each
// adds a mediation step; they sync; the server holds one conflict and both steps; an admin
// resolves it; both phones sync and hold the same resolved report as the server. Then, out of
// the server's reach, the phones sync with the village office hub: wang's new report reaches li
// through it, still owed to the server, with its photo, until the server's receipts, relayed
// back through the hub, settle them. Exits non-zero on the first failed check.

import java.io.File
import java.util.concurrent.TimeUnit
import uniffi.gridsync_mobile.*

const val PASSWORD = "field test password"
const val GRID = "g1"
const val OFFLINE = "http://127.0.0.1:9"
val KEY = ByteArray(32) { 0x5a }

fun config() = defaultClientConfig().copy(
    connectTimeoutMs = 2_000uL,
    requestTimeoutMs = 20_000uL,
    maxAttempts = 2u,
    retryBaseDelayMs = 20uL,
)

fun phone(dir: File, server: String) = FieldClient.withConfig(dir.path, server, KEY, config())

fun text(value: String): FieldValue = FieldValue.Text(value)

/// `KEY=VALUE` lines of `field-fixture summary`: what the server holds of a report.
/** Logs in as the admin and resolves the report's open conflict at `path` with `valueJson`. */
fun resolveOverHttp(server: String, id: String, path: String, valueJson: String) {
    val http = java.net.http.HttpClient.newHttpClient()
    fun send(method: String, url: String, body: String?, token: String?): String {
        val builder = java.net.http.HttpRequest.newBuilder(java.net.URI.create(server + url))
            .header("content-type", "application/json")
        if (token != null) builder.header("authorization", "Bearer $token")
        val publisher = if (body == null) java.net.http.HttpRequest.BodyPublishers.noBody()
            else java.net.http.HttpRequest.BodyPublishers.ofString(body)
        val response = http.send(builder.method(method, publisher).build(),
            java.net.http.HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "$method $url: ${response.statusCode()} ${response.body()}" }
        return response.body()
    }
    val login = send("POST", "/api/v1/auth/login",
        """{"username":"admin","password":"$PASSWORD","device_id":"kt-console","device_name":"console"}""", null)
    val token = Regex("\"access_token\":\"([^\"]+)\"").find(login)!!.groupValues[1]
    val conflicts = send("GET", "/api/v1/conflicts?limit=200", null, token)
    val conflict = Regex("\\{\"id\":(\\d+),\"report_id\":\"$id\"[^}]*\"path\":\"${Regex.escape(path)}\"")
        .find(conflicts) ?: error("no open conflict at $path in $conflicts")
    send("POST", "/api/v1/conflicts/${conflict.groupValues[1]}/resolve", """{"value":$valueJson}""", token)
}

fun serverSummary(fixture: String, db: String, id: String): Map<String, String> {
    val process = ProcessBuilder(fixture, "summary", db, id).redirectErrorStream(false).start()
    val out = process.inputStream.bufferedReader().readText()
    check(process.waitFor(60, TimeUnit.SECONDS) && process.exitValue() == 0) { "field-fixture failed" }
    return out.lines().filter { it.contains('=') }.associate { it.substringBefore('=') to it.substringAfter('=') }
}

fun main(args: Array<String>) {
    val (server, fixture, db, work) = args
    val (hub, hubId) = args.drop(4)
    val root = File(work)
    val wangDir = File(root, "wang")
    val liDir = File(root, "li")

    val id = phone(wangDir, server).use { wang ->
        phone(liDir, server).use { li ->
            val me = wang.login("wang", PASSWORD, "wang's phone")
            check(me.role == "grid_worker" && me.scopePath == "/d/t1/v1/g1/") { "who am I: $me" }
            li.login("li", PASSWORD, "li's phone")
            val id = wang.createReport("dispute_check", GRID)
            wang.setFields(id, mapOf(
                "category" to text("land_property"),
                "parties" to text("张三, 李四"),
                "description" to text("宅基地边界争议"),
                "found_on" to text("2026-11-02"),
                "risk_level" to text("medium"),
                "status" to text("reported"),
            ))
            check(wang.validateReport(id).isEmpty()) { "the form is complete" }
            check(wang.sync().pushedReports == 1u) { "the report went up" }
            li.sync()
            check(li.report(id).json == wang.report(id).json) { "li holds wang's report" }
            id
        }
    }

    // Offline: the phones' clients reopen on an address where no server listens.
    phone(wangDir, OFFLINE).use { wang ->
        wang.setField(id, "risk_level", text("high"))
        wang.setField(id, "status", text("mediating"))
        wang.appendLog(id, mapOf("date" to text("2026-11-03"), "mediator" to text("user-wang"), "method" to text("上门调解")))
        check(wang.pendingChanges() == 3uL) { "three edits wait" }
        try {
            wang.sync()
            error("sync cannot succeed offline")
        } catch (e: ClientException.Network) {
            println("offline as expected: ${e.message}")
        }
        check(wang.pendingChanges() == 3uL) { "nothing lost offline" }
    }
    phone(liDir, OFFLINE).use { li ->
        li.setField(id, "place", text("村委会"))
        li.setField(id, "status", text("escalated"))
        li.appendLog(id, mapOf("date" to text("2026-11-03"), "mediator" to text("user-li"), "method" to text("电话沟通")))
        check(li.pendingChanges() == 3uL) { "three edits wait" }
    }

    phone(wangDir, server).use { wang ->
        phone(liDir, server).use { li ->
            check(wang.pendingChanges() == 3uL && li.pendingChanges() == 3uL) { "edits survived the restart" }
            wang.sync()
            li.sync()
            wang.sync()
            val seen = serverSummary(fixture, db, id)
            check(seen["open_conflicts"] == "fields.status") { "one conflict on the server: $seen" }
            check(seen["log_entries"] == "2") { "both steps on the server: $seen" }
            for (client in listOf(wang, li)) {
                val conflicts = client.conflicts(id)
                check(conflicts.map { it.path } == listOf("fields.status")) { "conflict on the phone: $conflicts" }
                check(conflicts[0].values.map { it.valueJson }.sorted() == listOf("\"escalated\"", "\"mediating\"")) { "both values offered" }
                check(client.report(id).heads.joinToString(",") == seen["heads"]) { "same heads as the server" }
            }

            // The admin resolves the conflict at the office, through the HTTP API.
            resolveOverHttp(server, id, "fields.status", "\"mediating\"")

            for (client in listOf(wang, li)) {
                val summary = client.sync()
                check(summary.openConflicts == 0u && summary.pendingChanges == 0uL) { "clean after sync: $summary" }
            }
            val after = serverSummary(fixture, db, id)
            check(after["open_conflicts"] == "") { "no open conflict on the server: $after" }
            check(after["status"] == "mediating") { "resolved value on the server: $after" }
            val report = wang.report(id)
            check(report.json == li.report(id).json) { "both phones hold the same report" }
            check(report.json == after["projection"]) { "and it is the server's" }
            check(report.heads.joinToString(",") == after["heads"]) { "same heads" }
            check(report.log.size == 2) { "both steps on the phone" }
            val status = report.fields.first { it.field == "status" }.value
            check(status == text("mediating")) { "status is $status" }
            println("kotlin scenario passed: report $id, ${report.log.size} steps, status mediating")
        }
    }

    // The village office hub: the phones cannot reach the server, the office PC can.
    for (dir in listOf(wangDir, liDir)) {
        phone(dir, server).use { it.setOfficeHub(hub) }
    }
    val visit = phone(wangDir, OFFLINE).use { wang ->
        val visit = wang.createReport("dispute_check", GRID)
        wang.setFields(visit, mapOf("parties" to text("赵六"), "description" to text("水渠纠纷")))
        val photo = ByteArray(40_000) { (it * 13 % 251).toByte() }
        val site = NewAttachment(
            field = "site_photos", entry = null, name = "水渠.jpg", mediaType = "image/jpeg",
            takenAt = null, location = null,
        )
        wang.attachBytes(visit, site, photo)
        val owed = wang.pendingChanges()
        val atHub = wang.sync()
        check(atHub.viaHub == hubId) { "synced through the hub: $atHub" }
        check(atHub.attachmentsAtHub == 1u && atHub.pendingUploads == 1u) {
            "the hub holds the photo, still owed to the server: $atHub"
        }
        // The hub relays at once (its uplink works), so a receipt may be back within this sync.
        check(atHub.receipts > 0u || atHub.pendingChanges == owed) {
            "a hub's ack settles nothing owed to the server: $atHub"
        }
        var settled: SyncSummary? = null
        var receipts = atHub.receipts
        for (attempt in 0 until 150) {
            val summary = wang.sync()
            receipts += summary.receipts
            if (receipts > 0u && summary.pendingChanges == 0uL && summary.pendingUploads == 0u) {
                settled = summary
                break
            }
            Thread.sleep(200)
        }
        check(settled != null) { "the server's receipts for the report and photo reached wang through the hub" }
        visit
    }
    phone(liDir, OFFLINE).use { li ->
        val pulled = li.sync()
        check(pulled.viaHub == hubId) { "li synced through the hub: $pulled" }
        check(li.report(visit).json.contains("水渠纠纷")) { "li sees wang's report through the hub" }
        check(li.pendingChanges() == 0uL) { "wang's work is not li's to deliver" }
    }
    check(serverSummary(fixture, db, visit)["projection"]!!.contains("水渠纠纷")) { "the server holds it" }
    println("kotlin office hub scenario passed: report $visit settled by the server's receipt")
}
