"""The one configuration object, read from `STREAM_*` environment variables (nested with `__`)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from stream.errors import ConfigurationError

ENV_PREFIX = "STREAM_"
DEFAULT_PARTITIONS = 8
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ConfigurationError):
    """The configuration is invalid; the message names each variable and how to fix it."""


def parse_duration(value: object) -> object:
    """Accept `90`, `1.5s`, `30m`, `24h`, `7d` as well as what pydantic takes (ISO 8601)."""
    if isinstance(value, str) and (match := _DURATION.match(value)):
        number, unit = match.groups()
        return timedelta(seconds=float(number) * _UNIT_SECONDS[unit or "s"])
    return value


def _comma_items(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _split_commas(value: object) -> object:
    return _comma_items(value) if isinstance(value, str) else value


def _readable_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        raise ValueError(f"no readable file at {value}; mount the Secret or fix the path")
    return value


def read_secret_file(path: Path) -> SecretStr:
    """A secret kept in a file (a mounted Kubernetes Secret), without its trailing newline.

    The one reader of every `*_FILE` secret: the settings below, and the Ometria client when
    it re-reads a rotated key. Raises OSError when the file cannot be read.
    """
    return SecretStr(path.read_text(encoding="utf-8").strip())


def _fill_from_file(model: BaseModel, field: str, path: Path | None) -> bool:
    """Set `field` from the secret file at `path` unless the field is set directly (its own
    variable wins); an empty file leaves it unset. True when the file was read."""
    if getattr(model, field) is not None or path is None or not path.is_file():
        return False
    secret = read_secret_file(path)
    # The models are frozen; this runs in their own after-validators, before anyone sees them.
    object.__setattr__(model, field, secret if secret.get_secret_value() else None)
    return True


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers."
    )
    session_timeout: Annotated[timedelta, Field(ge=timedelta(seconds=6))] = Field(
        default=timedelta(seconds=30),
        description="How long a silent worker keeps its partitions before the group moves them.",
    )
    stall_timeout: Annotated[timedelta, Field(ge=timedelta(seconds=10))] = Field(
        default=timedelta(seconds=60),
        description="A worker whose assigned events partition delivers nothing for this long "
        "while records wait, whose committed offset stays this long below records it has "
        "read, or whose table recovery reads nothing this long while records remain, stops, "
        "so that it restarts from the committed offsets.",
    )

    standby_replicas: int = Field(
        default=1,
        ge=0,
        description="Standby copies of each table partition kept up to date on other workers, "
        "so that a takeover reads only the changelog's tail; 0 = a takeover recovers the whole "
        "partition from the changelog.",
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="How to reach the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    sasl_password_file: Path | None = Field(
        default=None, description="File holding the SASL password (a mounted Secret)."
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CA bundle to verify the brokers (default: system CAs)."
    )
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")

    _durations = field_validator("session_timeout", "stall_timeout", mode="before")(parse_duration)

    _files = field_validator("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile")(
        _readable_file
    )

    _password_from_file: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        self._password_from_file = _fill_from_file(self, "sasl_password", self.sasl_password_file)
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{self.security_protocol} needs STREAM_KAFKA__SASL_USERNAME and "
                "STREAM_KAFKA__SASL_PASSWORD (or STREAM_KAFKA__SASL_PASSWORD_FILE)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(
                "set both STREAM_KAFKA__SSL_CERTFILE and STREAM_KAFKA__SSL_KEYFILE, or neither"
            )
        return self

    @property
    def sasl_password_path(self) -> Path | None:
        """The file the SASL password was read from; None when it is set directly
        (STREAM_KAFKA__SASL_PASSWORD wins over the file) or not used."""
        return self.sasl_password_file if self._password_from_file else None


class OmetriaSettings(_Section):
    api_key: SecretStr | None = Field(
        default=None, description="Ometria Data API key (push rights). Never logged."
    )
    api_key_file: Path | None = Field(
        default=None, description="File holding the API key (a mounted Kubernetes Secret)."
    )
    base_url: AnyHttpUrl = Field(
        default=AnyHttpUrl("https://api.ometria.com"),
        description="Ometria API root; `/v2/push` is appended.",
    )
    enabled: bool = Field(
        default=True, description="false = keep folding state but hold the outbox (pause)."
    )
    collection: str = Field(default="loyalty", min_length=1, description="Contact @collection.")
    max_requests_per_second: float = Field(
        default=4.0,
        gt=0,
        le=100,
        description="Push requests per second for the whole deployment (Ometria's limit is per "
        "account): each pusher takes the share of its outbox partitions.",
    )
    push_in_worker: bool = Field(
        default=True,
        description="false = workers only fold; run `python -m stream push` to deliver.",
    )
    coalesce_records: int = Field(
        default=5000,
        ge=100,
        le=100_000,
        description="Outbox entries (a customer's records of one fold batch, or one "
        "backfilled contact) read at most per round when a backlog waits: the latest contact "
        "per customer among them is sent.",
    )
    flush_interval: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(seconds=1), description="Longest wait before a partial batch is sent."
    )
    timeout: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(seconds=10), description="HTTP timeout for one push request."
    )
    errors_poll_interval: Annotated[timedelta, Field(ge=timedelta(0))] = Field(
        default=timedelta(seconds=60),
        description="How often to read Ometria's record errors list; 0 = never.",
    )
    auth_retry_interval: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(seconds=15),
        description="While delivery is paused for a setting to fix (Ometria refuses the API "
        "key, 401/403, or the base URL or a proxy is wrong, 3xx/404/405/407), how often it "
        "tries the same request again.",
    )

    _durations = field_validator(
        "flush_interval", "timeout", "errors_poll_interval", "auth_retry_interval", mode="before"
    )(parse_duration)

    _files = field_validator("api_key_file")(_readable_file)
    _key_from_file: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _read_key_file(self) -> OmetriaSettings:
        self._key_from_file = _fill_from_file(self, "api_key", self.api_key_file)
        return self

    @property
    def api_key_path(self) -> Path | None:
        """The file to re-read the key from when it changes; None when the key is set directly
        (STREAM_OMETRIA__API_KEY wins over the file)."""
        return self.api_key_file if self._key_from_file else None

    def require_api_key(self) -> SecretStr:
        """The key for the `X-Ometria-Auth` header; raises SettingsError if none is set."""
        if self.api_key is None or not self.api_key.get_secret_value():
            raise SettingsError(
                "STREAM_OMETRIA__API_KEY is not set: set it (or STREAM_OMETRIA__API_KEY_FILE), "
                "or set STREAM_OMETRIA__ENABLED=false to hold the outbox."
            )
        return self.api_key


class TopicSettings(_Section):
    events: str = Field(default="loyalty.events", description="Input topic of loyalty events.")
    dead_letter: str = Field(default="loyalty.events.dlq", description="Rejected input events.")
    outbox: str = Field(default="ometria.outbox", description="Records waiting to be pushed.")
    outbox_dead_letter: str = Field(
        default="ometria.outbox.dlq", description="Records Ometria refused."
    )
    outbox_versions: str = Field(
        default="ometria.outbox.versions",
        description="Compacted: the newest contact version delivered per customer, so that no "
        "path (retry, redrive, backfill, rebalance) sends an older one. Keyed by app id: "
        "deployments may share it.",
    )
    outbox_progress: str = Field(
        default="ometria.outbox.progress",
        description="Compacted: the pusher group's committed outbox offsets, kept after Kafka "
        "drops those of a group empty for offsets.retention.minutes, so that a pusher group "
        "disabled or stopped for longer starts where it stopped.",
    )
    control: str = Field(
        default="loyalty.stream.control",
        description="Compacted, one partition: operator switches every process obeys (pause, "
        "backfill cooldown, replay mark). Keyed by app id: deployments may share it.",
    )
    redriven: str = Field(
        default="loyalty.stream.redriven",
        description="Compacted, one partition: the dead letters `redrive` has published, so a "
        "second run publishes each one once (kept as long as the dead letters).",
    )
    erasures: str = Field(
        default="loyalty.stream.erasures",
        description="Compacted, one partition: every customer erasure, under a keyed hash of "
        "the id, read by the workers so that no replay, rebuild or redrive brings an erased "
        "customer back; and the erasures not yet confirmed done in Ometria. Keyed by app id: "
        "deployments may share it.",
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Partitions of the topics the worker creates; default: those of the events "
        f"topic when it exists, else {DEFAULT_PARTITIONS}.",
    )

    @property
    def partition_count(self) -> int:
        return self.partitions or DEFAULT_PARTITIONS

    replication_factor: int = Field(default=1, ge=1, le=10, description="For created topics.")
    events_retention: Annotated[timedelta | None, Field(gt=timedelta(0))] = Field(
        default=None,
        description="Retention of the events topic if the worker creates it; `forever` (the "
        "default) keeps the whole history, which replay rebuilds from.",
    )
    outbox_retention: Annotated[timedelta, Field(ge=timedelta(days=1))] = Field(
        default=timedelta(days=14),
        description="Retention of the outbox topic: the longest pause of pushing that loses "
        "nothing.",
    )
    dead_letter_retention: Annotated[timedelta, Field(ge=timedelta(days=1))] = Field(
        default=timedelta(days=30),
        description="Retention of the dead-letter topics: the time to notice, fix and redrive.",
    )

    @field_validator("events_retention", mode="before")
    @classmethod
    def _forever(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"forever", "infinite", "-1"}:
            return None
        return parse_duration(value)

    _durations = field_validator("outbox_retention", "dead_letter_retention", mode="before")(
        parse_duration
    )


class MappingSettings(_Section):
    preset: Literal["rivo", "loyaltylion"] = Field(
        default="rivo", description="Contact mapping preset."
    )
    file: Path | None = Field(
        default=None, description="A user mapping file (TOML or JSON); replaces the preset."
    )


class TriggerSettings(_Section):
    tier_order: Annotated[list[str], NoDecode] = Field(
        default=["Bronze", "Silver", "Gold", "Platinum"],
        description="Tier names, lowest first, to tell an upgrade from a downgrade.",
    )
    horizon: timedelta = Field(
        default=timedelta(hours=24),
        description="Only events younger than this fire campaigns (replays do not).",
    )
    disabled: Annotated[list[str], NoDecode] = Field(
        default=[], description="Comma-separated event types not to send."
    )
    rewards: Annotated[dict[str, int], NoDecode] = Field(
        default={},
        description="Rewards for loyalty_reward_available, as `name=points,name=points`.",
    )

    _lists = field_validator("tier_order", "disabled", mode="before")(_split_commas)

    @field_validator("rewards", mode="before")
    @classmethod
    def _name_points(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = {}
        for item in _comma_items(value):
            name, sep, points = item.rpartition("=")
            if not sep or not name.strip() or not points.strip().isdigit():
                raise ValueError(f"expected name=points pairs such as '£5 off=500', got {item!r}")
            pairs[name.strip()] = int(points)
        return pairs

    _durations = field_validator("horizon", mode="before")(parse_duration)


class ScheduleSettings(_Section):
    enabled: bool = Field(
        default=True, description="false = no time-based triggers (the scan does not run)."
    )
    interval: Annotated[timedelta, Field(ge=timedelta(seconds=1))] = Field(
        default=timedelta(minutes=5),
        description="How often each worker scans its profiles for time-based triggers.",
    )
    window: Annotated[timedelta, Field(ge=timedelta(minutes=1))] = Field(
        default=timedelta(days=1),
        description="A due moment fires while it is at most this old: the longest outage the "
        "scan catches up on; older ones (state rebuilt by a replay) never fire.",
    )
    clock_offset: timedelta = Field(
        default=timedelta(0),
        description="Added to the clock the scan reads, and to nothing else: lets a demo or a "
        "test bring due dates forward. Leave 0 in production.",
    )

    _durations = field_validator("interval", "window", mode="before")(parse_duration)

    @field_validator("clock_offset", mode="before")
    @classmethod
    def _signed(cls, value: object) -> object:
        # `-2d` as well as `2d`: parse_duration reads unsigned amounts.
        if isinstance(value, str) and value.strip().startswith("-"):
            parsed = parse_duration(value.strip()[1:])
            return -parsed if isinstance(parsed, timedelta) else value
        return parse_duration(value)


class EventSettings(_Section):
    max_age: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(days=3650),
        description="Events whose occurred_at is older than this (about 10 years) are "
        "dead-lettered: a wrong clock or a test record, not loyalty history.",
    )
    future_skew: Annotated[timedelta, Field(ge=timedelta(0))] = Field(
        default=timedelta(minutes=5),
        description="How far ahead of the worker's clock an occurred_at may lie (producers' "
        "clocks drift); later ones are dead-lettered.",
    )

    _durations = field_validator("max_age", "future_skew", mode="before")(parse_duration)


class FoldSettings(_Section):
    """How the worker batches its folding; with the RocksDB budgets, what sets its memory."""

    # 5,000, not more: past a few thousand customers every record of a batch is another
    # customer's profile held until the batch is stored, and a larger batch neither folded
    # faster at 10,000 customers nor at a million (bench-scale figures c and s).
    batch_size: int = Field(
        default=5_000,
        ge=1,
        le=200_000,
        description="Most records folded as one batch: each customer's profile is read, "
        "written and sent once per batch; the batch's profiles are held meanwhile.",
    )
    window: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(seconds=2),
        description="The longest a batch waits to fill while a partition still has records "
        "to read; once every partition is read to its end, the batch folds at once.",
    )
    profile_cache: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description="Decoded profiles kept between batches (a customer folded again soon is "
        "not read from the store again).",
    )

    _durations = field_validator("window", mode="before")(parse_duration)


class RocksDBSettings(_Section):
    """Memory of the table's RocksDB (`STREAM_STORE=rocksdb://`): every partition's database a
    worker holds, active or standby, shares these two budgets
    (stream.runtime.faust_internals.rocksdb); the data itself stays on disk, so the worker's
    memory does not grow with customers."""

    # Profiles are read at random: at a million customers a larger cache hardly hits, and most
    # of what it holds then are the SST files' index and filter partitions.
    block_cache_mib: int = Field(
        default=16,
        ge=1,
        le=65536,
        description="One block cache for all of them, MiB: recently read profiles.",
    )
    # 32, not 64: at a million customers the memtables filled whatever they were given while at
    # ten thousand they stayed near 32 MiB, and a million-profile recovery ran as fast with
    # 32 (33,548-35,076 profiles/s) as with 64 (33,663) (bench-scale figures s and r).
    write_buffers_mib: int = Field(
        default=32,
        ge=1,
        le=65536,
        description="Memtables of all of them together, MiB: writes not yet flushed to disk.",
    )


class RegistrySettings(_Section):
    url: AnyHttpUrl | None = Field(
        default=None,
        description="Schema Registry (Confluent's API; Apicurio's at /apis/ccompat/v7) holding "
        "the writer schemas of framed records; needed for Avro. Without it a framed record's "
        "payload is read as JSON Schema's.",
    )
    username: str | None = Field(default=None, description="Registry basic-auth user.")
    password: SecretStr | None = Field(default=None, description="Registry basic-auth password.")
    password_file: Path | None = Field(
        default=None, description="File holding the registry password (a mounted Secret)."
    )
    allowed_schema_ids: Annotated[list[int], NoDecode] = Field(
        default=[],
        description="Comma-separated schema ids framed records may carry; empty = any.",
    )
    accept_unframed: bool = Field(
        default=True,
        description="false = records must be framed by a Schema Registry serializer; plain "
        "JSON records are dead-lettered.",
    )
    timeout: Annotated[timedelta, Field(gt=timedelta(0))] = Field(
        default=timedelta(seconds=10), description="HTTP timeout of one registry request."
    )

    _durations = field_validator("timeout", mode="before")(parse_duration)
    _lists = field_validator("allowed_schema_ids", mode="before")(_split_commas)
    _files = field_validator("password_file")(_readable_file)

    @model_validator(mode="after")
    def _complete(self) -> RegistrySettings:
        _fill_from_file(self, "password", self.password_file)
        if (self.username is None) != (self.password is None):
            raise ValueError(
                "set both STREAM_REGISTRY__USERNAME and STREAM_REGISTRY__PASSWORD (or "
                "STREAM_REGISTRY__PASSWORD_FILE), or neither"
            )
        return self


class Settings(BaseSettings):
    """Everything the worker and the CLI need; read once, frozen."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        case_sensitive=False,
    )

    app_id: str = Field(
        default="loyalty-stream", min_length=1, description="Faust app id and consumer group."
    )
    store: str = Field(default="memory://", description="Table store: memory:// or rocksdb://.")
    data_dir: Path = Field(default=Path("./.run/data"), description="Faust data directory.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="Faust web server port.")
    web_host: str | None = Field(
        default=None,
        description="Name other workers reach this one by (routed /profiles look-ups); "
        "default: the host name.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one object per line; text: for a terminal."
    )
    log_emails: Literal["hashed", "clear"] = Field(
        default="hashed", description="Customers' emails in log lines: hashed or in clear."
    )
    log_email_key: SecretStr | None = Field(
        default=None,
        description="Key of the hash that stands for emails in logs; default: a random key per "
        "process (hashes then differ between processes and restarts).",
    )
    log_email_key_file: Path | None = Field(
        default=None,
        description="File holding the log email key (a mounted Secret); a missing file leaves "
        "the random key.",
    )
    erasure_key: SecretStr | None = Field(
        default=None,
        description="Key of the hash that stands for an erased customer's id in the erasures "
        "topic and in logs; the same for every process of a deployment, and never changed "
        "(the erasures kept under the old key would be missed). Default: derived from the app "
        "id, which anyone can recompute: set it in production.",
    )
    erasure_key_file: Path | None = Field(
        default=None, description="File holding the erasure key (a mounted Secret)."
    )
    profile_api_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for GET /profiles/{customer_id}; the endpoint is off without.",
    )
    profile_api_token_file: Path | None = Field(
        default=None, description="File holding the profiles API token (a mounted Secret)."
    )

    backfill_cooldown: timedelta = Field(
        default=timedelta(hours=1),
        description="Least time between two full backfills (`--force` overrides); kept in the "
        "control topic, so it holds across pods and Jobs.",
    )

    _backfill_cooldown = field_validator("backfill_cooldown", mode="before")(parse_duration)

    @property
    def pusher_group(self) -> str:
        """The consumer group of the pushers (the outbox's own, apart from the workers')."""
        return f"{self.app_id}-pusher"

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        # Both are optional: a missing or empty file leaves the profiles API off, and emails
        # hashed with a random key per process.
        _fill_from_file(self, "profile_api_token", self.profile_api_token_file)
        _fill_from_file(self, "log_email_key", self.log_email_key_file)
        _fill_from_file(self, "erasure_key", self.erasure_key_file)
        return self

    @property
    def erasure_hash_key(self) -> bytes:
        """The key of `stream.domain.erasure.erased_id` (see `erasure_key`)."""
        if self.erasure_key is not None:
            return self.erasure_key.get_secret_value().encode()[:64]
        return f"loyalty-stream erasures of {self.app_id}".encode()[:64]

    kafka: KafkaSettings = KafkaSettings()
    ometria: OmetriaSettings = OmetriaSettings()
    topics: TopicSettings = TopicSettings()
    mapping: MappingSettings = MappingSettings()
    triggers: TriggerSettings = TriggerSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    events: EventSettings = EventSettings()
    fold: FoldSettings = FoldSettings()
    rocksdb: RocksDBSettings = RocksDBSettings()
    registry: RegistrySettings = RegistrySettings()

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(("memory://", "rocksdb://")):
            raise ValueError("must be memory:// or rocksdb://")
        return value


_SECRET_WORDS = ("key", "secret", "password", "token")


def _env_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(part) for part in loc if not isinstance(part, int)]
    return ENV_PREFIX + "__".join(parts).upper()


def describe_validation_error(error: ValidationError) -> str:
    """Render a pydantic error as one line per environment variable, secrets never echoed."""
    lines = []
    for item in error.errors():
        loc = item["loc"]
        name = _env_name(loc)
        shown: Any = item.get("input")
        # Echo only scalar inputs of known, non-secret fields: a section's dict may hold the API
        # key, and a misspelt variable (extra_forbidden) may be a misspelt key.
        secret = any(word in str(part).lower() for part in loc for word in _SECRET_WORDS)
        plain = isinstance(shown, str | int | float | bool)
        known = item["type"] != "extra_forbidden"
        value = f" (got {shown!r})" if plain and known and not secret else ""
        lines.append(f"{name}: {item['msg']}{value}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment; raise SettingsError naming the bad variables."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    except PydanticSettingsError as exc:
        # e.g. a section variable (STREAM_OMETRIA='{...') that is not valid JSON
        raise SettingsError(f"invalid configuration: {exc}") from None


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read once (Faust's module-level app needs them at import)."""
    global _current
    if _current is None:
        _current = load_settings()
    return _current


def use_settings(settings: Settings) -> None:
    """Replace the process-wide settings; only before `stream.runtime.app` is imported."""
    global _current
    _current = settings
