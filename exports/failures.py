"""The reason a failed job shows: one readable line, never a stack.

Adapters of a job queue teach it their own errors with `explain` (the Celery adapter explains its time limit),
so the jobs never need to know which queue runs them.
"""

from collections.abc import Callable

__all__ = ["describe", "explain"]

_explanations: dict[type[BaseException], Callable[[BaseException], str]] = {}


def explain(kind: type[BaseException], reason: Callable[[BaseException], str]) -> None:
    """Describe errors of `kind` (and its subclasses) with `reason(exc)` from now on."""
    _explanations[kind] = reason


def describe(exc: BaseException) -> str:
    """`Type: message` for a failure, or the explanation registered for its kind."""
    for kind, reason in _explanations.items():
        if isinstance(exc, kind):
            return reason(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
