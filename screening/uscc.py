"""统一社会信用代码 (GB 32100-2015): check character, vectorized over Polars columns.

Layout: 18 characters from ``0-9 A-H J-N P-R T U W-Y`` (no I, O, S, V, Z).
Check character C18 = (31 - Σ value(c_i)·W_i mod 31) mod 31 with W_i = 3^i mod 31.
"""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import polars as pl

from .ingest.header import INVISIBLE_CHARS

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = [pow(3, i, 31) for i in range(17)]
PATTERN = f"^[{ALPHABET}]{{18}}$"
#: what a person reads when a code does not match :data:`PATTERN` (the CLI's rejects, the API's 422)
FORMAT_REASON = "统一社会信用代码格式错误（应为18位数字或大写字母，且不含I、O、S、V、Z）"
#: what a person reads when the check character is wrong (``{}``: the one GB 32100-2015 gives)
CHECK_REASON = "统一社会信用代码校验位错误（按GB 32100-2015应为“{}”）"
_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")


def check_char(first17: str) -> str:
    """The GB 32100-2015 check character for the first 17 characters."""
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def as_typed(text: str) -> str:
    """A code a person typed or pasted (from a chat, a PDF, a web page), as the data holds it:
    full-width forms half-width (NFKC), invisible characters and every space taken out, capitals.
    The same reading as cells of input files get (``screening.ingest.cells``)."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return re.sub(r"\s+", "", text).upper()


def is_valid(code: str) -> bool:
    code = code.strip().upper()
    if len(code) != 18 or any(c not in ALPHABET for c in code):
        return False
    return check_char(code[:17]) == code[17]


_LUT = np.zeros(256, dtype=np.int64)
for _i, _c in enumerate(ALPHABET):
    _LUT[ord(_c)] = _i


def expected_check_chars(codes: pl.Series) -> pl.Series:
    """Expected check character for each code; every code must match :data:`PATTERN`.

    Vectorized with NumPy over the codes' bytes (one 18-byte row per code).
    """
    if codes.len() == 0:
        return pl.Series(codes.name, [], dtype=pl.String)
    raw = np.frombuffer(codes.str.join("").item().encode("ascii"), dtype=np.uint8).reshape(-1, 18)
    total = _LUT[raw[:, :17]] @ np.asarray(WEIGHTS, dtype=np.int64)
    idx = pl.Series(codes.name, ((31 - total % 31) % 31).astype(np.uint8))
    return idx.replace_strict(list(range(31)), list(ALPHABET), return_dtype=pl.String)


def problem(code: str) -> str | None:
    """Why ``code`` is not a valid 统一社会信用代码 (:data:`FORMAT_REASON` or :data:`CHECK_REASON`
    with the expected character), or None when it is one."""
    if not re.match(PATTERN, code):
        return FORMAT_REASON
    expected = check_char(code[:17])
    return None if code[17] == expected else CHECK_REASON.format(expected)
