"""MaskMargin engine: detection, masks, and the Image Masking API tasks.

Plain Python (numpy, torch, PIL); knows nothing of ComfyUI. Heavy libraries (mediapipe, ultralytics)
are imported lazily by the backends that need them, so `import maskmargin` is cheap.
"""

__version__ = "0.1.0"
