"""Schemathesis hooks for the fuzz run (loaded through SCHEMATHESIS_HOOKS=tests.fuzz.hooks).

- Path ids are sometimes swapped for ids of objects that exist (read from FUZZ_PATH_IDS,
  `name=value,...`), so generated bodies and queries also reach real projects and snapshots, not
  only the 404 branch.
- Every error response must carry the contract's JSON error body.
"""

import os

import schemathesis
from hypothesis import strategies as st

ERROR_KEYS = {"id", "status_code", "version", "detail", "exc_info"}


def _real_ids() -> dict[str, int]:
    pairs = (item.partition("=") for item in os.environ.get("FUZZ_PATH_IDS", "").split(",") if item)
    return {name: int(value) for name, _, value in pairs}


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    real = {name: value for name, value in _real_ids().items() if name in (path_parameters or {})}
    if not real:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, **real}])


@schemathesis.check
def error_body_is_contract_json(ctx, response, case):
    """4xx and 5xx answers are the contract's JSON error body, with the response's own status code."""
    if response.status_code < 400:
        return
    headers = {name.lower(): value for name, value in response.headers.items()}
    content_type = headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if not content_type.startswith("application/json"):
        raise AssertionError(f"error {response.status_code} is {content_type!r}, not JSON")
    body = response.json()
    if not isinstance(body, dict) or not body.keys() >= ERROR_KEYS:
        raise AssertionError(f"error body lacks {sorted(ERROR_KEYS - set(body or {}))}: {body!r}"[:500])
    if body["status_code"] != response.status_code:
        raise AssertionError(f"body says {body['status_code']}, response is {response.status_code}")
    if response.status_code == 400 and body["detail"] == "Validation error" and "validation_errors" not in body:
        raise AssertionError("a validation error without validation_errors")
    return
