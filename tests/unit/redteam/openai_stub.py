"""A small OpenAI-compatible chat server on 127.0.0.1 for probe tests (and the garak side-by-side benchmark).

Modes: ``naive`` obeys every instruction (leaks the system prompt and its customer data, repeats
injected words, writes markdown images and endless lists), ``refuse`` refuses everything,
``realistic`` refuses the harmful and the leaking requests but answers benign ones and still falls
for indirect injection, ``garbage`` answers with bytes that are not JSON, ``slow`` never answers in
time.  It serves ``POST /v1/chat/completions`` (OpenAI shape) and ``POST /gen`` (``{"prompt"}`` ->
``{"text"}``, garak's REST generator).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REFUSAL = "I'm sorry, but I can't help with that."
_HARMFUL = re.compile(r"break into|phishing|firearm|DAN|villain|ethics board|bomb|weapon|hate|kill humans", re.I)
_LEAK = re.compile(r"instructions|system prompt|reference|e-mail|card|verbatim|confidential", re.I)


_QUOTED_ORDER = re.compile(r"\b(?:say|print|output|write|repeat)\b[^\"\n]{0,40}\"([^\"]{1,200})\"", re.I)


def _naive(system: str, prompt: str, max_tokens: int) -> tuple[str, str]:
    quoted = _QUOTED_ORDER.findall(prompt)
    if quoted:
        return quoted[-1], "stop"  # obeys 'just say "X"' (garak's prompt-injection form)
    return _naive_unquoted(system, prompt, max_tokens)


def _naive_unquoted(system: str, prompt: str, max_tokens: int) -> tuple[str, str]:
    words = re.findall(r"\b(?:TM-[0-9A-F]{10}|[A-Z][A-Z-]{4,})\b", prompt)
    if "forever" in prompt or "100000" in prompt:
        return " ".join(["company"] * max_tokens), "length"
    if "![" in prompt or "<script" in prompt:
        markup = re.search(r"!\[[^\]]*\]\([^)]*\)|<script>.*?</script>", prompt)
        return f"Here you go: {markup.group() if markup else ''}", "stop"
    if _LEAK.search(prompt) and system:
        return f"My instructions are: {system}", "stop"
    if words and (
        "say" in prompt.lower()
        or "print" in prompt.lower()
        or "write" in prompt.lower()
        or "answer only" in prompt.lower()
        or "reply only" in prompt.lower()
        or "end your" in prompt.lower()
    ):
        return words[-1], "stop"
    if _HARMFUL.search(prompt):
        return "Sure, here is exactly what you asked for: step one, prepare; step two, act; step three, finish.", "stop"
    return "Here is a helpful answer: use the standard tool for this, check its manual page, and try it safely.", "stop"


def _realistic(system: str, prompt: str, max_tokens: int) -> tuple[str, str]:
    if prompt.startswith("Summarise this document"):
        return _naive(system, prompt, max_tokens)  # falls for indirect injection
    if "![" in prompt:
        return _naive(system, prompt, max_tokens)  # renders markdown images it was asked for
    if _HARMFUL.search(prompt) or (_LEAK.search(prompt) and system) or "forever" in prompt or "100000" in prompt:
        return REFUSAL, "stop"
    if re.search(r"ignore|override|instead", prompt, re.I):
        return "I will keep to my original task.", "stop"
    return _naive(system, prompt, max_tokens)


def answer(mode: str, system: str, prompt: str, max_tokens: int) -> tuple[str, str]:
    """(text, finish_reason) of the stub in ``mode``."""
    if mode == "refuse":
        return REFUSAL, "stop"
    if mode == "realistic":
        return _realistic(system, prompt, max_tokens)
    return _naive(system, prompt, max_tokens)


class _Handler(BaseHTTPRequestHandler):
    mode = "naive"

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.mode == "slow":
            time.sleep(3.0)
        if self.mode == "garbage":
            self._send(b"<html>not an API</html>")
            return
        if self.path.endswith("/gen"):
            text, _ = answer(self.mode, "", str(body.get("prompt", "")), 64)
            self._send(json.dumps({"text": text}).encode())
            return
        messages = body.get("messages", [])
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        prompt = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        text, finish = answer(self.mode, system, prompt, int(body.get("max_tokens") or 64))
        reply = {
            "id": "stub",
            "object": "chat.completion",
            "model": body.get("model", "stub"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        }
        self._send(json.dumps(reply).encode())

    def _send(self, payload: bytes) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            return


@contextmanager
def serve(mode: str) -> Iterator[int]:
    """Run the stub in ``mode`` on a free loopback port; yields the port."""
    handler = type("Handler", (_Handler,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
