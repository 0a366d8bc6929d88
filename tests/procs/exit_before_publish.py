"""`commissioning ...` with one fault injected: a savings process exits at once (as a SIGKILL
would leave it) when it is about to publish `savings.updated`, that is after the atomic apply
of a batch and before its publish. Everything else is the product, unchanged.
Run: python -m tests.procs.exit_before_publish serve savings  (env as for `commissioning`)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from services import cli
from services.savings.updates import UpdateLog


async def _exit(self: UpdateLog, events: list[bytes], update: Any) -> str:
    os._exit(137)


if __name__ == "__main__":
    UpdateLog.append = _exit  # type: ignore[method-assign]
    sys.exit(cli.main())
