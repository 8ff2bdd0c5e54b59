from fastapi import APIRouter, Request

from screening.backup import last_backup_age_hours

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health", summary="服务状态（无需令牌）", operation_id="health-get")
def health(request: Request) -> dict[str, str | float | None]:
    """`status` 为 ok；`last_backup_age_hours` 为距最近一次备份（screening backup 或 POST /api/v1/backups）的小时数，
    从未备份时为 null（见 docs/backup.md）。"""
    return {"status": "ok", "last_backup_age_hours": last_backup_age_hours(request.app.state.settings.db)}
