"""Compiled kernels of the ``persistent`` method (numba on the CPU) and the constants they share
with its torch path, so both follow one rule."""

#: A neighbour lies across a motion discontinuity when the spacing of the two anchor positions
#: differs from the spacings beside the pair by more than this fraction of them (at least this
#: many anchor pixels): see :func:`warpnoise.methods.persistent.box_edges`.
JUMP = 0.25
#: A cell remainder below this area is rounding, not an uncovered part (nothing is drawn for it).
REM_EPS = 1e-9


def field_size(k: int) -> int:
    """Persistent values per cell and channel of ``persistent``'s field: ``k x k`` sub-pixels,
    then ``k`` per side strip (top, bottom, left, right) for slivers, then the four corners."""
    return k * k + 4 * k + 4
