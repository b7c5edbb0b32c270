"""tracemark.agents: guard autonomous agents with checkable policies, pin their tools, certify them.

::

    from tracemark.agents import Guard, load_policy

    guard = Guard(load_policy("policy.toml"))
    guard.user("Pay the bill in bill-december.txt")

    @guard.tool
    def send_money(recipient: str, amount: float) -> str: ...

Traces are hash-chained JSONL (:func:`read_trace`, converters from OpenAI, MCP and AgentDojo
messages); policies are TOML or YAML files (:func:`load_policy`) checked without any model in the loop
(:func:`check_trace`); temporal rules are LTLf formulas compiled to monitors (:func:`parse_formula`).
"""

from tracemark.agents._audit import RULES as AUDIT_RULES
from tracemark.agents._audit import audit_config, audit_paths
from tracemark.agents._certify import IssuedCertificate, certify, verify_certificate
from tracemark.agents._checker import Decision, DecisionJSON, PolicyChecker, TraceCheck, TraceCheckJSON, check_trace
from tracemark.agents._convert import from_agentdojo_messages, from_mcp_log, from_openai_messages
from tracemark.agents._derive import derive_policy, derive_policy_document, policy_to_toml
from tracemark.agents._guard import Guard
from tracemark.agents._lint import RULES as LINT_RULES
from tracemark.agents._lint import lint_paths, lint_text
from tracemark.agents._ltl import Formula, Monitor, holds, monitor_accepts, parse_formula
from tracemark.agents._mcp_proxy import McpPolicyFilter, run_stdio_proxy, serve_http_proxy
from tracemark.agents._pin import (
    Drift,
    ToolDefinition,
    ToolLock,
    diff_skills,
    diff_tools,
    make_lock,
    read_lock,
    tools_from_list_result,
    verify_tools,
)
from tracemark.agents._policy import POLICY_VERSION, Policy, Verdict, load_policy, parse_policy, policy_from_mapping
from tracemark.agents._provenance import ProvenanceIndex
from tracemark.agents._trace import TRACE_FORMAT, Role, Trace, TraceBuilder, TraceEvent, parse_trace, read_trace

__all__ = [
    "AUDIT_RULES",
    "LINT_RULES",
    "POLICY_VERSION",
    "TRACE_FORMAT",
    "Decision",
    "DecisionJSON",
    "Drift",
    "Formula",
    "Guard",
    "IssuedCertificate",
    "McpPolicyFilter",
    "Monitor",
    "Policy",
    "PolicyChecker",
    "ProvenanceIndex",
    "Role",
    "ToolDefinition",
    "ToolLock",
    "Trace",
    "TraceBuilder",
    "TraceCheck",
    "TraceCheckJSON",
    "TraceEvent",
    "Verdict",
    "audit_config",
    "audit_paths",
    "certify",
    "check_trace",
    "derive_policy",
    "derive_policy_document",
    "diff_skills",
    "diff_tools",
    "from_agentdojo_messages",
    "from_mcp_log",
    "from_openai_messages",
    "holds",
    "lint_paths",
    "lint_text",
    "load_policy",
    "make_lock",
    "monitor_accepts",
    "parse_formula",
    "parse_policy",
    "parse_trace",
    "policy_from_mapping",
    "policy_to_toml",
    "read_lock",
    "read_trace",
    "run_stdio_proxy",
    "serve_http_proxy",
    "tools_from_list_result",
    "verify_certificate",
    "verify_tools",
]
