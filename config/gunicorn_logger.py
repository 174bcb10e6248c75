"""gunicorn's own log lines (start-up, worker restarts, errors) as JSON lines: `scripts/serve.sh` passes
`--logger-class config.gunicorn_logger.JsonLogger` when LOG_FORMAT=json, so the whole output is JSON."""

from gunicorn import glogging  # type: ignore[import-untyped]

from config.logs import ContextFilter, JsonFormatter


class JsonLogger(glogging.Logger):
    """gunicorn's logger, its handlers writing `config.logs.JsonFormatter` lines."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(ContextFilter())
