#!/bin/sh
# Install what the tests need and run them (SQLite unless DATABASE_URL is set). Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
export SECRET_KEY="${SECRET_KEY:-test-only-secret-key}"
DATA_DIR="${DATA_DIR:-$(mktemp -d)}"
export DATA_DIR
exec .venv/bin/python -m pytest "$@"
