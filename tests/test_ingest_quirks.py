"""Real department files of kinds the field cases do not show: codes with bidirectional marks
or spaces inside, header rows repeated on every printed page, old-Mac line endings, a sheet per
township.  Each must keep every real row and reject the rest with a clear reason."""
from __future__ import annotations

import pytest
import xlsxwriter

from test_ingest_real import C1, C2, C3, ENT, TAX, assert_same_tables, clean_dir, load, quirk_dir, write_csv

# every Unicode format character a copy from a web page, a PDF or a chat program leaves in a
# cell (bidirectional marks, embeddings, overrides and isolates, the Arabic letter mark …)
FORMAT_CHARS = ["\u200b", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066",
                "\u2067", "\u2068", "\u2069", "\u061c", "\u2061", "\ufeff", "\u00ad"]


@pytest.mark.parametrize("mark", FORMAT_CHARS, ids=[f"U+{ord(c):04X}" for c in FORMAT_CHARS])
def test_format_characters_anywhere_in_a_code_are_taken_out(tmp_path, mark):
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0]] + [[r[0][:6] + mark + r[0][6:], *r[1:]] for r in ENT[1:]])
    write_csv(d / "tax.csv", [TAX[0]] + [[mark + r[0] + mark, *r[1:]] for r in TAX[1:]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)
    kinds = {(r["file"], r["row"]): r["kind"] for r in inp.normalised.to_dicts()}
    assert kinds[("enterprises.csv", 2)] == "invisible" and kinds[("tax.csv", 2)] == "invisible"


@pytest.mark.parametrize("space", [" ", "\u00a0", "\u3000", "\u2002", "\u202f"])
def test_spaces_inside_a_code_are_taken_out(tmp_path, space):
    """A code has no spaces: "9133 0382 …" as typed, or a no-break/ideographic space pasted in."""
    clean = load(clean_dir(tmp_path))
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0]] + [[r[0][:4] + space + r[0][4:10] + space + r[0][10:], *r[1:]]
                                                 for r in ENT[1:]])
    write_csv(d / "tax.csv", [TAX[0]] + [[r[0][:8] + space + r[0][8:], *r[1:]] for r in TAX[1:]])
    inp = load(d)
    assert inp.rejects.height == 0, inp.rejects.to_dicts()
    assert_same_tables(clean, inp)


def test_format_characters_in_a_name_are_taken_out(tmp_path):
    """A right-to-left override in a firm name would show it reversed in every export."""
    d = quirk_dir(tmp_path)
    write_csv(d / "enterprises.csv", [ENT[0], [C1, "乐清市\u202e甲电气\u202c有限公司", "柳市镇\u2066", "3823"], *ENT[2:]])
    inp = load(d)
    ent = inp.frame("enterprises").sort("uscc")
    assert ent["name"][0] == "乐清市甲电气有限公司" and ent["township"][0] == "柳市镇"
