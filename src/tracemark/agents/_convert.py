"""Converters into the hash-chained trace format: OpenAI chat messages, MCP JSON-RPC logs, AgentDojo runs.

Each converter walks the conversation in order, records every message's digest and, for each tool
call, the provenance of its arguments (the earlier messages that contain each value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from tracemark._json import FrozenJSON, JSONObject, JSONValue
from tracemark.agents._provenance import ProvenanceIndex
from tracemark.agents._trace import SYSTEM, USER, Role, Trace, TraceBuilder
from tracemark.errors import AgentTraceError


def _text(content: object) -> str:
    """The text of a message's content: a string, or a list of parts (OpenAI ``text`` / AgentDojo ``content``)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                value = part.get("text", part.get("content"))
                if isinstance(value, str):
                    parts.append(value)
        return "\n".join(parts)
    if isinstance(content, Mapping):
        return json.dumps(content, sort_keys=True, ensure_ascii=False)
    return str(content)


def _arguments(raw: object, where: str) -> JSONObject:
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise AgentTraceError(f"{where}: tool call arguments are not JSON") from None
    if not isinstance(raw, dict):
        raise AgentTraceError(f"{where}: tool call arguments must be a JSON object")
    return raw


class _Recorder:
    """A trace builder and the provenance index that grows with it."""

    def __init__(self, delegate: Sequence[str] = ()) -> None:
        self.builder = TraceBuilder()
        self.index = ProvenanceIndex(delegate)
        self.calls: dict[str, tuple[int, str, Mapping[str, FrozenJSON]]] = {}

    def message(self, role: str, text: str) -> None:
        kind = {"system": Role.SYSTEM, "developer": Role.SYSTEM, "user": Role.USER}.get(role, Role.ASSISTANT)
        self.builder.add(kind, content=text)
        if kind is Role.SYSTEM:
            self.index.add(SYSTEM, text)
        elif kind is Role.USER:
            self.index.add(USER, text)

    def call(self, tool: str, arguments: Mapping[str, FrozenJSON], call_id: str | None) -> int:
        event = self.builder.add(
            Role.TOOL_CALL, tool=tool, arguments=arguments, provenance=self.index.of_arguments(arguments)
        )
        if call_id is not None:
            self.calls[call_id] = (event.seq, tool, arguments)
        return event.seq

    def result(self, call_id: str | None, text: str, tool: str | None = None, *, error: bool = False) -> None:
        seq, name, arguments = self.calls.get(call_id or "", (None, tool or "unknown", None))
        event = self.builder.add(
            Role.TOOL_RESULT, tool=name, result=text, call_seq=seq, labels=("error",) if error else ()
        )
        self.index.add(f"tool:{name}#{event.seq}", text, arguments=arguments)


def from_openai_messages(messages: Sequence[Mapping[str, object]], *, delegate: Sequence[str] = ()) -> Trace:
    """A trace from OpenAI chat messages (``tool_calls`` on assistant messages, ``tool`` results)."""
    recorder = _Recorder(delegate)
    for number, message in enumerate(messages):
        where = f"message {number}"
        role = str(message.get("role", ""))
        if role == "tool":
            recorder.result(_optional_str(message.get("tool_call_id")), _text(message.get("content")))
            continue
        text = _text(message.get("content"))
        if text or role != "assistant":
            recorder.message(role, text)
        for call in _list(message.get("tool_calls"), where):
            function = call.get("function")
            if not isinstance(function, Mapping):
                raise AgentTraceError(f"{where}: a tool call has no function")
            name = str(function.get("name", ""))
            recorder.call(name, _arguments(function.get("arguments"), where), _optional_str(call.get("id")))
    return recorder.builder.build()


def from_agentdojo_messages(messages: Sequence[Mapping[str, object]], *, delegate: Sequence[str] = ()) -> Trace:
    """A trace from an AgentDojo run's messages (``tool_calls`` of ``FunctionCall``, ``tool`` results)."""
    recorder = _Recorder(delegate)
    for number, message in enumerate(messages):
        where = f"message {number}"
        role = str(message.get("role", ""))
        if role == "tool":
            call = message.get("tool_call")
            call_map = call if isinstance(call, Mapping) else {}
            call_id = _optional_str(call_map.get("id")) or _optional_str(message.get("tool_call_id"))
            error = message.get("error")
            text = _text(message.get("content")) or (str(error) if error else "")
            recorder.result(call_id, text, _optional_str(call_map.get("function")), error=bool(error))
            continue
        text = _text(message.get("content"))
        if text or role != "assistant":
            recorder.message(role, text)
        for call in _list(message.get("tool_calls"), where):
            name = str(call.get("function", ""))
            recorder.call(name, _arguments(call.get("args"), where), _optional_str(call.get("id")))
    return recorder.builder.build()


def from_mcp_log(
    messages: Sequence[Mapping[str, object]], *, user_prompt: str | None = None, delegate: Sequence[str] = ()
) -> Trace:
    """A trace from MCP JSON-RPC messages (``tools/call`` requests and their responses), in order.

    Each item is a JSON-RPC message, or an object with the message under ``message`` (as proxies and
    inspectors log them).  ``user_prompt``, when known, is the user's request.
    """
    recorder = _Recorder(delegate)
    if user_prompt:
        recorder.message("user", user_prompt)
    for number, item in enumerate(messages):
        inner = item.get("message")
        message = inner if isinstance(inner, Mapping) else item
        method = message.get("method")
        request_id = message.get("id")
        key = None if request_id is None else json.dumps(request_id)
        if method == "tools/call":
            params = message.get("params")
            if not isinstance(params, Mapping):
                raise AgentTraceError(f"message {number}: tools/call without params")
            recorder.call(str(params.get("name", "")), _arguments(params.get("arguments"), f"message {number}"), key)
        elif method is None and key is not None and key in recorder.calls:
            result = message.get("result")
            if isinstance(result, Mapping):
                recorder.result(key, _text(result.get("content")), error=bool(result.get("isError")))
            else:
                recorder.result(key, json.dumps(message.get("error"), sort_keys=True), error=True)
    return recorder.builder.build()


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def _list(value: object, where: str) -> list[Mapping[str, JSONValue]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise AgentTraceError(f"{where}: tool_calls must be a list of objects")
    return value
