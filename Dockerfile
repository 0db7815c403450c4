# The one image of offsetstream: the five services and the `offsetstream` command (see docker-compose.yml).

# Stage 1: compile the X12 reader with mypyc (infra/build_native.py). It needs a C compiler and mypy, which
# the runtime image does not carry; only the built extensions and their manifest are copied over.
FROM python:3.11-slim AS native
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The hash-pinned development lock brings the same mypy (mypyc) and setuptools `make setup` compiles with.
COPY requirements-dev.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements-dev.lock
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY shared ./shared
COPY policies ./policies
COPY services ./services
COPY cli ./cli
COPY devtools ./devtools
COPY infra ./infra
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && python -m infra.build_native

# Stage 2: the runtime image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, exactly as pinned and hashed in requirements.lock (`make lock`), so this layer is reused
# while the lock is unchanged; nothing unpinned is resolved later (`--no-deps`, the locked setuptools builds).
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

# Explicit copies instead of `COPY .`: never the developer's .venv, .local (Kafka/PostgreSQL data) or .git.
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY shared ./shared
COPY policies ./policies
COPY services ./services
COPY cli ./cli
COPY devtools ./devtools
COPY infra ./infra

# `pip install .` brings the `offsetstream` command and the plugin entry points.
# The compiled reader: used only while its manifest matches the sources copied above (else the source runs).
COPY --from=native /app/.local/native ./.local/native

RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /var/lib/offsetstream --create-home offsetstream

# Code is imported from /app, not site-packages, so that REPO_ROOT (migrations under infra/) resolves to /app
# for `offsetstream db migrate` as well as for `python -m services.<name>`. Runtime data goes to a directory
# the unprivileged user owns.
ENV PYTHONPATH=/app \
    OFFSETSTREAM_DATA_DIR=/var/lib/offsetstream

USER offsetstream

EXPOSE 6101 6102 6103 6104 6105

CMD ["offsetstream", "--help"]
