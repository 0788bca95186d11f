"""Untrusted JSON request bodies, parsed strictly: UTF-8, standard JSON only (no NaN or
Infinity), and nesting bounded by a cheap scan before the recursive parser runs."""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any, NoReturn

from omnid.errors import OmnidError, RequestProblem

# Segment messages nest about six levels (batch > message > context > traits > address);
# 32 leaves room and keeps every recursive walk over the result (flatten) far from Python's
# recursion limit.
MAX_JSON_DEPTH = 32

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class UnusableBody(OmnidError):
    """A body that is not JSON omnid accepts; `problem` is the refusal's reason."""

    def __init__(self, problem: RequestProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


def nesting_depth(raw: bytes) -> int:
    """How deeply `raw` nests arrays and objects, for valid JSON exactly; never recursive.

    Escapes go first (so `\\"` does not end a string), then everything but quotes and
    brackets, then strings: what is left are the brackets outside strings. Dropping any two
    adjacent quotes first is safe (an empty string, or the end of one string and the start of
    the next: merged, their brackets stay inside) and leaves few strings for the regex. For
    malformed input the count is only a guess, but the parser stops at the first error, before
    any disagreement with the count."""
    structure = _ESCAPED.sub(b"", raw).translate(None, _NOT_STRUCTURE).replace(b'""', b"")
    brackets = _STRING.sub(b"", structure)
    if not brackets:
        return 0
    return max(0, *accumulate(map(_STEP.__getitem__, brackets)))


def _no_constants(name: str) -> NoReturn:
    raise UnusableBody(
        RequestProblem.MALFORMED_JSON, f"malformed JSON: {name} is not a JSON number"
    )


def parse_json_body(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of `raw`, or UnusableBody saying precisely why not."""
    if raw.count(b"[") + raw.count(b"{") > max_depth:  # only then can it be too deep
        depth = nesting_depth(raw)
        if depth > max_depth:
            raise UnusableBody(
                RequestProblem.JSON_TOO_DEEP,
                f"JSON nests {depth} levels deep; at most {max_depth} are accepted",
            )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnusableBody(RequestProblem.MALFORMED_JSON, "body is not UTF-8 text") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise UnusableBody(
            RequestProblem.MALFORMED_JSON,
            f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except ValueError as error:  # an integer beyond Python's digit limit (sys.int_info)
        raise UnusableBody(RequestProblem.MALFORMED_JSON, f"malformed JSON: {error}") from None
