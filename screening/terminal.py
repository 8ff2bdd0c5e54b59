"""Text for narrow terminals (issue 14, item 4): lines wrapped to the console's width (``COLUMNS``
respected) between characters of Chinese text or at spaces, never inside a number, a file
name or another run of Latin letters and digits, and never with a closing mark at a line start."""
from __future__ import annotations

import re

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

_STOP = r"\s，。；：、（）《》“”！？"
#: a file name (整治企业清单_2022.xlsx, 万元/亩) and a run of printable ASCII (a number, a path) are
#: one unit each; other characters stand alone
_ATOM = re.compile(rf"[^{_STOP}]{{0,16}}[._/\\][^{_STOP}]+|[\x21-\x7e]+|[ \t]+|[^\x00-\x7f]")
#: marks that close what comes before them: never the first thing on a line
_CLOSING = set("，。；：、）》」』”’！？…%％")
#: marks that open what follows them: never the last thing on a line
_OPENING = set("（《「『“")


def _atoms(paragraph: str) -> list[str]:
    atoms: list[str] = []
    glue_next = False
    for atom in _ATOM.findall(paragraph):
        if atoms and not atom.isspace() and (glue_next or atom[0] in _CLOSING) and not atoms[-1].isspace():
            atoms[-1] += atom
        else:
            atoms.append(atom)
        glue_next = atom[-1] in _OPENING
    return atoms


def wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` cells (a unit longer than a line stands alone)."""
    width = max(width, 8)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line, used = "", 0
        for atom in _atoms(paragraph):
            size = cell_len(atom)
            if atom.isspace():
                if line:
                    line, used = line + atom, used + size
                continue
            if used + size > width and line.strip():
                lines.append(line.rstrip())
                line, used = "", 0
            line, used = line + atom, used + size
        lines.append(line.rstrip())
    return "\n".join(lines)


def pack(items: list[str], width: int, sep: str = "；") -> str:
    """``items`` joined by ``sep`` into lines of at most ``width`` cells, broken only between
    items (a label and its value stay on one line); an item longer than a line is :func:`wrap`-ped."""
    lines: list[str] = []
    line = ""
    for item in items:
        if line and cell_len(f"{line}{sep}{item}{sep}") > width:
            lines.append(line + sep)
            line = item
        else:
            line = f"{line}{sep}{item}" if line else item
    lines.append(line)
    return "\n".join(wrap(one, width) for one in lines)


def say(console: Console, text: str, style: str | None = None) -> None:
    """Print ``text`` wrapped to the console's width, as plain text (no markup read in it)."""
    console.print(Text(wrap(text, console.width), style=style or ""), highlight=False, soft_wrap=True)
