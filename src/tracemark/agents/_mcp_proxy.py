"""An MCP proxy that enforces a policy on every ``tools/call`` and pins the server's tools.

It sits between an MCP client and a server and speaks JSON-RPC 2.0 on both sides, so it works with
any client and server (tested with the ``mcp`` SDK's client and server):

* ``tools/list`` answers are checked against the lock file; on any drift (edit, widening, rename,
  shadowing, addition) the answer is replaced by an error and every later ``tools/call`` is refused:
  the proxy fails closed.  With a lock, calls are refused until the tools have been listed and checked,
  and again after the server announces ``notifications/tools/list_changed``.
* ``tools/call`` requests are decided by the policy (with the provenance of each argument from the user
  prompt given to the proxy and the results of earlier calls); a refused call is answered by the proxy
  with ``isError: true`` and the rule, and never reaches the server.
* Every call and result goes into a hash-chained trace, written when the session ends.

:class:`McpPolicyFilter` is the transport-free core; :func:`run_stdio_proxy` runs it over stdio
(the server is a child process) and
:func:`serve_http_proxy` over streamable HTTP (the server is a URL).
"""

from __future__ import annotations

import http.client
import http.server
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from tracemark._json import FrozenJSON, JSONObject, JSONValue
from tracemark.agents._checker import Decision, PolicyChecker
from tracemark.agents._pin import ToolLock, diff_tools, tools_from_list_result
from tracemark.agents._policy import Policy, Verdict
from tracemark.agents._trace import USER, Role, Trace, TraceBuilder
from tracemark.errors import ToolPinError

#: JSON-RPC error code the proxy answers a drifted ``tools/list`` with (implementation-defined range).
PIN_DRIFT_ERROR = -32001


@dataclass
class McpPolicyFilter:
    """The proxy's decisions, independent of the transport."""

    policy: Policy
    lock: ToolLock | None = None
    server: str = ""
    user_prompt: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._checker = PolicyChecker(self.policy)
        self._index = self._checker.provenance_index()
        self._trace = TraceBuilder()
        self._pending_lists: set[str] = set()
        self._pending_calls: dict[str, tuple[str, int, Mapping[str, FrozenJSON]]] = {}
        self._verified = self.lock is None
        self._lock = threading.Lock()
        if self.user_prompt:
            self._index.add(USER, self.user_prompt)
            self._trace.add(Role.USER, content=self.user_prompt)

    @property
    def trace(self) -> Trace:
        with self._lock:
            return self._trace.build()

    def client_message(self, message: JSONObject) -> tuple[JSONObject | None, JSONObject | None]:
        """A message from the client: (what to forward to the server, what to answer the client directly)."""
        method = message.get("method")
        key = json.dumps(message.get("id")) if "id" in message else None
        with self._lock:
            if method == "tools/list" and key is not None:
                self._pending_lists.add(key)
            if method != "tools/call" or key is None:
                return message, None
            params = message.get("params")
            params = params if isinstance(params, dict) else {}
            tool = str(params.get("name", ""))
            raw = params.get("arguments")
            arguments: dict[str, FrozenJSON] = dict(raw) if isinstance(raw, dict) else {}
            refusal = self._refusal(tool, arguments)
            if refusal is not None:
                return None, self._error_result(message.get("id"), refusal)
            provenance = self._index.of_arguments(arguments)
            event = self._trace.add(Role.TOOL_CALL, tool=tool, arguments=arguments, provenance=provenance)
            self._pending_calls[key] = (tool, event.seq, arguments)
            self._checker.record(tool)
            return message, None

    def _refusal(self, tool: str, arguments: Mapping[str, FrozenJSON]) -> str | None:
        if self.drift:
            return f"refused: the server's tools drifted from the lock file ({self.drift[0]})"
        if not self._verified:
            return "refused: the server's tools have not been listed and checked against the lock file yet"
        provenance = self._index.of_arguments(arguments)
        decision = self._checker.decide(tool, arguments, provenance)
        self.decisions.append(decision)
        if decision.verdict is Verdict.ALLOW:
            return None
        self._trace.add(
            Role.TOOL_CALL, tool=tool, arguments=arguments, provenance=provenance, labels=(decision.verdict.value,)
        )
        return f"tool call {tool} {decision.verdict}: {decision.reason} (rule {decision.rule})"

    @staticmethod
    def _error_result(request_id: JSONValue, text: str) -> JSONObject:
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": {"content": [{"type": "text", "text": text}], "isError": True},
        }

    def server_message(self, message: JSONObject) -> JSONObject:
        """A message from the server: what to pass on to the client."""
        key = json.dumps(message.get("id")) if "id" in message and "method" not in message else None
        with self._lock:
            if message.get("method") == "notifications/tools/list_changed" and self.lock is not None:
                # The tools may have changed: refuse calls until the client lists and the pins are checked.
                self._verified = False
            if key is not None and key in self._pending_lists:
                self._pending_lists.discard(key)
                return self._checked_list(message)
            if key is not None and key in self._pending_calls:
                tool, seq, arguments = self._pending_calls.pop(key)
                result = message.get("result")
                text = _result_text(result)
                event = self._trace.add(Role.TOOL_RESULT, tool=tool, result=text, call_seq=seq)
                delegated = self._index.add(f"tool:{tool}#{event.seq}", text, arguments=arguments)
                if delegated is not None:
                    self._checker.grant(delegated)
        return message

    def _checked_list(self, message: JSONObject) -> JSONObject:
        result = message.get("result")
        if self.lock is None or not isinstance(result, dict):
            return message
        try:
            offered = tools_from_list_result(result, self.server)
        except ToolPinError as exc:
            self.drift.append(str(exc))
        else:
            if result.get("nextCursor"):
                self.drift.append("paginated tools/list is not supported by the pin check")
            for drift in diff_tools(self.lock, offered):
                if drift.kind != "removed":
                    self.drift.append(f"{drift.kind} {drift.name}: {drift.detail}")
        if self.drift:
            error: JSONObject = {"code": PIN_DRIFT_ERROR, "message": f"tool pin drift: {'; '.join(self.drift)}"}
            return {"jsonrpc": "2.0", "id": message.get("id"), "error": error}
        self._verified = True
        return message


def _result_text(result: JSONValue) -> str:
    if isinstance(result, dict):
        parts = []
        content = result.get("content")
        for item in content if isinstance(content, list) else []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(str(item["text"]))
        structured = result.get("structuredContent")
        if structured is not None:
            parts.append(json.dumps(structured, sort_keys=True))
        return "\n".join(parts)
    return json.dumps(result, sort_keys=True)


def _parse(line: bytes) -> JSONObject | list[JSONValue] | None:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict | list) else None


class _Writer:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message: JSONValue) -> None:
        data = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        with self.lock:
            self.stream.write(data)
            self.stream.flush()


def _pump_server(filter_: McpPolicyFilter, source: IO[bytes], client: _Writer) -> None:
    for line in iter(source.readline, b""):
        message = _parse(line)
        if isinstance(message, dict):
            client.send(filter_.server_message(message))
        elif isinstance(message, list):
            client.send([filter_.server_message(m) if isinstance(m, dict) else m for m in message])


def run_stdio_proxy(
    filter_: McpPolicyFilter,
    command: Sequence[str],
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    trace_path: str | Path | None = None,
) -> int:
    """Run the server ``command`` as a child and proxy newline-delimited JSON-RPC between it and stdio."""
    client_in = stdin or sys.stdin.buffer
    client = _Writer(stdout or sys.stdout.buffer)
    child = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    if child.stdin is None or child.stdout is None:  # pipes were asked for
        raise OSError("the MCP server's pipes are missing")
    server = _Writer(child.stdin)
    pump = threading.Thread(target=_pump_server, args=(filter_, child.stdout, client), daemon=True)
    pump.start()
    try:
        for line in iter(client_in.readline, b""):
            message = _parse(line)
            if message is None:
                continue  # not JSON-RPC: dropped, never passed on unread
            forward, replies = _filter_messages(filter_, message)
            if replies:
                batch: list[JSONValue] = [*replies]
                client.send(batch if isinstance(message, list) else replies[0])
            if forward is not None:
                server.send(forward)
    except BrokenPipeError:
        pass
    finally:
        if child.stdin and not child.stdin.closed:
            child.stdin.close()
        try:
            status = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.terminate()
            status = child.wait()
        pump.join(timeout=5)
        if trace_path is not None:
            filter_.trace.write(trace_path)
    return status


# -- streamable HTTP ----------------------------------------------------------------------------------
#: Request headers passed on to the server (and response headers passed back to the client).
_FORWARD_REQUEST = (
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "authorization",
    "last-event-id",
)
_FORWARD_RESPONSE = ("content-type", "mcp-session-id", "mcp-protocol-version")
#: Largest request body the proxy reads (bytes).
MAX_HTTP_BODY = 4 * 1024 * 1024


def _batch_refusal(message: JSONObject) -> JSONObject:
    error: JSONObject = {"code": -32600, "message": "refused: tools/call inside a JSON-RPC batch; send it alone"}
    return {"jsonrpc": "2.0", "id": message.get("id"), "error": error}


def _filter_messages(
    filter_: McpPolicyFilter, parsed: JSONObject | list[JSONValue]
) -> tuple[JSONValue | None, list[JSONObject]]:
    """(what to forward, or None; the answers the proxy gives itself) for one message or a batch.

    A ``tools/call`` inside a batch is refused outright (MCP no longer has batches; deciding part of one
    would answer some requests here and some there), the batch's other messages pass as usual."""
    if isinstance(parsed, dict):
        out, reply = filter_.client_message(parsed)
        return out, [reply] if reply is not None else []
    forward: list[JSONValue] = []
    replies: list[JSONObject] = []
    for message in parsed:
        if not isinstance(message, dict):
            continue
        if message.get("method") == "tools/call":
            replies.append(_batch_refusal(message))
            continue
        out, reply = filter_.client_message(message)
        if out is not None:
            forward.append(out)
        if reply is not None:
            replies.append(reply)
    return (forward or None), replies


def _filter_body(filter_: McpPolicyFilter, body: bytes) -> tuple[bytes | None, list[JSONObject], bool]:
    """(the body to forward, or None; the answers the proxy gives itself; whether it was a batch)."""
    parsed = _parse(body)
    if parsed is None:
        return None, [], False
    forward, replies = _filter_messages(filter_, parsed)
    data = None if forward is None else json.dumps(forward, separators=(",", ":")).encode("utf-8")
    return data, replies, isinstance(parsed, list)


def _filter_server_json(filter_: McpPolicyFilter, data: bytes) -> bytes:
    parsed = _parse(data)
    if isinstance(parsed, dict):
        return json.dumps(filter_.server_message(parsed), separators=(",", ":")).encode("utf-8")
    if isinstance(parsed, list):
        items = [filter_.server_message(m) if isinstance(m, dict) else m for m in parsed]
        return json.dumps(items, separators=(",", ":")).encode("utf-8")
    return data


def _filter_sse_line(filter_: McpPolicyFilter, line: bytes) -> bytes:
    if line.startswith(b"data:"):
        payload = line[5:].strip()
        if payload:
            return b"data: " + _filter_server_json(filter_, payload) + b"\n"
    return line


class _McpHttpHandler(http.server.BaseHTTPRequestHandler):
    """Proxies MCP streamable HTTP to :attr:`upstream` through :attr:`policy_filter`."""

    protocol_version = "HTTP/1.1"
    policy_filter: McpPolicyFilter
    upstream: str

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the proxy's trace is its record."""

    def _reply_json(self, status: int, value: JSONValue) -> None:
        data = json.dumps(value, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, response: http.client.HTTPResponse | urllib.error.HTTPError) -> None:
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for line in iter(response.readline, b""):
            self.wfile.write(_filter_sse_line(self.policy_filter, line))
            if line in {b"\n", b"\r\n"}:
                self.wfile.flush()
        self.close_connection = True

    def _forward(self, method: str, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() in _FORWARD_REQUEST}
        request = urllib.request.Request(self.upstream, data=body, headers=headers, method=method)
        try:
            response = urllib.request.urlopen(request, timeout=300)
        except urllib.error.HTTPError as error:
            response = error
        with response:
            kind = response.headers.get("Content-Type", "")
            self.send_response(response.status)
            for key, value in response.headers.items():
                if key.lower() in _FORWARD_RESPONSE:
                    self.send_header(key, value)
            if kind.startswith("text/event-stream"):
                self._stream(response)
                return
            data = response.read()
            if kind.startswith("application/json"):
                data = _filter_server_json(self.policy_filter, data)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_HTTP_BODY:
            self._reply_json(413, {"error": f"request body over {MAX_HTTP_BODY} bytes"})
            return
        forward, replies, batch = _filter_body(self.policy_filter, self.rfile.read(length))
        if replies:
            # Refused calls are answered here and never reach the server (a batch's other requests are
            # refused with them: one HTTP answer cannot come from both the proxy and the server).
            if forward is not None:
                parsed = _parse(forward)
                others = parsed if isinstance(parsed, list) else [parsed]
                replies += [_batch_refusal(m) for m in others if isinstance(m, dict) and "id" in m]
            self._reply_json(200, list(replies) if batch else replies[0])
            return
        if forward is None:
            self._reply_json(400, {"error": "the request body is not JSON-RPC"})
            return
        self._forward("POST", forward)

    def do_GET(self) -> None:
        self._forward("GET", None)

    def do_DELETE(self) -> None:
        self._forward("DELETE", None)


def serve_http_proxy(
    policy_filter: McpPolicyFilter, upstream: str, host: str = "127.0.0.1", port: int = 0
) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server proxying streamable HTTP to ``upstream`` (call ``serve_forever`` on it)."""
    handler = type("McpProxyHandler", (_McpHttpHandler,), {"policy_filter": policy_filter, "upstream": upstream})
    return http.server.ThreadingHTTPServer((host, port), handler)
