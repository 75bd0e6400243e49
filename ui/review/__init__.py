"""The review window: browse, play, judge and curate recorded episodes (views over
:mod:`collector.review`)."""
