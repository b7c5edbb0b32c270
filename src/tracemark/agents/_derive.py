"""Least-privilege policies derived from the user's request and the tool schemas alone (Progent-style).

No model is asked.  Each tool is classified from its name, description and input schema: read-only,
or side-effecting (its first name word is an action verb: send, create, delete, update, ...; or it
takes a URL and so reaches the network).  A side-effecting tool is allowed only when the request asks
for its kind of action: a word of the request is one of the verb's synonyms *and* one names the
tool's object (money, e-mail, file, event, ...) or the tool's own words.  Arguments that name where
an action goes (recipients, IBANs, e-mail addresses, URLs, users, channels, participants) are target
arguments: the derived taint rule refuses a target value that came only from tool output which the
request did not point at.

The lexicon is plain English and the same for every request; it knows nothing of any benchmark.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from tracemark._json import JSONObject, JSONValue
from tracemark.agents._pin import ToolDefinition
from tracemark.agents._policy import POLICY_VERSION, Policy, policy_from_mapping

#: Action verbs of side-effecting tools, with the request words that ask for that action.
VERB_SYNONYMS: Mapping[str, frozenset[str]] = {
    "send": frozenset(
        {
            "send",
            "pay",
            "transfer",
            "email",
            "mail",
            "message",
            "forward",
            "reply",
            "tell",
            "share",
            "notify",
            "inform",
            "refund",
            "dm",
            "write",
            "post",
            "let",
        }
    ),
    "create": frozenset(
        {
            "create",
            "add",
            "schedule",
            "make",
            "book",
            "organize",
            "organise",
            "set",
            "new",
            "plan",
            "arrange",
            "put",
            "write",
            "save",
        }
    ),
    "add": frozenset({"add", "invite", "include", "put", "join", "create"}),
    "invite": frozenset({"invite", "add", "join"}),
    "delete": frozenset({"delete", "remove", "erase", "clear", "drop", "cancel"}),
    "remove": frozenset({"delete", "remove", "kick", "clear", "drop"}),
    "cancel": frozenset({"cancel", "delete", "remove", "call"}),
    "update": frozenset(
        {
            "update",
            "change",
            "modify",
            "edit",
            "set",
            "adjust",
            "move",
            "reschedule",
            "correct",
            "increase",
            "decrease",
            "fix",
        }
    ),
    "reschedule": frozenset({"reschedule", "move", "change", "postpone", "update", "shift"}),
    "schedule": frozenset({"schedule", "set", "recurring", "plan", "create", "add", "book"}),
    "reserve": frozenset({"reserve", "book", "reservation", "make"}),
    "book": frozenset({"book", "reserve", "reservation"}),
    "post": frozenset({"post", "publish", "upload", "share", "write"}),
    "append": frozenset({"append", "add", "write", "update", "put", "include"}),
    "share": frozenset({"share", "give", "grant", "send"}),
    "write": frozenset({"write", "save", "create", "put"}),
    "buy": frozenset({"buy", "purchase", "order", "pay"}),
    "order": frozenset({"order", "buy", "purchase"}),
    "pay": frozenset({"pay", "send", "transfer"}),
    "transfer": frozenset({"transfer", "send", "pay", "move"}),
    "set": frozenset({"set", "change", "update"}),
    "change": frozenset({"change", "update", "modify", "set"}),
    "upload": frozenset({"upload", "post", "share"}),
    "run": frozenset({"run", "execute", "start"}),
    "execute": frozenset({"run", "execute"}),
}
#: Object words of tool names, with request words that mean the same object.
OBJECT_SYNONYMS: Mapping[str, frozenset[str]] = {
    "money": frozenset(
        {
            "money",
            "pay",
            "payment",
            "bill",
            "rent",
            "transaction",
            "refund",
            "amount",
            "iban",
            "transfer",
            "owe",
            "€",
            "$",
            "eur",
            "usd",
            "£",
        }
    ),
    "transaction": frozenset({"transaction", "payment", "pay", "rent", "bill", "transfer", "recurring", "standing"}),
    "email": frozenset({"email", "e-mail", "mail", "reply", "forward", "send", "message", "inbox", "@"}),
    "message": frozenset({"message", "dm", "tell", "send", "write", "post", "reply", "notify"}),
    "event": frozenset(
        {
            "event",
            "meeting",
            "calendar",
            "appointment",
            "lunch",
            "dinner",
            "reminder",
            "breakfast",
            "party",
            "workshop",
            "conference",
        }
    ),
    "calendar": frozenset({"calendar", "event", "meeting", "appointment"}),
    "file": frozenset({"file", "document", "doc", "drive", "spreadsheet", "list", "notes", "report", "attachment"}),
    "hotel": frozenset({"hotel", "room", "stay", "accommodation"}),
    "restaurant": frozenset({"restaurant", "table", "dinner", "lunch", "eat"}),
    "car": frozenset({"car", "rental", "vehicle"}),
    "user": frozenset({"user", "member", "colleague", "people", "person", "everyone"}),
    "channel": frozenset({"channel", "slack", "group"}),
    "webpage": frozenset({"webpage", "website", "page", "url", "http", "www", "link", "blog", "site"}),
    "password": frozenset({"password", "passcode", "credentials"}),
    "info": frozenset({"info", "information", "address", "details", "profile", "account"}),
    "participants": frozenset({"participant", "participants", "invite", "add", "attendee", "attendees"}),
}
_READ_VERBS = frozenset({"get", "list", "search", "read", "find", "check", "view", "show", "lookup", "query",
                         "fetch", "download", "count", "describe", "retrieve"})  # fmt: skip
_TARGET_NAMES = re.compile(
    r"recipient|^to$|email|iban|account|^url$|^user$|user_?name|channel|participant|address|phone|^cc$|^bcc$|recipients",
    re.IGNORECASE,
)
#: Requests that delegate to instructions found in data.
DELEGATION = re.compile(
    r"follow (the|its|their|those) instructions|(do|perform|complete|carry out) (all )?the (actions|tasks|steps|"
    r"things)|(actions|tasks|steps) (specified|listed|described|mentioned) in|on my (todo|to-do) list",
    re.IGNORECASE,
)
#: Sources the derived taint rules trust: the user, the system, plain tool output and delegated output.
_TRUSTED = ("user", "system", "tool:*#*[0-9]", "tool:*!delegated")
_URL_ARGUMENT = re.compile(r"url|link|uri|webhook|endpoint|host", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9€$£@]+|[€$£@]")


def _words(text: str) -> set[str]:
    words = set(_WORD.findall(text.lower()))
    # crude plural and tense folding so that "events", "booked" and "invites" match their stems
    for word in list(words):
        for suffix in ("s", "es", "ed", "ing"):
            if word.endswith(suffix) and len(word) > len(suffix) + 2:
                words.add(word[: -len(suffix)])
    return words | {char for char in "€$£@" if char in text}


def _name_words(name: str) -> list[str]:
    return [part for part in re.split(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])", name.lower()) if part]


def _properties(tool: ToolDefinition) -> list[str]:
    properties = tool.input_schema.get("properties")
    return [str(key) for key in properties] if isinstance(properties, Mapping) else []


def _side_effecting_name(name: str) -> bool:
    words = _name_words(name)
    return bool(words) and words[0] not in _READ_VERBS


def is_side_effecting(tool: ToolDefinition) -> bool:
    """Whether a tool changes something or reaches outside: its name does not start with a read verb."""
    return _side_effecting_name(tool.name)


def _verb_matches(prompt_words: set[str], name: str) -> bool:
    verb = _name_words(name)[0]
    return bool(prompt_words & VERB_SYNONYMS.get(verb, frozenset({verb})))


def _object_matches(prompt_words: set[str], name: str) -> bool:
    wanted: set[str] = set()
    for word in _name_words(name)[1:]:
        wanted |= OBJECT_SYNONYMS.get(word, frozenset()) | {word}
    return bool(prompt_words & wanted)


def requested_tool_names(request: str, names: Sequence[str]) -> set[str]:
    """The side-effecting tools (by name) a request asks for: the verb must match; among the tools whose
    verb matches, those whose object matches too, or all of them when none does."""
    words = _words(request)
    candidates = [name for name in names if _side_effecting_name(name) and _verb_matches(words, name)]
    exact = {name for name in candidates if _object_matches(words, name)}
    return exact or set(candidates)


def requested_tools(prompt: str, tools: Sequence[ToolDefinition]) -> set[str]:
    """The side-effecting tools a request asks for (:func:`requested_tool_names` over the tools' names)."""
    return requested_tool_names(prompt, [tool.name for tool in tools])


#: What a delegating request names as the source to follow: quoted names, URLs and host paths, e-mail
#: addresses, file names.
_RESOURCE = re.compile(
    r"'([^'\n]{2,120})'|\"([^\"\n]{2,120})\"|((?:https?://|www\.)[^\s'\"<>)]+[^\s'\"<>).,;!?])"
    r"|([\w.+-]+@[\w-]+(?:\.[\w-]+)+)|(?<![\w/])([\w-]+\.(?:txt|md|pdf|docx?|xlsx?|csv|json|ya?ml|html?))\b"
)


def delegated_resources(prompt: str) -> tuple[str, ...]:
    """The resources a request hands its authority to ("follow the instructions in 'notes.txt'", "do the
    tasks on my list at www.example.com/todo"): empty unless the request delegates."""
    if not DELEGATION.search(prompt):
        return ()
    found = (next(group for group in match.groups() if group) for match in _RESOURCE.finditer(prompt))
    return tuple(dict.fromkeys(found))


def target_arguments(tool: ToolDefinition) -> list[str]:
    """The arguments that say where an action goes (who gets the money, the mail, the invitation)."""
    return [name for name in _properties(tool) if _TARGET_NAMES.search(name)]


def _taint_rules(tool: ToolDefinition) -> list[JSONValue]:
    """Two rules per allowed side-effecting tool: no argument value (nor address inside prose) that only
    injected instructions carry, and no target that only instructions or the model itself came up with."""
    rules: list[JSONValue] = []
    rules.append(
        {
            "name": f"instructed-{tool.name}",
            "sinks": [tool.name],
            "untrusted": ["tool:*!instruction"],
            "trusted": list(_TRUSTED),
        }
    )
    targets = target_arguments(tool)
    if targets:
        rules.append(
            {
                "name": f"target-{tool.name}",
                "sinks": [tool.name],
                "args": list(targets),
                "untrusted": ["tool:*!instruction", "model"],
                "trusted": list(_TRUSTED),
            }
        )
    return rules


def derive_policy_document(prompt: str, tools: Sequence[ToolDefinition], *, name: str = "derived") -> JSONObject:
    """The policy document (as it would be written to a file) for one request."""
    wanted = requested_tools(prompt, tools)
    # A request that hands its authority to data ("follow the instructions in the file") names no action
    # the allowlist could be derived from: the other side-effecting tools are asked about, not refused,
    # and become allowed when the named source, once read, asks for them (``delegate``).
    delegating = DELEGATION.search(prompt) is not None
    resources = delegated_resources(prompt)
    refused = "ask" if delegating else "deny"
    tool_rules: dict[str, JSONValue] = {}
    taint: list[JSONValue] = []
    for tool in tools:
        side_effect = is_side_effecting(tool)
        allowed = not side_effect or tool.name in wanted
        tool_rules[tool.name] = {"side_effect": side_effect, "decision": "allow" if allowed else refused}
        if side_effect and (allowed or delegating):
            taint.extend(_taint_rules(tool))
        elif any(_URL_ARGUMENT.search(arg) for arg in _properties(tool)):
            # A read that reaches the network is an egress channel: no URL that only instructions gave.
            taint.append(
                {
                    "name": f"instructed-{tool.name}",
                    "sinks": [tool.name],
                    "untrusted": ["tool:*!instruction"],
                    "trusted": list(_TRUSTED),
                }
            )
    document: JSONObject = {"version": POLICY_VERSION, "name": name, "default": "deny", "tools": tool_rules}
    if resources:
        document["delegate"] = list(resources)
    # ``ask``, not ``deny``: a benign message with request language ("you must send the report by Friday")
    # is an instruction span too, and an answer that summarises it repeats it; the user is there to see it.
    document["instructed_answer"] = "ask"
    document["taint"] = taint
    return document


def derive_policy(prompt: str, tools: Sequence[ToolDefinition], *, name: str = "derived") -> Policy:
    """A least-privilege policy for one request, from the request and the tool schemas only."""
    return policy_from_mapping(derive_policy_document(prompt, tools, name=name))


def _toml_value(value: JSONValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def policy_to_toml(document: JSONObject) -> str:
    """A policy document (as :func:`derive_policy_document` makes) as a TOML policy file."""
    lines = ["# Derived by tracemark from the user's request and the tool schemas; review before use."]
    tables = {
        key: value
        for key, value in document.items()
        if key != "tools"
        and (isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)))
    }
    for key, value in document.items():
        if key not in tables and key != "tools":
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    tools = document.get("tools")
    for name, rule in (tools if isinstance(tools, dict) else {}).items():
        lines.append(f"\n[tools.{_toml_key(name)}]")
        for key, value in (rule if isinstance(rule, dict) else {}).items():
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"\n[[{_toml_key(key)}]]")
            for inner, inner_value in (item if isinstance(item, dict) else {}).items():
                lines.append(f"{_toml_key(inner)} = {_toml_value(inner_value)}")
    return "\n".join(lines) + "\n"
