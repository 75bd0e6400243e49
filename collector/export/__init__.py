"""Exports of episode files for training pipelines: robomimic, ACT/ALOHA and LeRobot v3.0.

``collector export FORMAT`` (see :mod:`collector.export.cli`); which signals become
observations and actions is chosen in :mod:`collector.export.selection`.
"""
