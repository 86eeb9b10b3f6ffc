"""Device audit trail: an append-only, hash-chained log with signed checkpoints, and its verifier."""
