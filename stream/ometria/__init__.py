"""The Ometria adapter: the HTTP client, its error classes, the delivery policy (retries, dead
letters, the error poller) and the request pacing. Builds on `stream.domain`; knows nothing of
Kafka or Faust."""
