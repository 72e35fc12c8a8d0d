"""Start-up settings of the Ometria stand-in: where it listens and which limits it enforces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

DEFAULT_API_KEY: Final = "sandbox-key"
OMETRIA_MAX_RECORDS: Final = 100
OMETRIA_MAX_RECORD_BYTES: Final = 60 * 1024


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """Listening address, Ometria's limits and the faults to start with.

    The fault fields only seed the runtime faults, which `/_sandbox/faults` can change later.
    Use `port=0` to let the OS pick a free port (tests do).
    """

    host: str = "127.0.0.1"
    port: int = 8085
    # Kept out of the repr so the key never reaches a log line or a traceback.
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)
    rate_limit: float = 4.0
    max_records: int = OMETRIA_MAX_RECORDS
    max_record_bytes: int = OMETRIA_MAX_RECORD_BYTES
    fail_next: int = 0
    fail_status: int = 503
    latency_ms: float = 0.0
    retry_after: int | None = None
    queue_size_remaining: int | None = None

    def __post_init__(self) -> None:
        problems = [
            message
            for failed, message in (
                (not self.api_key, "api_key must not be empty"),
                (not 0 <= self.port <= 65535, "port must be 0..65535 (0 picks a free port)"),
                (self.rate_limit < 0, "rate_limit must be >= 0 (0 turns the limit off)"),
                (self.max_records < 1, "max_records must be >= 1"),
                (self.max_record_bytes < 1, "max_record_bytes must be >= 1"),
                (self.fail_next < 0, "fail_next must be >= 0"),
                (not 400 <= self.fail_status <= 599, "fail_status must be an HTTP error, 400..599"),
                (self.latency_ms < 0, "latency_ms must be >= 0"),
                (self.retry_after is not None and self.retry_after < 0, "retry_after must be >= 0"),
                (
                    self.queue_size_remaining is not None and self.queue_size_remaining < 0,
                    "queue_size_remaining must be >= 0",
                ),
            )
            if failed
        ]
        if problems:
            raise ValueError("invalid sandbox config: " + "; ".join(problems))
