"""Progress of long work on stderr: a bar on a terminal, plain lines in a log."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Progress on stderr: a tqdm bar where the terminal is interactive, plain log lines otherwise.

    Without a terminal (CI, a batch job's log) tqdm's bars would still move the cursor to redraw
    several files' bars in place, which a log keeps as escape codes: there each file gets a line
    at its first update, one every ``LOG_EVERY_S`` seconds and one at the end.

    With ``eager=False`` the bar appears at the first update, so work that fails before it
    starts (a missing folder) prints its error line alone. As a context manager it is closed
    however the work ends, so an error line starts on a line of its own.
    """

    LOG_EVERY_S = 5.0

    def __init__(
        self, label: str, total: float | None = None, position: int = 0, unit: str = "it", eager: bool = True
    ) -> None:
        self.label, self.total, self.position, self.unit = label, total, position, unit
        self.tty = sys.stderr.isatty()
        self.done = 0.0
        self.started: float | None = None
        self.logged = -1.0  # when the last log line was written (-1: none yet)
        self.bar: Any = None
        if eager:
            self._open()

    def _open(self) -> None:
        self.started = time.monotonic()
        if not self.tty:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=self.total,
            desc=self.label,
            position=self.position,
            unit=self.unit,
            leave=True,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
        )

    def update(self, done: float, total: float | None = None) -> None:
        if self.started is None:
            self._open()
        if total is not None:
            self.total = total
        self.done = done
        if self.bar is not None:
            if self.bar.total != self.total:
                self.bar.total = self.total
            # update() draws at most once per mininterval; drawing on every call flooded the
            # terminal with a line per gallery image or sampled frame.
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if self.logged < 0 or now - self.logged >= self.LOG_EVERY_S:
            self._log(now)

    def _log(self, now: float, end: bool = False) -> None:
        self.logged = now
        of = f"/{self.total:g}" if self.total else ""
        if end:
            # "ended", not "done": a file that failed half way ends here too (its status is in the
            # summary), and a finished one ends at its last sample, short of its full length.
            line = f"ended at {self.done:g}{of} {self.unit} after {now - (self.started or now):.1f} s"
        else:
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            line = f"{self.done:g}{of} {self.unit}{share}"
        print(f"{self.label}: {line}", file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.started is not None:
            self._log(time.monotonic(), end=True)
