#!/usr/bin/env python3
"""Rotation pusher (test tool): pushes one log line per store in turn to the
edge on loopback until STOP_FILE exists, then writes its counts as JSON.

usage: obs-test-pusher CREDENTIALS_JSON STOP_FILE RESULT_FILE
CREDENTIALS_JSON: {"S001": "token", ...}  (mode 0600, deleted by the caller)
"""
import base64
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

creds = json.load(open(sys.argv[1]))
stop_file, result_file = sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
counts = {sid: {"ok": 0, "failed": 0, "statuses": {}} for sid in creds}
started = time.time()
while not os.path.exists(stop_file) and time.time() - started < 600:
    for sid, token in creds.items():
        body = json.dumps({"streams": [{"stream": {"store": sid, "service": "pusher"},
                                        "values": [[str(time.time_ns()), "rotation pusher"]]}]}).encode()
        req = urllib.request.Request("https://127.0.0.1/loki/api/v1/push", data=body, method="POST", headers={
            "Host": "obs.test.internal", "Content-Type": "application/json", "User-Agent": "obs-test-pusher",
            "Authorization": "Basic " + base64.b64encode(f"{sid}:{token}".encode()).decode()})
        try:
            status = urllib.request.urlopen(req, context=ctx, timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = type(exc).__name__
        key = "ok" if status in (200, 204) else "failed"
        counts[sid][key] += 1
        counts[sid]["statuses"][str(status)] = counts[sid]["statuses"].get(str(status), 0) + 1
    time.sleep(0.02)
with open(result_file + ".tmp", "w") as fh:
    json.dump(counts, fh)
os.replace(result_file + ".tmp", result_file)
