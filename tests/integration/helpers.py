from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def sealgate(home: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The installed command in a process of its own, as an operator would run it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEALGATE_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "sealgate", "--home", str(home), *args],
                          capture_output=True, text=True, env=environ, timeout=timeout,
                          check=False)
