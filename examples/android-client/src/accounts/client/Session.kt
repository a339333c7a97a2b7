package accounts.client

import java.io.IOException

/** Told when the session is over and the user has to log in again. */
interface SessionListener {
    /**
     * The server refused the refresh token (401 from /api/auth/refresh/: logged out, ended on
     * another device, password changed, reused after rotation, expired). Called once per session,
     * on the thread of the request that found out, with the tokens already cleared; never for a
     * network error, a 429 or a 5xx, and not for the app's own [AccountClient.logout].
     */
    fun onSessionEnded()
}

/** A refresh that failed for now (network, 429, 5xx): the tokens are kept, try again later. */
class RefreshUnavailableException(message: String, cause: Throwable? = null) : IOException(message, cause)

/**
 * The tokens of the signed-in user and the one place that refreshes them.
 *
 * Refreshes are serialised: one runs, requests that need one meanwhile wait on the lock and then
 * reuse its result (new tokens, the end of the session, or its failure). A refresh that fails with
 * an IOException is sent once more: if the server rotated the token but its answer was lost, the
 * repeat arrives inside the server's grace window (REFRESH_REUSE_GRACE, 10 s) and gets the same
 * new pair instead of being treated as a stolen token.
 */
class Session(
    private val store: TokenStore,
    private val api: RefreshApi,
    private val listener: SessionListener,
    /** Refresh before a request when the access token expires within this (capped at a quarter of its lifetime). */
    private val proactiveMarginMillis: Long = 30_000,
    /** Wall clock in milliseconds; the device's clock may be off, the 401 path covers that. */
    private val clock: () -> Long = { System.currentTimeMillis() }
) {
    private val lock = Any()
    /** The refresh token whose last refresh failed for now, and when that attempt ended (monotonic). */
    private var failedRefresh: String? = null
    private var failedAtNanos = 0L
    private var failure: IOException? = null

    fun isSignedIn(): Boolean = store.load() != null

    /** After login or registration. */
    fun start(tokens: Tokens) = synchronized(lock) {
        store.save(tokens)
        failedRefresh = null
    }

    /** Clears the tokens and returns them (for the app's own logout: no [SessionListener] call). */
    fun endLocally(): Tokens? = synchronized(lock) {
        val tokens = store.load()
        store.clear()
        tokens
    }

    /**
     * The access token for a request about to be sent; refreshed first when it expires within the
     * margin (proactive: saves the round trip of a 401). A failed proactive refresh is not an error
     * here: the current token is sent, and a 401 goes the usual way.
     */
    fun accessForRequest(): String? {
        val tokens = store.load() ?: return null
        val (iat, exp) = Jwt.lifetime(tokens.access) ?: return tokens.access
        val margin = minOf(proactiveMarginMillis, (exp - iat) / 4)
        if (exp - clock() > margin) return tokens.access
        return try {
            accessAfterRefusal(tokens.access)
        } catch (e: IOException) {
            tokens.access
        }
    }

    /**
     * A new access token after [sent] was refused, or null when the session has ended. Blocks while
     * another request refreshes. Throws [RefreshUnavailableException] when the refresh failed for
     * now (the tokens are kept).
     */
    @Throws(IOException::class)
    fun accessAfterRefusal(sent: String): String? {
        val waitingSince = System.nanoTime()
        var ended = false
        val access = synchronized(lock) {
            val current = store.load() ?: return null            // signed out meanwhile
            if (current.access != sent) return current.access     // another request refreshed: reuse it
            val failed = failure
            if (failed != null && failedRefresh == current.refresh && failedAtNanos - waitingSince >= 0) {
                throw failed                                      // the refresh we waited for failed: share that
            }
            when (val outcome = refreshWithOneRetry(current.refresh)) {
                is RefreshResult.Refreshed -> {
                    store.save(outcome.tokens)
                    failedRefresh = null
                    outcome.tokens.access
                }
                is RefreshResult.Refused -> {
                    store.clear()
                    ended = true
                    null
                }
                is RefreshResult.Unavailable -> {
                    val error = RefreshUnavailableException("refresh answered ${outcome.status}; tokens kept")
                    remember(current.refresh, error)
                    throw error
                }
            }
        }
        if (ended) listener.onSessionEnded()                      // outside the lock, once: the tokens are gone
        return access
    }

    private fun refreshWithOneRetry(refresh: String): RefreshResult {
        try {
            return api.refresh(refresh)
        } catch (first: IOException) {
            // The answer may have been lost after the server rotated: the repeat, within the grace
            // window, gets the same pair.
            try {
                Thread.sleep(200)
                return api.refresh(refresh)
            } catch (second: IOException) {
                val error = RefreshUnavailableException("refresh failed twice: ${second.message}; tokens kept", second)
                remember(refresh, error)
                throw error
            } catch (e: InterruptedException) {
                Thread.currentThread().interrupt()
                throw RefreshUnavailableException("interrupted", e)
            }
        }
    }

    private fun remember(refresh: String, error: IOException) {
        failedRefresh = refresh
        failedAtNanos = System.nanoTime()
        failure = error
    }
}
