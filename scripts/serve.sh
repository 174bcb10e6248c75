#!/bin/sh
# Install, migrate, create the demo user, print its token, and serve with gunicorn on 127.0.0.1:8000.
# Environment: PYTHON, DATA_DIR, SECRET_KEY, DEMO_EMAIL, DEMO_ORGANIZATION, HOST, PORT, WEB_WORKERS, WEB_THREADS,
# WEB_TIMEOUT, LOG_FORMAT (see README "Configuration"); every other setting is read by config/settings.py.
set -eu
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

# Everything this script and the service create from here on (the data folder, the secret key, the demo
# password, the database, export files) is readable by this user only.
umask 077
export DATA_DIR="${DATA_DIR:-./data}"
mkdir -p "$DATA_DIR"
chmod 700 "$DATA_DIR"
if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$DATA_DIR/secret_key" ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))' > "$DATA_DIR/secret_key"
  SECRET_KEY="$(cat "$DATA_DIR/secret_key")"
  export SECRET_KEY
fi
[ -s "$DATA_DIR/demo_password" ] || .venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))' > "$DATA_DIR/demo_password"

.venv/bin/python manage.py migrate --noinput >/dev/null
# Files an earlier version of this script (or another umask) left readable by others.
for name in secret_key demo_password db.sqlite3 db.sqlite3-wal db.sqlite3-shm; do
  if [ -e "$DATA_DIR/$name" ]; then chmod 600 "$DATA_DIR/$name"; fi
done

TOKEN="$(.venv/bin/python manage.py create_user --email "${DEMO_EMAIL:-demo@example.com}" \
  --password "$(cat "$DATA_DIR/demo_password")" --organization "${DEMO_ORGANIZATION:-Demo}" | tail -n 1)"
echo "Demo user: ${DEMO_EMAIL:-demo@example.com} / password in $DATA_DIR/demo_password"
echo "API token: $TOKEN"
echo "Serving on http://${HOST:-127.0.0.1}:${PORT:-8000}/ (API docs at /docs/api/)"

# gthread workers: WEB_WORKERS processes of WEB_THREADS threads each. Each process starts its own embedded job
# pool and sweep with its first request. The long timeout leaves room for large streamed downloads.
# Access log on stdout, errors on stderr; with LOG_FORMAT=json every line is JSON: gunicorn's own lines too, and the
# service writes the access lines (with the request id) instead of gunicorn. No control socket (gunicorn 25+ would
# make one in ~/.gunicorn, shared by every instance of this user).
# Malformed requests are answered by gunicorn itself, with its short fixed error page, before the service sees
# them: a request line over 4094 bytes (414), more than 100 header fields or one over 8190 bytes (431), a bad
# request line or Content-Length (400).
set --
if .venv/bin/gunicorn --help | grep -q -- --no-control-socket; then set -- --no-control-socket; fi
if [ "${LOG_FORMAT:-}" = json ]; then
  set -- "$@" --logger-class config.gunicorn_logger.JsonLogger
else
  set -- "$@" --access-logfile -
fi
exec .venv/bin/gunicorn config.wsgi:application "$@" \
  --bind "${HOST:-127.0.0.1}:${PORT:-8000}" \
  --worker-class gthread \
  --workers "${WEB_WORKERS:-2}" \
  --threads "${WEB_THREADS:-4}" \
  --timeout "${WEB_TIMEOUT:-3600}" \
  --graceful-timeout 30 \
  --limit-request-line 4094 \
  --limit-request-fields 100 \
  --limit-request-field_size 8190 \
  --error-logfile -
