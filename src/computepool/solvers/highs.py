"""One way to create a HiGHS solver for the whole process (LP policies and the planner's MILP).

HiGHS keeps a process-wide thread scheduler: the first solver created fixes its thread count,
and a later solver asking for another count fails to run (status "Not Set"). Every solver is
therefore created here, silent and single-threaded. One thread is also the fast choice here:
HiGHS' worker pool costs ~5-10 ms per solve on the small LPs the simulator solves thousands of
times, and its MIP search is mostly serial on a 2-core machine.
"""

from __future__ import annotations

import os
import sys

import highspy

try:  # the bare solver class: same API, without the Python callback layer and its banner
    from highspy._core import _Highs as _Bare
except ImportError:  # pragma: no cover - other highspy layouts
    _Bare = None

THREADS = 1


def new_highs(bare: bool = False) -> object:
    """A silent, single-threaded solver (``bare``: the low-level class, for hot loops)."""
    if bare and _Bare is not None:
        h = _Bare()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", THREADS)
    return h
