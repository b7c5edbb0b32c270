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

from tracemark.agents._checker import Decision, DecisionJSON, PolicyChecker, TraceCheck, TraceCheckJSON, check_trace
from tracemark.agents._convert import from_agentdojo_messages, from_mcp_log, from_openai_messages
from tracemark.agents._guard import Guard
from tracemark.agents._ltl import Formula, Monitor, holds, monitor_accepts, parse_formula
from tracemark.agents._policy import POLICY_VERSION, Policy, Verdict, load_policy, parse_policy, policy_from_mapping
from tracemark.agents._provenance import ProvenanceIndex
from tracemark.agents._trace import TRACE_FORMAT, Role, Trace, TraceBuilder, TraceEvent, parse_trace, read_trace

__all__ = [
    "POLICY_VERSION",
    "TRACE_FORMAT",
    "Decision",
    "DecisionJSON",
    "Formula",
    "Guard",
    "Monitor",
    "Policy",
    "PolicyChecker",
    "ProvenanceIndex",
    "Role",
    "Trace",
    "TraceBuilder",
    "TraceCheck",
    "TraceCheckJSON",
    "TraceEvent",
    "Verdict",
    "check_trace",
    "from_agentdojo_messages",
    "from_mcp_log",
    "from_openai_messages",
    "holds",
    "load_policy",
    "monitor_accepts",
    "parse_formula",
    "parse_policy",
    "parse_trace",
    "policy_from_mapping",
    "read_trace",
]
