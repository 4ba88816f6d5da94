"""The motion studio: a local web page to draw layers on a first frame, drag them along paths,
move the camera, preview the animation and its warped noise, save the motion file that
``warpnoise motion`` reads, and generate the full-resolution noise.

Start it with ``warpnoise studio [IMAGE_OR_VIDEO]`` (see :func:`serve`); the server is a Starlette
app (:func:`create_app`) over a :class:`Session`, run by uvicorn.
"""

from __future__ import annotations

from .serve import serve
from .server import Session, create_app

__all__ = ["Session", "create_app", "serve"]
