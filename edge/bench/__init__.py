"""`edge bench`: per-stage latency and frames per second, against the face_recognition baseline."""
