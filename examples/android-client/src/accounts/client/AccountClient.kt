package accounts.client

import okhttp3.HttpUrl
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import org.json.JSONObject
import java.io.IOException
import java.util.concurrent.TimeUnit

/** A non-2xx answer: its status and JSON body (the contract's field errors or `detail`). */
class ApiException(val status: Int, val body: String) : IOException("HTTP $status: $body")

data class User(val pk: Long, val username: String, val email: String, val firstName: String, val lastName: String)

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
 * both are built from it.
 */
class AccountClient(
    baseUrl: String,
    store: TokenStore,
    listener: SessionListener,
    base: OkHttpClient = OkHttpClient(),
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
        return signIn(post(plain, "api/auth/registration/", body))
    }

    @Throws(IOException::class)
    fun login(username: String, password: String): User =
        signIn(post(plain, "api/auth/login/", JSONObject().put("username", username).put("password", password)))

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

    // TODO(sessions endpoint): the server has no sessions list yet. Once it does:
    // fun sessions(): List<DeviceSession> = GET the list through `api`
    // fun logOutOtherDevices() = the endpoint that ends every session but this one, through `api`;
    // this device's tokens stay valid.
    fun logOutOtherDevices(): Nothing = TODO("needs a sessions endpoint on the server (issue 16)")

    // TODO(account deletion endpoint): once the server has one: call it through `api` (it will
    // likely ask for the password again), then session.endLocally() without onSessionEnded().
    fun deleteAccount(password: String): Nothing = TODO("needs an account deletion endpoint on the server (issue 16)")

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

    private fun post(path: String, body: JSONObject): Request =
        Request.Builder().url(url(path)).post(jsonBody(body)).build()

    private fun post(client: OkHttpClient, path: String, body: JSONObject): JSONObject = call(client, post(path, body))

    private fun call(client: OkHttpClient, request: Request): JSONObject =
        client.newCall(request).execute().use { response -> json(response) }

    private fun json(response: Response): JSONObject {
        val text = response.body()?.string() ?: ""
        if (!response.isSuccessful) throw ApiException(response.code(), text)
        return JSONObject(text)
    }
}
