"""htpasswd hashes for the nginx edge, computed on the control node.

Salts are derived from an HMAC of the credential itself, so a rerun with the
same secret renders the same line (idempotent, no --diff churn) and a changed
secret gets a new salt. The salt is stored in the hash anyway; deriving it
from the secret discloses nothing a verifier could not already test.

- nginx_push_credential_digest: the SHA-1 (hex) of the exact Authorization
  header a store sends, "Basic " + base64(store + ":" + token). The push
  route's Lua guard looks the header's digest up in memory (one hash per
  request, no file read); long random tokens need no salt or slow hash.
- nginx_sha512_crypt / nginx_bcrypt: slow hashes for human passwords, checked by
  nginx through the system crypt(3) (libxcrypt knows $6$ and $2b$).
"""
import base64
import hashlib
import hmac

from ansible.errors import AnsibleFilterError

_CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _salt_bytes(secret, context, length):
    return hmac.new(secret.encode(), context.encode(), hashlib.sha256).digest()[:length]


def _salt_chars(secret, context, length):
    raw = hmac.new(secret.encode(), context.encode(), hashlib.sha512).digest()
    return "".join(_CRYPT64[b % 64] for b in raw[:length])


def nginx_push_credential_digest(token, store):
    """SHA-1 (hex) of the Authorization header of store's push credential."""
    header = "Basic " + base64.b64encode(f"{store}:{token}".encode()).decode()
    return hashlib.sha1(header.encode()).hexdigest()


def nginx_sha512_crypt(password, user, rounds=5000):
    try:
        from passlib.hash import sha512_crypt
    except ImportError as exc:  # pragma: no cover
        raise AnsibleFilterError("nginx_sha512_crypt needs libpass (passlib) on the control node") from exc
    salt = _salt_chars(str(password), "obs-admin:" + str(user), 16)
    return sha512_crypt.using(salt=salt, rounds=int(rounds)).hash(str(password))


def nginx_bcrypt(password, user, rounds=10):
    try:
        from passlib.hash import bcrypt
    except ImportError as exc:  # pragma: no cover
        raise AnsibleFilterError("nginx_bcrypt needs libpass (passlib) and bcrypt on the control node") from exc
    # bcrypt salts are 22 crypt64 characters whose last one carries 4 bits only.
    salt = _salt_chars(str(password), "obs-admin:" + str(user), 21) + ".Oeu"[ord(str(user)[:1] or "a") % 4]
    return bcrypt.using(salt=salt, rounds=int(rounds), ident="2b").hash(str(password))


class FilterModule:
    def filters(self):
        return {
            "nginx_push_credential_digest": nginx_push_credential_digest,
            "nginx_sha512_crypt": nginx_sha512_crypt,
            "nginx_bcrypt": nginx_bcrypt,
        }
