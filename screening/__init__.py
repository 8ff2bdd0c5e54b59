"""高耗低效企业筛选引擎 (screening engine for high-energy-consumption, low-efficiency firms)."""

__version__ = "0.1.0"
