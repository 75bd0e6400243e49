"""The template driver: a simulated camera to copy when adding a device (docs/adding-a-device.md)."""
