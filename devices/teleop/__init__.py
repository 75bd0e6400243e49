"""Glove teleoperation as a node (``teleop`` driver) and an e-stop sender; the retargeting and
safety logic is :mod:`devices.teleop.logic`."""
