"""`make bench`: throughput, delivery, scale-out and state-size figures on the local Kafka.

Not part of the test suite (pytest only collects `tests/`). Run `python -m bench --help`.
"""
