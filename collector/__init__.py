"""collector: record time-synchronised, crash-safe robot-learning episodes."""

__version__ = "0.1.0"
