# syntax=docker/dockerfile:1.7
# Production image: requires LICENTIA_DATABASE_URL (the runtime role), and for migrations on
# start LICENTIA_MIGRATION_DATABASE_URL (the schema owner), plus LICENTIA_KEY_ENCRYPTION_KEY.

FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY verifier/pyproject.toml verifier/README.md verifier/
COPY verifier/licentia_verifier verifier/licentia_verifier
RUN uv sync --locked --no-dev --no-install-project
COPY server server
COPY keys keys
COPY migrations migrations
COPY README.md ./
RUN uv sync --locked --no-dev --no-editable

FROM python:3.11-slim
RUN groupadd --system licentia && useradd --system --gid licentia --home /app licentia
WORKDIR /app
COPY --from=build --chown=licentia:licentia /app /app
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 LICENTIA_LOG_JSON=true \
    LICENTIA_ALLOW_EMBEDDED=false
USER licentia
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"
ENTRYPOINT ["licentia"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
