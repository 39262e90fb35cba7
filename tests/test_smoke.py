async def test_chat_roundtrip(client, auth):
    resp = await client.post("/v1/chat/completions", headers=auth,
                             json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == 200
    body = await resp.json()
    assert body["model"] == "chat"
    assert body["choices"][0]["message"]["content"].startswith("[simulated]")
