"""The one root of the errors loyalty-stream raises on purpose, and its configuration branch.

LoyaltyStreamError
├── ConfigurationError        the worker cannot start as configured; the message says the fix
│   ├── SettingsError         an environment variable (stream.settings)
│   ├── MappingError          a mapping preset or file, any of its sections (here)
│   ├── ConditionError        a CEL condition in the mapping (stream.domain.conditions)
│   ├── TriggerOptionsError   a built-in rule's [triggers.<rule>] options (stream.domain.triggers)
│   └── LetterTooLarge        a dead-letter topic takes less than a record's key (stream.domain.dlq)
├── InvalidEvent              an input record is not a loyalty event: dead-lettered
│                             (stream.domain.events)
├── OmetriaError              Ometria failed or refused (stream.ometria.errors)
│   ├── Retryable             transport error, timeout, 5xx, 408, 409, 429
│   ├── Misconfigured         no request gets through until a setting is fixed
│   │   ├── Unauthorized      401, 403: the API key
│   │   └── Misdirected       3xx, 404, 405, 407: the base URL or a proxy
│   └── Permanent             any other 4xx
├── IncompleteRead            records read back after a skip are missing (stream.runtime.reading)
├── PusherStopped             the pusher cannot go on safely (stream.runtime.pusher_versions)
├── UnreadableProgress        a progress record is not an offset (stream.runtime.outbox_progress)
├── UnreadableControlRecord   a control-topic record is malformed (stream.runtime.control)
└── ReplayRefused             a replay cannot run now (stream.ops.replay)

Each lives next to the code that raises it; only the root and the configuration branch live
here, so that every layer can use them. MappingError lives here too: the loader
(stream.domain.mapping) and the parser of each section beside its feature all raise it.
"""

from __future__ import annotations


class LoyaltyStreamError(Exception):
    """Root of every error loyalty-stream raises on purpose."""


class ConfigurationError(LoyaltyStreamError):
    """The configuration is invalid; the message names the setting or file and how to fix it."""


class MappingError(ConfigurationError):
    """A mapping is invalid; the message names the file, the entry and the fix."""
