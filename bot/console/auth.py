"""Console accounts: PBKDF2 password hashes from configuration, and checking a login.

A hash is written `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>` (Django's format), and
`BOT_CONSOLE_USERS` lists `name:hash` pairs separated by commas. Plain passwords are never
stored or configured: `python -m bot console hash-password` makes a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
_HASH = re.compile(r"^pbkdf2_sha256\$(\d+)\$([A-Za-z0-9./+=_-]+)\$([A-Za-z0-9+/=]+)$")
_NAME = re.compile(r"^[\w.@-]{1,64}$")
# A hash with too few iterations is refused: it would make a stolen configuration cheap to crack.
MIN_ITERATIONS = 1_000


def hash_password(password: str, iterations: int = DEFAULT_ITERATIONS,
                  salt: str | None = None) -> str:
    """Hash a password for BOT_CONSOLE_USERS."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt or secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Tell whether password matches the hash (in constant time for a given hash)."""
    match = _HASH.match(encoded)
    if not match:
        return False
    iterations, salt, expected = int(match[1]), match[2], match[3]
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


def iterations(encoded: str) -> int:
    """The iteration count a hash was made with (0 for a malformed hash)."""
    match = _HASH.match(encoded)
    return int(match[1]) if match else 0


def parse_users(text: str) -> dict[str, str]:
    """Read `name:hash, name:hash`; raise ValueError naming the position of a bad entry.

    The message never repeats a hash, so it is safe to print.
    """
    users: dict[str, str] = {}
    for position, part in enumerate((p.strip() for p in text.split(",")), start=1):
        if not part:
            continue
        name, _, encoded = part.partition(":")
        name = name.strip()
        match = _HASH.match(encoded.strip())
        if not match:
            raise ValueError(f"entry {position} is not name:pbkdf2_sha256$iterations$salt$hash "
                             "(make one with `python -m bot console hash-password --name NAME`)")
        if not _NAME.match(name):
            raise ValueError(f"entry {position}: a name is 1-64 letters, digits, '.', '_', '@' "
                             "or '-'")
        if int(match[1]) < MIN_ITERATIONS:
            raise ValueError(f"entry {position} ({name}): at least {MIN_ITERATIONS} iterations")
        if name in users:
            raise ValueError(f"entry {position}: the name {name} is listed twice")
        users[name] = encoded.strip()
    return users
