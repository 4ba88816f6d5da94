"""warpnoise nodes for ComfyUI: exact warped noise from a video, from a warpnoise noise file, and
from motion you author.

Copy (or link) this folder into ``ComfyUI/custom_nodes/`` and install ``warpnoise`` into the
Python that runs ComfyUI (see README.md here). ComfyUI imports this file by path and reads the
two mappings below; nothing here imports ComfyUI's own modules at import time.
"""

from . import motion_nodes, nodes

NODE_CLASS_MAPPINGS = nodes.NODE_CLASS_MAPPINGS | motion_nodes.NODE_CLASS_MAPPINGS
NODE_DISPLAY_NAME_MAPPINGS = (nodes.NODE_DISPLAY_NAME_MAPPINGS
                              | motion_nodes.NODE_DISPLAY_NAME_MAPPINGS)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
