"""The device daemon's parts: frame queue, capture thread, systemd notification, health."""
