#!/usr/bin/env python3
"""Summarises an `ansible-playbook --check --diff` run made with the
ansible.posix.json callback, for molecule/default/verify-check-mode.yml.

    check_summary.py RUN.json [PATH...] < secrets.json

RUN.json is the run's stdout. secrets.json (stdin, never argv) is a JSON list
of secret values; their nginx credential digests and hashes are computed here with the nginx
role's own filters. Prints one JSON object, free of any secret:

  stats       the run's per-host stats (ok, changed, failures, unreachable...)
  changed     per host, the sorted files the run reports as changed: dest or
              path of every changed result (loop items included; in check mode
              a new file's dest is only in the module arguments); a result
              hidden by no_log is named by its task (without the role) instead
  diffs       per host, the --diff text of each PATH given as argument
  other       per host, changed results that name no file (handlers, commands)
  failed      per host, the first failure messages
  leaks       how many secret values or hashes appear anywhere in RUN.json
  checked     how many values and hashes were looked for
"""
import base64
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "roles" / "nginx" / "filter_plugins"))
from nginx_htpasswd import nginx_push_credential_digest, nginx_sha512_crypt  # noqa: E402


def result_path(item):
    args = item.get("invocation", {}).get("module_args", {})
    return item.get("dest") or item.get("path") or args.get("dest") or args.get("path")


def result_items(res):
    return res.get("results") if isinstance(res.get("results"), list) else [res]


def result_files(task_name, res):
    """(files, other) that one changed host result reports."""
    files, other = [], []
    for item in result_items(res):
        if not item.get("changed"):
            continue
        path = result_path(item)
        if path:
            files.append(path)
        elif "censored" in item or "censored" in res:
            files.append(task_name)
        else:
            other.append(task_name)
    return files, other


def main():
    raw = Path(sys.argv[1]).read_text()
    run = json.loads(raw[raw.index("{"):])
    secrets = [str(s) for s in json.load(sys.stdin) if str(s)]
    needles = set(secrets)
    for value in secrets:
        for store in ("S001", "S002", "S003"):
            # The exact header a store sends, and its digest in the edge's file.
            needles.add(base64.b64encode(f"{store}:{value}".encode()).decode())
            needles.add(nginx_push_credential_digest(value, store))
        needles.add(nginx_sha512_crypt(value, "admin"))

    diff_paths = set(sys.argv[2:])
    changed, other, failed, diffs = {}, {}, {}, {}
    for play in run["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            for host, res in task["hosts"].items():
                if res.get("failed") or res.get("unreachable"):
                    failed.setdefault(host, []).append(f"{name}: {res.get('msg', '')}"[:300])
                if res.get("changed"):
                    files, others = result_files(name, res)
                    changed.setdefault(host, set()).update(files)
                    other.setdefault(host, set()).update(others)
                    for item in result_items(res):
                        if item.get("changed") and result_path(item) in diff_paths:
                            diffs.setdefault(host, {})[result_path(item)] = json.dumps(item.get("diff"))
    print(json.dumps({
        "stats": run["stats"],
        "changed": {h: sorted(v) for h, v in changed.items()},
        "other": {h: sorted(v) for h, v in other.items()},
        "failed": failed,
        "diffs": diffs,
        "leaks": sum(1 for n in needles if n in raw),
        "checked": len(needles),
    }, indent=1))


if __name__ == "__main__":
    main()
