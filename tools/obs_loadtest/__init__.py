"""obs_loadtest: open-loop load generator for the stack's log push route.

It pushes realistic POS logs (NestJS backend and browser frontend events) to
Loki's push API through the nginx edge, one credential per simulated store, in
phases (warm-up, sustained, spike); reports achieved rates, latency
percentiles, errors by status, retried and dropped batches; and checks for zero
loss by querying back, per store, the count of lines it delivered.

Run it with ``PYTHONPATH=tools python -m obs_loadtest --help`` (or ``make
loadtest``). See README.md, section "Load test tool".
"""

__version__ = "1.0.0"

REPORT_SCHEMA = "obs-loadtest/1"
