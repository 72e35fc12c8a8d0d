"""The pure domain: events, the profile fold, triggers, list and sync rules, and the mapping to
Ometria records and request batches. Functions of their inputs: no Faust, Kafka, HTTP, clock or
environment inside, and no import from `stream.ometria`, `stream.runtime` or `stream.ops`
(the import-linter contracts in pyproject.toml enforce it)."""
