"""HQ side: fleet PKI, broker ACL registry, event ingest and store."""
