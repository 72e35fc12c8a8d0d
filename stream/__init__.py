"""loyalty-stream: loyalty-programme events from Kafka to Ometria."""

__version__ = "0.1.0"
