#!/bin/sh
# Install, migrate, create the demo user, print its token, and serve on 127.0.0.1:8000.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

export DATA_DIR="${DATA_DIR:-./data}"
mkdir -p "$DATA_DIR"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$DATA_DIR/secret_key" ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' > "$DATA_DIR/secret_key"
  SECRET_KEY="$(cat "$DATA_DIR/secret_key")"
  export SECRET_KEY
fi
[ -s "$DATA_DIR/demo_password" ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))' > "$DATA_DIR/demo_password"

.venv/bin/python manage.py migrate --noinput >/dev/null
TOKEN="$(.venv/bin/python manage.py create_user --email "${DEMO_EMAIL:-demo@example.com}" \
  --password "$(cat "$DATA_DIR/demo_password")" --organization "${DEMO_ORGANIZATION:-Demo}" | tail -n 1)"
echo "Demo user: ${DEMO_EMAIL:-demo@example.com} / password in $DATA_DIR/demo_password"
echo "API token: $TOKEN"
echo "Serving on http://127.0.0.1:${PORT:-8000}/ (API docs at /docs/api/)"
exec .venv/bin/python manage.py runserver "127.0.0.1:${PORT:-8000}" --noreload
