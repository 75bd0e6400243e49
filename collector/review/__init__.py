"""Reviewing a folder of episodes, Qt-free: summaries with a cache, quality reports, curation,
dashboard figures, playback, and the ``collector ls/report/curate/trash/review`` commands.
The review window (``ui/review``) is a view over these models."""

from collector.review.catalog import EpisodeCatalog, episode_files
from collector.review.dashboard import Dashboard, GroupStats, build_dashboard
from collector.review.quality import FLAGS, flag_sentences, quality_report
from collector.review.summary import EpisodeSummary, summarize_episode

__all__ = ["EpisodeCatalog", "EpisodeSummary", "Dashboard", "GroupStats", "FLAGS", "build_dashboard",
           "episode_files", "flag_sentences", "quality_report", "summarize_episode"]
