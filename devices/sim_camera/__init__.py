"""Simulated RGB-D camera (``sim_camera`` driver): renders the shared scripted world."""
