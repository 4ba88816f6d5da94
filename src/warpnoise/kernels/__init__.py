"""Compiled CPU kernels (numba). Optional: without numba the methods fall back to torch."""
