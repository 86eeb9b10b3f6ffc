"""edge: face watchlist firmware for Jetson cameras. See README.md and docs/."""

__version__ = "0.1.0"
