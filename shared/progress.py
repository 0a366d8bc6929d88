"""Progress of long work (demo, rebuild): a bar on a terminal, a line every 10% otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.started = time.monotonic()
        self._last_decile = -1
        self.done = 0

    def update(self, done: int) -> None:
        self.done = min(done, self.total) if self.total else done
        fraction = self.done / self.total if self.total else 1.0
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        if self.tty:
            bar = "#" * int(fraction * 30)
            self.out.write(f"\r{self.label} [{bar:<30}] {self.done}/{self.total} ({rate:,.0f}/s)")
            self.out.flush()
        else:
            decile = int(fraction * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.out.write(f"{self.label}: {self.done}/{self.total} ({fraction:.0%}, {rate:,.0f}/s)\n")
                self.out.flush()

    def finish(self) -> float:
        self.update(self.total)
        if self.tty:
            self.out.write("\n")
        return time.monotonic() - self.started
