"""The device daemon: lifecycle (threads, watchdog, stop), alert delivery, and control (pairing,
adjudication, watchlist install and swap, status); with its frame queue, systemd notification and health."""
