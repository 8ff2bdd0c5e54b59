"""Charts render their Chinese with a font that has every glyph (and refuse otherwise);
tables export to Excel with Chinese headers."""
from __future__ import annotations

import datetime as dt

import matplotlib
import openpyxl
import polars as pl
import pytest
from chart_helpers import check_chart_files
from matplotlib import font_manager
from matplotlib.figure import Figure

import screening
from screening import charts
from screening.paths import default_ruleset
from screening.screen import screen
from screening.whatif import write_report

pytestmark = pytest.mark.unit
R1, R3 = "above_scale_low_tax_per_mu", "below_scale_consecutive_low_tax_per_mu"


@pytest.fixture(scope="module")
def ruleset():
    return screening.load_ruleset(default_ruleset())


def _whatif_table() -> pl.DataFrame:
    return pl.DataFrame({"value": ["0.05", "0.1", "0.2"], "listed": [171, 223, 408],
                         "land_mu": [1289.3, 2185.7, 5218.6], "energy_tce": [49576.5, 62720.5, 100323.4],
                         "param": f"{R1}.ratio", "list_year": 2022})


@pytest.fixture(scope="module")
def sample_figures(ruleset):
    """One figure of each kind, drawn from the sample's 2022 screening."""
    with screen(None, 2022) as s:
        results, listing = s.results, s.list
    whatif = _whatif_table()
    r1 = results.filter(pl.col("rule_id") == R1, pl.col("status").is_in(["hit", "pass"]))
    thresholds = dict(r1.group_by("industry_group_name").agg(pl.col("threshold").first()).iter_rows())
    by_township = listing.group_by("township").agg(pl.len().alias("listed"), (pl.len() // 2).alias("confirmed"))
    return {
        "whatif": charts.whatif_chart(whatif, ruleset),
        "industry": charts.distribution_chart(
            r1, "value", "industry_group_name", title="规上企业两年合计亩均税收（按行业）", xlabel="亩均税收（万元/亩）",
            lines=[charts.RuleLine(ruleset.rules[R1].title, per_group=thresholds),
                   charts.RuleLine(ruleset.rules[R3].title, value=ruleset.params[R3]["threshold"])]),
        "township": charts.stacked_bar_chart(by_township, "township", {"confirmed": "已确认", "listed": "清单"},
                                             title="核实进度", xlabel="企业数（家）"),
        "targets": charts.target_chart([(t.label, t.value, {"清单": 100.0}) for t in ruleset.meta.targets.values()],
                                       title="目标进度"),
    }


@pytest.mark.filterwarnings("error:Glyph")  # matplotlib warns when it draws a glyph as an empty box
def test_the_chart_font_covers_every_character_the_charts_draw(sample_figures):
    font = charts.find_cjk_font()
    latin = font_manager.findfont(charts.LATIN_FONT)
    for name, fig in sample_figures.items():
        text = charts.figure_text(fig) + "".join(charts.LABELS.values())
        chinese = "".join(c for c in text if ord(c) > 0x2E80)
        assert len(set(chinese)) > 10, name  # the figure really has Chinese in it
        assert charts.missing_glyphs(font, chinese) == "", (name, font)
        assert not set(charts.missing_glyphs(font, text)) & set(charts.missing_glyphs(latin, text)), name
        charts.check_glyphs(fig)


def test_the_glyph_check_fails_for_a_font_without_chinese():
    latin = font_manager.findfont(charts.LATIN_FONT)
    assert charts.missing_glyphs(latin, "亩均税收 abc") == "亩均收税"  # sorted by code point
    assert charts.missing_glyphs(latin, "abc 123") == ""


@pytest.fixture
def no_cjk_font(monkeypatch):
    """A machine whose only fonts are Latin (and matplotlib's Last Resort boxes)."""
    latin_only = [e for e in font_manager.fontManager.ttflist
                  if e.name == charts.LATIN_FONT or e.name.startswith(charts.PLACEHOLDER_FONTS)]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin_only)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])


def test_no_font_with_the_glyphs_is_a_clear_chinese_error(no_cjk_font):
    with pytest.raises(charts.FontMissingError, match="未找到能显示图表中文的字体") as err:
        charts.find_cjk_font()
    assert "dev.py setup" in str(err.value) and err.value.exit_code == 2


@pytest.mark.filterwarnings("ignore:Glyph")  # the missing glyph is the point here
def test_a_character_no_font_has_is_refused_not_drawn_as_a_box(tmp_path):
    font, latin = charts.find_cjk_font(), font_manager.findfont(charts.LATIN_FONT)
    # a character neither font has (checked here, so the test cannot pass vacuously)
    odd = next(c for c in "\U0001FAE8\U0001F9EA\U000E0100\U00010400" if charts.missing_glyphs(font, c)
               and charts.missing_glyphs(latin, c))
    with pytest.raises(charts.FontMissingError, match=odd):  # asked for when the chart is made
        charts.target_chart([("腾出用能" + odd, 10.0, {"清单": 5.0})], title="目标进度")
    fig = charts.target_chart([("腾出用能", 10.0, {"清单": 5.0})], title="目标进度")
    fig.axes[0].set_xlabel("吨标准煤" + odd)  # or added afterwards: refused when saved
    with pytest.raises(charts.FontMissingError, match=odd):
        charts.save_chart(fig, tmp_path / "bad")
    assert not list(tmp_path.iterdir())


def test_whatif_report_without_a_chinese_font_still_writes_the_workbook(no_cjk_font, tmp_path):
    moved = pl.DataFrame({"value": ["0.2"], "uscc": ["91330382000000000X"], "change": ["entered"]})
    written, problem = write_report(_whatif_table(), moved, tmp_path)
    assert [p.name for p in written] == ["whatif.xlsx"] and written[0].is_file()
    assert "未找到能显示图表中文的字体" in problem and not list(tmp_path.glob("whatif.*g"))


@pytest.mark.filterwarnings("ignore:Glyph")  # the boxes are what the check must catch
def test_the_check_reads_the_font_each_text_is_drawn_with(tmp_path):
    # built before any chart chose the CJK font: drawn in DejaVu Sans, i.e. as boxes,
    # although the font chosen since (today's rcParams) has every glyph
    with matplotlib.rc_context({"font.family": [charts.LATIN_FONT]}):
        fig = Figure()
        fig.subplots().set_title("亩均税收")
    charts.use_cjk_font()
    with pytest.raises(charts.FontMissingError, match="use_cjk_font"):
        charts.save_chart(fig, tmp_path / "boxes")
    # and the reverse: a chart drawn with the CJK font is still saved after rcParams move on
    fig = charts.target_chart([("腾出用能", 10.0, {"清单": 5.0})], title="目标进度")
    with matplotlib.rc_context({"font.family": [charts.LATIN_FONT]}):
        assert [p.suffix for p in charts.save_chart(fig, tmp_path / "ok")] == [".png", ".svg"]


def test_a_distribution_without_values_says_so(tmp_path):
    frame = pl.DataFrame({"v": [None, None], "g": ["甲", "乙"]}, schema={"v": pl.Float64, "g": pl.String})
    fig = charts.distribution_chart(frame, "v", "g", title="亩均增加值", xlabel="亩均增加值（万元/亩）")
    assert "没有可画的数据" in charts.figure_text(fig)
    assert len(charts.save_chart(fig, tmp_path / "empty")) == 2


@pytest.mark.filterwarnings("error:Glyph")
def test_save_chart_writes_png_and_svg_with_chinese_glyphs(sample_figures, tmp_path):
    png, svg = charts.save_chart(sample_figures["industry"], tmp_path / "sub" / "行业")
    assert (png.name, svg.name) == ("行业.png", "行业.svg")
    check_chart_files(png, svg)


def test_export_excel_has_chinese_headers_and_typed_cells(tmp_path):
    frame = pl.DataFrame({
        "uscc": ["91330382000000000X", None], "tax_per_mu": [1.5, float("nan")], "firms": [3, 4],
        "day": [dt.date(2022, 5, 7), None], "flag": [True, False], "tags": [["a", "b"], []], "custom": ["x", "y"],
    })
    path = screening.export_excel({"对标": frame, "对标/续": frame.head(1)}, tmp_path / "t" / "表.xlsx",
                                  headers={"custom": "自定义列", "day": "日期"})
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["对标", "对标_续"]
    sheet = book["对标"]
    rows = list(sheet.values)
    assert rows[0] == ("统一社会信用代码", "亩均税收（万元/亩，最近一年）", "企业数", "日期", "flag", "tags", "自定义列")
    assert rows[1] == ("91330382000000000X", 1.5, 3, "2022-05-07", "是", "a；b", "x")
    assert rows[2][0] is None and rows[2][1] is None and rows[2][2] == 4
    assert sheet.freeze_panes is not None
