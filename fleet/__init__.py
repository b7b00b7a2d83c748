"""EcoLens fleet aggregation: MQTT subscriber, storage, reports and dashboard."""
