# syntax=docker/dockerfile:1.7
# Production image: requires LICENTIA_DATABASE_URL (the runtime role), and for migrations on
# start LICENTIA_MIGRATION_DATABASE_URL (the schema owner), plus LICENTIA_KEY_ENCRYPTION_KEY.
#
# BASE_IMAGE: any Debian-like image with Python 3.11+ and pip (python3 -m pip). The default
# is the official slim image; .ci/image builds on a base made from Debian packages
# (debootstrap) where no registry is reachable.
ARG BASE_IMAGE=python:3.11-slim
ARG UV_VERSION=0.13.9

FROM ${BASE_IMAGE} AS build
ARG UV_VERSION
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m pip install --break-system-packages "uv==${UV_VERSION}" \
    || python3 -m pip install "uv==${UV_VERSION}"
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY verifier/pyproject.toml verifier/README.md verifier/
COPY verifier/licentia_verifier verifier/licentia_verifier
RUN uv sync --locked --no-dev --no-install-project --python python3
COPY server server
COPY keys keys
COPY migrations migrations
COPY README.md ./
# The project itself stays where it is (an editable install of /app): its migrations/ folder
# sits beside server/, where the code looks for it.
RUN uv sync --locked --no-dev --python python3

FROM ${BASE_IMAGE}
RUN groupadd --system licentia \
    && useradd --system --gid licentia --home-dir /app --no-create-home licentia
WORKDIR /app
# The code stays root's (read-only to the server); only the data dir below is its own.
COPY --from=build /app /app
# The data dir (the first admin key is written there on the very first start): the only
# place the server writes, owned by its user.
RUN mkdir -p /app/.licentia && chown licentia:licentia /app/.licentia && chmod 0700 /app/.licentia
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 LICENTIA_LOG_JSON=true \
    LICENTIA_ALLOW_EMBEDDED=false LICENTIA_DATA_DIR=/app/.licentia
USER licentia
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]
ENTRYPOINT ["licentia"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
