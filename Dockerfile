# The screening engine and its service in one image: `screening` is the entry point.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# a CJK font for the charts' Chinese labels (screening.charts checks every glyph)
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY screening ./screening
COPY api ./api
COPY rules ./rules
COPY sql ./sql
COPY sample_data ./sample_data
RUN pip install --no-cache-dir .
# the database and the outputs live on volumes, never in the image
VOLUME ["/db", "/out"]
ENTRYPOINT ["screening"]
CMD ["serve", "--db", "/db/screening.duckdb", "--host", "0.0.0.0", "--port", "8000"]
