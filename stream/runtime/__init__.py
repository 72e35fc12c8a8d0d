"""The Kafka/Faust runtime: the app, topics, tables and agents that fold events, the timer that
scans for time-based triggers, the pusher that drains the outbox into the Ometria adapter, and
the Kafka plumbing (topology, reading a topic range, skip and stall watches, control topic)."""
