package accounts.client

import okhttp3.Response
import org.json.JSONObject

/**
 * Which 401 means "refresh" (see docs/mobile.md and shared/src/error.rs for every 401 body).
 *
 * The authentication layer refuses the Bearer access token with
 * `{"code": "token_not_valid", "messages": [{"token_class": "AccessToken", ...}]}` (expired, signed
 * with a retired key, or its session ended), or refuses its user with `user_not_found` /
 * `user_inactive`. Only these are answered with a refresh: the refresh then decides (a new pair, or
 * a 401 that ends the session). Every other 401 is about something else and is handed to the caller
 * as it is: a token in a request *body* (token/verify, logout: `token_not_valid` without
 * `messages`, or just a `detail`), a wrong old password, no credentials sent at all.
 */
object AuthErrors {
    fun isAuthenticationRefused(response: Response): Boolean {
        if (response.code() != 401) return false
        val body = try {
            JSONObject(response.peekBody(16 * 1024).string())
        } catch (e: Exception) {
            return false
        }
        return when (body.optString("code")) {
            "user_not_found", "user_inactive" -> true
            "token_not_valid" -> {
                val messages = body.optJSONArray("messages") ?: return false
                (0 until messages.length()).any { messages.optJSONObject(it)?.optString("token_class") == "AccessToken" }
            }
            else -> false
        }
    }
}
