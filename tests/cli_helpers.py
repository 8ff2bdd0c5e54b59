"""Running the installed ``screening`` command from tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _command() -> list[str]:
    script = Path(sys.executable).parent / "screening"
    return [str(script)] if script.exists() else [sys.executable, "-m", "screening"]


def cli(*args: object, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None, input: str | None = None
        ) -> subprocess.CompletedProcess:
    """The command's run with ``env`` added to this process's environment (never SCREENING_DEBUG);
    ``input``: the text on its standard input."""
    env = {**{k: v for k, v in os.environ.items() if k != "SCREENING_DEBUG"}, **(env or {})}
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([*_command(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          encoding="utf-8", env=env, timeout=timeout, input=input)
