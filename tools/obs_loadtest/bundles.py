"""Store credential bundles.

A bundle is an env-style file per store, the format the secrets work writes
for each store's NestJS backend and browser build::

    # S001 - Store 001 Downtown
    LOKI_URL=https://obs.example.internal
    LOKI_USERNAME=S001
    LOKI_PASSWORD=<the store's push token>
    STORE_ID=S001

``KEY=VALUE`` per line; blank lines and ``#`` comments are ignored; a value may
be wrapped in single or double quotes; an ``export`` prefix is allowed.
``LOKI_URL`` is the edge's base URL (scheme://host[:port]); a URL that already
ends in ``/loki/api/v1/push`` is accepted too.

Reading a directory loads every ``*.env`` file in it (not recursive) that has
any of the four keys; such a file must have all four, or loading fails naming
the file and the missing key. Files with none of them (an admin bundle, say)
are ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BUNDLE_KEYS = ("LOKI_URL", "LOKI_USERNAME", "LOKI_PASSWORD", "STORE_ID")
PUSH_PATH = "/loki/api/v1/push"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class BundleError(ValueError):
    """A credential bundle is missing, unreadable or incomplete."""


@dataclass(frozen=True)
class StoreCredential:
    store_id: str
    username: str
    password: str
    base_url: str

    def __repr__(self) -> str:  # never print the token
        return f"StoreCredential(store_id={self.store_id!r}, username={self.username!r}, base_url={self.base_url!r})"


def base_url(url: str) -> str:
    """The edge's base URL: no trailing slash, no push path."""
    url = url.strip().rstrip("/")
    if url.endswith(PUSH_PATH):
        url = url[: -len(PUSH_PATH)]
    if not re.match(r"^https?://[^/\s]+", url):
        raise BundleError(f"LOKI_URL must be http(s)://host[:port], got {url!r}")
    return url.rstrip("/")


def parse_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_bundle(path: Path) -> StoreCredential | None:
    try:
        values = parse_env(Path(path).read_text())
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror}") from exc
    present = [k for k in BUNDLE_KEYS if k in values]
    if not present:
        return None
    missing = [k for k in BUNDLE_KEYS if not values.get(k)]
    if missing:
        raise BundleError(f"{path}: missing {', '.join(missing)} (a store bundle needs {', '.join(BUNDLE_KEYS)})")
    return StoreCredential(
        store_id=values["STORE_ID"],
        username=values["LOKI_USERNAME"],
        password=values["LOKI_PASSWORD"],
        base_url=base_url(values["LOKI_URL"]),
    )


def load_bundle_dir(directory: Path) -> list[StoreCredential]:
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: no such directory of store bundles")
    creds = [c for c in (load_bundle(p) for p in sorted(directory.glob("*.env"))) if c is not None]
    if not creds:
        raise BundleError(f"{directory}: no store bundle (*.env with {', '.join(BUNDLE_KEYS)})")
    seen: set[str] = set()
    for cred in creds:
        if cred.store_id in seen:
            raise BundleError(f"{directory}: store {cred.store_id} has more than one bundle")
        seen.add(cred.store_id)
    return creds


def parse_store_arg(arg: str, url: str) -> StoreCredential:
    """``--store ID:TOKEN`` (username = ID) or ``--store ID:USER:TOKEN``."""
    parts = arg.split(":", 2)
    if len(parts) == 2:
        store_id, token = parts
        user = store_id
    elif len(parts) == 3:
        store_id, user, token = parts
    else:
        raise BundleError(f"--store expects ID:TOKEN or ID:USER:TOKEN, got {arg.split(':', 1)[0]}:...")
    if not store_id or not token or not user:
        raise BundleError("--store: empty store id, username or token")
    return StoreCredential(store_id=store_id, username=user, password=token, base_url=base_url(url))
