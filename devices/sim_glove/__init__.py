"""Simulated sensor glove (``sim_glove`` driver): the operator of the shared scripted world."""
