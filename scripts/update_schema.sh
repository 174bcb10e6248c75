#!/bin/sh
# Regenerate the checked-in OpenAPI snapshot (tests/schema/openapi.json) from the code, after a deliberate API
# change; tests/test_openapi.py fails while the two differ. Review the diff and commit it with the change.
set -eu
cd "$(dirname "$0")/.."
export SECRET_KEY="${SECRET_KEY:-schema-snapshot-only}"
DATA_DIR="${DATA_DIR:-$(mktemp -d)}"
export DATA_DIR
.venv/bin/python manage.py spectacular --validate --fail-on-warn --format openapi-json --file tests/schema/openapi.json
echo "Wrote tests/schema/openapi.json"
