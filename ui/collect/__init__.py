"""The collect window: the operator's live view over :class:`collector.recording.collect.CollectModel`."""
