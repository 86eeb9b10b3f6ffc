"""Accuracy measured through the device's own detect-align-embed-match path: LFW verification, 1:N, calibration."""
