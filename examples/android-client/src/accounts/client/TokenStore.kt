package accounts.client

import java.util.concurrent.atomic.AtomicReference

/** The two tokens of a session. They are only ever saved, read and cleared together. */
data class Tokens(val access: String, val refresh: String) {
    override fun toString() = "Tokens(…)" // never log a token
}

/**
 * Where the app keeps its session. Implementations must be thread-safe and save both tokens in one
 * write: a crash between two writes must never leave a new access token next to a spent refresh
 * token (the next refresh would be refused, or worse, seen as a reused token and end the session).
 *
 * On Android keep them encrypted: one EncryptedSharedPreferences entry or one DataStore value
 * holding both tokens (e.g. as one JSON string), its key in the Android Keystore (docs/mobile.md).
 * [Session] serialises every write through this interface under its own lock, so an
 * implementation only has to make each single call atomic.
 */
interface TokenStore {
    fun load(): Tokens?
    fun save(tokens: Tokens)
    fun clear()
}

/** In memory: one immutable [Tokens] behind an atomic reference (tests, or a process-only session). */
class MemoryTokenStore(initial: Tokens? = null) : TokenStore {
    private val tokens = AtomicReference<Tokens?>(initial)
    override fun load(): Tokens? = tokens.get()
    override fun save(tokens: Tokens) = this.tokens.set(tokens)
    override fun clear() = tokens.set(null)
}
