"""Charts for reports and notebooks: Chinese titles and labels, saved as PNG and SVG.

Figures are built with matplotlib's object API on the Agg canvas, so no display and no
pyplot state are needed (the command line and a notebook use the same functions).  Before
drawing, :func:`use_cjk_font` picks an installed font whose character map covers the
Chinese text; :func:`save_chart` checks every string drawn against the font files
matplotlib resolves for that very text, so a chart is either written with every glyph or
refused with one clear Chinese line — never with empty boxes.

    from screening import charts
    fig = charts.whatif_chart(table, ruleset)        # table from screening.whatif(...)
    charts.save_chart(fig, "out/whatif")             # out/whatif.png and out/whatif.svg
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import polars as pl
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from .errors import ScreeningError

if TYPE_CHECKING:
    from .ruleset import RuleSet

#: CJK families in order of preference (Linux packages, then Windows and macOS system fonts);
#: any other installed font whose character map covers the text is used after these.
PREFERRED_FONTS = (
    "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
    "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "SimHei", "Noto Sans SC",
    "Noto Sans CJK JP", "Source Han Sans", "Droid Sans Fallback", "AR PL UMing CN",
)
#: the Debian/Ubuntu package dev.py installs when no CJK font is present (small, Chinese glyph forms)
DEBIAN_FONT_PACKAGE = "fonts-wqy-microhei"
#: Latin fallback after the CJK font: matplotlib's own font, always present
LATIN_FONT = "DejaVu Sans"

#: every fixed Chinese string the charts draw (rule titles, places and industries come from data)
LABELS = {
    "listed": "清单企业数（家）",
    "land_mu": "清单企业用地（亩）",
    "energy_tce": "清单企业综合能耗（吨标准煤）",
    "value": "参数取值",
    "default": "默认值",
    "target": "年度目标",
    "whatif": "参数试算",
    "year": "年度",
    "firms": "企业数",
    "others": "其他",
    "confirmed": "已确认",
    "disputed": "有异议",
    "pending": "待核实",
    "progress": "目标进度",
    "no_data": "没有可画的数据（全部缺失）",
}


class FontMissingError(ScreeningError):
    """No installed font covers the Chinese text of a chart."""


def _fix_hint(missing: str) -> str:
    shown = "".join(sorted(set(missing)))[:20]
    return (f"未找到能显示图表中文的字体（缺少字符：{shown}）。请安装中文字体后重试："
            f"Debian/Ubuntu 以 root 运行 python3 dev.py setup（自动安装 {DEBIAN_FONT_PACKAGE}），"
            f"或 apt-get install fonts-noto-cjk；Windows、macOS 自带的微软雅黑、苹方可直接使用")


@dataclass(frozen=True)
class CjkFont:
    name: str
    path: str
    index: int


@cache
def _charmap(path: str, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    with TTFont(path, fontNumber=index, lazy=True) as font:
        return frozenset(font.getBestCmap() or {})


def missing_glyphs(font: CjkFont | str, text: str) -> str:
    """The characters of ``text`` (spaces aside) that ``font`` (a CjkFont, or a file path such
    as matplotlib's FontPath, whose face index is kept) has no glyph for."""
    if isinstance(font, CjkFont):
        path, index = font.path, font.index
    else:
        path, index = str(font), getattr(font, "face_index", 0)
    cmap = _charmap(path, index)
    return "".join(sorted({c for c in text if not c.isspace() and ord(c) not in cmap}))


#: fonts whose character map claims every character but whose glyphs are placeholder boxes
#: (matplotlib ≥ 3.11 ships "Last Resort High-Efficiency" as its final fallback)
PLACEHOLDER_FONTS = ("Last Resort",)


def _entries() -> list[font_manager.FontEntry]:
    return [e for e in font_manager.fontManager.ttflist
            if e.style == "normal" and not e.name.startswith(PLACEHOLDER_FONTS)]


def _rescan() -> None:
    """Register system fonts installed after matplotlib built its font cache (for example by
    dev.py a moment ago): the cache is only rebuilt when matplotlib's version changes."""
    known = {e.fname for e in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a broken font file is skipped, as matplotlib does
                continue


def _candidates(preferred_only: bool) -> Iterable[CjkFont]:
    entries = _entries()
    rank = {name: i for i, name in enumerate(PREFERRED_FONTS)}
    preferred = sorted((e for e in entries if e.name in rank), key=lambda e: (rank[e.name], e.weight != 400))
    others = [] if preferred_only else [e for e in entries if e.name not in rank]
    for entry in [*preferred, *others]:
        yield CjkFont(entry.name, entry.fname, getattr(entry, "index", 0) or 0)


def _covering(needed: str, preferred_only: bool) -> CjkFont | None:
    for font in _candidates(preferred_only):
        try:
            covered = not missing_glyphs(font, needed)
        except Exception:  # noqa: BLE001 — an unreadable font file is not a candidate
            covered = False
        if covered:
            return font
    return None


def find_cjk_font(text: str = "") -> CjkFont:
    """The first installed font (preferred families first) that covers ``text`` and the fixed labels.

    Raises FontMissingError (one Chinese line saying how to install one) when none does."""
    needed = "".join(LABELS.values()) + text
    font = _covering(needed, preferred_only=True)
    if font is None:
        _rescan()
        font = _covering(needed, preferred_only=False)
    if font is None:
        best = next(iter(_candidates(preferred_only=True)), None)  # what it lacks, or all the Chinese
        missing = missing_glyphs(best, needed) if best else "".join(c for c in needed if ord(c) > 0x2E80)
        raise FontMissingError(_fix_hint(missing or needed))
    return font


def use_cjk_font(text: str = "") -> CjkFont:
    """Pick a CJK font (see :func:`find_cjk_font`) and make it matplotlib's default, with
    DejaVu Sans after it for Latin glyphs; returns the font chosen."""
    font = find_cjk_font(text)
    matplotlib.rcParams["font.family"] = [font.name, LATIN_FONT]
    # the CJK fonts' own minus sign sits oddly; an ASCII hyphen is covered everywhere
    matplotlib.rcParams["axes.unicode_minus"] = False
    matplotlib.rcParams["svg.fonttype"] = "path"  # glyph outlines: the SVG shows Chinese on any machine
    return font


def _texts(fig: Figure) -> list[Text]:
    FigureCanvasAgg(fig).draw()  # tick labels exist only once the figure is laid out
    return [t for t in fig.findobj(Text) if t.get_text()]


def figure_text(fig: Figure) -> str:
    """Every string the figure draws (titles, labels, tick labels, legends, notes)."""
    return "".join(t.get_text() for t in _texts(fig))


def _drawing_fonts(text: Text, placeholders: set[str]) -> list[str]:
    """The font files matplotlib draws ``text`` with, in fallback order: the lookup the Agg
    renderer itself makes (backend_agg._prepare_font), so the check follows each text's own
    font properties, not today's rcParams.  Last Resort, which matplotlib appends after
    these, only draws boxes and is not counted."""
    found = font_manager.fontManager._find_fonts_by_props(text.get_fontproperties())
    return [f for f in found if str(f) not in placeholders]


def check_glyphs(fig: Figure) -> None:
    """Raise FontMissingError if a character the figure draws is in none of the fonts that draw it."""
    placeholders = {e.fname for e in font_manager.fontManager.ttflist if e.name.startswith(PLACEHOLDER_FONTS)}
    missing: set[str] = set()
    for text in _texts(fig):
        lacking = {c for c in text.get_text() if not c.isspace()}
        for font in _drawing_fonts(text, placeholders):
            lacking &= set(missing_glyphs(font, text.get_text()))
        missing |= lacking
    if missing:
        shown = "".join(sorted(missing))
        font = find_cjk_font(shown)  # none installed: says how to install one
        raise FontMissingError(f"图中文字所用的字体缺少字符：{shown[:20]}。已安装的 {font.name} 可以显示，"
                               f"请在作图前调用 screening.charts.use_cjk_font()")


def save_chart(fig: Figure, path_stem: str | Path, dpi: int = 150) -> list[Path]:
    """Write ``<path_stem>.png`` and ``<path_stem>.svg``; returns the two paths.

    Refuses (FontMissingError) a figure with a character no font in use can draw."""
    check_glyphs(fig)
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    title = fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    fig.savefig(paths[0], dpi=dpi, bbox_inches="tight", metadata={"Title": title})
    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "screening"}):  # reproducible ids
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Title": title, "Date": None})
    return paths


def _new_figure(text: str, width: float, height: float, ncols: int = 1) -> tuple[Figure, list]:
    use_cjk_font(text)
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


# ---------------------------------------------------------------- what-if


def _as_numbers(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def whatif_chart(table: pl.DataFrame, ruleset: RuleSet | None = None) -> Figure:
    """List size, land and energy of the listed firms against the parameter's values.

    ``table`` is the first frame of :func:`screening.whatif`.  With the rule set the what-if
    ran on, the default value is marked, the axis names the rule and unit, and the year's
    targets (``targets`` in _ruleset.yaml) are drawn as dotted lines."""
    param = str(table["param"][0])
    rid, _, name = param.partition(".")
    values = [str(v) for v in table["value"].to_list()]
    default, axis, targets, subject = None, f"{LABELS['value']}：{param}", {}, param
    if ruleset is not None and rid in ruleset.rules:
        rule = ruleset.rules[rid]
        unit = rule.parameters[name].unit
        current = ruleset.params[rid][name]
        default = "+".join(current) if isinstance(current, list) else f"{current:g}" if isinstance(current, float) else str(current)
        subject = f"{rule.short_title}（{param}）"
        axis = f"{LABELS['value']}：{rule.short_title} {name}" + (f"，单位：{unit}" if unit else "")
        targets = ruleset.meta.targets
    title = f"{LABELS['whatif']}：{subject}，{table['list_year'][0]}{LABELS['year']}"
    fig, axes = _new_figure(title + axis + "".join(t.label + t.unit for t in targets.values()), 13, 4.2, ncols=3)
    numbers = _as_numbers(values)
    default_number = _as_numbers([default])[0] if default is not None and numbers is not None else None
    for ax, column in zip(axes, ("listed", "land_mu", "energy_tce")):
        ys = table[column].to_list()
        if numbers is not None:
            ax.plot(numbers, ys, marker="o", color="#2F5597")
            if default_number is not None:
                ax.axvline(default_number, color="#C00000", linestyle="--", linewidth=1,
                           label=f"{LABELS['default']} {default}")
        else:
            for i, (v, y) in enumerate(zip(values, ys)):
                is_default = v == default
                ax.bar(i, y, color="#C00000" if is_default else "#2F5597",
                       label=f"{LABELS['default']} {default}" if is_default else None)
            ax.set_xticks(range(len(values)), values)
        target_key = "firms" if column == "listed" else column
        if target_key in targets:
            t = targets[target_key]
            ax.axhline(t.value, color="#7F7F7F", linestyle=":", linewidth=1.2,
                       label=f"{LABELS['target']}：{t.label} {t.value:g} {t.unit}")
        ax.set_title(LABELS[column])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    fig.supxlabel(axis, fontsize=10)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- distributions


@dataclass(frozen=True)
class RuleLine:
    """A line drawn on a distribution: one value for every group, or one value per group."""

    label: str
    value: float | None = None
    per_group: dict[str, float] | None = None
    color: str = "#C00000"


def distribution_chart(frame: pl.DataFrame, value: str, group: str, *, title: str, xlabel: str,
                       lines: Sequence[RuleLine] = (), max_groups: int = 12, log: bool = True) -> Figure:
    """Box plots of ``value`` by ``group`` (the groups with most firms, largest on top), with
    rule lines: a vertical line for a single value, a mark on each row for per-group values.

    Groups beyond ``max_groups`` are pooled as 其他.  ``log`` uses a log scale that keeps zero."""
    data = frame.select(pl.col(group).cast(pl.String).fill_null("—").alias("g"), pl.col(value).alias("v")).drop_nulls("v")
    if not data.height:  # e.g. the optional value_added column absent from the data: say so, not a traceback
        note = f"{xlabel}：{LABELS['no_data']}"
        fig, (ax,) = _new_figure(title + note, 10, 3.0)
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        ax.set_axis_off()
        return fig
    order = data.group_by("g").len().sort(["len", "g"], descending=[True, False])["g"].to_list()
    keep = order[:max_groups]
    if len(order) > max_groups:
        data = data.with_columns(pl.when(pl.col("g").is_in(keep)).then("g").otherwise(pl.lit(LABELS["others"])).alias("g"))
        keep.append(LABELS["others"])
    groups = list(reversed(keep))  # the largest group on top
    samples = [data.filter(pl.col("g") == g)["v"].to_list() for g in groups]
    labels = [f"{g}  {len(s)}家" for g, s in zip(groups, samples)]
    text = title + xlabel + "".join(labels) + "".join(line.label for line in lines)
    fig, (ax,) = _new_figure(text, 10, max(3.0, 0.42 * len(groups) + 1.6))
    ax.boxplot(samples, orientation="horizontal", tick_labels=labels, showfliers=True, widths=0.6,
               flierprops={"markersize": 2, "alpha": 0.4}, medianprops={"color": "#2F5597"})
    for line in lines:
        if line.value is not None:
            ax.axvline(line.value, color=line.color, linestyle="--", linewidth=1.2, label=line.label)
        if line.per_group:
            ys = [i + 1 for i, g in enumerate(groups) if g in line.per_group]
            xs = [line.per_group[g] for g in groups if g in line.per_group]
            ax.scatter(xs, ys, marker="|", s=260, linewidths=2.2, color=line.color, label=line.label, zorder=3)
    if log and min(min(s) for s in samples if s) > 0:
        ax.set_xscale("log")
    elif log:  # zeros (a firm that paid no tax) stay on the axis
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if lines:  # below the axes, where it hides no box
        fig.legend(fontsize=8, loc="outside lower center", ncols=min(len(lines), 2))
    return fig


# ---------------------------------------------------------------- verification and plans


PALETTE = ("#2F5597", "#C00000", "#FFC000", "#70AD47", "#7F7F7F", "#BFBFBF")


def stacked_bar_chart(frame: pl.DataFrame, category: str, parts: dict[str, str], *, title: str,
                      xlabel: str, colors: Sequence[str] = PALETTE) -> Figure:
    """Horizontal stacked bars: one bar per ``category`` row (largest total on top), one
    segment per column in ``parts`` (column → Chinese label), e.g. confirmed / disputed /
    pending verifications by township."""
    total = pl.sum_horizontal(pl.col(list(parts)).fill_null(0))
    rows = frame.sort(total, pl.col(category), descending=[False, True])  # barh draws bottom-up: largest on top
    names = [str(v) for v in rows[category].to_list()]
    fig, (ax,) = _new_figure(title + xlabel + "".join(names) + "".join(parts.values()), 9,
                             max(3.0, 0.32 * len(names) + 1.4))
    left = [0.0] * len(names)
    for (column, label), color in zip(parts.items(), colors):
        widths = [float(v or 0) for v in rows[column].to_list()]
        ax.barh(names, widths, left=left, label=label, color=color)
        left = [a + b for a, b in zip(left, widths)]
    ax.margins(x=0.03)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def target_chart(rows: Sequence[tuple[str, float, dict[str, float]]], *, title: str) -> Figure:
    """Progress toward the year's targets: one panel per target (label, target value,
    {stage: amount}), a bar per stage in the target's own unit and the target as a line."""
    labels = [label for label, _, _ in rows]
    stages = "".join(stage for _, _, amounts in rows for stage in amounts)
    fig, axes = _new_figure(title + "".join(labels) + stages, 4.2 * len(rows), 3.2, ncols=len(rows))
    for ax, (label, target, amounts) in zip(axes, rows):
        names = list(amounts)[::-1]  # the first stage on top
        bars = ax.barh(names, [amounts[n] for n in names], color="#2F5597")
        ax.bar_label(bars, labels=[f" {amounts[n]:,.0f}" for n in names], fontsize=8)
        ax.axvline(target, color="#C00000", linestyle="--", label=f"{LABELS['target']} {target:,.0f}")
        ax.set_title(label, fontsize=10)
        ax.margins(x=0.25)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    return fig
