from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["health"])


@router.get("/health", summary="服务状态（无需令牌）", operation_id="health-get")
def health() -> dict[str, str]:
    return {"status": "ok"}
