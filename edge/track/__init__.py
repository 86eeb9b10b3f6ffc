"""Tracks: one per person crossing the view, so decisions are per track, not per frame."""
