"""Realistic POS log lines and Loki push bodies.

Lines are JSON, as the stores' software writes them: the NestJS backend
(`service="pos-backend"`, pino-style records with a `context`) and the browser
frontend (`service="pos-frontend"`, UI events). The mix is mostly sales and
scans, with payment declines, printer outages, sync failures and UI errors.

Each push body is one store's batch in Loki's JSON push format::

    {"streams": [{"stream": {"service": ..., "store": ..., "environment": ...,
                             "level": ..., "run_id": ...},
                  "values": [["<unix ns>", "<line>", {"terminal": ..., "user": ..., "trace_id": ...}]]}]}

The third element of a value is structured metadata (Loki 3, schema v13,
`allow_structured_metadata`). The run id goes in the `run_id` label by default
(so the zero-loss query selects the run by stream) or in structured metadata
with ``run_id_in="metadata"`` (no new streams per run; the query then filters).
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

_CARD_DECLINES = [("insufficient_funds", "51"), ("expired_card", "54"), ("do_not_honor", "05"), ("pin_incorrect", "55")]
_PRINTERS = ["EPSON-TM-T88VI", "STAR-TSP143IIIU", "EPSON-TM-m30II"]
_SYNC_ENTITIES = ["sales", "inventory", "prices", "customers", "cash_drawer"]
_SYNC_ERRORS = [
    ("ETIMEDOUT", "connect ETIMEDOUT 203.0.113.20:443"),
    ("ECONNRESET", "read ECONNRESET"),
    ("HTTP_503", "Request failed with status code 503"),
    ("EAI_AGAIN", "getaddrinfo EAI_AGAIN api.central.example.internal"),
]
_ROUTES = ["/checkout", "/checkout/payment", "/sales/history", "/inventory/lookup", "/returns"]
_UI_ERRORS = [
    "TypeError: Cannot read properties of undefined (reading 'price')",
    "ChunkLoadError: Loading chunk 412 failed.",
    "Error: Scanner device disconnected",
]
_USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
]


@dataclass
class LogLine:
    service: str
    level: str
    line: str
    metadata: dict[str, str]


class PosLogGenerator:
    """Generates POS log lines for one store. Deterministic for a given seed."""

    # (weight, service, builder name); levels follow the event.
    _EVENTS = [
        (30, "pos-backend", "_sale_completed"),
        (18, "pos-backend", "_http_request"),
        (6, "pos-backend", "_payment_declined"),
        (2, "pos-backend", "_printer_offline"),
        (3, "pos-backend", "_sync_failed"),
        (22, "pos-frontend", "_ui_sale_completed"),
        (12, "pos-frontend", "_ui_barcode_scanned"),
        (3, "pos-frontend", "_ui_payment_declined"),
        (2, "pos-frontend", "_ui_offline"),
        (2, "pos-frontend", "_ui_error"),
    ]

    def __init__(self, store_id: str, seed: int | None = None):
        self.store_id = store_id
        self.rng = random.Random(seed)
        self._weights = [e[0] for e in self._EVENTS]
        self._sale_seq = 0

    # -- helpers ---------------------------------------------------------
    def _meta(self) -> dict[str, str]:
        rng = self.rng
        return {
            "terminal": f"T{rng.randint(1, 6):02d}",
            "user": f"cashier-{rng.randint(1, 40):03d}",
            "trace_id": f"{rng.getrandbits(128):032x}",
        }

    def _sale_id(self) -> str:
        self._sale_seq += 1
        return f"{self.store_id}-{self.rng.getrandbits(32):08x}-{self._sale_seq:06d}"

    @staticmethod
    def _iso(ts_ns: int) -> str:
        sec, ns = divmod(ts_ns, 1_000_000_000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns // 1_000_000:03d}Z"

    def _backend(self, ts_ns, level, context, msg, meta, **fields):
        record = {"level": level, "time": self._iso(ts_ns), "context": context, "msg": msg,
                  "storeId": self.store_id, "terminal": meta["terminal"], "traceId": meta["trace_id"]}
        record.update(fields)
        return LogLine("pos-backend", level, json.dumps(record, separators=(",", ":")), meta)

    def _frontend(self, ts_ns, level, event, msg, meta, **fields):
        record = {"level": level, "time": self._iso(ts_ns), "event": event, "msg": msg,
                  "storeId": self.store_id, "terminal": meta["terminal"], "route": self.rng.choice(_ROUTES),
                  "userAgent": self.rng.choice(_USER_AGENTS)}
        record.update(fields)
        return LogLine("pos-frontend", level, json.dumps(record, separators=(",", ":")), meta)

    # -- backend events --------------------------------------------------
    def _sale_completed(self, ts_ns, meta):
        rng = self.rng
        return self._backend(ts_ns, "info", "SalesService", "Sale completed", meta, saleId=self._sale_id(),
                             items=rng.randint(1, 12), total=round(rng.uniform(1.5, 240.0), 2), currency="EUR",
                             paymentMethod=rng.choice(["card", "card", "cash", "voucher"]),
                             durationMs=rng.randint(40, 900), user=meta["user"])

    def _http_request(self, ts_ns, meta):
        rng = self.rng
        method, url, status = rng.choice([("POST", "/api/sales", 201), ("GET", "/api/products/lookup", 200),
                                          ("GET", "/api/prices", 200), ("POST", "/api/returns", 201),
                                          ("GET", "/api/products/lookup", 404)])
        return self._backend(ts_ns, "info", "HTTP", "request completed", meta,
                             req={"method": method, "url": url}, res={"statusCode": status},
                             responseTime=rng.randint(3, 350))

    def _payment_declined(self, ts_ns, meta):
        reason, code = self.rng.choice(_CARD_DECLINES)
        return self._backend(ts_ns, "warn", "PaymentService", "Payment declined", meta, saleId=self._sale_id(),
                             reason=reason, responseCode=code, provider="acquirer",
                             amount=round(self.rng.uniform(3.0, 180.0), 2), currency="EUR")

    def _printer_offline(self, ts_ns, meta):
        return self._backend(ts_ns, "error", "PrinterService", "Receipt printer offline", meta,
                             printer=self.rng.choice(_PRINTERS), port="/dev/usb/lp0",
                             err={"code": "ENODEV", "message": "No such device"}, pendingReceipts=self.rng.randint(1, 5))

    def _sync_failed(self, ts_ns, meta):
        code, message = self.rng.choice(_SYNC_ERRORS)
        return self._backend(ts_ns, "error", "SyncService", "Sync with central failed", meta,
                             entity=self.rng.choice(_SYNC_ENTITIES), attempt=self.rng.randint(1, 5),
                             queued=self.rng.randint(1, 250), err={"code": code, "message": message})

    # -- frontend events -------------------------------------------------
    def _ui_sale_completed(self, ts_ns, meta):
        return self._frontend(ts_ns, "info", "sale.completed", "Sale completed", meta,
                              saleId=self._sale_id(), items=self.rng.randint(1, 12),
                              checkoutMs=self.rng.randint(800, 45000))

    def _ui_barcode_scanned(self, ts_ns, meta):
        return self._frontend(ts_ns, "info", "barcode.scanned", "Barcode scanned", meta,
                              sku=f"{self.rng.randint(0, 10**13 - 1):013d}", lookupMs=self.rng.randint(5, 400))

    def _ui_payment_declined(self, ts_ns, meta):
        reason, _ = self.rng.choice(_CARD_DECLINES)
        return self._frontend(ts_ns, "warn", "payment.declined", "Payment declined shown to cashier", meta,
                              reason=reason)

    def _ui_offline(self, ts_ns, meta):
        return self._frontend(ts_ns, "warn", "network.offline", "Backend unreachable; queueing sales offline", meta,
                              queuedSales=self.rng.randint(1, 20))

    def _ui_error(self, ts_ns, meta):
        return self._frontend(ts_ns, "error", "ui.error", self.rng.choice(_UI_ERRORS), meta,
                              component=self.rng.choice(["CheckoutPage", "PaymentDialog", "ScannerInput"]))

    # -- public ------------------------------------------------------------
    def line(self, ts_ns: int) -> LogLine:
        _, _, builder = self.rng.choices(self._EVENTS, weights=self._weights)[0]
        return getattr(self, builder)(ts_ns, self._meta())


def build_push_body(gen: PosLogGenerator, lines: int, environment: str, run_id: str,
                    run_id_in: str = "label", ts_ns: int | None = None) -> bytes:
    """One store's batch of ``lines`` lines as a Loki JSON push body."""
    base = time.time_ns() if ts_ns is None else ts_ns
    streams: dict[tuple[str, str], dict] = {}
    for i in range(lines):
        ts = base + i * 1000  # 1 µs apart: ordered, distinct within the batch
        entry = gen.line(ts)
        key = (entry.service, entry.level)
        if key not in streams:
            labels = {"service": entry.service, "store": gen.store_id, "environment": environment,
                      "level": entry.level}
            if run_id_in == "label":
                labels["run_id"] = run_id
            streams[key] = {"stream": labels, "values": []}
        meta = dict(entry.metadata)
        if run_id_in == "metadata":
            meta["run_id"] = run_id
        streams[key]["values"].append([str(ts), entry.line, meta])
    return json.dumps({"streams": list(streams.values())}, separators=(",", ":")).encode()
