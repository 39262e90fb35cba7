"""Every string a request carries is found, in a stable order, and can be rewritten."""

from __future__ import annotations

import json

import orjson

from fabrique.policy.fields import Reencode, Slot, Uninspectable, walk


def texts(body):
    out = []
    for item in walk(body):
        if isinstance(item, Slot):
            out.append(item.text)
        elif isinstance(item, Uninspectable):
            out.append(f"<{item.what}@{item.where}>")
    return out


def test_chat_fields():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "name": "alice", "content": [
                {"type": "text", "text": "part"},
                {"type": "image_url", "image_url": {"url": "data:,"}, "text": ""}]},
            {"role": "assistant", "content": None, "reasoning_content": "thought",
             "tool_calls": [{"id": "1", "type": "function",
                             "function": {"name": "f", "arguments": "{\"a\": \"Fran\\u00e7ois\"}"}}]},
            {"role": "assistant", "function_call": {"name": "g", "arguments": "not json"}},
            {"role": "tool", "tool_call_id": "1", "content": "result"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "f", "description": "tool doc", "parameters": {
                "type": "object", "properties": {"kind": {"enum": ["a"], "examples": [{"x": "ex"}]}}}}}],
        "stop": ["STOP"], "user": "u-1", "metadata": {"k": {"deep": "v"}, "n": 1},
        "temperature": 0.2, "logit_bias": {"50256": -100},
    }
    assert texts(body) == [
        "sys", "alice", "part", "<image_url@messages[1].content[1]>", "thought", "f", "François",
        "g", "not json", "result", "f", "tool doc", "a", "ex", "STOP", "u-1", "v"]


def test_prompts_given_as_token_ids_cannot_be_read():
    assert texts({"prompt": ["a", "b"], "suffix": "s"}) == ["a", "b", "s"]
    assert texts({"prompt": [[1, 2], [3]]}) == ["<token ids@prompt>"]
    assert texts({"input": "x"}) == ["x"]
    assert texts({"input": [1, 2, 3]}) == ["<token ids@input>"]


def test_nesting_too_deep_is_uninspectable_not_skipped():
    deep: dict = {"leaf": "secret"}
    for _ in range(300):
        deep = {"d": deep}
    assert texts({"metadata": deep})[-1].startswith("<nesting too deep to follow@metadata.d.d")


def test_json_strings_are_walked_decoded_and_encoded_again():
    body = {"messages": [{"role": "tool", "content": json.dumps({"name": "Hélène"})}]}
    items = list(walk(body))
    slot = next(i for i in items if isinstance(i, Slot))
    assert slot.text == "Hélène"
    slot.parent[slot.key] = "«PERSON_1»"
    for item in items:
        if isinstance(item, Reencode):
            item.write()
    assert orjson.loads(body["messages"][0]["content"]) == {"name": "«PERSON_1»"}


def test_slots_write_back_into_the_body():
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
    for item in walk(body):
        assert isinstance(item, Slot)
        item.parent[item.key] = item.text.upper()
    assert body["messages"][0]["content"][0]["text"] == "HELLO"


def test_odd_shapes_are_walked_not_crashed():
    body = {"messages": ["x", {"content": 3}, {"content": [None, 5, "y"]}], "tools": "no",
            "metadata": [], "response_format": {"json_schema": {"a": [{"description": 1}]}}}
    assert texts(body) == ["x", "y", "no"]


def test_a_content_part_with_an_odd_type_is_uninspectable_not_a_crash():
    body = {"messages": [{"role": "user", "content": [{"type": ["text"], "text": "x"},
                                                      {"type": None, "text": "y"}]}]}
    assert texts(body) == ["<['text']@messages[0].content[0]>", "<None@messages[0].content[1]>"]
