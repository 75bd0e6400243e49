"""The ``uvc`` driver: UVC cameras, video files and image sequences through OpenCV."""
