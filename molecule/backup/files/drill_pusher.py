#!/usr/bin/env python3
"""Drill pusher (test tool, not a store client): pushes one numbered line at a
time to Loki on loopback, as tenant S001, at RATE pushes/s, until STOP exists.
Writes STATE (JSON) after every push: the number of the last acknowledged
line, how many pushes were answered what, and the first failures.

  drill_pusher.py URL RATE STOP STATE
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

url, rate, stop, state_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
state = {"acked": 0, "statuses": {}, "failures": []}
seq, period = 0, 1.0 / rate
next_at = time.monotonic()
while not os.path.exists(stop):
    seq += 1
    body = json.dumps({"streams": [{"stream": {"store": "S001", "service": "drill", "environment": "test"},
                                    "values": [[str(time.time_ns()), f"drill line seq={seq}"]]}]}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", "X-Scope-OrgID": "S001"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        status = f"error: {exc}"
    state["statuses"][str(status)] = state["statuses"].get(str(status), 0) + 1
    if status == 204:
        state["acked"] = seq
    elif len(state["failures"]) < 5:
        state["failures"].append({"seq": seq, "status": str(status)})
    tmp = state_path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(state, fh)
    os.replace(tmp, state_path)
    next_at += period
    time.sleep(max(0.0, next_at - time.monotonic()))
