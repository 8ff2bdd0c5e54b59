"""screening.synth: deterministic synthetic input data in the contract's format."""
from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from screening.synth import CHINESE_HEADERS, COLUMNS, TABLES, generate
from screening.uscc import is_valid

pytestmark = pytest.mark.unit

N = 300
SEED = 7


def _hashes(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _read(d: Path, table: str) -> pl.DataFrame:
    if (d / f"{table}.parquet").exists():
        return pl.read_parquet(d / f"{table}.parquet")
    if (d / f"{table}.xlsx").exists():
        return pl.read_excel(d / f"{table}.xlsx")
    raw = (d / f"{table}.csv").read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("gb18030")
    return pl.read_csv(text.encode(), infer_schema=False)


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    d = tmp_path_factory.mktemp("pq")
    return d, generate(N, SEED, d, "parquet")


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    d = tmp_path_factory.mktemp("mixed")
    return d, generate(N, SEED, d, "mixed")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "mixed"])
def test_same_seed_gives_identical_files(tmp_path: Path, fmt: str) -> None:
    a = generate(N, SEED, tmp_path / "a", fmt)
    b = generate(N, SEED, tmp_path / "b", fmt)
    assert a == b
    ha, hb = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert len(ha) == len(TABLES)
    assert ha == hb  # xlsx included: its creation date is pinned


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    generate(N, SEED, tmp_path / "a", "parquet")
    generate(N, SEED + 1, tmp_path / "b", "parquet")
    assert not pl.read_parquet(tmp_path / "a" / "tax.parquet").equals(pl.read_parquet(tmp_path / "b" / "tax.parquet"))


def test_row_counts_as_returned(parquet_dir, mixed_dir, tmp_path: Path) -> None:
    csv_counts = generate(N, SEED, tmp_path, "csv")
    for d, counts in (parquet_dir, mixed_dir, (tmp_path, csv_counts)):
        assert set(counts) == set(TABLES)
        for table in TABLES:
            assert _read(d, table).height == counts[table], (d, table)


def test_columns_match_contract(parquet_dir, mixed_dir) -> None:
    d, _ = parquet_dir
    for table in TABLES:
        assert _read(d, table).columns == COLUMNS[table]
    d, _ = mixed_dir
    assert _read(d, "energy").columns == COLUMNS["energy"]  # English headers
    for table in ("enterprises", "stats", "tax", "product_energy", "evaluations"):
        assert _read(d, table).columns == [CHINESE_HEADERS[c] for c in COLUMNS[table]]


def test_uscc_valid_except_deliberately_bad(parquet_dir, tmp_path: Path) -> None:
    d, _ = parquet_dir
    ent = pl.read_parquet(d / "enterprises.parquet")
    bad = [c for c in ent["uscc"] if not is_valid(c)]
    assert len(bad) == 1
    assert all(c.startswith("91330382") for c in ent["uscc"])
    assert ent["uscc"].n_unique() == ent.height
    assert ent["name"].n_unique() == ent.height
    tax = pl.read_parquet(d / "tax.parquet")
    assert sum(not is_valid(c) for c in tax["uscc"]) == 1  # the typo'd code
    stats = pl.read_parquet(d / "stats.parquet")
    assert all(is_valid(c) for c in stats["uscc"])
    orphans = stats.filter(~pl.col("uscc").is_in(ent["uscc"].implode()))
    assert orphans.height == 1

    generate(N, SEED, tmp_path, "parquet", bad_rows=False)
    for table in TABLES:
        assert all(is_valid(c) for c in pl.read_parquet(tmp_path / f"{table}.parquet")["uscc"].unique())


def test_clean_data_without_bad_rows(tmp_path: Path) -> None:
    generate(N, SEED, tmp_path, "parquet", bad_rows=False)
    r = lambda t: pl.read_parquet(tmp_path / f"{t}.parquet")  # noqa: E731
    ent, stats, tax, land, ev = r("enterprises"), r("stats"), r("tax"), r("land"), r("evaluations")
    assert set(stats["scale"]) <= {"规上", "规下"}
    assert (stats["revenue"] >= 0).all()
    assert (tax["tax_paid"] >= 0).all()
    assert (land["area_mu"] > 0).all()
    assert set(land["tenure"]) <= {"自有", "租赁"}
    assert set(ev["grade"]) <= set("ABCD")
    assert ev["score"].is_between(0, 100).all()
    assert stats["uscc"].is_in(ent["uscc"].implode()).all()
    assert not stats.select(pl.struct("uscc", "year").is_duplicated().any()).item()
    assert not tax.select(pl.struct("uscc", "year").is_duplicated().any()).item()
    assert not land.select(pl.struct("uscc", "year", "parcel_id").is_duplicated().any()).item()
    assert ent["industry_code"].str.contains(r"^\d{4}$").all()
    for t in ("stats", "tax", "land", "energy", "evaluations"):
        assert sorted(r(t)["year"].unique()) == list(range(2017, 2022)), t


def test_bad_rows_present(parquet_dir, mixed_dir) -> None:
    d, counts = mixed_dir
    stats = _read(d, "stats")
    assert stats.filter(pl.col("年份") == "2021年").height == 1
    assert stats.filter(pl.col("规模") == "规模以上").height == 1
    assert stats.filter(pl.col("营业收入").str.starts_with("-")).height == 1
    tax = _read(d, "tax")
    assert tax.filter(pl.col("实缴税金").str.starts_with("-")).height == 1
    assert tax.select(pl.struct("统一社会信用代码", "年份").is_duplicated().sum()).item() == 2
    assert _read(d, "energy").filter(pl.col("electricity") == "abc").height == 1
    assert _read(d, "evaluations").filter(pl.col("评价等级") == "E").height == 1
    assert _read(d, "land").filter(pl.col("用地面积(平方米)") == 0).height == 1
    # parquet leaves out the two rows whose bad value cannot be typed
    _, pq_counts = parquet_dir
    assert counts["stats"] == pq_counts["stats"] + 1
    assert counts["energy"] == pq_counts["energy"] + 1
    for t in ("enterprises", "tax", "land", "product_energy", "evaluations"):
        assert counts[t] == pq_counts[t]


def test_mixed_encodings(mixed_dir) -> None:
    d, _ = mixed_dir
    ent = (d / "enterprises.csv").read_bytes()
    assert ent.startswith(b"\xef\xbb\xbf")
    assert ent[3:].decode("utf-8").startswith("统一社会信用代码,企业名称,乡镇街道,行业代码,成立日期")
    for table in ("stats", "tax"):
        raw = (d / f"{table}.csv").read_bytes()
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
        assert raw.decode("gb18030").startswith("统一社会信用代码,年份,")
    energy = (d / "energy.csv").read_bytes()
    assert energy.startswith(b"uscc,year,energy_tce,electricity")
    pe = (d / "product_energy.csv").read_bytes()
    assert not pe.startswith(b"\xef\xbb\xbf")
    assert pe.decode("utf-8").startswith("统一社会信用代码,年份,产品代码,产量,单位产品能耗")
    assert sorted(p.name for p in d.iterdir()) == [
        "energy.csv", "enterprises.csv", "evaluations.xlsx", "land.xlsx",
        "product_energy.csv", "stats.csv", "tax.csv",
    ]


def test_land_xlsx_uses_square_metres(mixed_dir, parquet_dir) -> None:
    d, _ = mixed_dir
    land = pl.read_excel(d / "land.xlsx")
    assert land.columns == ["统一社会信用代码", "年份", "地块编号", "用地面积(平方米)", "权属"]
    assert land["统一社会信用代码"].dtype == pl.String
    pq = pl.read_parquet(parquet_dir[0] / "land.parquet")
    assert land.height == pq.height
    expected = (pq["area_mu"] * 2000 / 3).round(2)
    assert (land["用地面积(平方米)"] - expected).abs().max() < 1e-6
    assert land["地块编号"].to_list() == pq["parcel_id"].to_list()


def test_formats_hold_the_same_data(parquet_dir, tmp_path: Path) -> None:
    d, _ = parquet_dir
    generate(N, SEED, tmp_path, "csv")
    for table in ("enterprises", "tax", "land", "evaluations"):
        pq = pl.read_parquet(d / f"{table}.parquet")
        csv = pl.read_csv(tmp_path / f"{table}.csv", schema=pq.schema)
        assert csv.equals(pq), table


def test_product_energy_and_rule_scope(tmp_path: Path) -> None:
    generate(3000, 20220507, tmp_path, "parquet", bad_rows=False)
    pe = pl.read_parquet(tmp_path / "product_energy.parquet")
    assert sorted(pe["year"].unique()) == list(range(2017, 2022))
    assert (pe["unit_consumption"] > 0).all() and (pe["output"] > 0).all()
    limits = pl.read_csv(Path(__file__).resolve().parents[1] / "rules" / "yueqing-2022" / "energy_limits.csv")
    products = set(pe["product"])
    assert products & set(limits["product"])  # some products have a limit
    assert products - set(limits["product"])  # and some (valid data) have none
    ent = pl.read_parquet(tmp_path / "enterprises.parquet")
    div = ent["industry_code"].str.slice(0, 2).cast(pl.Int32)
    assert (~div.is_between(13, 43)).sum() > 0  # something for the scope rule to exclude
    assert ent["established"].null_count() > 0
    assert (ent["established"] >= date(2020, 1, 1)).sum() > 0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(10, 1, tmp_path, "xls")
    with pytest.raises(ValueError):
        generate(0, 1, tmp_path, "csv")
