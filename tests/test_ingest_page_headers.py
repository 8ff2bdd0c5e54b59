"""A header of more than one row repeated at the top of every printed page (exports of 统计/税务
systems, sheets pasted page by page): a group row over the column names, a two-row header
(用地面积 over 亩 | 平方米), the title line above them.  Each repeated row is furniture
(重复的表头行, with the row Excel shows), every data row is read, and a block that only partly
repeats the header stays data (rejected row by row, as before)."""
from __future__ import annotations

import polars as pl
import xlsxwriter

from test_ingest_real import C1, C2, TAX, assert_same_tables, clean_dir, load, quirk_dir, write_csv

REPEATED = "重复的表头行，不是数据行，未读取"
TITLE = "2020—2021年税收情况表"
GROUP = ["企业基本情况", "税收情况", None]  # 税收情况 over 年份 | 实缴税金, written in the merge's first cell
LAND_HEAD = [["统一社会信用代码", "年份", "地块编号", "用地面积", "用地面积", "权属"], [None, None, None, "亩", "平方米", None]]


def _paged(top: list[list], data: list[list], block: list[list] | None = None) -> tuple[list[list], list[int]]:
    """``top`` then the data, with ``block`` (default: ``top``) again after each data row but the last;
    returns the rows and the Excel rows of the repeated blocks."""
    block = top if block is None else block
    rows, repeated = list(top), []
    for i, r in enumerate(data):
        rows.append(r)
        if i < len(data) - 1:
            repeated += range(len(rows) + 1, len(rows) + 1 + len(block))
            rows += [list(b) for b in block]
    return rows, repeated


def _furniture(inp) -> list[tuple[int, str]]:
    return [(r["_row"], r["reason"]) for r in inp.files["tax"].furniture.to_dicts()]


def test_group_row_and_title_repeated_on_every_page_csv(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows, repeated = _paged([[TITLE], GROUP, TAX[0]], TAX[1:])
    write_csv(d / "tax.csv", rows, "gbk")
    inp = load(d)
    assert len(repeated) == 9  # three pages, three rows each
    assert _furniture(inp) == [(r, "重复的表头行") for r in repeated]
    assert [(r["row"], r["column"], r["reason"]) for r in inp.rejects.to_dicts()] == [
        (r, "（整行）", REPEATED) for r in repeated]
    assert_same_tables(clean, inp)


def test_page_without_its_title_and_blank_rows_between(tmp_path):
    """The title is printed on the first page only; a blank line may stand between the blocks' rows."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows, _ = _paged([[TITLE], [], GROUP, TAX[0]], TAX[1:], [[], GROUP, [], TAX[0]])
    write_csv(d / "tax.csv", rows)
    inp = load(d)
    assert _furniture(inp) == [(r, "重复的表头行") for r in (7, 9, 12, 14, 17, 19)]
    assert_same_tables(clean, inp)


def _merged_tax_xlsx(path, title: bool, merged: bool, merged_again: bool | None = None) -> list[int]:
    """税收 with a title merged over the table and 企业基本情况 | 税收情况 over the column names
    (merged ranges, or the text in the range's first cell only, as an .xls reads), all of it
    again at the top of each page (``merged_again``: merged there or not, default as at the top);
    returns the Excel rows of the repeats."""
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("税收")
    r, repeated = 0, []
    for i, data in enumerate(TAX[1:]):
        if i:
            repeated += range(r + 1, r + 1 + 2 + title)
            merged = merged if merged_again is None else merged_again
        if title:
            ws.merge_range(r, 0, r, 2, TITLE) if merged else ws.write(r, 0, TITLE)
            r += 1
        ws.write(r, 0, GROUP[0])
        ws.merge_range(r, 1, r, 2, GROUP[1]) if merged else ws.write(r, 1, GROUP[1])
        ws.write_row(r + 1, 0, ["实缴税金（万元）" if c == "实缴税金" else c for c in TAX[0]])
        ws.write_row(r + 2, 0, data)
        r += 3
    wb.close()
    return repeated


def test_merged_group_cells_repeated_on_every_page_xlsx(tmp_path):
    clean = load(clean_dir(tmp_path))
    for merged in (True, False):
        for title in (True, False):
            (tmp_path / f"{merged}{title}").mkdir()
            d = quirk_dir(tmp_path / f"{merged}{title}")
            repeated = _merged_tax_xlsx(d / "tax.xlsx", title, merged)
            inp = load(d)
            assert len(repeated) == 3 * (2 + title)
            assert _furniture(inp) == [(r, "重复的表头行") for r in repeated], (merged, title)
            assert inp.rejects["row"].to_list() == repeated
            assert_same_tables(clean, inp)
            # the filled cells of a merged range in a row not read are not listed as normalised
            assert not set(inp.normalised["row"].to_list()) & set(repeated)


def test_merged_at_the_top_and_first_cell_only_on_the_pages_compare_equal(tmp_path):
    clean = load(clean_dir(tmp_path))
    for merged in (True, False):
        (tmp_path / str(merged)).mkdir()
        d = quirk_dir(tmp_path / str(merged))
        repeated = _merged_tax_xlsx(d / "tax.xlsx", True, merged, not merged)
        inp = load(d)
        assert _furniture(inp) == [(r, "重复的表头行") for r in repeated], merged
        assert_same_tables(clean, inp)


def test_two_row_header_repeated_on_every_page_xlsx(tmp_path):
    """用地面积 merged over 亩 | 平方米, the other headers merged down both rows, the title above."""
    c = clean_dir(tmp_path)
    data = [[C1, 2021, "P1", None, 2000, "自有"], [C2, 2021, "P1", None, 1000, "租赁"], [C2, 2021, "P2", 3, None, "自有"],
            [C1, 2020, "P1", None, 1500, "自有"]]
    write_csv(c / "land.csv", [["uscc", "year", "parcel_id", "area_mu", "area_m2", "tenure"], *data])
    clean = load(c)
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", TAX)
    wb = xlsxwriter.Workbook(d / "land.xlsx")
    ws = wb.add_worksheet("用地")
    r, repeated = 0, []
    for i, row in enumerate(data):
        if i:
            repeated += [r + 1, r + 2, r + 3]
        ws.merge_range(r, 0, r, 5, "2021年度企业用地情况")
        for j, h in ((0, "统一社会信用代码"), (1, "年份"), (2, "地块编号"), (5, "权属")):
            ws.merge_range(r + 1, j, r + 2, j, h)
        ws.merge_range(r + 1, 3, r + 1, 4, "用地面积")
        ws.write_row(r + 2, 3, ["亩", "平方米"])
        ws.write_row(r + 3, 0, row)
        r += 4
    wb.close()
    inp = load(d)
    assert inp.files["land"].header_row == 2
    assert [(f["_row"], f["reason"]) for f in inp.files["land"].furniture.to_dicts()] == [
        (r, "重复的表头行") for r in repeated]
    assert inp.rejects["row"].to_list() == repeated and set(inp.rejects["file"]) == {"land.xlsx"}
    assert_same_tables(clean, inp)


def test_two_row_header_repeated_on_every_page_csv(tmp_path):
    """用地面积 over 亩 | 平方米 (in both cells of its range); the headers merged down both rows
    written in the upper row only, as a CSV holds a merged cell."""
    c = clean_dir(tmp_path)
    data = [[C1, 2021, "P1", 3, None, "自有"], [C2, 2021, "P1", None, 1000, "租赁"], [C2, 2021, "P2", 2, None, "自有"]]
    write_csv(c / "land.csv", [["uscc", "year", "parcel_id", "area_mu", "area_m2", "tenure"], *data])
    clean = load(c)
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", TAX)
    rows, repeated = _paged(LAND_HEAD, data)
    write_csv(d / "land.csv", rows)
    inp = load(d)
    assert (inp.files["land"].header_row, inp.files["land"].headers["area_m2"]) == (1, "用地面积(平方米)")
    assert [f["_row"] for f in inp.files["land"].furniture.to_dicts()] == repeated == [4, 5, 7, 8]
    assert inp.rejects["row"].to_list() == repeated
    assert_same_tables(clean, inp)


def test_a_block_that_only_partly_repeats_the_header_stays(tmp_path):
    """A group row other than the top's, a title other than the top's, or rows like the top's
    that no repeated header follows are data: rejected row by row as before."""
    d = quirk_dir(tmp_path)
    rows = [[TITLE], GROUP, TAX[0], TAX[1],
            ["企业基本情况", "用电情况", None], TAX[0], TAX[2],  # another group row: only the header row is furniture
            ["2022年税收情况表"], GROUP, TAX[0], TAX[3],  # another title: the group and header rows are
            GROUP, [TITLE], TAX[4]]  # the top's rows, but no header after them
    write_csv(d / "tax.csv", rows)
    inp = load(d)
    assert _furniture(inp) == [(6, "重复的表头行"), (9, "重复的表头行"), (10, "重复的表头行")]
    rejected = sorted({r["row"] for r in inp.rejects.to_dicts() if r["reason"] != REPEATED})
    assert rejected == [5, 8, 12, 13]
    assert inp.frame("tax").height == 4


def test_a_two_row_header_only_half_repeated_stays(tmp_path):
    d = quirk_dir(tmp_path)
    head = LAND_HEAD
    write_csv(d / "tax.csv", TAX)
    write_csv(d / "land.csv", [*head, [C1, 2021, "P1", 3, None, "自有"], head[0], [C2, 2021, "P1", 2, None, "自有"],
                               head[1], [C2, 2021, "P2", 2, None, "自有"]])
    inp = load(d)
    assert inp.files["land"].furniture.height == 0
    assert sorted({r["row"] for r in inp.rejects.to_dicts()}) == [4, 6]
    assert inp.frame("land").height == 3


def test_one_row_header_written_in_18_bytes_is_recognised_when_repeated(tmp_path):
    """纳税人识别号 is as many bytes as a code (six characters of three bytes): still the header again."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    head = ["纳税人识别号", "年份", "实缴税金"]
    write_csv(d / "tax.csv", [head, TAX[1], TAX[2], head, TAX[3], TAX[4]])
    inp = load(d)
    assert _furniture(inp) == [(4, "重复的表头行")]
    assert_same_tables(clean, inp)


def test_one_row_header_repeated_is_unchanged(tmp_path):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [TAX[0], TAX[1], TAX[0], TAX[2], TAX[3], TAX[0], TAX[4]])
    inp = load(d)
    assert _furniture(inp) == [(3, "重复的表头行"), (6, "重复的表头行")]
    assert inp.rejects.filter(pl.col("reason") != REPEATED).height == 0
    assert_same_tables(clean, inp)


def test_a_column_number_row_under_each_repeated_header(tmp_path):
    """栏次 ("甲 乙 1") right under the header on every printed page: each one is furniture
    (栏次行), as the first one is, and every data row is read."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    numbers = ["甲", "乙", "1"]
    rows, repeated = _paged([TAX[0], numbers], TAX[1:])
    write_csv(d / "tax.csv", rows)
    inp = load(d)
    expected = [(2, "栏次行")] + [(r, "重复的表头行" if i % 2 == 0 else "栏次行") for i, r in enumerate(repeated)]
    assert _furniture(inp) == expected
    assert_same_tables(clean, inp)


def test_a_column_number_row_under_a_repeated_two_row_header_with_its_title(tmp_path):
    """The same under a group row and a title repeated at the top of each page."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    rows, repeated = _paged([[TITLE], GROUP, TAX[0], ["甲", "乙", "1"]], TAX[1:])
    write_csv(d / "tax.csv", rows)
    inp = load(d)
    assert [reason for _, reason in _furniture(inp)].count("栏次行") == 4
    assert sorted(r for r, _ in _furniture(inp)) == sorted([4, *repeated])
    assert_same_tables(clean, inp)


def test_a_column_number_like_row_among_the_data_stays_data(tmp_path):
    """A row that only looks like 栏次 but stands between data rows (no repeated header above it)
    is not taken out: it is rejected row by row, as before."""
    d = quirk_dir(tmp_path)
    write_csv(d / "tax.csv", [TAX[0], ["甲", "乙", "1"], TAX[1], ["甲", "乙", "1"], *TAX[2:]])
    inp = load(d)
    assert _furniture(inp) == [(2, "栏次行")]
    assert 4 in {r["row"] for r in inp.rejects.to_dicts()}
