"""Files in and out: video frames, flow files, noise files. Every writer is atomic."""

from __future__ import annotations

from .atomic import atomic_output
from .flowfile import load_flows, save_flows
from .noisefile import load_noise, save_noise
from .video import read_frames, write_video

__all__ = [
    "atomic_output",
    "load_flows",
    "load_noise",
    "read_frames",
    "save_flows",
    "save_noise",
    "write_video",
]
