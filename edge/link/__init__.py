"""Device <-> broker <-> HQ messaging: topics, payloads, MQTT client, outbox, uplink, bundle chunks."""
