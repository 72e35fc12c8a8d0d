"""Prometheus metrics of the worker (served at /metrics by the Faust web server)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS = Counter(
    "loyalty_events",
    "Loyalty events read, by type and outcome (applied, duplicate, invalid, failed).",
    ["type", "outcome"],
    registry=REGISTRY,
)
LAST_FOLD = Gauge(
    "loyalty_last_fold_timestamp_seconds",
    "Unix time this worker last folded a batch of events (counted in loyalty_events_total "
    "at the same moment); 0 before its first.",
    registry=REGISTRY,
)
TRIGGERS_SUPPRESSED = Counter(
    "loyalty_triggers_suppressed",
    "Custom events not fired, by reason: horizon (too old or ahead of the clock), stale (the "
    "event changed nothing it announces), no_email (no address known to send it to), replayed "
    "(folded again by `python -m stream replay`: it fired the first time).",
    ["reason"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "loyalty_dead_letters",
    "Records sent to a dead-letter topic, by stage (parse, push) and error class.",
    ["stage", "error_class"],
    registry=REGISTRY,
)
RECORDS_PUSHED = Counter(
    "ometria_records_pushed",
    "Records Ometria accepted, by record type.",
    ["type"],
    registry=REGISTRY,
)
PUSH_REQUESTS = Counter(
    "ometria_push_requests",
    "Push requests by HTTP status (or 'error' when no answer came).",
    ["status"],
    registry=REGISTRY,
)
PUSH_RETRIES = Counter("ometria_push_retries", "Push attempts retried.", registry=REGISTRY)
PUSH_THROTTLED = Counter(
    "ometria_push_throttled", "Push requests answered 429 Too Many Requests.", registry=REGISTRY
)
RECORDS_REJECTED = Counter(
    "ometria_records_rejected",
    "Records Ometria accepted the request for but reported as rejected.",
    registry=REGISTRY,
)
ERRORS_REPORTED = Counter(
    "ometria_errors_reported",
    "New entries seen on Ometria's GET /v2/push/_errors list.",
    registry=REGISTRY,
)
BATCH_RECORDS = Histogram(
    "ometria_push_batch_records",
    "Records per push request.",
    buckets=(1, 5, 10, 25, 50, 75, 100),
    registry=REGISTRY,
)
PUSH_LATENCY = Histogram(
    "ometria_push_latency_seconds",
    "From the loyalty event's time to Ometria accepting its records.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400),
    registry=REGISTRY,
)
PUSH_RATE = Gauge(
    "ometria_push_rate", "Push requests per second the pacer allows now.", registry=REGISTRY
)
UNAUTHORIZED = Gauge(
    "ometria_unauthorized",
    "1 while Ometria refuses the API key (401/403) and delivery is paused, else 0.",
    registry=REGISTRY,
)
MISDIRECTED = Gauge(
    "ometria_misdirected",
    "1 while the push endpoint answers as if it were not Ometria's (3xx, 404, 405, 407: "
    "the base URL or a proxy is wrong) and delivery is paused, else 0.",
    registry=REGISTRY,
)
READY = Gauge(
    "loyalty_ready",
    "1 while this process's /readyz answers ready, else 0 (set at each /readyz and /metrics).",
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "loyalty_consumer_lag",
    "Records not yet committed, per partition this worker consumes (end offset - committed).",
    ["topic", "partition"],
    registry=REGISTRY,
)
OUTBOX_BACKLOG = Gauge(
    "ometria_outbox_backlog",
    "Outbox records this pusher has not yet delivered (its outbox partitions' lag).",
    registry=REGISTRY,
)
OUTBOX_LAG = Gauge(
    "ometria_outbox_lag",
    "Outbox records not yet delivered, per outbox partition this pusher owns.",
    ["partition"],
    registry=REGISTRY,
)
STALE_CONTACTS = Counter(
    "ometria_stale_contacts",
    "Contacts not sent because a newer version of them was already delivered.",
    registry=REGISTRY,
)
ERASURES_APPLIED = Counter(
    "loyalty_erasures_applied",
    "Customer erasures the pusher applied: their unsent records dropped, their contact "
    "version deleted.",
    registry=REGISTRY,
)
PAUSED = Gauge(
    "ometria_paused",
    "1 while pushing to Ometria is paused (`python -m stream pause`, or STREAM_OMETRIA__ENABLED="
    "false at start-up) and the outbox holds the backlog, else 0.",
    registry=REGISTRY,
)
SCHEDULED = Counter(
    "loyalty_scheduled_triggers",
    "Time-based custom events queued by the trigger scan, by rule.",
    ["rule"],
    registry=REGISTRY,
)
SCAN_SECONDS = Histogram(
    "loyalty_schedule_scan_seconds",
    "Duration of one trigger scan over this worker's profiles (including the waits for folds).",
    registry=REGISTRY,
)
SCAN_FAILURES = Counter(
    "loyalty_schedule_scan_failures",
    "Trigger scans cut short by an error (the next scan fires what was left).",
    registry=REGISTRY,
)
REGISTRY_WAITING = Gauge(
    "loyalty_schema_registry_waiting",
    "1 while the fold waits for the Schema Registry to answer (a writer schema of a framed "
    "record could not be fetched: see loyalty_schema_registry_failures_total), else 0.",
    registry=REGISTRY,
)
REGISTRY_FAILURES = Counter(
    "loyalty_schema_registry_failures",
    "Schema Registry look-ups that got no answer about the schema, by reason: unreachable, "
    "refused (401/403: the credentials), misdirected (not the registry's API: the URL), "
    "server_error (5xx, 429). Each is retried; no record is dead-lettered for them.",
    ["reason"],
    registry=REGISTRY,
)
ROCKSDB_MEMORY = Gauge(
    "loyalty_rocksdb_memory_bytes",
    "Memory of the table's RocksDB (rocksdb://) within its two budgets, by part: block_cache "
    "(STREAM_ROCKSDB__BLOCK_CACHE_MIB) and memtables (STREAM_ROCKSDB__WRITE_BUFFERS_MIB).",
    ["part"],
    registry=REGISTRY,
)
