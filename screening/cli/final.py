"""``screening export-final``: the finalised list and every firm's 告知书."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import ScreeningError
from ..terminal import say
from .common import _fail, _notice, out_console


def export_final(
    year: Annotated[int, typer.Option("--year", help="清单年度（须已在服务中定稿）")],
    db: Annotated[Path, typer.Option("--db", help="服务使用的 DuckDB 文件")] = Path("screening.duckdb"),
    out: Annotated[Path, typer.Option("--out", help="输出目录")] = Path("out"),
    rules: Annotated[Optional[Path], typer.Option("--rules", help="规则集目录（告知书模板与异议期限；默认：rules/yueqing-2022）")] = None,
) -> None:
    """导出定稿清单（带签章栏的 Excel）和每家企业的《高耗低效企业认定告知书》（Word，另附合并打印文件）。"""
    from ..final import export_final as write_export
    from ..outdir import staged
    from ..paths import default_ruleset
    from ..ruleset import load_ruleset
    from ..store import DatabaseLocked, connect

    try:
        rs = load_ruleset(rules or default_ruleset())
        if not db.exists():  # a folder or another kind of file: connect says what it is
            raise ScreeningError(f"数据库文件 {db} 不存在；请用 --db 指定服务使用的 DuckDB 文件")
        try:
            con = connect(db, read_only=True)
        except DatabaseLocked as exc:
            raise DatabaseLocked(f"{exc}；服务运行时请从服务下载（GET /api/v1/lists/{year}/final/export）") from None
        try:
            with staged(out, _notice) as staging:
                files = write_export(con, year, rs, staging)
        finally:
            con.close()
    except ScreeningError as exc:
        _fail(exc)
    from ..final import NOTICE_DIR

    notices = [f for f in files if f.parent.name == NOTICE_DIR]
    merged = [f.name for f in files if f.suffix == ".docx" and f.parent.name != NOTICE_DIR]
    say(out_console, f"已写入 {out}：{files[0].name}（定稿清单）、{out / NOTICE_DIR} 中告知书 {len(notices)} 份"
                     f"、合并打印文件 {'、'.join(merged) or '无（定稿清单为空）'}")
