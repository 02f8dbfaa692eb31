"""The OpenAI embeddings request and error formats: parsing a request body, writing an error body.

A request (``POST /v1/embeddings``)::

    {"input": "text" | ["text", ...] | [token ids] | [[token ids], ...],
     "model": "served name or alias", "encoding_format": "float" | "base64",
     "dimensions": <the model's dimension>, "user": "...",
     "input_type": "document" | "query"}          # a vecembed extension, default "document"

Token ids are ids of the served model's tokenizer (as in Hugging Face
text-embeddings-inference); they are decoded to text and embedded like text.
An error answers ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from vecembed.errors import ApiError, error_body
from vecembed.pipeline.validate import lone_surrogate

__all__ = ["ApiError", "EmbeddingsRequest", "error_body", "parse_embeddings_request"]

#: What ``input_type`` may say, and the batcher kind each means ("passage" as some other servers spell it).
INPUT_TYPES = {"document": "document", "passage": "document", "query": "query"}


@dataclass(frozen=True)
class EmbeddingsRequest:
    """A parsed, validated ``/v1/embeddings`` request."""

    texts: list[str]
    kind: str = "document"
    encoding_format: str = "float"
    model: str | None = None
    token_inputs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _bad(message: str, param: str | None = "input", code: str | None = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    """A short, safe description of a bad value for an error message.

    Containers are named by their type only: the repr of a 1,000-deep nested list
    raises RecursionError, and a long string or list would be echoed back whole.
    """
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}... ({len(value)} characters)"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    """The string field ``name`` of ``body``: one of ``allowed``, ``default`` when absent or null.

    Any other value is a 400 naming the field: ``0``, ``{}``, ``""`` or a list are not taken as the default.
    """
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in allowed:
        raise _bad(f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {_describe(value)}",
                   param=name)
    return value


def parse_embeddings_request(
    body: Any,
    *,
    served_names: Collection[str],
    dimension: int,
    max_inputs: int,
    decode_tokens: Callable[[list[list[int]]], list[str]] | None,
    vocab_size: int | None = None,
) -> EmbeddingsRequest:
    """Check ``body`` against the OpenAI schema and this server's model; raise :class:`ApiError` otherwise.

    400 for malformed input (naming the index), 404 for a model this server does
    not serve, 413 for more than ``max_inputs`` inputs.
    """
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object", param=None)
    model = body.get("model")
    if model is not None:
        if not isinstance(model, str):
            raise _bad(f"model must be a string, got {_describe(model)}", param="model")
        if model not in served_names:
            raise ApiError(404, f"the model {_describe(model)} is not served here; this server serves "
                           f"{', '.join(sorted(served_names))}", param="model", code="model_not_found")
    encoding_format = _choice(body, "encoding_format", ("float", "base64"), "float")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions != dimension):
        raise _bad(f"dimensions must be {dimension} (this model's dimension; vecembed does not shorten "
                   f"vectors), got {_describe(dimensions)}", param="dimensions")
    input_type = _choice(body, "input_type", tuple(INPUT_TYPES), "document")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad(f"user must be a string, got {_describe(user)}", param="user")
    if "input" not in body:
        raise _bad("input is required: a string, a list of strings, or token ids", code="missing_required_parameter")
    texts, token_inputs = _parse_input(body["input"], max_inputs, decode_tokens, vocab_size)
    return EmbeddingsRequest(texts, INPUT_TYPES[input_type], encoding_format, model, token_inputs)


def _parse_input(
    raw: Any,
    max_inputs: int,
    decode_tokens: Callable[[list[list[int]]], list[str]] | None,
    vocab_size: int | None,
) -> tuple[list[str], int]:
    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif isinstance(raw, list):
        if not raw:
            raise _bad("input must not be an empty list")
        # a flat list of ints is ONE input given as token ids
        items = [raw] if _is_int(raw[0]) else raw
    else:
        raise _bad(f"input must be a string or a list, got {_describe(raw)}")
    if len(items) > max_inputs:
        raise ApiError(413, f"{len(items)} inputs in one request; this server takes at most {max_inputs}: "
                       "split the request", param="input", code="too_many_inputs")
    single = items is not raw  # one string, or one list of token ids: errors name "input", not "input[0]"
    texts: list[str | None] = []
    token_lists: list[list[int]] = []
    token_rows: list[int] = []
    for i, item in enumerate(items):
        where = "input" if single else f"input[{i}]"
        if isinstance(item, str):
            bad = lone_surrogate(item)
            if bad is not None:
                raise _bad(f"{where} is not valid Unicode at character {bad}")
            texts.append(item)
        elif isinstance(item, list):
            if not item:
                raise _bad(f"{where} is an empty list of token ids")
            for j, tok in enumerate(item):
                if not _is_int(tok) or tok < 0 or (vocab_size is not None and tok >= vocab_size):
                    limit = f" below {vocab_size}" if vocab_size is not None else ""
                    raise _bad(f"{where}[{j}] must be a token id (an int >= 0{limit}), got {_describe(tok)}")
            texts.append(None)
            token_lists.append(item)
            token_rows.append(i)
        else:
            raise _bad(f"{where} must be a string or a list of token ids, got {_describe(item)}")
    if token_lists:
        if decode_tokens is None:
            raise _bad("this server's model has no tokenizer to read token ids; send text instead")
        for row, text in zip(token_rows, decode_tokens(token_lists), strict=True):
            texts[row] = text
    return [t if t is not None else "" for t in texts], len(token_lists)
