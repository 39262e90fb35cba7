"""Each endpoint through the official openai SDK, as a client application would call it."""

from __future__ import annotations

import openai
import pytest
from openai import AsyncOpenAI


@pytest.fixture
async def sdk(client, api_key):
    async with AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=api_key,
                           max_retries=0) as sdk:
        yield sdk


async def test_chat_completion(sdk):
    raw = await sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Bonjour"}], max_tokens=7)
    completion = raw.parse()
    assert completion.model == "chat"
    assert completion.choices[0].message.content.startswith("[simulated]")
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 7
    assert raw.headers["x-fabrique-deployment"] == "sim/sim-chat"
    assert raw.headers["x-fabrique-request-id"].startswith("req_")
    assert raw.headers["server-timing"].startswith("fabrique;dur=")


async def test_chat_stream(sdk):
    stream = await sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Bonjour"}], max_tokens=5,
        stream=True)
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[simulated]")
    assert chunks[-1].choices[0].finish_reason == "length"
    # Fabrique asked upstream for usage, but this client did not: no usage chunk for it.
    assert all(c.usage is None for c in chunks)
    assert all(c.model == "chat" for c in chunks)


async def test_chat_stream_with_usage_when_asked(sdk):
    stream = await sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Bonjour"}], max_tokens=5,
        stream=True, stream_options={"include_usage": True})
    chunks = [c async for c in stream]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5


async def test_completions(sdk):
    completion = await sdk.completions.create(model="chat", prompt="Once upon", max_tokens=4)
    assert completion.model == "chat"
    assert completion.choices[0].text.startswith("[simulated]")
    assert completion.usage.completion_tokens == 4


async def test_completions_stream(sdk):
    stream = await sdk.completions.create(model="chat", prompt="Once upon", max_tokens=4,
                                          stream=True)
    texts = [c.choices[0].text async for c in stream if c.choices]
    assert "".join(texts).startswith("[simulated]")


async def test_embeddings(sdk):
    result = await sdk.embeddings.create(model="embed", input=["un", "deux", "un"])
    assert [d.index for d in result.data] == [0, 1, 2]
    assert len(result.data[0].embedding) == 256
    assert result.data[0].embedding == result.data[2].embedding  # deterministic
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens > 0


async def test_embeddings_base64_passthrough(sdk):
    # The SDK asks for base64 by default when numpy is absent; the option must reach upstream
    # untouched and the answer must decode.
    result = await sdk.embeddings.create(model="embed", input="un", dimensions=8)
    assert len(result.data[0].embedding) == 8


async def test_models(sdk):
    models = await sdk.models.list()
    assert {m.id for m in models.data} == {"chat", "embed"}


async def test_retrieve_model(sdk):
    assert (await sdk.models.retrieve("embed")).id == "embed"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("nope")


async def test_unknown_model_is_404(sdk):
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert info.value.param == "model"


async def test_bad_key_is_401(client):
    async with AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="fab-nope",
                           max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.models.list()
    assert info.value.code == "invalid_api_key"


async def test_embedding_model_refuses_chat(sdk):
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model="embed", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_supported"
