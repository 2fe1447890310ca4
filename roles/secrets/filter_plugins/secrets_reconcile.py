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
        if not stored.get(name):
            result[name] = _random(length)
            changes.append(f"generated {name}")
        elif group in rotate:
            result[name] = _random(length)
            changes.append(f"rotated {name}")
        else:
            result[name] = stored[name]

    old_tokens = dict(stored.get("store_tokens") or {})
    rotate_ids = set(rotate_stores or store_ids) if "stores" in rotate else set()
    tokens = {}
    for sid in store_ids:
        if not old_tokens.get(sid):
            tokens[sid] = _random(token_length)
            changes.append(f"generated store token {sid}")
        elif sid in rotate_ids:
            tokens[sid] = _random(token_length)
            changes.append(f"rotated store token {sid}")
        else:
            tokens[sid] = old_tokens[sid]
    for sid in sorted(set(old_tokens) - set(store_ids)):
        changes.append(f"revoked store token {sid}")
    result["store_tokens"] = tokens
    return {"secrets": result, "changes": changes}


class FilterModule:
    def filters(self):
        return {"secrets_reconcile": secrets_reconcile}
