"""Stage 1: check the fields Fabrique itself relies on; leave every other field alone."""

from __future__ import annotations

from fabrique.errors import InvalidField, MissingField, ModelNotFound
from fabrique.pipeline.context import RequestContext

_REQUIRED = {"chat/completions": "messages", "completions": "prompt", "embeddings": "input"}
_KIND = {"chat/completions": "chat", "completions": "chat", "embeddings": "embedding"}


async def validate(ctx: RequestContext) -> None:
    body = ctx.body
    model = body.get("model")
    if model is None:
        raise MissingField("You must provide a model parameter.", param="model")
    if not isinstance(model, str) or not model:
        raise InvalidField("'model' must be a non-empty string.", param="model")
    field = _REQUIRED[ctx.endpoint]
    value = body.get(field)
    if value is None:
        raise MissingField(f"Missing required parameter: '{field}'.", param=field)
    if ctx.endpoint == "chat/completions":
        _check_messages(value)
    elif not isinstance(value, str | list) or (isinstance(value, list) and not value):
        raise InvalidField(f"'{field}' must be a string or a non-empty array.", param=field)
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise InvalidField("'stream' must be a boolean.", param="stream")
    if stream and ctx.endpoint == "embeddings":
        raise InvalidField("Embeddings cannot be streamed.", param="stream")
    ctx.stream = bool(stream)
    for name in ("max_tokens", "max_completion_tokens", "n"):
        limit = body.get(name)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise InvalidField(f"'{name}' must be a positive integer.", param=name)
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidField("'stream_options' must be an object.", param="stream_options")
    group = ctx.gateway.table.get(model)
    if group is None:
        raise ModelNotFound(f"The model '{model}' does not exist or you do not have access "
                            "to it. GET /v1/models lists the models served here.", param="model")
    ctx.model = model
    if group.kind != _KIND[ctx.endpoint]:
        raise InvalidField(f"The model '{model}' is an {group.kind} model and does not serve "
                           f"/v1/{ctx.endpoint}." if group.kind == "embedding" else
                           f"The model '{model}' is a {group.kind} model and does not serve "
                           f"/v1/{ctx.endpoint}.", param="model", code="model_not_supported")
    ctx.group = group


def _check_messages(messages: object) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidField("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidField(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise InvalidField(f"'messages[{i}].role' must be a string.",
                               param=f"messages[{i}].role")
