"""``tracemark agents``: check traces against policies, proxy MCP servers, pin and lint tools, audit
gateways, certify agent configurations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tracemark._fs import atomic_write_bytes
from tracemark.cli._common import add_json_flag, emit, read_text_input
from tracemark.cli._report import add_report_options, write_report
from tracemark.errors import AgentError, InvalidInputError
from tracemark.report import Report, Tool

if TYPE_CHECKING:
    from tracemark.agents import McpPolicyFilter

_LINT_TOOL = Tool("tracemark", "tracemark agents lint")
_AUDIT_TOOL = Tool("tracemark", "tracemark agents audit")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agents`` and its verbs."""
    parser = subparsers.add_parser(
        "agents", help="agent guard: policies, traces, MCP proxy, tool pins, gateway audit, certificates"
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    check = verbs.add_parser("check", help="decide every tool call of a trace against a policy")
    check.add_argument("trace", help="hash-chained JSONL trace")
    check.add_argument("--policy", required=True, help="policy file (.toml, .yaml)")
    add_json_flag(check)
    check.set_defaults(handler=_check)

    convert = verbs.add_parser("convert", help="convert OpenAI, MCP or AgentDojo messages to a trace")
    convert.add_argument("input", help="JSON array of messages, or JSONL (- for stdin)")
    convert.add_argument("--from", dest="source", choices=("openai", "mcp", "agentdojo"), required=True)
    convert.add_argument("--user-prompt", help="the user's request (MCP logs do not carry it)")
    convert.add_argument("--output", "-o", required=True, help="where to write the trace")
    add_json_flag(convert)
    convert.set_defaults(handler=_convert)

    verify = verbs.add_parser("verify-trace", help="check a trace's hash chain")
    verify.add_argument("trace")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify_trace)

    derive = verbs.add_parser("derive", help="derive a least-privilege policy from a request and tool schemas")
    derive.add_argument("--prompt", required=True, help="the user's request")
    derive.add_argument("--tools", action="append", default=[], required=True, metavar="[SERVER=]FILE")
    derive.add_argument("--name", default="derived", help="the policy's name")
    derive.add_argument("--output", "-o", required=True, help="the policy file to write (.toml)")
    add_json_flag(derive)
    derive.set_defaults(handler=_derive)

    _register_pins(verbs)

    lint = verbs.add_parser("lint", help="lint skills, plugins and tool descriptions for droppers and poisoning")
    lint.add_argument("paths", nargs="+", metavar="PATH")
    add_report_options(lint, fail_on="high")
    lint.set_defaults(handler=_lint)

    audit = verbs.add_parser("audit", help="audit an OpenClaw-style gateway or NanoClaw-style container set-up")
    audit.add_argument("configs", nargs="+", metavar="CONFIG", help="openclaw.json, compose file, mount allowlist")
    add_report_options(audit, fail_on="high")
    audit.set_defaults(handler=_audit)

    proxy = verbs.add_parser(
        "proxy", help="put the policy and the tool pins in front of an MCP server (stdio child or HTTP URL)"
    )
    proxy.add_argument("--policy", required=True)
    proxy.add_argument("--lock", help="tool lock file: fail closed on drift")
    proxy.add_argument("--server-name", default="", help="the server's name in the lock file")
    proxy.add_argument("--user-prompt", help="the user's request (values in it are trusted)")
    proxy.add_argument("--trace", help="write the session's trace here when it ends")
    proxy.add_argument("--upstream", metavar="URL", help="streamable HTTP server to proxy (instead of a command)")
    proxy.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT", help="where the HTTP proxy listens")
    proxy.add_argument("command", nargs=argparse.REMAINDER, help="-- the server command and its arguments")
    proxy.set_defaults(handler=_proxy)

    _register_certify(verbs)


def _register_pins(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pin = verbs.add_parser("pin", help="write a lock file of MCP tools (from tools/list JSON) and skill folders")
    pin.add_argument("--tools", action="append", default=[], metavar="[SERVER=]FILE", help="tools/list result")
    pin.add_argument("--skill", action="append", default=[], metavar="NAME=FOLDER", help="a skill folder")
    pin.add_argument("--output", "-o", required=True, help="the lock file")
    add_json_flag(pin)
    pin.set_defaults(handler=_pin)

    drift = verbs.add_parser("pin-check", help="compare tools and skills with a lock file (exit 1 on drift)")
    drift.add_argument("--lock", required=True)
    drift.add_argument("--tools", action="append", default=[], metavar="[SERVER=]FILE")
    drift.add_argument("--skill", action="append", default=[], metavar="NAME=FOLDER")
    add_json_flag(drift)
    drift.set_defaults(handler=_pin_check)


def _register_certify(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    certify = verbs.add_parser("certify", help="run the suites and issue a signed, logged certificate")
    certify.add_argument("--policy", required=True)
    certify.add_argument("--lock", help="the tool lock of the configuration")
    certify.add_argument("--bench-result", action="append", default=[], help="benchmark result JSON to include")
    certify.add_argument("--db", help="log database (default: TRACEMARK_HOME/tracemark.sqlite3)")
    certify.add_argument("--output", "-o", required=True, help="certificate (DSSE envelope JSON)")
    certify.add_argument("--receipt", required=True, help="where to write the log receipt")
    add_json_flag(certify)
    certify.set_defaults(handler=_certify)

    verify = verbs.add_parser("verify-cert", help="verify a certificate offline (signature, receipt, config)")
    verify.add_argument("certificate")
    verify.add_argument("--receipt", required=True)
    verify.add_argument("--log-key", help="the log's verifier key (default: the local log key)")
    verify.add_argument("--policy", help="fail unless this policy is the certified one")
    verify.add_argument("--lock", help="fail unless this tool lock is the certified one")
    add_json_flag(verify)
    verify.set_defaults(handler=_verify_cert)


def _check(args: argparse.Namespace) -> int:
    from tracemark.agents import check_trace, load_policy, read_trace

    result = check_trace(load_policy(args.policy), read_trace(args.trace))
    lines = [f"{seq:>4} {d.verdict.value:<5} {d.tool}: {d.reason} [{d.rule}]" for seq, d in result.decisions]
    lines.append(f"{len(result.decisions)} calls: {result.denied} denied, {result.asked} ask")
    if result.unmet_at_end:
        lines.append(f"unmet at the end: {', '.join(result.unmet_at_end)}")
    emit(args, result.to_json(), "\n".join(lines))
    return 1 if result.denied or result.unmet_at_end else 0


def _load_messages(source: str) -> list[dict[str, object]]:
    text = read_text_input(source, max_bytes=64 * 1024 * 1024)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise InvalidInputError(f"{source} is neither a JSON array nor JSON lines") from None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InvalidInputError(f"{source}: expected a list of message objects")
    return data


def _convert(args: argparse.Namespace) -> int:
    from tracemark.agents import from_agentdojo_messages, from_mcp_log, from_openai_messages

    messages = _load_messages(args.input)
    if args.source == "openai":
        trace = from_openai_messages(messages)
    elif args.source == "agentdojo":
        trace = from_agentdojo_messages(messages)
    else:
        trace = from_mcp_log(messages, user_prompt=args.user_prompt)
    trace.write(args.output)
    payload = {"trace": args.output, "events": len(trace), "calls": len(trace.tool_calls()), "head": trace.head}
    emit(args, payload, f"wrote {args.output}: {len(trace)} events, head {trace.head}")
    return 0


def _verify_trace(args: argparse.Namespace) -> int:
    from tracemark.agents import read_trace

    trace = read_trace(args.trace)
    emit(args, {"valid": True, "events": len(trace), "head": trace.head}, f"OK: {len(trace)} events, head {trace.head}")
    return 0


def _tools(specs: list[str]) -> list[object]:
    from tracemark.agents import tools_from_list_result

    tools: list[object] = []
    for spec in specs:
        server, sep, path = spec.partition("=")
        if not sep:
            server, path = "", spec
        data = json.loads(read_text_input(path))
        tools.extend(tools_from_list_result(data if isinstance(data, dict) else {"tools": data}, server))
    return tools


def _skills(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep:
            raise InvalidInputError(f"--skill {spec!r}: expected NAME=FOLDER")
        out[name] = folder
    return out


def _derive(args: argparse.Namespace) -> int:
    from tracemark.agents import ToolDefinition, derive_policy_document, parse_policy, policy_to_toml

    tools = [t for t in _tools(args.tools) if isinstance(t, ToolDefinition)]
    document = derive_policy_document(args.prompt, tools, name=args.name)
    text = policy_to_toml(document)
    policy = parse_policy(text)  # what is written must load
    atomic_write_bytes(Path(args.output), text.encode("utf-8"))
    allowed = sorted(name for name, rule in policy.tools.items() if rule.side_effect and rule.decision.value != "deny")
    payload = {"policy": args.output, "sha256": policy.digest, "side_effecting_allowed": allowed}
    emit(args, payload, f"wrote {args.output}: side-effecting tools allowed: {', '.join(allowed) or 'none'}")
    return 0


def _pin(args: argparse.Namespace) -> int:
    from tracemark.agents import ToolDefinition, make_lock

    tools = [t for t in _tools(args.tools) if isinstance(t, ToolDefinition)]
    lock = make_lock(tools, _skills(args.skill))
    lock.write(args.output)
    emit(args, lock.to_json(), f"pinned {len(lock.tools)} tools and {len(lock.skills)} skills in {args.output}")
    return 0


def _pin_check(args: argparse.Namespace) -> int:
    from tracemark.agents import ToolDefinition, diff_skills, diff_tools, read_lock

    lock = read_lock(args.lock)
    tools = [t for t in _tools(args.tools) if isinstance(t, ToolDefinition)]
    drifts = (diff_tools(lock, tools) if args.tools else []) + diff_skills(lock, _skills(args.skill))
    lines = [f"{d.kind:<15} {d.server}/{d.name}: {d.detail}" for d in drifts] or ["OK: every pin holds"]
    emit(args, {"drift": [d.to_json() for d in drifts], "ok": not drifts}, "\n".join(lines))
    return 1 if drifts else 0


def _lint(args: argparse.Namespace) -> int:
    from tracemark.agents import LINT_RULES as RULES
    from tracemark.agents import lint_paths

    findings = tuple(lint_paths(args.paths))
    summary = (f"{len(findings)} findings in {', '.join(args.paths)}",)
    report = Report(_LINT_TOOL, findings, tuple(RULES.values()), subject=", ".join(args.paths), summary=summary)
    return write_report(args, report)


def _audit(args: argparse.Namespace) -> int:
    from tracemark.agents import AUDIT_RULES as RULES
    from tracemark.agents import audit_paths

    findings = tuple(audit_paths(args.configs))
    summary = (f"{len(findings)} findings in {', '.join(args.configs)}",)
    report = Report(_AUDIT_TOOL, findings, tuple(RULES.values()), subject=", ".join(args.configs), summary=summary)
    return write_report(args, report)


def _proxy(args: argparse.Namespace) -> int:
    from tracemark.agents import McpPolicyFilter, load_policy, read_lock, run_stdio_proxy

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if bool(command) == bool(args.upstream):
        raise InvalidInputError("give either the MCP server command after -- or --upstream URL")
    lock = read_lock(args.lock) if args.lock else None
    policy_filter = McpPolicyFilter(load_policy(args.policy), lock, args.server_name, args.user_prompt)
    if command:
        return run_stdio_proxy(policy_filter, command, trace_path=args.trace)
    return _serve_http(args, policy_filter)


def _serve_http(args: argparse.Namespace, policy_filter: McpPolicyFilter) -> int:
    from tracemark.agents import serve_http_proxy

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(f"--listen {args.listen!r}: expected HOST:PORT")
    server = serve_http_proxy(policy_filter, args.upstream, host, int(port))
    bound_host, bound_port = server.server_address[:2]
    sys.stdout.write(f"listening on http://{bound_host!s}:{bound_port}/mcp -> {args.upstream}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if args.trace:
            policy_filter.trace.write(args.trace)
    return 0


def _certify(args: argparse.Namespace) -> int:
    from tracemark.agents import certify, load_policy, read_lock
    from tracemark.keys import Keyring, default_database_path, ensure_log_key
    from tracemark.tlog import TransparencyLog

    policy = load_policy(args.policy)
    lock = read_lock(args.lock) if args.lock else None
    signer = ensure_log_key(Keyring())
    with TransparencyLog.open(Path(args.db) if args.db else default_database_path(), signer=signer) as log:
        issued = certify(policy, lock, log, signer, external=args.bench_result)
    body = json.dumps(issued.envelope_json(), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(Path(args.output), body.encode("utf-8"))
    atomic_write_bytes(Path(args.receipt), issued.receipt.encode("utf-8"))
    payload = {
        "certificate": args.output,
        "receipt": args.receipt,
        "log_index": issued.log_index,
        "log_key": signer.vkey,
    }
    emit(
        args, payload, f"certified {policy.name}: {args.output} (log entry {issued.log_index}), receipt {args.receipt}"
    )
    return 0


def _verify_cert(args: argparse.Namespace) -> int:
    from tracemark.agents import load_policy, read_lock, verify_certificate
    from tracemark.keys import Keyring, load_log_key
    from tracemark.tlog import NoteVerifier

    verifier = NoteVerifier.from_vkey(args.log_key) if args.log_key else load_log_key(Keyring()).verifier
    try:
        envelope = json.loads(read_text_input(args.certificate))
    except json.JSONDecodeError:
        raise AgentError(f"{args.certificate} is not a JSON certificate") from None
    result = verify_certificate(
        envelope,
        read_text_input(args.receipt),
        verifier,
        policy=load_policy(args.policy) if args.policy else None,
        lock=read_lock(args.lock) if args.lock else None,
    )
    lines = [f"OK: certificate for {result['policy']} issued {result['issued_at']}, log entry {result['log_index']}"]
    for suite in result["suites"]:
        if isinstance(suite, dict):
            lines.append(f"  {suite.get('name')}: {suite.get('passed')}/{suite.get('trials')} {suite.get('interval')}")
    emit(args, result, "\n".join(lines))
    return 0
