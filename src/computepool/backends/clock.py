"""The live pool's clock: wall time, with a sleep that a submission can cut short."""

from __future__ import annotations

import threading
import time


class WallClock:
    def __init__(self) -> None:
        self._wake = threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep_until(self, t: float) -> None:
        delay = t - time.time()
        if delay > 0:
            self._wake.wait(delay)
        self._wake.clear()

    def wake(self) -> None:
        """End the current (or next) sleep now: something changed that the loop should see."""
        self._wake.set()
