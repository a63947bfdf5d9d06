# syntax=docker/dockerfile:1
# Build: docker build -t netvalve-gateway .
# The image runs `uvicorn --factory app.main:create_app` as an unprivileged user; migrations are a
# separate command (`alembic upgrade head`), run once per release (see docker-compose.prod.yml).

FROM python:3.11-slim AS builder
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv uv sync --locked --no-dev --no-install-project
COPY alembic.ini ./
COPY alembic ./alembic
COPY app ./app

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home app
WORKDIR /app
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder --chown=root:root /app /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
# --http: a deadline for reading each request (REQUEST_READ_TIMEOUT_SECONDS). --no-proxy-headers:
# the app reads X-Forwarded-For itself, from TRUSTED_PROXIES only (app/api/client.py).
CMD ["uvicorn", "--factory", "app.main:create_app", "--host", "0.0.0.0", "--port", "8000", "--http", "app.core.server:BoundedHttpToolsProtocol", "--no-proxy-headers", "--no-server-header", "--timeout-graceful-shutdown", "35"]
