package accounts.client

import okhttp3.HttpUrl
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import org.json.JSONObject
import java.io.IOException

sealed class RefreshResult {
    class Refreshed(val tokens: Tokens) : RefreshResult()
    /** 401 from /api/auth/refresh/: the refresh token is refused for good, the session is over. */
    object Refused : RefreshResult()
    /** 429, 5xx or anything else unexpected: keep the tokens, try later. */
    class Unavailable(val status: Int) : RefreshResult()
}

internal val JSON: MediaType = MediaType.parse("application/json; charset=utf-8")!!

internal fun jsonBody(json: JSONObject): RequestBody = RequestBody.create(JSON, json.toString())

/**
 * `POST /api/auth/refresh/ {"refresh": …}` through [plain], a client that never sends
 * `Authorization`: the server's authentication layer runs on every route and would refuse the
 * expired access token with a 401 before the refresh is even looked at.
 */
class RefreshApi(private val baseUrl: HttpUrl, private val plain: OkHttpClient) {
    @Throws(IOException::class)
    fun refresh(refresh: String): RefreshResult {
        val request = Request.Builder()
            .url(baseUrl.resolve("api/auth/refresh/")!!)
            .post(jsonBody(JSONObject().put("refresh", refresh)))
            .build()
        plain.newCall(request).execute().use { response ->
            return when (response.code()) {
                200 -> {
                    val body = try {
                        JSONObject(response.body()!!.string())
                    } catch (e: Exception) {
                        throw IOException("refresh answered 200 without JSON", e)
                    }
                    RefreshResult.Refreshed(Tokens(body.getString("access"), body.getString("refresh")))
                }
                401 -> RefreshResult.Refused
                else -> RefreshResult.Unavailable(response.code())
            }
        }
    }
}
