"""Querysets compiled to SQL once per process and run again with other values: for the hottest reads, where
compiling the ORM query costs more than running it.

The queryset is built once with a stand-in value for each parameter; the SQL Django compiles for it is kept with
the positions of those stand-ins among its parameters, and each run substitutes the real values. Rows come back
through Django's own converters, so they are what the queryset itself would give.
"""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.expressions import Expression
from django.db.models.sql.compiler import SQLCompiler

__all__ = ["PreparedQuery"]

# Stand-ins no real id takes, one per parameter.
_FIRST_STAND_IN = -(10**15)
# What `SQLCompiler.get_converters` returns: per column index, its converters and its expression.
_Converters = dict[int, tuple[list[Callable[..., Any]], Expression]]


class PreparedQuery:
    """`build(**parameters)` → a queryset (usually `values_list`) compiled once, run with `rows(**values)`."""

    def __init__(self, build: Callable[..., QuerySet], *parameters: str, using: str = "default"):
        self.build = build
        self.parameters = parameters
        self.using = using
        self._lock = threading.Lock()
        self._compiled: tuple[SQLCompiler, str, list[Any], dict[str, list[int]], _Converters] | None = None

    def _compile(self) -> tuple[SQLCompiler, str, list[Any], dict[str, list[int]], _Converters]:
        with self._lock:
            if self._compiled is None:
                stand_ins = {name: _FIRST_STAND_IN - index for index, name in enumerate(self.parameters)}
                compiler = self.build(**stand_ins).query.get_compiler(using=self.using)
                sql, params = compiler.as_sql()
                params = list(params)
                positions = {name: [i for i, p in enumerate(params) if p == value] for name, value in stand_ins.items()}
                unused = [name for name, found in positions.items() if not found]
                if unused:
                    raise ValueError(f"The prepared query does not use its parameters {unused}")
                fields = [column[0] for column in compiler.select[0 : compiler.col_count]]
                self._compiled = (compiler, sql, params, positions, compiler.get_converters(fields))
            return self._compiled

    def rows(self, **values: Any) -> list[tuple]:
        """The rows for these parameter values, converted as the queryset would convert them."""
        compiler, sql, params, positions, converters = self._compile()
        params = list(params)
        for name, value in values.items():
            for index in positions[name]:
                params[index] = value
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if converters:
            rows = [tuple(row) for row in compiler.apply_converters(rows, converters)]
        return rows
