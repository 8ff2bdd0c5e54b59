"""Department files as a county bureau receives them, in kinds the other ingest tests do not show:
a header cell holding a line break (Alt+Enter) in a CSV, a unit row under the header, notes below
the table.  The rule throughout: a number is never read in the wrong unit; a row that is not a
record is named as such; nothing vanishes."""
from __future__ import annotations

import pytest

from test_ingest_real import C1, C2, ENT, load, write_csv, write_xlsx


def _tax_csv(d, text: str, encoding: str = "utf-8"):
    write_csv(d / "enterprises.csv", ENT)
    (d / "tax.csv").write_bytes(text.encode(encoding))


@pytest.mark.parametrize("first", ["统一社会信用代码", '"统一社会\n信用代码"'], ids=["plain", "quoted-break"])
@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_a_csv_header_cell_with_a_line_break_keeps_its_unit(tmp_path, first, encoding):
    # Excel saves a header typed with Alt+Enter as a quoted cell spanning two lines; its unit is on the second
    _tax_csv(tmp_path, f'{first},年份,"实缴税金\n（元）"\n{C1},2021,125000\n{C2},2021,"30,000"\n', encoding)
    inp = load(tmp_path)
    assert inp.frame("tax").sort("uscc")["tax_paid"].to_list() == [12.5, 3.0]  # 元 → 万元, never 125000 万元
    assert inp.files["tax"].headers["tax_paid"] == "实缴税金\n（元）"
    assert inp.rejects.height == 0
    # rows are numbered as Excel shows them: the two-line header is row 1
    assert inp.normalised.select("row", "before").rows() == [(3, "30,000")]


def test_a_quoted_title_with_a_line_break_above_the_header_keeps_excel_row_numbers(tmp_path):
    _tax_csv(tmp_path, f'"2021年度\n税收汇总表",,\n统一社会信用代码,年份,实缴税金\n{C1},2021,12.5\n{C2},2021,-3\n')
    inp = load(tmp_path)
    assert inp.files["tax"].header_row == 2
    assert inp.rejects.select("row", "column").rows() == [(4, "实缴税金")]
