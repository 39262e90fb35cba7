"""Every place text enters a request is found, in a stable order, and can be rewritten."""

from __future__ import annotations

from fabrique.policy.fields import Slot, Uninspectable, walk


def texts(body, endpoint="chat/completions"):
    return [item.text if isinstance(item, Slot) else f"<{item.what}@{item.where}>"
            for item in walk(body, endpoint)]


def test_chat_fields():
    body = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "name": "alice", "content": [
                {"type": "text", "text": "part"},
                {"type": "image_url", "image_url": {"url": "data:,"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "assistant", "function_call": {"name": "g", "arguments": "{}"}},
            {"role": "tool", "tool_call_id": "1", "content": "result"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "f", "description": "tool doc", "parameters": {
                "type": "object", "properties": {
                    "description": {"type": "string", "description": "a field named description"},
                    "kind": {"enum": ["a", "b"], "default": "a"}}}}}],
        "response_format": {"type": "json_schema", "json_schema": {"schema": {"title": "T"}}},
        "prediction": {"type": "content", "content": "pred"},
        "user": "u-1", "metadata": {"k": "v", "n": 1},
        "temperature": 0.2, "model": "not scanned",
    }
    assert texts(body) == [
        "sys", "part", "<image_url@messages[1].content[1]>", "alice", "{\"a\":1}", "{}", "result",
        "tool doc", "a field named description", "a", "b", "a", "pred", "T", "u-1", "v"]
    args = [i for i in walk(body, "chat/completions") if isinstance(i, Slot) and i.json]
    assert [a.text for a in args] == ["{\"a\":1}", "{}"]


def test_completions_and_embeddings():
    assert texts({"prompt": ["a", "b"], "suffix": "s"}, "completions") == ["a", "b", "s"]
    assert texts({"prompt": [[1, 2], [3]]}, "completions") == ["<token ids@prompt[0]>"]
    assert texts({"input": "x"}, "embeddings") == ["x"]
    assert texts({"input": [1, 2, 3]}, "embeddings") == ["<token ids@input[0]>"]


def test_slots_write_back_into_the_body():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
    for item in walk(body, "chat/completions"):
        assert isinstance(item, Slot)
        item.parent[item.key] = item.text.upper()
    assert body["messages"][0]["content"][0]["text"] == "HELLO"


def test_malformed_shapes_are_skipped_not_crashed():
    body = {"messages": ["x", {"content": 3}, {"content": [None, 5]}], "tools": "no",
            "metadata": [], "response_format": {"json_schema": {"a": [{"description": 1}]}}}
    assert texts(body) == []
    assert all(not isinstance(i, Uninspectable) for i in walk({}, "embeddings"))
