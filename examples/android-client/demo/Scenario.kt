// The scenario the test command runs against the local server (scripts/android_client.sh):
// the library of ../src as an app uses it, with failures injected on the client's side of the wire.
// Usage: Scenario BASE_URL SERVER_LOG   (the server's JSON request log: one line per request)
package accounts.demo

import accounts.client.AccountClient
import accounts.client.ApiException
import accounts.client.Jwt
import accounts.client.MemoryTokenStore
import accounts.client.RefreshUnavailableException
import accounts.client.SessionListener
import accounts.client.Tokens
import okhttp3.Interceptor
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Protocol
import okhttp3.Request
import okhttp3.RequestBody
import okhttp3.Response
import okhttp3.ResponseBody
import org.json.JSONObject
import java.io.File
import java.io.IOException
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlin.system.exitProcess

private var passed = 0
private var failed = 0

private fun expect(what: String, ok: Boolean, detail: Any? = null) {
    if (ok) {
        passed++
        println("  ok   $what")
    } else {
        failed++
        println("  FAIL $what${if (detail != null) ": ${detail.toString().take(300)}" else ""}")
    }
}

/** Failures on the wire of /api/auth/refresh/, injected in the app's base client. */
class Faults : Interceptor {
    /** The next N refresh answers are lost after the server has handled the request. */
    val dropAnswers = AtomicInteger(0)
    /** While set, refresh requests get this status without reaching the server (429, 503...). */
    @Volatile var fakeStatus = 0
    val refreshCalls = AtomicInteger(0)
    val lostAnswers: MutableList<String> = Collections.synchronizedList(ArrayList<String>())

    override fun intercept(chain: Interceptor.Chain): Response {
        val request = chain.request()
        if (!request.url().encodedPath().startsWith("/api/auth/refresh")) return chain.proceed(request)
        refreshCalls.incrementAndGet()
        val status = fakeStatus
        if (status != 0) {
            Thread.sleep(300) // as long as a round trip to a busy server
            return Response.Builder().request(request).protocol(Protocol.HTTP_1_1).code(status).message("injected")
                .body(ResponseBody.create(MediaType.parse("application/json"), "{\"detail\": \"injected\"}")).build()
        }
        val response = chain.proceed(request)
        if (dropAnswers.getAndUpdate { if (it > 0) it - 1 else 0 } > 0) {
            lostAnswers.add(response.body()!!.string())
            response.close()
            throw IOException("injected: connection lost before the refresh answer arrived")
        }
        return response
    }
}

/** One app install: its own store, listener and client. */
class App(base: String, skewMillis: Long = 0, device: String? = null) : SessionListener {
    val ended = AtomicInteger(0)
    val store = MemoryTokenStore()
    val faults = Faults()
    val client = AccountClient(
        base, store, this,
        base = OkHttpClient.Builder().addInterceptor(faults).build(),
        deviceName = device,
        clock = { System.currentTimeMillis() + skewMillis }
    )

    override fun onSessionEnded() {
        ended.incrementAndGet()
    }
}

/** The server's request log: one JSON line per request, `fields.route` and `fields.status`. */
class ServerLog(private val file: File) {
    private fun lines(): List<JSONObject> = file.readLines().mapNotNull {
        try {
            JSONObject(it).optJSONObject("fields")
        } catch (e: Exception) {
            null
        }
    }.filter { it.optString("message") == "request" }

    fun mark(): Int = lines().size

    fun since(mark: Int, route: String, status: Int? = null): Int {
        Thread.sleep(100) // the server writes its line after the answer
        return lines().drop(mark).count { it.optString("route") == route && (status == null || it.optInt("status") == status) }
    }
}

const val REFRESH = "/api/auth/refresh/"
const val PROFILE = "/api/accounts/profile/"

/** Runs [body] on [n] threads released at once; the results or exceptions, in order. */
fun <T> parallel(n: Int, body: (Int) -> T): List<Any?> {
    val start = CountDownLatch(1)
    val results = arrayOfNulls<Any?>(n)
    val threads = (0 until n).map { i ->
        Thread {
            start.await()
            results[i] = try {
                body(i)
            } catch (e: Throwable) {
                e
            }
        }.apply { start() }
    }
    start.countDown()
    threads.forEach { it.join(30_000) }
    if (threads.any { it.isAlive }) throw IllegalStateException("parallel requests still running after 30 s")
    return results.toList()
}

/** Sleeps until the access token in [app]'s store has expired (the server: `exp <= now`, in seconds). */
fun waitForExpiry(app: App) {
    val (_, exp) = Jwt.lifetime(app.store.load()!!.access)!!
    val wait = exp + 150 - System.currentTimeMillis()
    if (wait > 0) Thread.sleep(minOf(wait, 10_000))
}

/** Sleeps to the start of the next second, so that a token issued now has (almost) its whole lifetime. */
fun alignToSecond() = Thread.sleep(1020 - System.currentTimeMillis() % 1000)

/** One part of the scenario; an exception fails it and the scenario goes on. */
fun phase(title: String, body: () -> Unit) {
    println(title)
    try {
        body()
    } catch (e: Throwable) {
        expect("runs to its end", false, e)
    }
}

fun main(args: Array<String>) {
    val base = args[0]
    val log = ServerLog(File(args[1]))
    val username = "android${System.nanoTime() % 1_000_000_000}"
    val password = "xk29!pLm#q-android"

    phase("registration and profile") {
        val first = App(base)
        val user = first.client.register(username, password)
        expect("registration signs in", user.username == username && first.client.session.isSignedIn())
        val profile = first.client.updateProfile(nickname = "droid")
        expect("profile PATCH and GET with the Bearer token", profile.nickname == "droid" && first.client.profile().nickname == "droid")
    }

    phase("20 parallel requests after expiry, device clock 1 h behind (no proactive refresh: the 401 path)") {
        val app = App(base, skewMillis = -3_600_000)
        app.client.login(username, password)
        waitForExpiry(app)
        val mark = log.mark()
        val results = parallel(20) { app.client.profile() }
        val errors = results.filter { it !is accounts.client.Profile }
        expect("all 20 succeed", errors.isEmpty(), errors.take(3))
        val unauthorized = log.since(mark, PROFILE, 401)
        expect("the server refused the expired token ($unauthorized of 20 requests got 401)", unauthorized >= 1)
        expect("exactly one refresh on the server", log.since(mark, REFRESH) == 1, log.since(mark, REFRESH))
        expect("still signed in, onSessionEnded() not called", app.store.load() != null && app.ended.get() == 0)
    }

    phase("20 parallel requests after expiry, device clock right (proactive refresh before sending)") {
        val app = App(base)
        app.client.login(username, password)
        waitForExpiry(app)
        val mark = log.mark()
        val results = parallel(20) { app.client.profile() }
        val errors = results.filter { it !is accounts.client.Profile }
        expect("all 20 succeed", errors.isEmpty(), errors.take(3))
        expect("exactly one refresh on the server", log.since(mark, REFRESH) == 1, log.since(mark, REFRESH))
        expect("no request was sent with the expired token (no 401)", log.since(mark, PROFILE, 401) == 0, log.since(mark, PROFILE, 401))
    }

    phase("the refresh answer is lost once (after the server rotated)") {
        val app = App(base, skewMillis = -3_600_000)
        app.client.login(username, password)
        val before = app.store.load()!!
        waitForExpiry(app)
        app.faults.dropAnswers.set(1)
        val mark = log.mark()
        val result = try { app.client.profile() } catch (e: IOException) { e }
        expect("the request succeeds", result is accounts.client.Profile, result)
        expect("the server saw the refresh twice, both 200", log.since(mark, REFRESH, 200) == 2, log.since(mark, REFRESH))
        val lost = app.faults.lostAnswers.firstOrNull()?.let { JSONObject(it).getString("refresh") }
        val now = app.store.load()
        expect("the retry inside the grace window got the same new refresh token", now != null && lost != null && now.refresh == lost && lost != before.refresh)
        expect("still signed in, onSessionEnded() not called", app.client.profile().username == username && app.ended.get() == 0)
    }

    phase("the refresh fails for now: 503, 429, the network twice") {
        val app = App(base, skewMillis = -3_600_000)
        app.client.login(username, password)
        val before = app.store.load()!!
        waitForExpiry(app)
        for (status in listOf(503, 429)) {
            app.faults.fakeStatus = status
            app.faults.refreshCalls.set(0)
            val results = parallel(5) { app.client.profile() }
            expect("$status: the 5 parallel calls fail as retryable (IOException)", results.all { it is RefreshUnavailableException }, results.take(2))
            expect("$status: one refresh attempt for the 5 (the waiters share its failure)", app.faults.refreshCalls.get() == 1, app.faults.refreshCalls.get())
            expect("$status: tokens kept, onSessionEnded() not called", app.store.load() == before && app.ended.get() == 0)
        }
        app.faults.fakeStatus = 0
        app.faults.dropAnswers.set(2)
        val mark = log.mark()
        val lostTwice = try { app.client.profile() } catch (e: IOException) { e }
        expect("lost twice: the call fails as retryable", lostTwice is RefreshUnavailableException, lostTwice)
        expect("lost twice: tokens kept, onSessionEnded() not called", app.store.load() == before && app.ended.get() == 0)
        val again = try { app.client.profile() } catch (e: IOException) { e }
        expect("the next call (inside the grace window) succeeds", again is accounts.client.Profile, again)
        expect("one rotation: all three refresh answers carried the same refresh token",
            app.faults.lostAnswers.map { JSONObject(it).getString("refresh") }.toSet() == setOf(app.store.load()?.refresh),
            log.since(mark, REFRESH))
    }

    phase("401s that are not about the access token") {
        val app = App(base)
        alignToSecond() // the token stays outside the proactive margin for this phase
        app.client.login(username, password)
        val before = app.store.load()
        val mark = log.mark()
        val verify = Request.Builder().url(app.client.url("api/auth/token/verify/"))
            .post(RequestBody.create(MediaType.parse("application/json"), "{\"token\": \"not.a.token\"}")).build()
        val code = app.client.api.newCall(verify).execute().use { it.code() }
        expect("token/verify of a bad token: 401 handed to the caller", code == 401, code)
        expect("no refresh for it, tokens unchanged", log.since(mark, REFRESH) == 0 && app.store.load() == before)
    }

    phase("the session is logged out on the server (another device, a password change): parallel requests") {
        val app = App(base)
        app.client.login(username, password)
        val tokens: Tokens = app.store.load()!!
        val bare = OkHttpClient()
        val logout = Request.Builder().url(app.client.url("api/auth/logout/"))
            .post(RequestBody.create(MediaType.parse("application/json"), JSONObject().put("refresh", tokens.refresh).toString())).build()
        expect("logged out on the server", bare.newCall(logout).execute().use { it.code() } == 200)
        val mark = log.mark()
        val results = parallel(5) { app.client.profile() }
        expect("the 5 calls fail with 401", results.all { it is ApiException && it.status == 401 }, results.take(2))
        expect("onSessionEnded() fired exactly once", app.ended.get() == 1, app.ended.get())
        expect("tokens cleared", app.store.load() == null)
        expect("one refresh, refused (401)", log.since(mark, REFRESH, 401) == 1 && log.since(mark, REFRESH) == 1, log.since(mark, REFRESH))
    }

    phase("the app's own logout") {
        val app = App(base)
        app.client.login(username, password)
        val tokens = app.store.load()!!
        expect("logout() reaches the server", app.client.logout())
        expect("tokens cleared, onSessionEnded() not called (the app asked)", app.store.load() == null && app.ended.get() == 0)
        val refused = try { app.client.profile() } catch (e: ApiException) { e.status }
        expect("later calls go out without a token (401)", refused == 401, refused)
        val bare = OkHttpClient()
        val refresh = Request.Builder().url(app.client.url("api/auth/refresh/"))
            .post(RequestBody.create(MediaType.parse("application/json"), JSONObject().put("refresh", tokens.refresh).toString())).build()
        expect("its refresh token is dead on the server", bare.newCall(refresh).execute().use { it.code() } == 401)
        expect("onSessionEnded() still not called", app.ended.get() == 0)
    }

    phase("sessions and devices: log out other devices") {
        val phone = App(base, device = "Pixel 8 (scenario)")
        val tablet = App(base, device = "Galaxy Tab (scenario)")
        phone.client.login(username, password)
        tablet.client.login(username, password)
        val listed = phone.client.sessions()
        val mine = listed.filter { it.current }
        expect("the list names this device as current", mine.size == 1 && mine[0].device == "Pixel 8 (scenario)", listed)
        expect("the other device is listed too", listed.any { !it.current && it.device == "Galaxy Tab (scenario)" }, listed)
        expect("most recently used first", listed.map { it.lastUsedAt } == listed.map { it.lastUsedAt }.sortedDescending(), listed)
        phone.client.logOutOtherDevices()
        val refused = try { tablet.client.profile() } catch (e: ApiException) { e.status }
        expect("the other device's next call: 401, its session ended once", refused == 401 && tablet.ended.get() == 1, refused)
        expect("this device stays signed in", phone.client.profile().username == username && phone.ended.get() == 0)
        expect("only this session is left", phone.client.sessions().map { it.current } == listOf(true))
    }

    phase("account deletion") {
        val doomed = "gone${System.nanoTime() % 1_000_000_000}"
        val app = App(base, device = "Pixel 8 (scenario)")
        app.client.register(doomed, password)
        val wrong = try { app.client.deleteAccount("not-the-password") } catch (e: ApiException) { e }
        expect("a wrong password: 400 with a password error, still signed in",
            wrong is ApiException && wrong.status == 400 && JSONObject(wrong.body).has("password") && app.store.load() != null, wrong)
        val tokens = app.store.load()!!
        app.client.deleteAccount(password)
        expect("deleted: tokens cleared, onSessionEnded() not called", app.store.load() == null && app.ended.get() == 0)
        val bare = OkHttpClient()
        val profile = Request.Builder().url(app.client.url("api/accounts/profile/")).header("Authorization", "Bearer ${tokens.access}").build()
        expect("the old access token is refused (401)", bare.newCall(profile).execute().use { it.code() } == 401)
        val login = try { App(base).client.login(doomed, password) } catch (e: ApiException) { e.status }
        expect("logging in again: 400", login == 400, login)
        val again = App(base).client.register(doomed, password)
        expect("the username can be registered again, with a new id", again.username == doomed)
    }

    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
