"""Reviewing a folder of episodes, Qt-free: summaries with a cache, quality reports, curation,
dashboard figures, playback, and the ``collector ls/report/curate/trash/review`` commands.
The review window (``ui/review``) is a view over these models."""

from .catalog import EpisodeCatalog, episode_files
from .dashboard import Dashboard, GroupStats, build_dashboard
from .quality import FLAGS, flag_sentences, quality_report
from .summary import EpisodeSummary, summarize_episode

__all__ = ["EpisodeCatalog", "EpisodeSummary", "Dashboard", "GroupStats", "FLAGS", "build_dashboard",
           "episode_files", "flag_sentences", "quality_report", "summarize_episode"]
