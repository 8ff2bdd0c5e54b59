"""``early_warning``: train on the past, backtest, and score every firm's risk of the list of Y+1.

Time split, for warning year Y (data up to Y-1):

- a training row is (firm, feature year t) with features from years ≤ t and the label
  "on the list of year t+2" from the real screening of the data up to Y-1, so t ≤ Y-2;
- the backtest trains on t ≤ Y-3 and tests on t = Y-2 (the list of year Y);
- the chosen model is then refitted on every t ≤ Y-2 and scores t = Y-1 (the list of Y+1).

Advisory only: nothing here writes a rule status; the screenings it runs stay in memory.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import polars as pl
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from ..errors import InputError, ScreeningError
from ..ingest import read_dir
from ..paths import default_ruleset, sample_data_dir
from ..ruleset import RuleSet, load_ruleset
from ..screen import _timed, default_list_year, needed_tables
from ..validate import FIRM_ID, Inputs, validate
from . import backtest as bt
from . import sample
from .artifact import ModelSchemaError, WarnModel, load_model, software, training_hash
from .config import WarnConfig, load_config
from .factors import NONE_FOUND, factors
from .features import (FEATURE_BY_NAME, GROUPS, Scope, available_features, features_at, firm_years, firms,
                       groups_of, scope_for, sources_present)
from .labels import listed, up_to
from .model import CANDIDATE_ZH, CANDIDATES, fit, group_contributions, risk

Progress = Callable[[str], None]

#: a firm's figures the reasons quote (beside the features)
FACTS = ("division", "tax_per_mu", "tax_per_mu_p1", "tax_per_mu_p2", "tax_pct_industry", "tax_by_industry",
         "industry_tax_per_mu", "va_per_mu", "va_per_mu_p1", "va_pct_industry", "va_by_industry",
         "energy_per_revenue", "energy_pct_industry", "energy_by_industry", "energy_below_industry", "tax_paid",
         "electricity", "product_ratio", "grade", "grade_p1", "grade_p2", "scale", "scale_p1", "revenue",
         "revenue_p1", "land_mu", "land_mu_p1", "leased_share", "established_year")
SYNTHETIC_NOTE = "合成数据上的回测数字只说明方法可用，不代表对真实企业的预测能力。"


@dataclass
class WarnResult:
    """One warning run: the scored firms, the backtest and the model."""

    year: int  # Y: data up to Y-1, risk of the list of Y+1
    warnings: pl.DataFrame
    backtest: dict
    model: WarnModel
    training: pl.DataFrame | None  # features and label per (firm, t); None when a saved model scored
    #: the backtest year's firms: label, each candidate's risk and the baseline score (None with a saved model)
    predictions: pl.DataFrame | None
    created_at: dt.datetime
    timings: dict[str, float] = field(default_factory=dict)
    rejected_rows: int = 0
    model_file: Path | None = None  # the saved model used, when one was given

    @property
    def data_year(self) -> int:
        return self.year - 1

    @property
    def target_list_year(self) -> int:
        return self.year + 1


@dataclass
class _Context:
    """What the feature and label steps share for one warning year."""

    inputs: Inputs | None  # truncated to years ≤ Y-1; None once the panel holds what the features read
    ruleset: RuleSet
    cfg: WarnConfig
    names: list[str]
    registry: pl.DataFrame
    scope: Scope
    panel: pl.DataFrame | None = None  # built on first use (after the labels' screenings)
    ids: pl.DataFrame | None = None  # (firm_id, uscc, name), kept when the registry goes
    #: the caller's validated inputs when this run read them itself: released with ours
    owned: Inputs | None = None

    def rows(self, t: int, columns: Sequence[str] | None = None) -> pl.DataFrame:
        if self.panel is None:
            self.panel = firm_years(self.inputs, self.ruleset.energy_limits)
        return features_at(self.panel, self.registry, t, self.scope, self.names, columns)

    def active_years(self) -> list[int]:
        """The years with a stats, tax or land row (the panel's ``active``), read from the inputs."""
        frames = [self.inputs.tables[t] for t in ("stats", "tax", "land")] + [self.inputs.land_incomplete]
        return sorted(set().union(*(f["year"].drop_nulls().unique().to_list() for f in frames)))

    def drop_inputs(self) -> None:
        """Once the labels are screened and the panel built, the features read only the panel:
        the input tables (a province's largest frames) go, ours and, when this run read them, the caller's."""
        if self.panel is None:
            self.panel = firm_years(self.inputs, self.ruleset.energy_limits)
        self.inputs = None
        if self.owned is not None:
            self.owned.release_tables()

    def release(self) -> None:
        """Drop the inputs and the panel once every feature row and label is built."""
        self.drop_inputs()
        self.ids = self.registry.select(FIRM_ID, "uscc", "name")
        self.panel = self.registry = None  # type: ignore[assignment]


def _context(inputs: Inputs, ruleset: RuleSet, cfg: WarnConfig, year: int, owned: bool = False) -> _Context:
    data = up_to(inputs, year - 1)  # the one cut: nothing below sees a year after Y-1
    names = available_features(sources_present(data))
    return _Context(data, ruleset, cfg, names, firms(data), scope_for(ruleset, cfg.features.min_peers),
                    owned=inputs if owned else None)


def _too_few_years(year: int) -> InputError:
    return InputError(f"数据年份不足：{year} 年度预警需要 {year - 3}—{year - 1} 年连续三个年度的数据"
                      f"（在 {year - 3} 年及以前的特征年度上训练，在 {year - 2} 年上回测）")


def training_rows(inputs: Inputs, ruleset: RuleSet, year: int, cfg: WarnConfig | None = None,
                  progress: Progress | None = None) -> pl.DataFrame:
    """Every training row for warning year Y: (firm, t ≤ Y-2), features from years ≤ t, and
    ``label`` = on the list of year t+2 as screened from the data up to Y-1."""
    ctx = _context(inputs, ruleset, cfg or load_config(), year)
    return _training_rows(ctx, year, progress)


#: what a training row keeps beside its features: ids, label, the sample's strata, the baseline's input
TRAINING_COLUMNS = (FIRM_ID, "township", "scale", "t", "label", "tax_per_mu")
#: rows scored at a time when a whole year is scored (a province's year in slices of this many)
SCORE_SLICE = 200_000


def _training_rows(ctx: _Context, year: int, progress: Progress | None,
                   scored: dict[int, pl.DataFrame] | None = None,
                   timings: dict[str, float] | None = None) -> pl.DataFrame:
    """The training rows; ``scored``, when given, receives the rows of year Y-1 (built from the
    same panel); ``timings`` the seconds of the labels and of the features."""
    timings = {} if timings is None else timings
    active = ctx.active_years()
    if not active or active[0] > year - 3:
        raise _too_few_years(year)
    years = range(active[0], year - 1)
    # the labels first, while the inputs are there; then the panel, and the inputs go
    labels = {}
    with _timed(timings, "标签（真实筛选）", None):
        for t in years:
            if progress:
                progress(f"标签：{t + 2} 年度清单（真实筛选）")
            labels[t] = listed(ctx.inputs, ctx.ruleset, t + 2).rename({"listed": "label"})
    with _timed(timings, "特征", None):
        if progress:
            progress("特征：企业年度数据")
        ctx.drop_inputs()  # the panel holds what the features read: the input tables go before any row is built
        if scored is not None:
            scored[year - 1] = ctx.rows(year - 1, _scored_columns(ctx.names))
        parts = []
        for t in years:
            if progress:
                progress(f"特征：{t} 年特征 → {t + 2} 年度清单")
            # the reasons' figures are only needed for the year scored: a training row keeps its features
            columns = [c for c in TRAINING_COLUMNS if c != "label"] + ctx.names
            # one contiguous block per year, made while that year's rows are the only copy: joined
            # in many pieces, the concatenation below would gather every year into one new block
            # while still holding the parts (a province's training rows twice, about 0.9 GB)
            parts.append(ctx.rows(t, columns).join(labels.pop(t), on=FIRM_ID, how="left").rechunk())
        return pl.concat(parts).select(*TRAINING_COLUMNS, *ctx.names)


def _matrix(rows: pl.DataFrame, names: list[str]) -> np.ndarray:
    return rows.select(names).to_numpy().astype(np.float64, copy=False) if names else np.zeros((rows.height, 0))


def _scored_columns(names: list[str]) -> list[str]:
    """What :func:`score` reads of a firm's row: the list's columns, the reasons' figures, the features."""
    listed_columns = ["uscc", "name", "township", "industry_code", "scale", "tax_per_mu", "grade"]
    return list(dict.fromkeys([*listed_columns, *FACTS, *names]))


def _risk_in_slices(model, rows: pl.DataFrame, names: list[str]) -> np.ndarray:
    """:func:`risk` of every row, computed :data:`SCORE_SLICE` rows at a time (each row's risk is its own)."""
    if rows.height <= SCORE_SLICE:
        return risk(model, _matrix(rows, names))
    return np.concatenate([risk(model, _matrix(rows.slice(i, SCORE_SLICE), names))
                           for i in range(0, rows.height, SCORE_SLICE)])


def _labels(rows: pl.DataFrame) -> np.ndarray:
    return rows["label"].to_numpy().astype(np.int8)


def _medians(x: np.ndarray) -> np.ndarray:
    known = ~np.isnan(x)
    out = np.full(x.shape[1], np.nan)
    for j in range(x.shape[1]):
        if known[:, j].any():
            out[j] = float(np.median(x[known[:, j], j]))
    return out


def _train(ctx: _Context, training: pl.DataFrame, year: int, progress: Progress | None,
           timings: dict[str, float]) -> tuple[dict, WarnModel, pl.DataFrame]:
    cfg, test_t = ctx.cfg, year - 2
    size = cfg.training.sample_rows if cfg.training else None
    # a feature with no value in the backtest's training years cannot be learned (e.g. last
    # year's level when only one year precedes the test year); the data may still carry it.
    # Counted in one pass, without copying the training years' rows.
    counts = training.select(pl.col(ctx.names).filter(pl.col("t") < test_t).count()).row(0, named=True)
    names = [n for n in ctx.names if counts[n]]
    t = training["t"].to_numpy()
    train, test = np.flatnonzero(t < test_t), np.flatnonzero(t == test_t)
    if not len(train) or not len(test):  # a year without any firm in scope
        raise _too_few_years(year)
    for part, label in ((train, "训练"), (test, "回测")):
        if training["label"].gather(part).n_unique() < 2:
            raise ScreeningError(f"{label}数据中清单企业与非清单企业不是都有，无法训练或评估预警模型")

    groups = groups_of(names)
    tested = (training.select(FIRM_ID, "township", "label", "tax_per_mu").gather(test)
              .join(ctx.ids, on=FIRM_ID, how="left")
              .select(FIRM_ID, "uscc", "name", "township", "label", "tax_per_mu"))
    test_rows = training.select(names).gather(test)  # scored in slices: no full matrix of the test year
    y_test, ids_test = _labels(tested), tested[FIRM_ID].to_numpy()
    # the backtest's candidates learn from the years before the test year (a stratified sample of
    # them), drawn on the strata columns alone: only the rows drawn are copied
    strata = training.select(sample.STRATA)
    before = strata.gather(train)
    chosen_rows = sample.stratified(before, size, cfg.seed)
    backtest_sample = sample.describe(before, chosen_rows, size, cfg.seed)
    del before
    fit_rows = training.gather(train[chosen_rows])
    x, y = _matrix(fit_rows, names), _labels(fit_rows)
    metrics, fitted = {}, {}
    with _timed(timings, "回测", progress):
        for name in CANDIDATES:
            fitted[name] = fit(name, cfg, x, y)
            p = _risk_in_slices(fitted[name], test_rows, names)
            metrics[name] = bt.scores(y_test, p, ids_test, cfg, probability=True)
            tested = tested.with_columns(pl.Series(f"risk_{name}", p))
        del x, y, fit_rows
        naive = bt.baseline(tested["tax_per_mu"].to_numpy().astype(np.float64))
        base = bt.scores(y_test, naive, ids_test, cfg, probability=False)
        tested = tested.drop("tax_per_mu").with_columns(pl.Series("baseline", naive))
        chosen, reason = bt.select(metrics, cfg)
        # the importance shuffles a stratified sample of the test rows (every test row above)
        shuffled = sample.stratified(tested, cfg.backtest.importance_rows, cfg.seed, ("label",))
        importance = bt.group_importance(fitted[chosen], _matrix(test_rows.gather(shuffled), names),
                                         y_test[shuffled], groups, cfg.backtest.permutation_repeats, cfg.seed)
        del test_rows, fitted
    with _timed(timings, "训练最终模型", progress):
        chosen_rows = sample.stratified(strata, size, cfg.seed)
        final_sample = sample.describe(strata, chosen_rows, size, cfg.seed)
        del strata
        fit_rows = training.gather(chosen_rows)
        t_fit, x, y = fit_rows["t"].to_numpy(), _matrix(fit_rows, names), _labels(fit_rows)
        del fit_rows
        final = fit(chosen, cfg, x, y)
    base_rate = float(y_test.mean())
    best = metrics[chosen]
    report = {
        "year": year,
        "train_feature_years": [int(v) for v in np.unique(t[train])],
        "test_feature_year": test_t,
        "test_list_year": test_t + 2,
        "rows": {"train": backtest_sample["rows"], "train_listed": backtest_sample["listed"],
                 "test": len(test), "test_listed": int(y_test.sum())},
        "train_sample": backtest_sample,
        "importance_rows": len(shuffled),
        "test_base_rate": round(base_rate, 4),
        "brier_constant": round(base_rate * (1 - base_rate), 5),
        "candidates": metrics,
        "baseline": {"name": bt.BASELINE_ZH, **base},
        "chosen": chosen,
        "chosen_zh": CANDIDATE_ZH[chosen],
        "selection_rule": f"{cfg.selection.metric}, prefer logistic within {cfg.selection.prefer_simpler_within}",
        "selection_reason": reason,
        "improvement_over_baseline": {
            "auc": round(best["auc"] - base["auc"], 4),
            "precision_at": {k: round(best["precision_at"][k] - base["precision_at"][k], 4)
                             for k in base["precision_at"]},
        },
        "group_importance": importance,
        "group_names": {g: GROUPS[g] for g in importance},
        "note": SYNTHETIC_NOTE,
    }
    all_t = [int(v) for v in np.unique(t)]
    info = {
        "format": 1,
        "created_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": chosen,
        "model_zh": CANDIDATE_ZH[chosen],
        "selection_reason": reason,
        "warn_year": year,
        "trained_on": {
            "feature_years": all_t,
            "label_list_years": [v + 2 for v in all_t],
            "data_years_up_to": year - 1,
            "rows": int(len(y)), "listed": int(y.sum()),
            "sample": final_sample,
            "training_data_sha256": training_hash(names, t_fit, x, y),
        },
        "ruleset": {"id": ctx.ruleset.meta.id, "version": ctx.ruleset.meta.version},
        "software": software(),
        "seed": cfg.seed,
        "config": cfg.model_dump(),
        "features": names,
        "data_features": ctx.names,
        "feature_zh": {n: FEATURE_BY_NAME[n].zh for n in ctx.names},
        "feature_groups": {n: g for g, cols in groups.items() for n in (names[i] for i in cols)},
        "backtest": report,
    }
    return report, WarnModel(final, names, _medians(x), info, list(ctx.names)), tested


def score(ctx: _Context, model: WarnModel, year: int, rows: pl.DataFrame) -> pl.DataFrame:
    """The warning list: ``rows`` (firms in scope at Y-1), highest risk first, with their reasons."""
    x = _matrix(rows, model.features)
    p = risk(model.estimator, x)
    # a group's contribution is the firm's risk minus another risk (≥ 0), so a firm whose risk is
    # below the least contribution that counts has no reason: only the others are re-scored
    could = np.flatnonzero(p >= ctx.cfg.factors.min_contribution)
    contributions = group_contributions(model.estimator, x[could], p[could], model.reference, model.groups)
    del x
    texts, keys = np.full(len(p), NONE_FOUND, dtype=object), np.full(len(p), "", dtype=object)
    texts[could], keys[could] = factors(rows[could].select(FACTS).iter_rows(named=True), contributions, year - 1,
                                        ctx.cfg)
    p = np.round(p, 6)
    return (
        rows.select(
            "uscc", "name", "township", "industry_code", "scale",
            pl.Series("risk", p, dtype=pl.Float64), pl.Series("factors", texts.tolist(), dtype=pl.String),
            pl.Series("factor_groups", keys.tolist(), dtype=pl.String),
            pl.col("tax_per_mu").round(4), "grade",
        )
        .sort(["risk", "uscc"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int32), pl.lit(year, dtype=pl.Int32).alias("year"),
                      pl.lit(year - 1, dtype=pl.Int32).alias("data_year"),
                      pl.lit(year + 1, dtype=pl.Int32).alias("target_list_year"))
        .select("uscc", "name", "township", "industry_code", "scale", "risk", "rank", "factors", "factor_groups",
                "tax_per_mu", "grade", "year", "data_year", "target_list_year")
    )


def early_warning(
    data_dir: str | Path | None = None,
    year: int | None = None,
    *,
    ruleset: RuleSet | str | Path | None = None,
    config: WarnConfig | str | Path | None = None,
    model: str | Path | None = None,
    inputs: Inputs | None = None,
    progress: Progress | None = None,
    sample_rows: int | None = None,
) -> WarnResult:
    """Each in-scope firm's risk of being on the list of year Y+1, from the data up to Y-1.

    ``year``: the warning year Y (default: one after the latest data year, like ``screening run``).
    ``model``: a saved ``model.joblib`` to score with instead of training (refused when the
    data's feature columns differ).  ``inputs``: already validated tables (not modified).
    ``sample_rows``: fit on a stratified sample of at most this many training rows (0: every
    row; default: ``training.sample_rows`` of the settings).
    """
    created = dt.datetime.now().astimezone()
    timings: dict[str, float] = {}
    rs = ruleset if isinstance(ruleset, RuleSet) else load_ruleset(Path(ruleset) if ruleset else default_ruleset())
    model_file = Path(model) if model is not None else None
    saved = load_model(model_file) if model_file else None
    if saved is not None:
        # a saved model scores with the settings it was trained with, under the same rule set
        _same_ruleset(saved, rs, model_file)
        try:
            cfg = WarnConfig(**saved.info["config"])
        except (KeyError, TypeError, ValidationError):
            raise ModelSchemaError(f"模型 {model_file} 没有可用的训练设置，请不带 --model 运行，重新训练") from None
    else:
        cfg = config if isinstance(config, WarnConfig) else load_config(Path(config) if config else None)
    if sample_rows is not None:
        if saved is not None:
            raise InputError("抽样行数只在训练时有效；用已保存的模型评分时不训练，请去掉抽样行数设置")
        if sample_rows < 0:
            raise InputError(f"抽样行数须为正整数，或 0（不抽样），收到 {sample_rows}")
        cfg = cfg.with_sample_rows(sample_rows or None)
    owned = inputs is None  # read here: its tables may go once the features are built
    if inputs is None:
        with _timed(timings, "读取与校验", progress):
            needed = {"enterprises"} if saved else needed_tables(rs)
            inputs = validate(read_dir(Path(data_dir) if data_dir else sample_data_dir(), needed))
    y = year if year is not None else default_list_year(inputs)
    with threadpool_limits(limits=cfg.threads):
        return _run(inputs, owned, rs, cfg, y, saved, model_file, created, timings, progress)


def _same_ruleset(saved: WarnModel, rs: RuleSet, model_file: Path) -> None:
    trained = saved.info.get("ruleset", {})
    if (trained.get("id"), trained.get("version")) != (rs.meta.id, rs.meta.version):
        raise ModelSchemaError(f"模型 {model_file} 按规则集 {trained.get('id')}（版本 {trained.get('version')}）训练，"
                               f"与本次规则集 {rs.meta.id}（版本 {rs.meta.version}）不同；请不带 --model 运行，重新训练")


def _run(inputs: Inputs, owned: bool, rs: RuleSet, cfg: WarnConfig, y: int, saved: WarnModel | None,
         model_file: Path | None, created: dt.datetime, timings: dict[str, float],
         progress: Progress | None) -> WarnResult:
    no_rows = InputError(f"数据中没有 {y - 1} 年的企业记录（统计、税收或用地），无法做 {y} 年度预警")
    with _timed(timings, "整理企业年度数据", progress):
        ctx = _context(inputs, rs, cfg, y, owned=owned)
        if y - 1 not in ctx.active_years():  # said before the labels' screenings
            raise no_rows
    if saved is not None:
        saved.check(ctx.names, str(model_file))
        with _timed(timings, "特征", progress):
            rows = ctx.rows(y - 1, _scored_columns(ctx.names))
        ctx.release()
        training, predictions, report, wm = None, None, dict(saved.info.get("backtest", {})), saved
    else:
        scored: dict[int, pl.DataFrame] = {}
        training = _training_rows(ctx, y, progress, scored, timings)
        rows = scored.pop(y - 1)
        ctx.release()
    if not rows.height:
        raise no_rows
    if saved is None:
        report, wm, predictions = _train(ctx, training, y, progress, timings)
    with _timed(timings, "评分与原因", progress):
        warnings = score(ctx, wm, y, rows)
    return WarnResult(y, warnings, report, wm, training, predictions, created, timings, inputs.rejected_rows,
                      model_file)
