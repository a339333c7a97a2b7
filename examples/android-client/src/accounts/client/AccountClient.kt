package accounts.client

import okhttp3.HttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import org.json.JSONArray
import org.json.JSONObject
import java.io.IOException
import java.util.concurrent.TimeUnit

/** A non-2xx answer: its status and JSON body (the contract's field errors or `detail`). */
class ApiException(val status: Int, val body: String) : IOException("HTTP $status: $body")

data class User(val pk: Long, val username: String, val email: String, val firstName: String, val lastName: String)

/** One signed-in device of the user, as `GET /api/auth/sessions/` lists it (times ISO-8601). */
data class DeviceSession(
    val id: String,
    val device: String,
    val ip: String,
    val createdAt: String,
    val lastUsedAt: String,
    /** This device's own session. */
    val current: Boolean
)

data class Profile(
    val id: Long,
    val username: String,
    val email: String,
    val nickname: String,
    val signature: String,
    val avatar: String?
)

/**
 * The account API for the app: one instance per process (it owns the refresh lock).
 *
 * [api] is the client for every authenticated call, including the app's own requests to this
 * server: it adds the Bearer token, refreshes shortly before expiry and after a 401 of the
 * authentication layer. Login, registration, refresh and logout go through a client without
 * `Authorization`. Pass your own [base] client (certificate pinning, logging, timeouts);
 * both are built from it. [deviceName] names this device in the user's list of sessions
 * (`X-Device-Name` at login and registration, e.g. `"${Build.MANUFACTURER} ${Build.MODEL}"`).
 */
class AccountClient(
    baseUrl: String,
    store: TokenStore,
    listener: SessionListener,
    base: OkHttpClient = OkHttpClient(),
    private val deviceName: String? = null,
    proactiveMarginMillis: Long = 30_000,
    clock: () -> Long = { System.currentTimeMillis() }
) {
    private val root: HttpUrl = HttpUrl.get(if (baseUrl.endsWith("/")) baseUrl else "$baseUrl/")
    /** Never sends Authorization: login, registration, logout. */
    private val plain: OkHttpClient = base
    /** The refresh's: its call timeout keeps the retry of a lost answer inside the 10 s grace window. */
    private val refreshClient: OkHttpClient = base.newBuilder().callTimeout(4, TimeUnit.SECONDS).build()
    val session = Session(store, RefreshApi(root, refreshClient), listener, proactiveMarginMillis, clock)
    val api: OkHttpClient = authenticatedClient(base, session)

    fun url(path: String): HttpUrl = root.resolve(path.removePrefix("/"))!!

    @Throws(IOException::class)
    fun register(username: String, password: String, email: String? = null): User {
        val body = JSONObject().put("username", username).put("password1", password).put("password2", password)
        if (email != null) body.put("email", email)
        return signIn(call(plain, signInRequest("api/auth/registration/", body)))
    }

    @Throws(IOException::class)
    fun login(username: String, password: String): User =
        signIn(call(plain, signInRequest("api/auth/login/", JSONObject().put("username", username).put("password", password))))

    /**
     * Ends the session on the server and here. The tokens are cleared first, whatever the server
     * answers, so requests still in flight stop refreshing; [SessionListener.onSessionEnded] is not
     * called (the app asked for this). Returns false when the server could not be told (the
     * session then ends at its refresh token's expiry).
     */
    fun logout(): Boolean {
        val tokens = session.endLocally() ?: return true
        return try {
            call(plain, post("api/auth/logout/", JSONObject().put("refresh", tokens.refresh)))
            true
        } catch (e: IOException) {
            // 401 "Token is blacklisted": already over (that answer also ends a rotated token's session).
            e is ApiException && e.status == 401
        }
    }

    @Throws(IOException::class)
    fun profile(): Profile = profileOf(call(api, Request.Builder().url(url("api/accounts/profile/")).get().build()))

    @Throws(IOException::class)
    fun updateProfile(nickname: String? = null, signature: String? = null): Profile {
        val body = JSONObject()
        if (nickname != null) body.put("nickname", nickname)
        if (signature != null) body.put("signature", signature)
        return profileOf(call(api, Request.Builder().url(url("api/accounts/profile/")).patch(jsonBody(body)).build()))
    }

    // region readme-lifecycle
    /** The user's signed-in devices, most recently used first; this one has `current = true`. */
    @Throws(IOException::class)
    fun sessions(): List<DeviceSession> {
        val list = JSONArray(send(api, Request.Builder().url(url("api/auth/sessions/")).get().build()))
        return (0 until list.length()).map { list.getJSONObject(it) }.map {
            DeviceSession(
                it.getString("id"), it.getString("device"), it.getString("ip"), it.getString("created_at"),
                it.getString("last_used_at"), it.getBoolean("current")
            )
        }
    }

    /** "Log out other devices": ends every session of the user but this one (204). */
    @Throws(IOException::class)
    fun logOutOtherDevices() {
        send(api, Request.Builder().url(url("api/auth/sessions/")).delete().build())
    }

    /** Ends one other device's session (its next call gets 401, its refresh is refused). */
    @Throws(IOException::class)
    fun endSession(id: String) {
        send(api, Request.Builder().url(url("api/auth/sessions/$id/")).delete().build())
    }

    /**
     * Deletes the account for good, with the password asked again (204). A wrong password is an
     * [ApiException] 400 with a `password` list (429 after too many, as for logins). On success
     * the tokens are cleared here; [SessionListener.onSessionEnded] is not called (the user asked).
     */
    @Throws(IOException::class)
    fun deleteAccount(password: String) {
        val body = jsonBody(JSONObject().put("password", password))
        send(api, Request.Builder().url(url("api/auth/user/")).delete(body).build())
        session.endLocally()
    }
    // endregion

    private fun signIn(body: JSONObject): User {
        session.start(Tokens(body.getString("access"), body.getString("refresh")))
        val user = body.getJSONObject("user")
        return User(
            user.getLong("pk"), user.getString("username"), user.optString("email"),
            user.optString("first_name"), user.optString("last_name")
        )
    }

    private fun profileOf(body: JSONObject) = Profile(
        body.getLong("id"), body.getString("username"), body.optString("email"), body.optString("nickname"),
        body.optString("signature"), if (body.isNull("avatar")) null else body.getString("avatar")
    )

    private fun signInRequest(path: String, body: JSONObject): Request {
        val request = Request.Builder().url(url(path)).post(jsonBody(body))
        if (deviceName != null) request.header("X-Device-Name", deviceName)
        return request.build()
    }

    private fun post(path: String, body: JSONObject): Request =
        Request.Builder().url(url(path)).post(jsonBody(body)).build()

    private fun call(client: OkHttpClient, request: Request): JSONObject = JSONObject(send(client, request))

    /** The body of a 2xx answer (empty for 204); an [ApiException] for any other status. */
    private fun send(client: OkHttpClient, request: Request): String =
        client.newCall(request).execute().use { response -> text(response) }

    private fun text(response: Response): String {
        val text = response.body()?.string() ?: ""
        if (!response.isSuccessful) throw ApiException(response.code(), text)
        return text
    }
}
