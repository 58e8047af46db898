"""A stand-in for an upstream LLM provider during scripts/contract: the OpenAI wire format
(JSON answers with `usage`, SSE for `stream: true`), so the AI gateway's operations can be
tested end to end. Usage: fake_openai.py PORT (serves until killed)."""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def usage():
    return {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class Provider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self.answer(200, {"object": "list", "data": [
                {"id": "gpt-test", "object": "model", "created": 0, "owned_by": "test"}]})
        else:
            self.answer(404, {"error": {"message": "no such path", "type": "invalid_request_error"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            request = {}
        model = request.get("model", "gpt-test") if isinstance(request, dict) else "gpt-test"
        now = int(time.time())
        if self.path.endswith("/embeddings"):
            self.answer(200, {"object": "list", "model": model, "usage": usage(),
                              "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]})
            return
        chat = self.path.endswith("/chat/completions")
        if isinstance(request, dict) and request.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            chunk = {"id": "cmpl-1", "object": "chat.completion.chunk" if chat else "text_completion",
                     "created": now, "model": model,
                     "choices": [{"index": 0, "delta": {"content": "hi"}} if chat else
                                 {"index": 0, "text": "hi"}]}
            last = dict(chunk, choices=[], usage=usage())
            for event in (chunk, last):
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True
            return
        choice = ({"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
                  if chat else {"index": 0, "text": "hi", "finish_reason": "stop"})
        self.answer(200, {"id": "cmpl-1", "object": "chat.completion" if chat else "text_completion",
                          "created": now, "model": model, "choices": [choice], "usage": usage()})


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Provider).serve_forever()
