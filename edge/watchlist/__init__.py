"""Watchlist: bundle format (sign, encrypt), device store (install, rollback-proof), matching."""
