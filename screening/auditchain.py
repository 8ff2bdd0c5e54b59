"""The audit trail as a hash chain: each line carries the hash of the line before it.

A line's ``row_hash`` is sha256 of the previous line's ``row_hash`` and the line's canonical
JSON (its columns in a fixed order, the time as microseconds since the epoch, the JSON columns
as the text stored).  ``seq`` numbers the chained lines 1, 2, 3, …; lines an older version
wrote have none (the chain starts after them).  Editing a line changes its hash, deleting one
leaves a gap in ``seq`` and a ``prev_hash`` that names no line: :func:`check` finds both.
Deleting the newest lines is visible only against a head recorded elsewhere (a backup's
manifest records the head it saw; ``screening verify`` compares the two).

api/db.py ``audit()`` writes the lines; ``screening verify`` (screening/backup.py) checks them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

#: the ``prev_hash`` of the first chained line
GENESIS = "0" * 64

#: the columns a line's hash covers, in this order (besides ``prev_hash``)
HASHED = ("seq", "audit_id", "logged_us", "user_name", "role", "action", "entity", "entity_key", "before", "after")

#: the chained lines as check() reads them, in chain order; old lines (no seq) first
SELECT_SQL = ("SELECT seq, audit_id, epoch_us(logged_at) AS logged_us, user_name, role, action, entity, entity_key, "
              "CAST(before AS VARCHAR) AS before, CAST(after AS VARCHAR) AS after, prev_hash, row_hash "
              "FROM audit_log ORDER BY seq NULLS FIRST, logged_at, audit_id")


def row_hash(prev_hash: str, line: dict[str, Any]) -> str:
    canonical = json.dumps([line[name] for name in HASHED], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


@dataclass
class Report:
    unchained: int = 0            # lines written before the chain existed
    chained: int = 0
    head: tuple[int, str] | None = None  # (seq, row_hash) of the newest chained line
    problems: list[str] = field(default_factory=list)


def check(rows: list[dict[str, Any]], recorded_head: tuple[int, str] | None = None) -> Report:
    """Check the lines (SELECT_SQL's rows, in its order).  ``recorded_head``: a (seq, hash) a
    backup saw; the chain must still hold that line, unchanged."""
    report = Report()
    previous = GENESIS
    expected_seq = 1
    first_chained_us = None
    by_seq: dict[int, str] = {}
    for row in rows:
        if row["seq"] is None:
            if row["prev_hash"] is not None or row["row_hash"] is not None:
                report.problems.append(f"审计记录 {row['audit_id']} 有散列值却没有序号：记录被改动过")
            report.unchained += 1
            continue
        seq = int(row["seq"])
        first_chained_us = row["logged_us"] if first_chained_us is None else first_chained_us
        if seq != expected_seq:
            missing = f"第 {expected_seq} 条" if seq == expected_seq + 1 else f"第 {expected_seq}—{seq - 1} 条"
            report.problems.append(f"审计链在序号 {seq} 之前缺少{missing}：审计记录被删除过")
        if row["prev_hash"] != previous and seq == expected_seq:
            report.problems.append(f"审计记录第 {seq} 条（{row['audit_id']}）与前一条接不上：前一条被改动或删除过")
        if row_hash(row["prev_hash"] or "", row) != row["row_hash"]:
            report.problems.append(f"审计记录第 {seq} 条（{row['audit_id']}，{row['action']}）的内容与其散列值不符：记录被改动过")
        previous, expected_seq = row["row_hash"], seq + 1
        by_seq[seq] = row["row_hash"]
        report.chained += 1
        report.head = (seq, row["row_hash"])
    late = [r for r in rows if r["seq"] is None and first_chained_us is not None and r["logged_us"] > first_chained_us]
    if late:
        report.problems.append(f"有 {len(late)} 条没有序号的审计记录晚于审计链的开始：是链外插入的记录")
    if recorded_head is not None:
        seq, digest = recorded_head
        if by_seq.get(seq) != digest:
            report.problems.append(f"最近一次备份记录的审计链尾（第 {seq} 条）已不在审计记录中或已被改动：审计记录被删除或改动过")
    return report
