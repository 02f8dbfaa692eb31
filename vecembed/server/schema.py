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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from vecembed.errors import VecembedError
from vecembed.pipeline.validate import lone_surrogate

__all__ = ["ApiError", "EmbeddingsRequest", "error_body", "parse_embeddings_request"]

#: What ``input_type`` may say, and the batcher kind each means ("passage" as some other servers spell it).
INPUT_TYPES = {"document": "document", "passage": "document", "query": "query"}


class ApiError(VecembedError):
    """An HTTP error answered in OpenAI's error format; ``headers`` go with the response (Retry-After)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}`` as OpenAI writes it."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


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
            raise _bad("model must be a string", param="model")
        if model not in served_names:
            raise ApiError(404, f"the model {model!r} is not served here; this server serves "
                           f"{', '.join(sorted(served_names))}", param="model", code="model_not_found")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise _bad(f"encoding_format must be 'float' or 'base64', got {encoding_format!r}",
                   param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions != dimension):
        raise _bad(f"dimensions must be {dimension} (this model's dimension; vecembed does not shorten "
                   f"vectors), got {dimensions!r}", param="dimensions")
    input_type = body.get("input_type") or "document"
    if input_type not in INPUT_TYPES:
        raise _bad(f"input_type must be one of {sorted(INPUT_TYPES)}, got {input_type!r}", param="input_type")
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
        raise _bad(f"input must be a string or a list, got {type(raw).__name__}")
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
                    raise _bad(f"{where}[{j}] must be a token id (an int >= 0{limit}), got {tok!r}")
            texts.append(None)
            token_lists.append(item)
            token_rows.append(i)
        else:
            raise _bad(f"{where} must be a string or a list of token ids, got {type(item).__name__}")
    if token_lists:
        if decode_tokens is None:
            raise _bad("this server's model has no tokenizer to read token ids; send text instead")
        for row, text in zip(token_rows, decode_tokens(token_lists), strict=True):
            texts[row] = text
    return [t if t is not None else "" for t in texts], len(token_lists)
