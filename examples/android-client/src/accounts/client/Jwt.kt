package accounts.client

import org.json.JSONObject
import java.util.Base64

/**
 * Reads the claims of a JWT *without* checking its signature: only to know when the client's own
 * access token expires (the server checks everything). On Android below API 26 use
 * android.util.Base64.decode(part, Base64.URL_SAFE or Base64.NO_PADDING or Base64.NO_WRAP)
 * instead of java.util.Base64.
 */
object Jwt {
    /** `exp` and `iat` in milliseconds since the epoch, or null when the token cannot be read. */
    fun lifetime(token: String): Pair<Long, Long>? {
        val parts = token.split('.')
        if (parts.size != 3) return null
        return try {
            val claims = JSONObject(String(Base64.getUrlDecoder().decode(parts[1].trimEnd('=')), Charsets.UTF_8))
            val exp = claims.optLong("exp", -1)
            val iat = claims.optLong("iat", -1)
            if (exp <= 0 || iat <= 0) null else Pair(iat * 1000, exp * 1000)
        } catch (e: Exception) {
            null
        }
    }
}
