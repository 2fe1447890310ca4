"""Filter that reconciles the stored secrets with what the stack needs.

``stored | secrets_reconcile(store_ids, rotate, rotate_stores, token_length, password_length)``
returns ``{"secrets": {...}, "changes": [...]}``:

* every secret the stack needs exists (generated from the OS CSPRNG, `secrets`);
* secrets named in ``rotate`` are replaced (``all`` replaces every rotatable one);
* store tokens of stores no longer in ``store_ids`` are dropped (revoked);
* ``changes`` names what changed, never a value, so it can be logged.

``grafana_secret_key`` is generated once and never rotated here: Grafana
encrypts stored datasource secrets with it.
"""
from __future__ import annotations

import secrets
import string

ALPHABET = string.ascii_letters + string.digits
ROTATABLE = ("grafana_admin", "admin_auth", "stores", "restic")
# secret name -> rotation group
SINGLE = {
    "grafana_admin_password": "grafana_admin",
    "admin_password": "admin_auth",
    "restic_password": "restic",
    "grafana_secret_key": None,
}


def _random(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(int(length)))


def _keep_or_make(old, rotating, length, label, changes):
    """The stored value, or a fresh one when it is missing or being rotated."""
    if not old:
        changes.append(f"generated {label}")
        return _random(length)
    if rotating:
        changes.append(f"rotated {label}")
        return _random(length)
    return old


def secrets_reconcile(stored, store_ids, rotate=(), rotate_stores=(), token_length=48, password_length=32):
    stored = dict(stored or {})
    rotate = set(rotate or ())
    unknown = rotate - set(ROTATABLE) - {"all"}
    if unknown:
        raise ValueError(f"unknown rotation target(s): {sorted(unknown)}")
    if "all" in rotate:
        rotate |= set(ROTATABLE)
    result, changes = {"version": 1}, []

    for name, group in SINGLE.items():
        length = 64 if name == "grafana_secret_key" else password_length
        result[name] = _keep_or_make(stored.get(name), group in rotate, length, name, changes)

    old_tokens = dict(stored.get("store_tokens") or {})
    rotate_ids = set(rotate_stores or store_ids) if "stores" in rotate else set()
    tokens = {sid: _keep_or_make(old_tokens.get(sid), sid in rotate_ids, token_length, f"store token {sid}", changes)
              for sid in store_ids}
    for sid in sorted(set(old_tokens) - set(store_ids)):
        changes.append(f"revoked store token {sid}")
    result["store_tokens"] = tokens
    return {"secrets": result, "changes": changes}


class FilterModule:
    def filters(self):
        return {"secrets_reconcile": secrets_reconcile}
