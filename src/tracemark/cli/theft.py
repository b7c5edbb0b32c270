"""``tracemark theft``: radioactivity (trained on our outputs?), identify (exactly our model?), weights (derived?)."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tracemark._fs import atomic_write_bytes
from tracemark.cli._common import add_json_flag, emit, read_file_bytes, read_text_input
from tracemark.errors import InvalidInputError
from tracemark.keys import Keyring, TextKey

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tracemark._json import JSONObject
    from tracemark.text import TextTokenizer
    from tracemark.theft import OpenAICompatibleEndpoint, RadioactivityConfig, SequentialPlan, TextModel, TheftVerdict

#: Largest prompts or read-text file (bytes).
MAX_PROMPTS_BYTES = 64 * 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``theft`` and its verbs."""
    parser = subparsers.add_parser("theft", help="model theft: radioactivity, endpoint identity, weight provenance")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _register_radioactivity(verbs)
    _register_identify(verbs)
    _register_weights(verbs)


def _register_radioactivity(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    radio = verbs.add_parser("radioactivity", help="was a suspect trained on text watermarked with our key?")
    radio.add_argument("--mode", choices=["closed", "open"], default="closed", help="closed: its text; open: its probs")
    radio.add_argument("--model", help="model directory the key was made for (default: the reference model)")
    radio.add_argument("--key", action="append", default=[], help="key id (repeatable; default: the default key)")
    source = radio.add_mutually_exclusive_group(required=True)
    source.add_argument("--transcript", help="re-test a saved transcript (JSON Lines) without querying")
    source.add_argument("--suspect-url", help="OpenAI-compatible base URL of the suspect")
    source.add_argument("--suspect-model", help="local Hugging Face directory of the suspect")
    radio.add_argument("--suspect-name", default="default", help="model name sent to --suspect-url")
    radio.add_argument("--api", choices=["completions", "chat"], default="completions")
    radio.add_argument("--api-key-env", help="environment variable holding the suspect's API key")
    radio.add_argument("--prompts", help="closed mode: file of prompts, one per line")
    radio.add_argument("--read", help="open mode: text file for the suspect to read (paragraphs split by blank lines)")
    radio.add_argument("--budget", type=int, required=True, help="pre-registered tokens (response or read)")
    radio.add_argument("--statistic", help="closed: weighted (default) or distinct; open: mass (default) or top1")
    radio.add_argument("--weight-cap", type=int, default=16)
    radio.add_argument("--alpha", type=float, default=1e-3)
    radio.add_argument("--null-keys", type=int, help="wrong keys for the null check (default 100; KGW 20)")
    radio.add_argument("--keys-tried", type=int, help="keys ever tried (Bonferroni)")
    radio.add_argument("--min-tuples", type=int, default=500)
    radio.add_argument("--top-k", type=int, default=64, help="open mode: candidates read per context")
    radio.add_argument("--max-new-tokens", type=int, default=128)
    radio.add_argument("--seed", type=int, default=0)
    radio.add_argument("--save-transcript", metavar="PATH", help="write the collected transcript here")
    radio.add_argument("--suggestive", type=float, default=0.05, help="p in (alpha, this]: inconclusive, not clean")
    radio.add_argument("--looks", help="closed: sequential plan, budgets a,b,c (the last must equal --budget)")
    radio.add_argument(
        "--rho",
        type=float,
        default=0.5,
        help="alpha spending alpha*t^rho (default 0.5: half of alpha at 1/4 of the budget)",
    )
    radio.add_argument("--sign", action="store_true", help="seal and sign the transcript with the keyring's log key")
    radio.add_argument("--trusted-signer", metavar="VKEY", help="--transcript: refuse it unless VKEY signed it")
    radio.add_argument("--exploratory", action="store_true", help="--transcript: other settings than sealed, labelled")
    _add_report(radio)
    radio.set_defaults(handler=_radioactivity)


def _register_identify(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ident = verbs.add_parser("identify", help="is the model behind an endpoint exactly one of our references?")
    target = ident.add_mutually_exclusive_group(required=True)
    target.add_argument("--endpoint-url", help="OpenAI-compatible base URL (append #model to name the model)")
    target.add_argument("--endpoint-model", help="local Hugging Face directory")
    ident.add_argument(
        "--reference", action="append", required=True, metavar="NAME=DIR|URL#MODEL", help="a reference (repeatable)"
    )
    ident.add_argument("--prompts", required=True, help="file of prompts, one per line")
    ident.add_argument("--api", choices=["completions", "chat"], default="completions")
    ident.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable holding the API key sent to every URL (Bearer)"
    )
    ident.add_argument("--timeout", type=float, default=60.0, help="seconds per request to a URL (default 60)")
    ident.add_argument(
        "--request-transcript", metavar="FILE", help="write every request and answer, with times, as JSON lines"
    )
    ident.add_argument("--max-failed-requests", type=int, help="stop after this many failed endpoint requests")
    ident.add_argument(
        "--max-consecutive-failures", type=int, default=10, help="stop after this many in a row (default 10)"
    )
    ident.add_argument("--samples", type=int, default=16, help="samples per prompt")
    ident.add_argument("--tokens", type=int, default=32, help="compared tokens per completion")
    ident.add_argument("--max-new-tokens", type=int, default=32)
    ident.add_argument("--permutations", type=int, default=1000)
    ident.add_argument("--alpha", type=float, default=0.05)
    ident.add_argument("--min-prompts", type=int, default=10)
    ident.add_argument("--tokenizer", help="model directory whose tokenizer splits completions (default: bytes)")
    ident.add_argument("--seed", type=int, default=0)
    logprobs = ident.add_argument_group("log-probability test (--logprobs)")
    logprobs.add_argument(
        "--logprobs", action="store_true", help="compare the endpoint's log-probabilities instead of samples"
    )
    logprobs.add_argument("--tolerance", type=float, default=1e-3, help="nats a faithful server may deviate by")
    logprobs.add_argument("--outlier-rate", type=float, default=0.01, help="share of reads allowed to deviate")
    logprobs.add_argument("--top-k", type=int, default=20, help="log-probabilities asked per position")
    logprobs.add_argument("--compared", type=int, default=5, help="reference tokens compared per position")
    _add_report(ident)
    ident.set_defaults(handler=_identify)


def _register_weights(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    weights = verbs.add_parser("weights", help="are a suspect's weights derived from ours?")
    weights.add_argument("suspect", help="suspect model directory or .safetensors file")
    weights.add_argument("reference", help="reference model directory or .safetensors file")
    weights.add_argument("--tokens", type=int, default=128)
    weights.add_argument("--permutations", type=int, default=999)
    weights.add_argument("--alpha", type=float, default=0.01)
    weights.add_argument("--min-similarity", type=float, default=0.3, help="below this: no-evidence")
    weights.add_argument("--evidence-similarity", type=float, default=0.8, help="from this: evidence")
    weights.add_argument("--seed", type=int, default=0)
    _add_report(weights)
    weights.set_defaults(handler=_weights)


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", metavar="PATH", help="also write a report: .html for HTML, else Markdown")
    add_json_flag(parser)


def _lines(path: str) -> list[str]:
    lines = [line.strip() for line in read_text_input(path, max_bytes=MAX_PROMPTS_BYTES).splitlines()]
    return [line for line in lines if line]


def _paragraphs(path: str) -> list[str]:
    text = read_text_input(path, max_bytes=MAX_PROMPTS_BYTES)
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def _finish(args: argparse.Namespace, verdict: TheftVerdict) -> int:
    from tracemark.theft import render_html, render_markdown

    if args.report:
        path = Path(args.report)
        body = render_html(verdict) if path.suffix.lower() in (".html", ".htm") else render_markdown(verdict)
        atomic_write_bytes(path, body.encode("utf-8"))
    p = "-" if verdict.p_value is None else f"{verdict.p_value:.3g} (log10 {verdict.log10_p_value:.2f})"
    human = [f"{verdict.test}: {verdict.decision}", f"  question: {verdict.question}", f"  p-value: {p}"]
    if "answer" in verdict.statistic:  # identity: which reference, if any, the endpoint is consistent with
        human.append(f"  answer: {verdict.statistic['answer']}")
    if "headline" in verdict.statistic:
        human.insert(1, f"  {verdict.statistic['headline']}")
    human += [f"  reason: {r}" for r in verdict.reasons]
    emit(args, verdict.to_json(), "\n".join(human))
    return 0


def _keys(args: argparse.Namespace, model_dir: Path) -> list[TextKey]:
    from tracemark.text import TextTokenizer, select_text_key

    keyring = Keyring()
    tokenizer = TextTokenizer(model_dir)
    if not args.key:
        return [select_text_key(keyring, tokenizer)]
    return [select_text_key(keyring, tokenizer, key_id=k) for k in args.key]


def _from_transcript(
    args: argparse.Namespace,
    keys: list[TextKey],
    tokenizer: TextTokenizer,
    config: RadioactivityConfig,
    plan: SequentialPlan | None,
) -> TheftVerdict:
    """Re-test a saved transcript: verified first when a signer is trusted; other settings only if exploratory."""
    from tracemark.theft import Transcript, radioactivity_from_transcript, radioactivity_sequential_from_transcript

    transcript = Transcript.from_jsonl(read_file_bytes(args.transcript, 256 * 1024 * 1024))
    if args.trusted_signer:
        transcript.verify(args.trusted_signer)
    if plan is not None:
        return radioactivity_sequential_from_transcript(transcript, keys, tokenizer, config, plan,
                                                        exploratory=args.exploratory)  # fmt: skip
    return radioactivity_from_transcript(transcript, keys, tokenizer, config, exploratory=args.exploratory)


def _radioactivity(args: argparse.Namespace) -> int:
    from tracemark.text import TextTokenizer, reference_model_dir
    from tracemark.theft import (
        EndpointNextTokens,
        HFModel,
        NextTokenModel,
        OpenAICompatibleEndpoint,
        RadioactivityConfig,
        SequentialPlan,
        radioactivity,
        radioactivity_open,
        radioactivity_sequential,
    )

    model_dir = Path(args.model) if args.model else reference_model_dir()
    tokenizer = TextTokenizer(model_dir)
    keys = _keys(args, model_dir)
    config = RadioactivityConfig(
        budget_tokens=args.budget,
        statistic=args.statistic,
        weight_cap=args.weight_cap,
        alpha=args.alpha,
        min_tuples=args.min_tuples,
        null_keys=args.null_keys,
        keys_tried=args.keys_tried,
        top_k=args.top_k,
        suggestive=args.suggestive if args.suggestive > 0 else None,
    )
    try:
        plan = SequentialPlan(tuple(int(b) for b in args.looks.split(",")), args.rho) if args.looks else None
    except ValueError:
        raise InvalidInputError("--looks takes comma-separated token budgets, e.g. 25000,50000,100000") from None
    if args.mode == "open":
        if args.transcript or not args.read:
            raise InvalidInputError("open mode needs --read FILE and --suspect-model DIR or --suspect-url URL")
        reader: NextTokenModel
        if args.suspect_url:
            endpoint = OpenAICompatibleEndpoint(args.suspect_url, args.suspect_name, api_key_env=args.api_key_env)
            reader = EndpointNextTokens(endpoint, tokenizer)
        else:
            if TextTokenizer(args.suspect_model).sha256 != tokenizer.sha256:
                raise InvalidInputError("open mode needs a suspect with the key's tokenizer; use closed mode instead")
            reader = HFModel(args.suspect_model)
        return _finish(args, radioactivity_open(reader, keys, _paragraphs(args.read), tokenizer, config))
    if args.transcript:
        return _finish(args, _from_transcript(args, keys, tokenizer, config, plan))
    if not args.prompts:
        raise InvalidInputError("closed mode needs --prompts FILE (or --transcript FILE)")
    suspect: TextModel
    if args.suspect_url:
        suspect = OpenAICompatibleEndpoint(
            args.suspect_url, args.suspect_name, api=args.api, api_key_env=args.api_key_env
        )
    else:
        suspect = HFModel(args.suspect_model)
    signer = None
    if args.sign:
        from tracemark.keys import ensure_log_key

        signer = ensure_log_key(Keyring())
    if plan is not None:
        verdict, transcript = radioactivity_sequential(suspect, keys, _lines(args.prompts), tokenizer, config, plan,
                                                       max_new_tokens=args.max_new_tokens, seed=args.seed,
                                                       signer=signer)  # fmt: skip
    else:
        verdict, transcript = radioactivity(suspect, keys, _lines(args.prompts), tokenizer, config,
                                            max_new_tokens=args.max_new_tokens, seed=args.seed,
                                            signer=signer)  # fmt: skip
    if args.save_transcript:
        atomic_write_bytes(Path(args.save_transcript), transcript.to_jsonl())
    return _finish(args, verdict)


def _endpoint(spec: str, args: argparse.Namespace) -> OpenAICompatibleEndpoint:
    """``URL#MODEL`` as an endpoint with the command's API, key variable and timeout."""
    from tracemark.theft import OpenAICompatibleEndpoint

    if not args.timeout > 0:
        raise InvalidInputError("--timeout must be a positive number of seconds")
    url, _, model = spec.partition("#")
    return OpenAICompatibleEndpoint(
        url, model or "default", api=args.api, api_key_env=args.api_key_env, timeout=args.timeout
    )


def _text_model(spec: str, args: argparse.Namespace) -> TextModel:
    from tracemark.theft import HFModel

    if spec.startswith(("http://", "https://")):
        return _endpoint(spec, args)
    return HFModel(spec)


def _identify(args: argparse.Namespace) -> int:
    from tracemark.text import TextTokenizer
    from tracemark.theft import IdentityConfig, identify, utf8_bytes

    if args.logprobs:
        return _identify_logprobs(args)
    references: dict[str, TextModel] = {}
    for name, spec in _reference_specs(args.reference):
        references[name] = _text_model(spec, args)
    endpoint = _text_model(args.endpoint_url or args.endpoint_model, args)
    tokenize = _token_ids(TextTokenizer(args.tokenizer)) if args.tokenizer else utf8_bytes
    config = IdentityConfig(
        samples_per_prompt=args.samples,
        completion_tokens=args.tokens,
        max_new_tokens=args.max_new_tokens,
        permutations=args.permutations,
        alpha=args.alpha,
        min_prompts=args.min_prompts,
        seed=args.seed,
        max_failed_requests=args.max_failed_requests,
        max_consecutive_failures=args.max_consecutive_failures,
    )
    with _request_sink(args) as sink:
        verdict = identify(endpoint, references, _lines(args.prompts), config, tokenize=tokenize, on_request=sink)
    return _finish(args, verdict)


@contextlib.contextmanager
def _request_sink(args: argparse.Namespace) -> Iterator[Callable[[JSONObject], None] | None]:
    """``--request-transcript``: each request's record appended (and flushed) as it completes."""
    if not args.request_transcript:
        yield None
        return
    with Path(args.request_transcript).open("w", encoding="utf-8") as handle:

        def write(record: JSONObject) -> None:
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
            handle.flush()

        yield write


def _token_ids(tokenizer: TextTokenizer) -> Callable[[str], list[int]]:
    """Text to the tokenizer's ids, as the identity tests take them."""
    return lambda text: [int(t) for t in tokenizer.encode(text).ids]


def _reference_specs(items: list[str]) -> list[tuple[str, str]]:
    specs: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or not spec:
            raise InvalidInputError(f"--reference takes NAME=DIR or NAME=URL#MODEL, not {item!r}")
        if name in specs:
            raise InvalidInputError(f"reference {name!r} given twice")
        specs[name] = spec
    return list(specs.items())


def _identify_logprobs(args: argparse.Namespace) -> int:
    """``--logprobs``: all models read the prompts over one tokenizer (``--tokenizer``, else the first local one)."""
    from tracemark.text import TextTokenizer
    from tracemark.theft import (
        EndpointNextTokens,
        HFModel,
        LogprobIdentityConfig,
        NextTokenModel,
        identify_logprobs,
    )

    specs = _reference_specs(args.reference)
    local = [spec for _, spec in specs if not spec.startswith(("http://", "https://"))]
    if not args.tokenizer and not local:
        raise InvalidInputError("--logprobs needs --tokenizer DIR when no reference is a local model directory")
    tokenizer = TextTokenizer(args.tokenizer or local[0])

    def reader(spec: str) -> NextTokenModel:
        if spec.startswith(("http://", "https://")):
            return EndpointNextTokens(_endpoint(spec, args), tokenizer)
        if TextTokenizer(spec).sha256 != tokenizer.sha256:
            raise InvalidInputError(
                f"{spec} has another tokenizer: compare it with the sample test, without --logprobs"
            )
        return HFModel(spec)

    config = LogprobIdentityConfig(
        top_k=args.top_k,
        compared=args.compared,
        tolerance=args.tolerance,
        outlier_rate=args.outlier_rate,
        alpha=args.alpha,
        min_reads=args.min_prompts,
        max_failed_requests=args.max_failed_requests,
        max_consecutive_failures=args.max_consecutive_failures,
    )
    references = {name: reader(spec) for name, spec in specs}
    endpoint = reader(args.endpoint_url or args.endpoint_model)
    prompts = _lines(args.prompts)
    with _request_sink(args) as sink:
        verdict = identify_logprobs(endpoint, references, prompts, _token_ids(tokenizer), config, on_request=sink)
    return _finish(args, verdict)


def _weights(args: argparse.Namespace) -> int:
    from tracemark.theft import WeightConfig, load_weights, weight_provenance

    config = WeightConfig(
        tokens=args.tokens,
        permutations=args.permutations,
        alpha=args.alpha,
        min_similarity=args.min_similarity,
        evidence_similarity=args.evidence_similarity,
        seed=args.seed,
    )
    verdict = weight_provenance(
        load_weights(args.suspect),
        load_weights(args.reference),
        config,
        suspect_name=str(args.suspect),
        reference_name=str(args.reference),
    )
    return _finish(args, verdict)
