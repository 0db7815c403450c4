# The one image of offsetstream: the five services and the `offsetstream` command (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Explicit copies instead of `COPY .`: never the developer's .venv, .local (Kafka/PostgreSQL data) or .git.
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY shared ./shared
COPY services ./services
COPY infra ./infra

# `pip install .` brings the dependencies, the `offsetstream` command and the plugin entry points.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/offsetstream --create-home offsetstream

# Code is imported from /app, not site-packages, so that REPO_ROOT (migrations under infra/) resolves to /app
# for `offsetstream db migrate` as well as for `python -m services.<name>`. Runtime data goes to a directory
# the unprivileged user owns.
ENV PYTHONPATH=/app \
    OFFSETSTREAM_DATA_DIR=/var/lib/offsetstream

USER offsetstream

EXPOSE 6101 6102 6103 6104 6105

CMD ["offsetstream", "--help"]
