"""Latency calibration: measure each device's capture latency instead of assuming it (docs/time-sync.md)."""
