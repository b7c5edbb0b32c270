"""``tracemark text``: generate marked text and detect the watermark."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from tracemark.cli._common import MAX_INPUT_BYTES, add_json_flag, emit, input_errors, read_text_input
from tracemark.errors import InvalidInputError
from tracemark.keys import Keyring, TextKey, default_database_path
from tracemark.text import (
    DEFAULT_ALPHA,
    SCHEME_NAMES,
    Attribution,
    KnownOutputIndex,
    KnownOutputIndexJSON,
    ScanOptions,
    ScanProgress,
    ScanSummary,
    TextTokenizer,
    Verdict,
    WatermarkedGenerator,
    attribute,
    check_sampling,
    detect_watermark_stream,
    iter_known_output_texts,
    not_checked,
    reference_model_dir,
    scan_corpus,
    select_text_key,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``text`` and its verbs."""
    parser = subparsers.add_parser("text", help="text watermarks: generate and detect")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    generate = verbs.add_parser("generate", help="generate watermarked text with a local model")
    generate.add_argument("--model", help="model directory (default: the bundled reference model)")
    generate.add_argument("--prompt", required=True, help="the prompt to continue")
    _add_key_options(generate)
    generate.add_argument("--max-new-tokens", type=int, default=200, help="tokens to generate, 1..4096 (default 200)")
    generate.add_argument("--temperature", type=float,
                          help="sampling temperature > 0 (default 1; a synthid key's own)")  # fmt: skip
    generate.add_argument("--top-k", type=int, default=0,
                          help="sample among the k likeliest tokens; 0 = off (synthid: the key's top_k)")  # fmt: skip
    generate.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1] (default 1: off)")
    generate.add_argument("--seed", type=int, help="random seed, 0..2**63-1, for a reproducible sample")
    generate.add_argument("--stop-at-eos", action="store_true", help="stop early at end-of-text")
    add_json_flag(generate)
    generate.set_defaults(handler=_generate)

    detect = verbs.add_parser("detect", help="test a text for the watermark (exact p-value)")
    detect.add_argument("file", nargs="?", default="-", help="text file, or - for standard input (default)")
    detect.add_argument("--model", help="model directory giving the tokenizer (default: reference model)")
    _add_key_options(detect)
    detect.add_argument("--prompt", help="the prompt: its tokens are never scored")
    detect.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level in (0,1) (default 1e-6)")
    detect.add_argument("--no-dedup", action="store_true", help="score repeated units every time (not advised)")
    detect.add_argument("--no-windows", action="store_true", help="test the whole text only")
    detect.add_argument("--no-variants", action="store_true",
                        help="test the text as given only, not also lower-/sentence-cased or unwrapped")  # fmt: skip
    detect.add_argument("--explain", action="store_true", help="include per-token marks")
    detect.add_argument("--canonical-text", action="store_true",
                        help="include the canonical text the tokens were read from in the JSON")  # fmt: skip
    detect.add_argument("--known-outputs", nargs="?", const="", metavar="DB",
                        help="check the text against the provider's known-output index in DB (a SQLite file or "
                             "postgresql:// URL; without DB: the log's database): adds 'attribution'")  # fmt: skip
    detect.add_argument("--max-bytes", type=int, default=MAX_INPUT_BYTES,
                        help="largest input accepted, in bytes (default 4 MiB); inputs over 256 k characters are "
                             "read in pieces, in memory that grows by about 9 bytes per distinct token")  # fmt: skip
    add_json_flag(detect)
    detect.set_defaults(handler=_detect)
    _register_scan(verbs)
    _register_index(verbs)


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--key", help="key id (default: the default text key for this model)")
    group.add_argument("--scheme", choices=SCHEME_NAMES, help="use the newest key of this scheme for the model")


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and value <= 0:
        raise InvalidInputError(f"{name} must be a positive number, got {value}")


def _check_level(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise InvalidInputError(f"{name} must lie strictly between 0 and 1, got {value}")


def _quiet_model_loading() -> None:
    """A command prints its result, not transformers' weight-loading progress bar."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return  # WatermarkedGenerator names the missing extra
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _generate(args: argparse.Namespace) -> int:
    check_sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, seed=args.seed)  # fmt: skip
    model_dir = args.model or str(reference_model_dir())
    key = select_text_key(Keyring(), TextTokenizer(model_dir), key_id=args.key, scheme=args.scheme)
    _quiet_model_loading()
    generator = WatermarkedGenerator(model_dir, key)
    (result,) = generator.generate(
        [args.prompt],
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_at_eos=args.stop_at_eos,
    )
    emit(args, result.to_json(), result.text)
    return 0


def format_verdict(verdict: Verdict) -> str:
    """The human form of a verdict."""
    answer = "yes" if verdict.marked else "no"
    relation = "<=" if verdict.marked else ">"
    lines = [
        f"marked: {answer} (p = {verdict.p_value:.3g} {relation} alpha {verdict.alpha:g}; "
        f"log10 p = {verdict.log10_p_value:.2f})",
        f"scheme {verdict.scheme}/{verdict.scheme_version}, key {verdict.key_id}",
        f"tokens: {verdict.tokens_total} total, {verdict.tokens_scored} scored, {verdict.tokens_repeated} repeated, "
        f"{verdict.tokens_in_prompt} prompt, {verdict.tokens_unscorable} without context",
        f"hits: {verdict.hits}/{verdict.trials} = {verdict.score:.3f} (null {verdict.null_hit_probability:.3f}), "
        f"z = {verdict.z_score:.2f}",
        f"test: {verdict.p_value_method}",
        _needed_line(verdict),
    ]
    for span in verdict.spans:
        lines.append(
            f"span: tokens {span.start_token}-{span.end_token} (chars {span.start_char}-{span.end_char}), "
            f"{span.hits}/{span.tokens_scored} hits, p = {span.p_value:.3g}, corrected {span.p_value_corrected:.3g}"
        )
    for stat in verdict.statistics:
        lines.append(f"{stat.name}: {stat.score:.4f}, p = {stat.p_value:.3g} ({stat.method})")
    return "\n".join(lines)


def _needed_line(verdict: Verdict) -> str:
    """What length the observed hit rate needs at this alpha (``Verdict.tokens_needed``)."""
    needed = verdict.tokens_needed
    if needed is None:
        return "tokens needed: none would decide (hit rate at or below the null's)"
    if verdict.marked:
        return f"tokens needed: {needed} scored tokens at this hit rate would have sufficed"
    return (
        f"tokens needed: {needed} scored tokens at this hit rate would decide at alpha {verdict.alpha:g} "
        f"({verdict.tokens_scored} scored here)"
    )


#: Bytes copied from standard input to a temporary file at a time (streamed detection reads a piece twice).
_SPOOL_BYTES = 1 << 20


@contextlib.contextmanager
def _detect_input(source: str, max_bytes: int) -> Iterator[BinaryIO]:
    """The input as a seekable binary file: the named file, or standard input copied to a temporary file."""
    if source != "-":
        with contextlib.ExitStack() as stack:
            with input_errors(source):
                size = Path(source).stat().st_size
                if size > max_bytes:
                    raise InvalidInputError(f"{source} is {size} bytes; the limit is {max_bytes} (--max-bytes)")
                handle = stack.enter_context(Path(source).open("rb"))
            yield handle
        return
    with tempfile.TemporaryFile() as spool:
        copied = 0
        while block := sys.stdin.buffer.read(_SPOOL_BYTES):
            copied += len(block)
            if copied > max_bytes:
                raise InvalidInputError(f"standard input is larger than the limit of {max_bytes} bytes (--max-bytes)")
            spool.write(block)
        yield spool


def _detect(args: argparse.Namespace) -> int:
    _check_level("--alpha", args.alpha)
    _check_positive("--max-bytes", args.max_bytes)
    tokenizer = TextTokenizer(args.model or str(reference_model_dir()))
    key = select_text_key(Keyring(), tokenizer, key_id=args.key, scheme=args.scheme)
    with _detect_input(args.file, args.max_bytes) as source:
        verdict = detect_watermark_stream(
            source,
            key,
            tokenizer,
            prompt=args.prompt,
            alpha=args.alpha,
            deduplicate=not args.no_dedup,
            scan_windows=not args.no_windows,
            explain=args.explain,
            max_chars=args.max_bytes,
            variants=not args.no_variants,
            include_canonical_text=args.canonical_text,
        )
        attribution = _attribution(args, verdict, source, tokenizer, key)
    if attribution is None:
        emit(args, verdict.to_json(), format_verdict(verdict))
        return 0
    emit(args, {**verdict.to_json(), "attribution": attribution.to_json()},
         format_verdict(verdict) + "\n" + format_attribution(attribution))  # fmt: skip
    return 0


def _attribution(args: argparse.Namespace, verdict: Verdict, source: BinaryIO, tokenizer: TextTokenizer,
                 key: TextKey) -> Attribution | None:  # fmt: skip
    """The known-output check beside the verdict (None without ``--known-outputs``)."""
    if args.known_outputs is None:
        return None
    location = args.known_outputs or str(default_database_path())
    if key.scheme not in ("native", "kgw"):
        return not_checked(f"the known-output check supports native and kgw keys, not {key.scheme}")
    with KnownOutputIndex.open(location, key) as index:
        source.seek(0)
        text = source.read().decode("utf-8", errors="replace")
        variant = verdict.canonicalization.get("variant")
        return attribute(verdict.marked, variant if isinstance(variant, str) else None, text, tokenizer, index,
                         alpha=args.alpha, prompt=args.prompt)  # fmt: skip


def format_attribution(attribution: Attribution) -> str:
    """The human form of an attribution."""
    lines = [f"attribution: {attribution.status} ({attribution.reason})",
             f"ours: {'yes' if attribution.ours else 'no'}"]  # fmt: skip
    check = attribution.check
    if check is not None:
        best = "none" if check.best_output is None else f"#{check.best_output}"
        lines.append(
            f"known outputs: {check.units} units, {check.best_output_units} in best output {best}, "
            f"{check.known_elsewhere} in other outputs, {check.novel_units} novel-or-best with "
            f"{check.novel_green} green (allowance {check.false_match_allowance}); p = {check.p_value_novel:.3g}"
        )
    if attribution.index is not None:
        lines.append(f"index: {attribution.index['outputs']} outputs of key {attribution.index['key_id']} in "
                     f"{attribution.index['location']}")  # fmt: skip
    return "\n".join(lines)


def _register_index(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    index = verbs.add_parser("index", help="the provider's known-output index (spoofing defence)")
    actions = index.add_subparsers(dest="action", required=True, metavar="ACTION", help="add or info")
    add = actions.add_parser("add", help="add marked outputs to the index (each file one output; .jsonl: 'text')")
    add.add_argument("inputs", nargs="+", metavar="FILE", help="text files, .jsonl files, or - for standard input")
    info = actions.add_parser("info", help="what the index holds and its size")
    for parser in (add, info):
        parser.add_argument("--db", help="SQLite file or postgresql:// URL (default: the log's database)")
        parser.add_argument("--model", help="model directory giving the tokenizer (default: reference model)")
        _add_key_options(parser)
        add_json_flag(parser)
    add.set_defaults(handler=_index_add)
    info.set_defaults(handler=_index_info)


def _index_key(args: argparse.Namespace) -> tuple[TextTokenizer, TextKey, str]:
    tokenizer = TextTokenizer(args.model or str(reference_model_dir()))
    key = select_text_key(Keyring(), tokenizer, key_id=args.key, scheme=args.scheme)
    return tokenizer, key, args.db or str(default_database_path())


def _index_add(args: argparse.Namespace) -> int:
    tokenizer, key, location = _index_key(args)
    texts = list(iter_known_output_texts(args.inputs, read_text_input))
    with KnownOutputIndex.open(location, key, create=True) as index:
        numbers = index.add_texts(texts, tokenizer)
        description = index.describe()
    payload = {"added": len(numbers), "first": numbers[0] if numbers else None, "index": description}
    emit(args, payload, f"added {len(numbers)} outputs; {_index_line(description)}")
    return 0


def _index_info(args: argparse.Namespace) -> int:
    _, key, location = _index_key(args)
    with KnownOutputIndex.open(location, key) as index:
        description = index.describe()
    emit(args, description, _index_line(description))
    return 0


def _index_line(description: KnownOutputIndexJSON) -> str:
    per = description["bytes_per_output"]
    return (f"index of key {description['key_id']} in {description['location']}: {description['outputs']} outputs, "
            f"{description['bytes']} bytes ({'-' if per is None else f'{per:.0f}'} per output), membership "
            f"false-positive rate {description['membership_false_positive_rate']:.3g}")  # fmt: skip


def _register_scan(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    scan = verbs.add_parser("scan", help="test every document of a corpus (JSONL, Parquet, text files, gz/zst)")
    scan.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders")
    scan.add_argument("--out", required=True, help="results: .jsonl, or .parquet (needs pyarrow); resumed if present")
    scan.add_argument("--model", help="model directory giving the tokenizer (default: reference model)")
    _add_key_options(scan)
    scan.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level (default 1e-6)")
    scan.add_argument("--fdr", type=float, default=0.05, help="false discovery rate for Benjamini-Hochberg")
    scan.add_argument("--windows", action="store_true", help="windowed test per document (slower; finds spans)")
    scan.add_argument("--batch-size", type=int, default=512, help="documents per batch (default 512)")
    scan.add_argument("--max-bytes", type=int, default=MAX_INPUT_BYTES, help="largest document (characters)")
    scan.add_argument("--ray", action="store_true", help="run on Ray: one actor per worker (tracemark[scale])")
    scan.add_argument("--ray-address", help="Ray cluster address (default: a local Ray)")
    scan.add_argument("--workers", type=int, help="Ray workers (default: Ray's CPUs)")
    scan.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    add_json_flag(scan)
    scan.set_defaults(handler=_scan)


def _progress_printer() -> Callable[[ScanProgress], None]:
    last = [-1.0]  # the first batch is shown, then at most one line a second
    tty = sys.stderr.isatty()

    def show(progress: ScanProgress) -> None:
        if last[0] >= 0.0 and progress.seconds - last[0] < 1.0:
            return
        last[0] = progress.seconds
        rate = progress.tokens / progress.seconds if progress.seconds > 0 else 0.0
        line = (
            f"scanned {progress.documents} documents, {progress.marked} marked, {progress.errors} errors, "
            f"{progress.tokens} tokens ({rate:,.0f} tokens/s)"
        )
        sys.stderr.write(f"\r{line}" if tty else f"{line}\n")
        sys.stderr.flush()

    return show


def format_scan_summary(summary: ScanSummary) -> str:
    """The human form of a scan summary."""
    return "\n".join(
        [
            f"documents: {summary.documents} ({summary.documents_tested} tested, {summary.errors} errors, "
            f"{summary.resumed_documents} from an earlier run), {summary.tokens_total} tokens",
            f"marked: {summary.marked} at alpha {summary.alpha:g}; expected false positives if none is marked: "
            f"{summary.expected_false_positives:.3g}",
            f"Bonferroni (p <= {summary.bonferroni_threshold or 0.0:.3g}): {summary.bonferroni_marked}; "
            f"Benjamini-Hochberg at FDR {summary.fdr:g}: {summary.benjamini_hochberg_discoveries}",
            f"key {summary.key_id} ({summary.scheme}/{summary.scheme_version}); results in {summary.out}",
        ]
    )


def _scan(args: argparse.Namespace) -> int:
    if args.ray_address and not args.ray:
        raise InvalidInputError("--ray-address needs --ray")
    _check_level("--alpha", args.alpha)
    _check_level("--fdr", args.fdr)
    _check_positive("--batch-size", args.batch_size)
    _check_positive("--max-bytes", args.max_bytes)
    _check_positive("--workers", args.workers)
    tokenizer = TextTokenizer(args.model or str(reference_model_dir()))
    key = select_text_key(Keyring(), tokenizer, key_id=args.key, scheme=args.scheme)
    options = ScanOptions(
        alpha=args.alpha,
        fdr=args.fdr,
        windows=args.windows,
        batch_size=args.batch_size,
        max_chars=args.max_bytes,
        ray=args.ray,
        ray_address=args.ray_address,
        workers=args.workers,
    )
    progress = None if args.quiet else _progress_printer()
    summary = scan_corpus(args.inputs, key, tokenizer, Path(args.out), options, progress=progress)
    if progress is not None and sys.stderr.isatty():
        sys.stderr.write("\n")
    emit(args, summary.to_json(), format_scan_summary(summary))
    return 0
