"""Input validation: one clear error naming the bad index; empty strings are fine."""

from __future__ import annotations

import pytest

from vecembed import InvalidInputError
from vecembed.pipeline import validate_texts


def test_valid_texts_pass_through_including_empty_strings() -> None:
    assert validate_texts(["a", "", "ü"]) == ["a", "", "ü"]
    assert validate_texts(t for t in ["x", "y"]) == ["x", "y"]
    assert validate_texts([]) == []


@pytest.mark.parametrize(
    ("bad", "index", "kind"),
    [(None, 1, "None"), (b"bytes", 1, "bytes"), (3, 1, "int"), (["nested"], 1, "list")],
)
def test_bad_item_is_named_by_index_and_type(bad: object, index: int, kind: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"texts\[{index}\] must be str, got {kind}") as err:
        validate_texts(["ok", bad, None])
    assert err.value.index == index
    assert isinstance(err.value, ValueError)


def test_bytes_error_says_how_to_fix() -> None:
    with pytest.raises(InvalidInputError, match="decode"):
        validate_texts([b"raw"], what="documents")


def test_a_single_string_is_refused_rather_than_split_into_characters() -> None:
    with pytest.raises(InvalidInputError, match="single str"):
        validate_texts("hello")


def test_non_iterable_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="sequence of str"):
        validate_texts(42)
