"""Reading and validating at province scale: the code → firm_id lookup (``CodeIndex``) and
Parquet projection give exactly what a string join and a full read give (issue 15)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from screening import validate as V
from screening.ingest import read_dir, table as ingest_table
from screening.schema import TABLES
from screening.uscc import ALPHABET, check_char

pytestmark = pytest.mark.unit


def _codes(rng: np.random.Generator, n: int) -> list[str]:
    out = set()
    while len(out) < n:
        body = "9133" + "".join(rng.choice(list(ALPHABET), 13))
        out.add(body + check_char(body))
    return sorted(out)


def _registry(codes: list[str]) -> pl.DataFrame:
    return pl.DataFrame({"uscc": codes}).with_row_index(V.FIRM_ID)


@pytest.mark.parametrize("slots_per_code, hash_bits", [(V.CodeIndex._SLOTS_PER_CODE, 64), (1, 64), (1, 12)],
                         ids=["as-used", "crowded", "crowded-one-table"])
def test_code_index_equals_an_exact_join(monkeypatch, slots_per_code, hash_bits):
    """Codes in the registry, absent codes, near misses (one character off, lower case,
    spaces), nulls: each gets exactly the firm_id a string join gives.  With one slot per
    code (a crowded table) many lookups go through shared slots, the next tables, and slots
    that hold another code, which the exact comparison must catch; with the hash's bits
    limited to one table, codes still sharing a slot go through the exact join."""
    monkeypatch.setattr(V.CodeIndex, "_SLOTS_PER_CODE", slots_per_code)
    monkeypatch.setattr(V.CodeIndex, "_HASH_BITS", hash_bits)
    rng = np.random.default_rng(1)
    known = _codes(rng, 3000)
    registry = _registry(known)
    absent = _codes(np.random.default_rng(2), 3000)
    asked = (known[::2] + [c for c in absent if c not in set(known)] + [c[:17] + "0" for c in known[:500]]
             + [c.lower() for c in known[:50]] + [f" {c}" for c in known[:50]] + [None] * 20 + known[::3])
    order = rng.permutation(len(asked))
    codes = pl.Series("uscc", [asked[i] for i in order], dtype=pl.String)
    index = V.CodeIndex(registry)
    expected = codes.to_frame().join(registry, on="uscc", how="left", maintain_order="left")[V.FIRM_ID]
    got = index.firm_ids(codes)
    assert got.dtype == registry[V.FIRM_ID].dtype
    assert got.to_list() == expected.to_list()
    assert got.null_count() > 3000 and got.is_not_null().sum() > 2000  # both kinds really asked
    if hash_bits < 64:
        assert len(index._levels) == 1 and index._shared.height > 100
    if slots_per_code == 1:  # the crowded table: shared slots and single slots with another code
        used, bits, table = index._levels[0]
        slots = table[index._slot(codes.hash(seed=0).to_numpy(), used, bits)]
        assert (slots == -2).sum() > 100
        single_other = (slots >= 0) & expected.is_null().to_numpy()
        assert single_other.sum() > 100


def test_code_index_of_an_empty_registry():
    index = V.CodeIndex(pl.DataFrame(schema={"uscc": pl.String, V.FIRM_ID: pl.UInt32}))
    got = index.firm_ids(pl.Series("uscc", ["913303820000000001", None]))
    assert got.to_list() == [None, None]
    assert index.firm_ids(pl.Series("uscc", [], dtype=pl.String)).len() == 0


def test_parquet_reads_only_the_mapped_columns(tmp_path, monkeypatch):
    """A Parquet file's columns the header does not map are never read (they are still
    reported as ignored), and the rows read are the same."""
    body = "91330382000000001"
    c1 = body + check_char(body)
    pl.DataFrame({"序号": [1], "uscc": [c1], "name": ["甲"], "township": ["柳市镇"], "industry_code": ["3823"],
                  "备注": [[1, 2, 3]]}).write_parquet(tmp_path / "enterprises.parquet")
    pl.DataFrame({"uscc": [c1, c1], "year": [2021, 2022], "tax_paid": [1.0, 2.0], "附件": [b"\x00" * 10] * 2}
                 ).write_parquet(tmp_path / "tax.parquet")
    read: list[list[str] | None] = []
    real = pl.read_parquet

    def spy(source, *args, columns=None, **kwargs):
        read.append(columns)
        return real(source, *args, columns=columns, **kwargs)

    monkeypatch.setattr(ingest_table.pl, "read_parquet", spy)
    files = read_dir(tmp_path, set())
    inp = V.validate(files, keep_years={2022})
    assert sorted(map(sorted, read)) == [["industry_code", "name", "township", "uscc"], ["tax_paid", "uscc", "year"]]
    assert files["enterprises"].ignored_headers == ["序号", "备注"]
    assert files["tax"].ignored_headers == ["附件"]
    assert inp.frame("tax").rows() == [(c1, 2022, 2.0)]
    assert inp.accepted_rows["tax"] == 2 and inp.rejects.height == 0


def test_duplicates_of_a_key_with_a_text_part_are_found_exactly():
    """(firm_id, year, parcel_id): the integer part is counted on a grid, the text part
    compared only where the grid cell repeats; every later row of a repeated key (and only
    those) is a duplicate naming the first row."""
    rng = np.random.default_rng(5)
    n = 20000
    good = pl.DataFrame({
        V.FIRM_ID: pl.Series(rng.integers(0, 3000, n), dtype=pl.UInt32),
        "year": pl.Series(rng.integers(2019, 2022, n), dtype=pl.Int32),
        "parcel_id": pl.Series([f"P{int(r * 40)}" for r in rng.random(n)], dtype=pl.String),
        V.ROW: pl.Series(range(2, n + 2), dtype=pl.Int64),
    })

    def Raw() -> ingest_table.RawTable:  # noqa: N802 (stands for the file read)
        return ingest_table.RawTable(TABLES["land"], Path("land.csv"))

    codes = pl.DataFrame({V.FIRM_ID: pl.Series(range(3000), dtype=pl.UInt32), "uscc": [f"C{i}" for i in range(3000)]})
    kept, lines = V._split_duplicates(Raw(), good, [V.FIRM_ID, "year", "parcel_id"], codes)
    seen: dict[tuple, int] = {}
    expected = {}
    for f, y, p, row in good.iter_rows():
        if (f, y, p) in seen:
            expected[row] = seen[(f, y, p)]
        else:
            seen[(f, y, p)] = row
    assert len(expected) > 300
    got = {r: int(reason.split("第")[1].split("行")[0]) for r, reason in zip(lines["row"], lines["reason"])}
    assert got == expected
    assert kept.height == n - len(expected) and set(kept[V.ROW]).isdisjoint(expected)


def test_values_rewritten_only_where_needed_equal_the_rewrite_of_every_row(tmp_path):
    """Grades, yes/no flags and industry codes are rewritten (upper case, 类/级, 是/否, a
    leading C) only in the rows that need it; clean rows keep their text.  Both kinds in one
    file give what the rewrite of every row gives."""
    codes = []
    for n in range(1, 7):
        body = f"91330382{n:09d}"
        codes.append(body + check_char(body))
    (tmp_path / "enterprises.csv").write_text(
        "uscc,name,township,industry_code,small_park\n" + "\n".join(
            f"{c},企业{i},柳市镇,{ind},{park}" for i, (c, ind, park) in enumerate(zip(
                codes, ["3823", "C3823", "c1810", " 3443 ", "38x3", "3443"], ["是", "Yes", "n", "", "maybe", "否"]))) + "\n",
        encoding="utf-8")
    (tmp_path / "evaluations.csv").write_text("uscc,year,grade\n" + "\n".join(
        f"{c},2021,{g}" for c, g in zip(codes, ["A", "b", "C类", " d级 ", "E", "D"])) + "\n", encoding="utf-8")
    inp = V.validate(read_dir(tmp_path, set()))
    ent = inp.frame("enterprises")
    assert ent["industry_code"].to_list() == ["3823", "3823", "1810", "3443", None, "3443"]
    assert ent["small_park"].to_list() == ["是", "是", "否", None, None, "否"]
    assert inp.frame("evaluations").sort("uscc")["grade"].to_list() == ["A", "B", "C", "D", "D"]
    reasons = sorted((r["file"], r["row"], r["value"], r["action"]) for r in inp.rejects.to_dicts())
    assert reasons == [("enterprises.csv", 6, "38x3", "field_cleared"), ("enterprises.csv", 6, "maybe", "field_cleared"),
                       ("evaluations.csv", 6, "E", "row_rejected")]


@pytest.mark.parametrize("dtype", [pl.Int64, pl.UInt64, pl.Float64])
def test_typed_years_checked_alike_whatever_their_dtype(tmp_path, dtype):
    """A Parquet year column of any numeric type: out-of-range years (also beyond Int32) are
    rejected the same way, a fractional year only where the column can hold one."""
    body = "91330382000000001"
    c1 = body + check_char(body)
    pl.DataFrame({"uscc": [c1], "name": ["甲"], "township": ["柳市镇"], "industry_code": ["3823"]}
                 ).write_parquet(tmp_path / "enterprises.parquet")
    years = [2021, 1800, 3_000_000_000, 2022] + ([2020.5] if dtype == pl.Float64 else [])
    pl.DataFrame({"uscc": [c1] * len(years), "year": pl.Series(years, dtype=dtype),
                  "tax_paid": [1.0] * len(years)}).write_parquet(tmp_path / "tax.parquet")
    inp = V.validate(read_dir(tmp_path, set()))
    assert inp.frame("tax")["year"].to_list() == [2021, 2022]
    assert inp.frame("tax")["year"].dtype == pl.Int32
    got = [(r["row"], r["reason"], r["value"]) for r in inp.rejects.to_dicts()]
    expected = [(3, "年份超出合理范围（1949—2100）", "1800"), (4, "年份超出合理范围（1949—2100）", "3000000000")]
    if dtype == pl.Float64:
        expected.append((6, "年份应为整数", "2020.5"))
    assert got == expected


def _everything(inp: V.Inputs) -> dict:
    return {"tables": {n: t.rows() for n, t in inp.tables.items()}, "rejects": inp.rejects.rows(),
            "normalised": inp.normalised.rows(), "land_incomplete": inp.land_incomplete.rows(),
            "counts": inp.row_counts(), "coverage": inp.coverage, "years": inp.data_years}


def test_slices_give_what_whole_columns_give(tmp_path, monkeypatch):
    """Checks and lookups done a slice of rows at a time (to bound their temporaries) give
    exactly the result of whole columns, on data with bad rows of every kind."""
    from screening.synth import generate

    generate(300, 11, tmp_path, fmt="csv")
    whole = _everything(V.validate(read_dir(tmp_path, set()), keep_years={2020, 2021}))
    monkeypatch.setattr(V, "_SLICE", 64)
    sliced = _everything(V.validate(read_dir(tmp_path, set()), keep_years={2020, 2021}))
    assert sliced == whole
    assert whole["rejects"] and whole["counts"]["stats"]["read"] > 3 * 64


@pytest.mark.parametrize("distinct", [False, True])
@pytest.mark.parametrize("years", [(2019, 2021), (1950, 2100)], ids=["dense", "spread"])
def test_firms_per_year_equals_a_group_by(distinct, years):
    rng = np.random.default_rng(7)
    n = 5000
    good = pl.DataFrame({V.FIRM_ID: pl.Series(rng.integers(0, 800, n), dtype=pl.UInt32),
                         "year": pl.Series(rng.choice([years[0], years[1], 2020], n), dtype=pl.Int32)})
    if years[0] == 1950:  # firm_ids far apart too: grouped, not counted on a grid
        good = good.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(5_000_000).otherwise(pl.col(V.FIRM_ID))
                                 .cast(pl.UInt32).alias(V.FIRM_ID))
    n_expr = pl.col(V.FIRM_ID).n_unique() if distinct else pl.len()
    expected = good.group_by("year").agg(n_expr.alias("n")).sort("year")
    got = V._firms_per_year(good, distinct)
    assert got.rows() == expected.rows() and got.schema == expected.schema
    assert V._firms_per_year(good.clear(), distinct).height == 0


def test_no_thread_outlives_validation(tmp_path):
    """The tables' validation and file digests run on threads of the call's own, which end with
    it (a thread left idle in a module would hang a forked child that validates)."""
    import threading
    import time

    from screening.synth import generate

    generate(50, 3, tmp_path, fmt="parquet")
    V.validate(read_dir(tmp_path, set()))
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        left = [t.name for t in threading.enumerate() if t.name.startswith(("validate", "sha256"))]
        if not left:
            break
        time.sleep(0.01)
    assert not left


def test_a_duplicate_key_with_an_empty_part_names_the_kept_row():
    """A key part that may be empty (the ledger's utility): two rows alike but for nothing
    are duplicates, and the reject line says which row was kept (it said nothing before)."""
    good = pl.DataFrame({"year": [2021, 2021, 2021], "utility": [None, None, "电"], "uscc": ["A", "A", "A"],
                         V.ROW: pl.Series([2, 3, 4], dtype=pl.Int64)})

    def Raw() -> ingest_table.RawTable:  # noqa: N802 (stands for the file read)
        return ingest_table.RawTable(TABLES["land"], Path("ledger.csv"))

    kept, lines = V._split_duplicates(Raw(), good, ["year", "utility", "uscc"], None)
    assert kept[V.ROW].to_list() == [2, 4]
    assert [(r["row"], r["reason"], r["value"]) for r in lines.to_dicts()] == [
        (3, "与第2行主键重复（year、utility、uscc），已保留第2行", "2021||A")]


def _facts(inputs: V.Inputs) -> dict:
    """Everything validation decides, comparable across two calls."""
    return {
        "tables": {n: (t.schema, t.rows()) for n, t in inputs.tables.items()},
        "rejects": sorted(inputs.rejects.rows(), key=repr), "normalised": inputs.normalised.rows(),
        "land_incomplete": inputs.land_incomplete.rows(), "counts": inputs.row_counts(),
        "coverage": inputs.coverage, "years": inputs.data_years, "accepted": inputs.accepted_rows,
    }


@pytest.mark.parametrize("keep_years", [None, {2020, 2021}])
def test_tables_validated_side_by_side_equal_one_at_a_time(tmp_path, monkeypatch, keep_years):
    """The tables are read and checked on two threads at once (the registry first, then
    the larger files); what comes out (rows, rejects with file and Excel row, normalised
    cells, counts, coverage) is what validating them one at a time gives, bad rows included."""
    import threading

    from screening.synth import generate

    generate(300, 5, tmp_path, fmt="mixed", years=(2019, 2021), bad_rows=True)
    checked_on: set[str] = set()
    check = V._check_cells

    def recorded(raw):
        checked_on.add(threading.current_thread().name)
        return check(raw)

    monkeypatch.setattr(V, "_check_cells", recorded)
    side_by_side = _facts(V.validate(read_dir(tmp_path, set()), keep_years=keep_years))
    assert len(checked_on) == 2 and all(name.startswith("validate") for name in checked_on)
    cells_ahead = _facts(V.validate(read_dir(tmp_path, set()), keep_years=keep_years, cells_ahead=True))
    monkeypatch.setattr(V, "_WORKERS", 1)
    one_at_a_time = _facts(V.validate(read_dir(tmp_path, set()), keep_years=keep_years))
    assert side_by_side == one_at_a_time == cells_ahead
    assert side_by_side["rejects"]  # the synthetic bad rows are there to compare


def test_cells_ahead_checks_every_table_while_the_registry_is_validated(tmp_path, monkeypatch):
    """``cells_ahead`` (screening evaluate): the other worker checks the cells of every other
    table while the registry is still being validated, instead of waiting for it after the first."""
    import threading

    from screening.synth import generate

    generate(60, 3, tmp_path, fmt="csv", years=(2020, 2021), bad_rows=False)
    files = read_dir(tmp_path, set())
    others = [n for n in files if n != "enterprises"]
    assert len(others) >= 3
    release, checked = threading.Event(), []
    check, registry = V._check_cells, V._validate_registry

    def recorded(raw):
        checked.append(raw.table.name)
        return check(raw)

    def held_registry(raw, keep_raw):  # the registry finishes only once every other table is checked
        assert release.wait(10), f"cells checked while the registry was validated: {checked}"
        return registry(raw, keep_raw)

    def watch():
        while not release.is_set():
            if set(others) <= set(checked):
                release.set()
            threading.Event().wait(0.01)

    monkeypatch.setattr(V, "_check_cells", recorded)
    monkeypatch.setattr(V, "_validate_registry", held_registry)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    inputs = V.validate(files, cells_ahead=True)
    assert set(others) <= set(checked) and inputs.tables["stats"].height
    release.set()


def test_cells_ahead_still_reports_the_first_table_in_order_with_a_reading_problem(tmp_path):
    from screening.errors import InputError
    from screening.synth import generate

    generate(50, 3, tmp_path, fmt="csv", years=(2020, 2021), bad_rows=False)
    for name in ("stats", "land"):  # a required column gone from both: stats comes first in order
        frame = pl.read_csv(tmp_path / f"{name}.csv", infer_schema=False)
        frame.drop(frame.columns[0]).write_csv(tmp_path / f"{name}.csv")
    with pytest.raises(InputError) as raised:
        V.validate(read_dir(tmp_path, set()), cells_ahead=True)
    with pytest.raises(InputError) as usual:
        V.validate(read_dir(tmp_path, set()))
    assert str(raised.value) == str(usual.value)


def test_the_first_table_in_order_with_a_reading_problem_is_the_one_reported(tmp_path):
    """Tables read side by side: when several files cannot be read, the message is the
    registry's (the usual order), whichever thread finishes first."""
    from screening.errors import InputError
    from screening.synth import generate

    generate(50, 3, tmp_path, fmt="csv", years=(2020, 2021), bad_rows=False)
    for name in ("enterprises", "land"):  # a required column gone from both
        frame = pl.read_csv(tmp_path / f"{name}.csv", infer_schema=False)
        frame.drop(frame.columns[0]).write_csv(tmp_path / f"{name}.csv")
    with pytest.raises(InputError, match="enterprises"):
        V.validate(read_dir(tmp_path, set()))


def test_duplicates_of_a_key_with_two_text_parts_and_empty_cells_are_found_exactly():
    """A key whose rest (beyond firm_id and year) is two text columns, some cells empty (a
    ledger's utility and account): the rows whose grid cell repeats are compared by their
    rest's hash mixed with the cell, then exactly; an empty part equals an empty part."""
    rng = np.random.default_rng(11)
    n = 20000
    good = pl.DataFrame({
        V.FIRM_ID: pl.Series(rng.integers(0, 2000, n), dtype=pl.UInt32),
        "year": pl.Series(rng.integers(2019, 2022, n), dtype=pl.Int32),
        "utility": pl.Series([None if r < 0.3 else f"U{int(r * 4)}" for r in rng.random(n)], dtype=pl.String),
        "account": pl.Series([None if r < 0.1 else f"A{int(r * 6)}" for r in rng.random(n)], dtype=pl.String),
        V.ROW: pl.Series(range(2, n + 2), dtype=pl.Int64),
    })

    def Raw() -> ingest_table.RawTable:  # noqa: N802 (stands for the file read)
        return ingest_table.RawTable(TABLES["land"], Path("ledger.csv"))

    codes = pl.DataFrame({V.FIRM_ID: pl.Series(range(2000), dtype=pl.UInt32), "uscc": [f"C{i}" for i in range(2000)]})
    kept, lines = V._split_duplicates(Raw(), good, [V.FIRM_ID, "year", "utility", "account"], codes)
    seen: dict[tuple, int] = {}
    expected = {}
    for f, y, u, a, row in good.iter_rows():
        if (f, y, u, a) in seen:
            expected[row] = seen[(f, y, u, a)]
        else:
            seen[(f, y, u, a)] = row
    assert len(expected) > 300
    got = {r: int(reason.split("第")[1].split("行")[0]) for r, reason in zip(lines["row"], lines["reason"])}
    assert got == expected


def test_only_the_evaluate_command_checks_cells_ahead(monkeypatch, tmp_path):
    """``cells_ahead`` holds every table's checked rows at once: the command (one process, one
    evaluation) uses it; ``load_evaluation_inputs`` called by the service or a notebook does not."""
    from typer.testing import CliRunner

    from eval_helpers import evaluate_app
    from screening.evaluation import load_evaluation_inputs, load_method
    from screening.paths import sample_data_dir

    seen = []
    real = V.validate

    def recorded(*args, **kwargs):
        seen.append(kwargs.get("cells_ahead", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(V, "validate", recorded)
    load_evaluation_inputs(sample_data_dir(), 2021, load_method("yueqing-default"))
    result = CliRunner().invoke(evaluate_app(), ["evaluate", "--year", "2021", "--out", str(tmp_path / "out"), "--no-excel"])
    assert result.exit_code == 0, result.output
    assert seen == [False, True]
