#!/usr/bin/env bash
# Install what offsetstream needs on a bare Debian machine: Java 17 + Maven (to assemble the Kafka broker from
# Maven Central), PostgreSQL server binaries, Prometheus (its `promtool` checks and unit-tests the alert rules, its
# server answers the dashboard queries in the observability test), Chromium (the console's browser tests), and the Python packages in .venv from the
# hash-pinned requirements-dev.lock.
# Idempotent and quick when done. OFFSETSTREAM_BOOTSTRAP_SYSTEM_ONLY=1 stops after the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
# Debian's Chromium for the console's browser tests (tests/e2e/test_console_browser.py, Playwright with
# executable_path=/usr/bin/chromium): Playwright's own browser download cannot reach its CDN here.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi

[ "${OFFSETSTREAM_BOOTSTRAP_SYSTEM_ONLY:-0}" = 1 ] && exit 0

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Exactly the pinned, hash-checked packages of requirements-dev.lock (`make lock` writes it from pyproject.toml);
# then the project itself, editable, without resolving anything more and built with the locked setuptools.
.venv/bin/pip install -q --disable-pip-version-check --require-hashes -r requirements-dev.lock
.venv/bin/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
