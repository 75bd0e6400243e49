"""The World Action Model: a small action-conditioned video model trained on recorded episodes.

``model`` (the network), ``data`` (training windows from episodes), ``train``, ``evaluate``
and ``metrics``, ``checkpoint`` (files and the numpy :class:`~collector.wam.checkpoint.Predictor`),
``node`` (the live inference process), ``preview`` (what the GUI shows, Qt-free), ``cli``
(``collector wam ...``). See ``docs/wam.md``.
"""
