"""The screening service (FastAPI): lists, 一企一策 records, township verification, dashboard."""
