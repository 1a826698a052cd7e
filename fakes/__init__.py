"""Fake Zoom and fake Recall servers for tests and the demo. Never loaded by the broker itself."""
