"""Intel RealSense RGB-D cameras (``realsense`` driver), live or played back from a recording.

``node.RealSenseCamera`` is the driver, ``config.RealSenseConfig`` its options,
``discover.find_cameras`` lists attached cameras, ``synthetic`` writes small recordings through
pyrealsense2's own recorder for tests and demos. pyrealsense2 is imported only when used.
"""
