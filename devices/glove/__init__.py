"""Wearable sensor glove over a serial port: protocol, driver, discovery, calibration and a
firmware simulator on a real pty (``docs/glove-protocol.md``)."""
