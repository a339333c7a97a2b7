package accounts.client

import okhttp3.Authenticator
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import okhttp3.Route

/** Paths that never get a Bearer token: they need none, and a stale one would be refused (401). */
internal val NO_BEARER = setOf(
    "/api/auth/login/", "/api/auth/registration/", "/api/auth/refresh/", "/api/auth/token/refresh/",
    "/api/auth/logout/"
)

internal fun needsNoBearer(request: Request): Boolean =
    request.url().encodedPath().trimEnd('/') + "/" in NO_BEARER

/** Application interceptor: adds the (proactively refreshed) access token to every API call. */
class AuthInterceptor(private val session: Session) : Interceptor {
    override fun intercept(chain: Interceptor.Chain): Response {
        val request = chain.request()
        if (request.header("Authorization") != null || needsNoBearer(request)) return chain.proceed(request)
        val access = session.accessForRequest() ?: return chain.proceed(request)
        return chain.proceed(request.newBuilder().header("Authorization", "Bearer $access").build())
    }
}

// region readme
/**
 * Answers a 401 of the authentication layer: one refresh for all the requests that got it, then
 * one retry with the new token. OkHttp calls this for every 401 response of the client it is set on.
 */
class TokenAuthenticator(private val session: Session) : Authenticator {
    override fun authenticate(route: Route?, response: Response): Request? {
        val request = response.request()
        val sent = request.header("Authorization")?.removePrefix("Bearer ") ?: return null // sent no token
        if (needsNoBearer(request)) return null
        if (generateSequence(response.priorResponse()) { it.priorResponse() }.any { it.code() == 401 }) {
            return null                                  // the retry with a fresh token got a 401 too
        }
        // Only the contract's `token_not_valid` about the AccessToken (or user_inactive/not_found);
        // token/verify and logout answer 401 about a token in their body: not ours to refresh.
        if (!AuthErrors.isAuthenticationRefused(response)) return null
        // Waits while another request refreshes and reuses its result. Throws (an IOException, the
        // tokens kept) when the refresh failed for now: network after one retry, 429, 5xx.
        // Null when the refresh token was refused: tokens cleared, onSessionEnded() called once.
        val access = session.accessAfterRefusal(sent) ?: return null
        return request.newBuilder().header("Authorization", "Bearer $access").build()
    }
}

/** The client of the app's calls. Refresh (and login, registration, logout) go through [base] itself. */
fun authenticatedClient(base: OkHttpClient, session: Session): OkHttpClient =
    base.newBuilder().addInterceptor(AuthInterceptor(session)).authenticator(TokenAuthenticator(session)).build()
// endregion
