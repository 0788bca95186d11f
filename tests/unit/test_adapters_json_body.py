"""Untrusted JSON bodies: nesting counted without recursion, NaN/Infinity refused, and every
unusable body a precise refusal instead of a RecursionError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnid.adapters.json_body import MAX_JSON_DEPTH, UnusableBody, nesting_depth, parse_json_body
from omnid.errors import RequestProblem

# Strings full of the characters the depth scan must see through.
TRICKY_TEXT = st.text(alphabet=st.sampled_from('[]{}"\\ab\n\u00e9\u200b'), max_size=12)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TRICKY_TEXT, inner, max_size=4),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@given(JSON_VALUES, st.booleans())
def test_nesting_depth_equals_the_real_depth_of_any_json(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(raw) == depth_of(value)
    assert parse_json_body(raw) == value


def test_ten_thousand_levels_are_refused_before_parsing() -> None:
    with pytest.raises(UnusableBody) as refused:
        parse_json_body(b"[" * 10_000 + b"]" * 10_000)
    assert refused.value.problem is RequestProblem.JSON_TOO_DEEP
    assert f"at most {MAX_JSON_DEPTH}" in refused.value.detail


def test_the_deepest_accepted_body_parses() -> None:
    raw = b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    assert depth_of(parse_json_body(raw)) == MAX_JSON_DEPTH


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"revenue": NaN}', "NaN is not a JSON number"),
        (b'{"revenue": Infinity}', "Infinity is not a JSON number"),
        (b"[-Infinity]", "-Infinity is not a JSON number"),
        (b"1" * 5000, "digits"),
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
        (b'{"a": ', "malformed JSON"),
        (b"", "malformed JSON"),
    ],
)
def test_non_standard_json_is_malformed(raw: bytes, words: str) -> None:
    with pytest.raises(UnusableBody) as refused:
        parse_json_body(raw)
    assert refused.value.problem is RequestProblem.MALFORMED_JSON
    assert words in refused.value.detail
