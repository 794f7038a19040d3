"""llm_memo with DSPy: a dspy.Predict program whose LM calls use llm_memo as DSPy's cache.

Runs offline (``pip install '.[dspy]'``): the LM is ``dspy.LM`` talking to a tiny
OpenAI-compatible server started on a loopback port below, which stands in for OpenAI, vLLM
or Ollama. Point ``api_base`` at your server (or drop it for OpenAI) and nothing else changes.

The cache is llm_memo's default disk cache in your user cache directory (put a
``"redis://..."`` or ``"s3://..."`` URL in ``configure_cache`` to share it between machines):
within one run the repeated question is answered from it, and a second run of the script
sends no request.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dspy

from llm_memo.integrations.dspy import configure_cache

requests_served = 0


class ChatServer(BaseHTTPRequestHandler):
    """Stands in for an OpenAI-compatible /v1/chat/completions endpoint."""

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        global requests_served
        requests_served += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        content = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"
        reply = {
            "id": f"chatcmpl-{requests_served}",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 120, "completion_tokens": 9, "total_tokens": 129},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    # DSPy refreshes its model price list from the network on first use; its bundled copy
    # will do here.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "true")
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cache = configure_cache(ttl=7 * 24 * 3600)  # llm_memo is now dspy.cache
        lm = dspy.LM(
            "openai/gpt-4o-mini",
            api_base=f"http://127.0.0.1:{server.server_address[1]}/v1",
            api_key="sk-example",  # never part of a key, never stored
            temperature=0.7,
        )
        predict = dspy.Predict("question -> answer")
        with dspy.context(lm=lm):
            for attempt in (1, 2):
                answer = predict(question="What is the capital of France?").answer
                print(f"call {attempt}: {answer!r}  (requests sent so far: {requests_served})")
            # A new rollout_id is a new entry: DSPy's way to sample again at temperature > 0.
            predict(question="What is the capital of France?", config={"rollout_id": 1})
        stats = cache.stats()
        print(f"stats: hits={stats.hits} misses={stats.misses} tokens_saved={stats.tokens_saved}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


if __name__ == "__main__":
    main()
