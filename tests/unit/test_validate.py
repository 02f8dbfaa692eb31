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


def test_mappings_and_sets_are_refused() -> None:
    # Issue 10 #5: a dict embedded its keys and a set came back in arbitrary order.
    for texts in ({"a": 1, "b": 2}, {"a", "b"}, frozenset({"a"})):
        with pytest.raises(InvalidInputError, match="no order"):
            validate_texts(texts)


def test_a_lone_surrogate_is_refused_with_its_index() -> None:
    # Issue 10 #13: the tokenizer raised a bare TypeError with no index; now the pipeline names the text.
    with pytest.raises(InvalidInputError, match=r"texts\[2\] is not valid Unicode at character 4") as err:
        validate_texts(["fine", "also fine", "bad \udc80 text"])
    assert err.value.index == 2


def test_providers_refuse_a_lone_surrogate_before_embedding() -> None:
    import vecembed

    with vecembed.load_provider("mock", dimension=8) as provider, pytest.raises(InvalidInputError, match="surrogate"):
        provider.embed_documents(["ok", "\udcff"])
