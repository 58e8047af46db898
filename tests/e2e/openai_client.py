#!/usr/bin/env python3
"""Drives Keygate's AI gateway with the official `openai` package, unchanged: the base URL is
Keygate's /v1 and the API key is a Keygate key. Prints one JSON object with what it saw, for
the Rust test `gateway_e2e` to check.

Usage: openai_client.py BASE_URL API_KEY
"""

import json
import sys

import openai


def main() -> None:
    base_url, api_key = sys.argv[1], sys.argv[2]
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    seen = {}

    chat = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
    )
    seen["chat"] = chat.choices[0].message.content
    seen["chat_usage_total"] = chat.usage.total_tokens if chat.usage else None

    parts = []
    for chunk in client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    seen["stream"] = "".join(parts)

    usage_total = None
    for chunk in client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage:
            usage_total = chunk.usage.total_tokens
    seen["stream_usage_total"] = usage_total

    embedding = client.embeddings.create(model="embed-test", input="a sentence")
    seen["embedding"] = embedding.data[0].embedding

    seen["models"] = [m.id for m in client.models.list()]

    bad = openai.OpenAI(base_url=base_url, api_key="kg_live_notakey", max_retries=0)
    try:
        bad.models.list()
        seen["bad_key"] = "accepted"
    except openai.AuthenticationError as error:
        seen["bad_key"] = {"status": error.status_code, "code": error.body.get("code") if isinstance(error.body, dict) else None}

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
