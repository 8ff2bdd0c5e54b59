"""Find the header row and map its cells to the contract's columns.

The synonym, unit and missing-mark tables are data (``synonyms.yaml`` beside this module,
plus a bureau's own ``synonyms.yaml`` in the data directory).  Only the first
:data:`SCAN_ROWS` rows of a sheet are looked at, so finding the header costs the same on a
province's file as on a sample.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl
import yaml

from ..errors import InputError
from ..schema import Table

SYNONYMS_FILE = Path(__file__).with_name("synonyms.yaml")
LOCAL_SYNONYMS = "synonyms.yaml"  # a bureau's own table, in the data directory
SCAN_ROWS = 30  # titles, unit lines and blank rows above a header are never more than this

#: Control characters (C0 but tab and line breaks, DEL, C1) and Unicode format characters (category
#: Cf): zero-width spaces and joiners, BOM, soft hyphen, and the bidirectional marks, embeddings,
#: overrides and isolates a copy from a web page, PDF or chat leaves in a cell; never part of a
#: header, code or name.  A character-class body, for Python's re and
#: the Rust regex of Polars alike.
FORMAT_CHARS = ("\u00ad\u0600-\u0605\u061c\u06dd\u070f\u180e\u200b-\u200f\u202a-\u202e"
                "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb")
INVISIBLE_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + FORMAT_CHARS
_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")
_BRACKET_PAIRS = (("【", "("), ("】", ")"), ("[", "("), ("]", ")"), ("〔", "("), ("〕", ")"))
_BRACKETS = str.maketrans(dict(_BRACKET_PAIRS))
#: a unit after a slash: 用地面积/平方米, 实缴税金/元 (taken only when it is a unit of the column)
_SLASH_UNIT = re.compile(r"^(.+?)/([^/]+)$")
_UNIT = re.compile(r"^(.+?)\(([^()]+)\)$")
#: "单位：万元", "金额单位：元", "（单位：元、平方米）" alone, at the end of a title or after "填报单位：某某局"
#: (after normalize_header; 单位 there is the reporting body, never a unit)
_UNIT_LINE = re.compile(r"(?<!填报)(?<!填表)(?<!制表)(?<!报送)(?<!编制)(?<!申报)(?<!上报)单位:?([^():]+?)\)?$")
_UNIT_WORD = re.compile(r"^(?:计量)?单位:?(?=.)")
#: units listed in one line: "元、平方米"; never "/", which makes one unit of two ("元/亩" is 元 per 亩, no 元)
_UNIT_LIST = re.compile(r"[、,;]|和|及")
_CLAUSES = re.compile(r"[,;。]")


def normalize_header(h: object) -> str:
    """NFKC, no whitespace or invisible characters, lower case, one kind of bracket, no ``*``."""
    text = unicodedata.normalize("NFKC", str(h))
    text = _INVISIBLE.sub("", text).translate(_BRACKETS).lower()
    text = re.sub(r"\s+", "", text)
    return text.strip("*")


def normalize_header_expr(e: pl.Expr) -> pl.Expr:
    """:func:`normalize_header` on a column of cells (a header repeated in the body)."""
    text = e.str.normalize("NFKC").str.replace_all(f"[{INVISIBLE_CHARS}]", "").str.to_lowercase()
    for a, b in _BRACKET_PAIRS:
        text = text.str.replace_all(a, b, literal=True)
    return text.str.replace_all(r"\s+", "").str.strip_chars("*")


@lru_cache(maxsize=1)
def tables_data() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when PyYAML has it
    return yaml.load(SYNONYMS_FILE.read_text(encoding="utf-8"), Loader=loader)


def missing_marks() -> frozenset[str]:
    return frozenset(normalize_header(m) for m in tables_data()["missing_marks"])


def excel_errors() -> tuple[str, ...]:
    return tuple(tables_data()["excel_errors"])


def unit_factor(dimension: str, unit: str) -> tuple[float, float] | None:
    factors = {normalize_header(k): v for k, v in tables_data()["units"].get(dimension, {}).items()}
    found = factors.get(normalize_header(unit))
    return (float(found[0]), float(found[1])) if found else None


def _local_synonyms(data_dir: Path | None) -> dict:
    if data_dir is None:
        return {}
    path = data_dir / LOCAL_SYNONYMS
    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path.name}：无法读取表头同义词（{str(exc).splitlines()[0]}）") from None
    tables = loaded.get("tables", loaded) if isinstance(loaded, dict) else None
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise InputError(f"{path.name}：表头同义词应为“表名: 字段: [表头, …]”的格式")
    return tables


def header_lookup(table: Table, data_dir: Path | None = None) -> dict[str, str]:
    """Normalised header → canonical column name (English name, Chinese name, synonyms)."""
    lookup: dict[str, str] = {}
    names = {c.name for c in table.columns}
    for source in (tables_data()["tables"], _local_synonyms(data_dir)):
        for scope in ("*", table.name):
            for col, headers in (source.get(scope) or {}).items():
                if col not in names:
                    if scope == table.name:
                        raise InputError(f"{LOCAL_SYNONYMS}：表 {table.name} 没有字段 {col}")
                    continue
                for h in headers or ():
                    lookup[normalize_header(h)] = col
    for col in table.columns:  # the contract's own names always win
        for h in (col.name, col.zh, *col.aliases):
            lookup[normalize_header(h)] = col.name
    return lookup


@dataclass
class ColumnMatch:
    canonical: str
    index: int  # position in the row
    header: str  # as written (stripped)
    unit: str | None = None
    factor: tuple[float, float] | None = None  # value × num / den gives the standard unit


@dataclass
class HeaderMatch:
    row: int  # 0-based index among the rows scanned
    columns: list[ColumnMatch] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None  # a repeated column or an unknown unit
    unit_line: tuple[str, ...] = ()  # the units of a "单位：万元、亩" line above the header
    span: int = 1  # rows the header takes (2: an upper row of merged group cells over a lower one)

    @property
    def ok(self) -> bool:
        return not self.missing and self.error is None

    @property
    def score(self) -> int:
        return len(self.columns)


def match_header(cells: list[object], table: Table, lookup: dict[str, str], row: int = 0,
                 unit_line: tuple[str, ...] = ()) -> HeaderMatch:
    """Map one row's cells to columns; a unit in brackets is split off and converted."""
    out = HeaderMatch(row, unit_line=unit_line)
    seen: dict[str, str] = {}
    for i, cell in enumerate(cells):
        if cell is None or str(cell).strip() == "":
            continue
        written = str(cell).replace("\ufeff", "").strip()
        key = normalize_header(written)
        canonical, unit, name = lookup.get(key), None, key
        if canonical is None and (m := _SLASH_UNIT.match(key)) and m.group(1) in lookup:  # 用地面积/平方米
            dimension = table.column(lookup[m.group(1)]).unit
            if dimension is None or unit_factor(dimension, m.group(2)) is not None:  # only a unit, never a guess
                canonical, unit, name = lookup[m.group(1)], m.group(2), m.group(1)
        if canonical is None and (m := _UNIT.match(key)) and m.group(1) in lookup:
            canonical, unit, name = lookup[m.group(1)], _UNIT_WORD.sub("", m.group(2)), m.group(1)  # "实缴税金（单位：元）"
        if canonical is None:
            out.ignored.append(written)
            continue
        col = table.column(canonical)
        factor = None
        # a name that says its unit ("用地面积(亩)"): a unit line never changes it, another unit after it contradicts it
        own = m.group(2) if col.unit and (m := _UNIT.match(name)) and unit_factor(col.unit, m.group(2)) else None
        if own is not None and unit is not None and unit_factor(col.unit, unit) != unit_factor(col.unit, own):
            out.error = f"列“{written}”写了两个不同的单位（{own}、{unit}），无法确定按哪个单位读取；请只保留一个"
            continue
        if unit is None and unit_line and col.unit and own is None:
            unit = next((u for u in unit_line if unit_factor(col.unit, u)), None)
        if unit is not None and col.unit:
            factor = unit_factor(col.unit, unit)
            if factor is None:
                known = "、".join(tables_data()["units"][col.unit])
                out.error = f"列“{written}”的单位“{unit}”无法识别（{col.zh}可用的单位：{known}）"
                continue
            if factor == (1.0, 1.0):
                factor = None
        elif unit is not None:
            unit = None  # a bracket on a column without a unit (e.g. 年份(年)) is a note
        if canonical in seen:
            before = next(m.index for m in out.columns if m.canonical == canonical)
            if normalize_header(seen[canonical]) == key and before + 1 == i:
                # the same header in side-by-side columns: a cell merged (or spanned) across them
                out.error = (f"表头“{written}”占了相邻的多列（合并单元格跨列），无法确定哪一列是{col.zh}；"
                             f"请拆分该合并单元格，只保留一列“{written}”，或给各列写上不同的列名")
            elif normalize_header(seen[canonical]) == key:
                out.error = f"列“{written}”出现了不止一次，请删除多余的列"
            else:
                out.error = f"列“{seen[canonical]}”和“{written}”都对应 {canonical}，请删除其中一列"
            continue
        seen[canonical] = written
        out.columns.append(ColumnMatch(canonical, i, written, unit, factor))
    have = set(seen)
    out.missing = [c.label for c in table.columns if c.required and c.name not in have]
    for group in table.one_of:
        if not any(name in have for name in group):
            out.missing.append(" 或 ".join(table.column(n).label for n in group))
    return out


def find_header(rows: list[list[object]], table: Table, lookup: dict[str, str]) -> HeaderMatch:
    """The first row among ``rows`` that holds every required column; else the closest one.

    A line such as "单位：万元" above the header gives the unit of the columns whose header
    names none."""
    best: HeaderMatch | None = None
    unit_line: tuple[str, ...] = ()
    for i, cells in enumerate(rows[:SCAN_ROWS]):
        texts = [normalize_header(c) for c in cells if c is not None and str(c).strip()]
        if not texts:  # a blank row is never part of a header (else 'blank over header' is read as a two-row header)
            continue
        for t in texts:  # "金额单位：元" | "面积单位：亩": each line its kind (the nearest first)
            if t in lookup or ((m := _UNIT.match(t)) and m.group(1) in lookup):
                continue  # a column's own header ("研发经费（单位：元）"): its unit is that column's only
            if units := line_units(t):
                unit_line = units + tuple(u for u in unit_line if u not in units)
        match = match_header(cells, table, lookup, i, unit_line)
        if match.ok and match.score:
            units = _unit_row(cells, rows[i + 1]) if i + 1 < len(rows) else None
            if units is None:
                return match
            # "实缴税金" over a row "元": the unit belongs to the header (else 元 would be read as 万元)
            line, lower = units
            two = match_header(_combine(cells, lower), table, lookup, i, line or unit_line)
            two.span = 2
            if not two.ok and two.error is None:
                two.error = (f"第 {i + 2} 行是单位行（{describe_row(rows, HeaderMatch(i + 1))}），"
                             f"但与第 {i + 1} 行的表头合起来无法识别（缺少 {'、'.join(two.missing)}）")
            return two
        if i + 1 < len(rows):  # a two-row header: 用地面积 merged over 亩 | 平方米
            two = match_header(_combine(cells, rows[i + 1]), table, lookup, i, unit_line)
            if two.ok and two.score:
                two.span = 2
                return two
        if best is None or match.score > best.score:
            best = match
    return best if best is not None else match_header([], table, lookup, 0)


def line_units(text: str) -> tuple[str, ...]:
    """The convertible units a "单位：…" line names (``text`` normalised), in order; () when it is
    no such line.  "金额单位：元" or "（单位：元、平方米）" at the end of a title count, and so does
    each clause of "能耗单位：千克标准煤，电量单位：千瓦时"; each column takes the one of its kind
    (:func:`match_header`)."""
    convertible = convertible_units()
    found: list[str] = []
    for part in (text, *_CLAUSES.split(text)):  # "能耗单位：千克标准煤，电量单位：千瓦时": a unit per clause
        if m := _UNIT_LINE.search(part):
            found += [u for u in _UNIT_LIST.split(m.group(1)) if u in convertible and u not in found]
    return tuple(found)


@lru_cache(maxsize=1)
def convertible_units() -> frozenset[str]:
    """Every unit that converts (the ``units`` of synonyms.yaml, any kind), normalised."""
    return frozenset(normalize_header(u) for d in tables_data()["units"].values() for u in d)


def unit_words() -> frozenset[str]:
    """Every unit a unit row may hold (normalised): the convertible ones and the plain ones."""
    return convertible_units() | {normalize_header(u) for u in tables_data()["unit_words"]}


def _unit_row(header: list[object], cells: list[object]) -> tuple[tuple[str, ...], list[object]] | None:
    """A row of units right under the header ("", "", "元" or "（万元）" or "单位：元"), as
    (a unit for every column, like a "单位：万元" line; the unit of each column, for :func:`_combine`);
    None when ``cells`` is not such a row.  Every filled cell must be a unit (or the word
    单位, or its column's header again: a cell merged down), and one at least a unit that converts."""
    known = unit_words()
    convertible = convertible_units()
    lower: list[object] = []
    line: tuple[str, ...] = ()
    any_unit = False
    for j, cell in enumerate(cells):
        text = normalize_header(cell) if cell is not None else ""
        above = normalize_header(header[j]) if j < len(header) and header[j] is not None else ""
        if text in ("", above, "单位", "计量单位") or text in missing_marks():
            lower.append(None)
            continue
        unit = text[1:-1] if text.startswith("(") and text.endswith(")") else text
        if _UNIT_LINE.search(unit):
            line = line_units(unit)
            if not line:
                return None
            any_unit = True
            lower.append(None)
            continue
        if unit not in known:
            return None
        any_unit = any_unit or unit in convertible
        lower.append(None if above.endswith(f"({unit})") else unit)
    return (line, lower) if any_unit else None


def _combine(upper: list[object], lower: list[object]) -> list[object]:
    """One header row from two: "用地面积" over "亩" → "用地面积(亩)"; a cell merged down
    (the same text in both rows) or empty in one row keeps the other's text."""
    out: list[object] = []
    for j in range(max(len(upper), len(lower))):
        u = str(upper[j]).strip() if j < len(upper) and upper[j] is not None else ""
        lo = str(lower[j]).strip() if j < len(lower) and lower[j] is not None else ""
        out.append(u if not lo or lo == u else lo if not u else f"{u}({lo})")
    return out


def combine_expr(upper: pl.Expr, lower: pl.Expr) -> pl.Expr:
    """:func:`_combine` on columns of cells (a two-row header repeated in the body); "" when both are empty."""
    u, lo = upper.str.strip_chars().fill_null(""), lower.str.strip_chars().fill_null("")
    return (pl.when((lo == "") | (lo == u)).then(u).when(u == "").then(lo)
            .otherwise(pl.concat_str([u, pl.lit("("), lo, pl.lit(")")])))


def describe_row(rows: list[list[object]], match: HeaderMatch) -> str:
    cells = rows[match.row] if match.row < len(rows) else []
    shown = [str(c).strip() for c in cells if c is not None and str(c).strip()][:8]
    return "、".join(shown) if shown else "（空行）"
