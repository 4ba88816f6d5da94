"""warpnoise nodes for ComfyUI: exact warped noise from a video, and from a warpnoise noise file.

Copy (or link) this folder into ``ComfyUI/custom_nodes/`` and install ``warpnoise`` into the
Python that runs ComfyUI (see README.md here). ComfyUI imports this file by path and reads the
two mappings below; nothing here imports ComfyUI's own modules at import time.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
