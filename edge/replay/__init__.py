"""`edge replay`: footage (or a live source) through the device's pipeline against a watchlist, one line per alert."""
