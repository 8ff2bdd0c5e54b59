"""The CLI's start-up does no per-code-point Python work (issue 15: ``import screening.cli``
is paid by every command, a run of a million firms included)."""
from __future__ import annotations

import subprocess
import sys


def test_space_class_is_what_python_calls_white_space():
    """xlsxwriter tests ``\\s`` (CPython's ``str.isspace``); the class built without a Python
    loop over every code point holds exactly those characters."""
    from screening.excel_rows import _SPACE_CLASS

    expected = "[" + "".join(f"\\x{{{c:X}}}" for c in range(sys.maxunicode + 1) if chr(c).isspace()) + "]"
    assert _SPACE_CLASS == expected


def test_importing_the_cli_does_not_loop_over_code_points():
    """Importing the Excel row writer (which every CLI start does) calls ``str.isspace`` a
    handful of times at most, not once per Unicode code point (1,114,112 calls, ~80 ms)."""
    code = (
        "import numpy, polars, xlsxwriter, cProfile, pstats\n"
        "p = cProfile.Profile(); p.enable()\n"
        "import screening.excel_rows\n"
        "p.disable()\n"
        "names = (\"<method 'isspace' of 'str' objects>\", '<built-in method builtins.chr>')\n"
        "calls = sum(s[1] for f, s in pstats.Stats(p).stats.items() if f[2] in names)\n"
        "print(calls)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout.strip()) < 1000
