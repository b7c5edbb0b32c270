"""The text watermark red team: attack marked and unmarked samples, detect, count, judge the targets.

One run, per detector (scheme): generate ``samples`` marked completions with the scheme's own
``LogitsProcessor`` and ``samples`` unmarked ones from the same model and sampling, apply every attack
at every strength to both sides, and detect with the product's detector (canonicalisation, exact
p-value, de-duplication; the window scan where the mark sits inside longer text).  Each cell is the
pair (TPR, FPR) at ``alpha``.

Spoofing (watermark stealing, Jovanović et al. 2024): from ``M`` marked samples the attacker counts,
for each context of the scheme's width, the tokens that followed it; when generating with the
unmarked model it boosts the tokens that were over-represented in marked text after the current
context.  The attack knows the scheme (Kerckhoffs), not the key.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tracemark.keys import TextKey
from tracemark.redteam._intervals import rate
from tracemark.redteam._lm import Batch, RedTeamModel, emoji_processor, stealing_processor
from tracemark.redteam._results import Cell, Target, WatermarkReport
from tracemark.redteam._text_attacks import TEXT_ATTACKS, WINDOWED_ATTACKS, AttackContext
from tracemark.text import (
    DEFAULT_ALPHA,
    TextTokenizer,
    bulk_scheme,
    canonicalize,
    detect_batch,
    detect_tokens,
    load_scheme,
    text_variants,
)

#: (stage, done, total): called as the run advances, for a progress bar.
Progress = Callable[[str, int, int], None]

#: Strengths of model-level attacks (share of tokens regenerated; share of tokens followed by an emoji).
REGENERATION_STRENGTHS = (0.1, 0.3, 0.5)
EMOJI_GENERATION_STRENGTHS = (0.5, 1.0)
#: The spoofer's boost (logits), larger than the watermark's own delta: the attack is not tuned down.
STEALING_BOOST = 4.0
#: The character-level target is judged at attacks on up to this share of words (the research note's 50 %
#: homoglyph point); stronger settings are measured and reported beside it.
CHARACTER_TARGET_STRENGTH = 0.5
_EMOJI = " \U0001f600"


@dataclass(frozen=True)
class TextRedTeamOptions:
    """Sizes and switches of a text run (the CLI's defaults are the reduced N; ``make bench`` the full)."""

    samples: int = 100
    tokens: int = 200
    alpha: float = DEFAULT_ALPHA
    seed: int = 20260101
    attacks: tuple[str, ...] = tuple(TEXT_ATTACKS)
    regeneration: bool = True
    emoji_generation: bool = True
    #: Numbers of stolen marked samples; empty skips spoofing.
    spoof_samples: tuple[int, ...] = (10, 100)
    spoof_texts: int = 50
    #: Generations per strength of the emoji attack (each costs a generation with the marked model).
    emoji_samples: int = 200
    #: torch threads (None: torch's default); the reference model is small enough that one is usually fastest.
    threads: int | None = None
    #: Test the case and whitespace variants of each attacked text as the product does (``detect_watermark``'s
    #: default); False scores the canonical text only (the runs before #12's variants).
    variants: bool = True


def _silent(_stage: str, _done: int, _total: int) -> None:
    return None


class _Detector:
    """One key's detector over texts: canonicalise, tokenise, test (whole text or window scan)."""

    def __init__(self, key: TextKey, tokenizer: TextTokenizer, alpha: float, *, variants: bool = True) -> None:
        self.key = key
        self.variants = variants
        self.tokenizer = tokenizer
        self.alpha = alpha
        self.bulk = bulk_scheme(load_scheme(key)) is not None

    def ids(self, text: str) -> np.ndarray:
        return self.tokenizer.encode(canonicalize(text).text).ids

    def log10_p(self, texts: Sequence[str], *, windows: bool = False) -> list[float]:
        """log10 p of each text as the product tests it: canonical form, then (with ``variants``) every case
        and whitespace variant its shape calls for, the best p-value times their number (Bonferroni)."""
        if not self.variants:
            return self.log10_p_ids([self.ids(text) for text in texts], windows=windows)
        tested = [text_variants(canonicalize(text).text, self.tokenizer) for text in texts]
        flat = [self.tokenizer.encode(v.text).ids for variants in tested for v in variants]
        scores = self.log10_p_ids(flat, windows=windows)
        out = []
        at = 0
        for variants in tested:
            best = min(scores[at : at + len(variants)])
            out.append(min(0.0, best + math.log10(len(variants))))
            at += len(variants)
        return out

    def log10_p_ids(self, sequences: Sequence[np.ndarray], *, windows: bool = False) -> list[float]:
        if self.bulk and not windows:
            values = detect_batch(list(sequences), self.key, alpha=self.alpha).log10_p_values
            return [min(0.0, float(v)) for v in values]
        out = []
        for ids in sequences:
            if ids.shape[0] == 0:
                out.append(0.0)
                continue
            verdict = detect_tokens(ids, self.key, alpha=self.alpha, scan_windows=windows)
            out.append(min(0.0, verdict.log10_p_value))
        return out


def _cell(
    detector: _Detector,
    kind: str,
    attack: tuple[str, str, str, str],
    strength: float,
    marked: Sequence[float],
    unmarked: Sequence[float],
    *,
    median_tokens: float | None = None,
    ppl: float | None = None,
    note: str = "",
) -> Cell:
    threshold = float(np.log10(detector.alpha))
    name, version, level, meaning = attack
    return Cell(
        kind=kind,
        detector=detector.key.scheme,
        attack=name,
        attack_version=version,
        level=level,
        strength=strength,
        strength_meaning=meaning,
        alpha=detector.alpha,
        tpr=rate(sum(v <= threshold for v in marked), len(marked)),
        fpr=rate(sum(v <= threshold for v in unmarked), len(unmarked)),
        marked_scores=tuple(marked),
        unmarked_scores=tuple(unmarked),
        median_tokens=median_tokens,
        median_perplexity=ppl,
        note=note,
    )


class TextRedTeam:
    """Runs the text attacks and the stealing attack against keys of one model."""

    def __init__(self, model_dir: Path, options: TextRedTeamOptions, progress: Progress = _silent) -> None:
        self.model_dir = model_dir
        self.options = options
        self.progress = progress
        self.tokenizer = TextTokenizer(model_dir)
        self.model = RedTeamModel(model_dir, threads=options.threads)
        self._unmarked: Batch | None = None

    def _generate(self, stage: str, count: int, **kwargs: object) -> Batch:
        done = 0

        def tick(size: int) -> None:
            nonlocal done
            done += size
            self.progress(stage, done, count)

        self.progress(stage, 0, count)
        return self.model.generate(count, self.options.tokens, progress=tick, **kwargs)  # type: ignore[arg-type]

    def unmarked(self) -> Batch:
        if self._unmarked is None:
            self._unmarked = self._generate("unmarked samples", self.options.samples, seed=self.options.seed + 1)
        return self._unmarked

    def run(self, keys: Sequence[TextKey]) -> WatermarkReport:
        started = time.monotonic()
        cells: list[Cell] = []
        for key in keys:
            cells.extend(self.run_key(key))
        return WatermarkReport(
            medium="text",
            detectors=tuple(key.scheme for key in keys),
            model=str(self.model_dir),
            samples_marked=self.options.samples,
            samples_unmarked=self.options.samples,
            tokens=self.options.tokens,
            alpha=self.options.alpha,
            seed=self.options.seed,
            seconds=time.monotonic() - started,
            cells=tuple(cells),
            targets=text_targets(cells, self.options),
            notes=(
                "TPR: share of attacked marked samples detected at p <= alpha; FPR: share of attacked unmarked "
                "samples flagged; intervals are Wilson 95 %.",
                "Spoof cells: TPR is the share of forged (stolen-watermark) texts the detector accepts.",
            ),
        )

    def scrub_report(self, key: TextKey, marked_ids: Batch, unmarked_ids: Batch) -> WatermarkReport:
        """The clean and scrubbing cells on generations made earlier (e.g. a spoofing run's stolen pool)."""
        started = time.monotonic()
        detector = _Detector(key, self.tokenizer, self.options.alpha, variants=self.options.variants)
        marked = [self.model.decode(ids) for ids in marked_ids]
        unmarked = [self.model.decode(ids) for ids in unmarked_ids]
        cells = [self._clean_cell(detector, marked_ids, unmarked_ids)]
        cells.extend(self._scrub_cells(detector, marked, unmarked))
        return WatermarkReport(
            medium="text", detectors=(key.scheme,), model=str(self.model_dir), samples_marked=len(marked),
            samples_unmarked=len(unmarked), tokens=self.options.tokens, alpha=self.options.alpha,
            seed=self.options.seed, seconds=time.monotonic() - started, cells=tuple(cells),
            targets=text_targets(cells, self.options),
            notes=("TPR: share of attacked marked samples detected at p <= alpha; FPR: share of attacked unmarked "
                   "samples flagged; intervals are Wilson 95 %.",),
        )  # fmt: skip

    def run_key(self, key: TextKey) -> list[Cell]:
        options = self.options
        detector = _Detector(key, self.tokenizer, options.alpha, variants=options.variants)
        most = max((options.samples, *options.spoof_samples))
        marked_ids = self._generate(f"{key.scheme} marked samples", most, seed=options.seed, key=key)
        marked_ids, stolen_pool = marked_ids[: options.samples], marked_ids
        marked = [self.model.decode(ids) for ids in marked_ids]
        unmarked = [self.model.decode(ids) for ids in self.unmarked()]
        cells = [self._clean_cell(detector, marked_ids, self.unmarked())]
        cells.extend(self._scrub_cells(detector, marked, unmarked))
        if options.regeneration:
            cells.extend(self._regeneration_cells(detector, marked_ids, self.unmarked()))
        if options.emoji_generation:
            cells.extend(self._emoji_cells(detector, key, cells[0]))
        for samples in options.spoof_samples:
            cells.append(self._spoof_cell(detector, key, stolen_pool[:samples], cells[0]))
        return cells

    def _clean_cell(self, detector: _Detector, marked: Batch, unmarked: Batch) -> Cell:
        marked_p = detector.log10_p_ids([np.asarray(r, dtype=np.int64) for r in marked])
        unmarked_p = detector.log10_p_ids([np.asarray(r, dtype=np.int64) for r in unmarked])
        ppl = statistics.median(self.model.perplexity(marked))
        return _cell(detector, "scrub", ("none", "1", "none", "no attack"), 0.0, marked_p, unmarked_p,
                     median_tokens=float(self.options.tokens), ppl=ppl)  # fmt: skip

    def _scrub_cells(self, detector: _Detector, marked: list[str], unmarked: list[str]) -> list[Cell]:
        cells: list[Cell] = []
        names = [name for name in self.options.attacks if name in TEXT_ATTACKS]
        total = sum(len(TEXT_ATTACKS[name].strengths) for name in names)
        done = 0
        for name in names:
            attack = TEXT_ATTACKS[name]
            windows = name in WINDOWED_ATTACKS
            for strength in attack.strengths:
                self.progress(f"{detector.key.scheme} attacks", done, total)
                sides = []
                for side, pool in ((marked, unmarked), (unmarked, unmarked)):
                    rng = np.random.default_rng([self.options.seed, done])
                    context = AttackContext(same_side=side, human=pool)
                    attacked = [attack.apply(text, strength, rng, context) for text in side]
                    sides.append(detector.log10_p(attacked, windows=windows))
                tokens = float(statistics.median(len(detector.ids(t)) for t in marked[:50]))
                cells.append(_cell(detector, "scrub", (name, attack.version, attack.level, attack.strength_meaning),
                                   strength, sides[0], sides[1], median_tokens=tokens))  # fmt: skip
                done += 1
        self.progress(f"{detector.key.scheme} attacks", total, total)
        return cells

    def _regeneration_cells(self, detector: _Detector, marked: Batch, unmarked: Batch) -> list[Cell]:
        cells = []
        for index, fraction in enumerate(REGENERATION_STRENGTHS):
            self.progress(f"{detector.key.scheme} regeneration", index, len(REGENERATION_STRENGTHS))
            seed = self.options.seed + 100 + index
            sides = [
                detector.log10_p([self.model.decode(r) for r in self.model.regenerate(batch, fraction, seed=seed)])
                for batch in (marked, unmarked)
            ]
            cells.append(_cell(detector, "scrub", ("regeneration", "1", "model",
                                                   "share of tokens resampled by the unmarked model"),
                               fraction, sides[0], sides[1]))  # fmt: skip
        return cells

    def _emoji_cells(self, detector: _Detector, key: TextKey, clean: Cell) -> list[Cell]:
        emoji_ids = [int(t) for t in self.model.tokenizer.encode(_EMOJI, add_special_tokens=False)]
        count = min(self.options.samples, self.options.emoji_samples)
        cells = []
        for index, share in enumerate(EMOJI_GENERATION_STRENGTHS):
            factory = emoji_processor(emoji_ids, share, self.options.seed + index)
            batch = self._generate(f"{key.scheme} emoji generation {share}", count, seed=self.options.seed + 7,
                                   key=key, extra_processor=factory)  # fmt: skip
            texts = [self.model.decode(ids).replace(_EMOJI, "").replace(_EMOJI.strip(), "") for ids in batch]
            marked_p = detector.log10_p(texts)
            tokens = float(statistics.median(len(detector.ids(t)) for t in texts))
            cells.append(_cell(detector, "scrub", ("emoji-generation", "1", "model",
                                                   "share of generated tokens followed by an emoji, removed after"),
                               share, marked_p, list(clean.unmarked_scores), median_tokens=tokens,
                               note=f"{count} generations of {self.options.tokens} tokens incl. emoji; FPR from the "
                                    "clean unmarked samples"))  # fmt: skip
        return cells

    def forge(self, key: TextKey, stolen: Batch, count: int) -> tuple[Batch, int]:
        """``count`` texts forged by watermark stealing from ``stolen`` (and how many contexts were learned)."""
        width = load_scheme(key).context_width
        learned = learn_contexts(stolen, width)
        factory = stealing_processor(learned, width, STEALING_BOOST)
        forged = self._generate(f"{key.scheme} spoofing M={len(stolen)}", count,
                                seed=self.options.seed + 1000 + len(stolen), extra_processor=factory)  # fmt: skip
        return forged, len(learned)

    def _spoof_cell(self, detector: _Detector, key: TextKey, stolen: Batch, clean: Cell) -> Cell:
        width = load_scheme(key).context_width
        forged, learned = self.forge(key, stolen, self.options.spoof_texts)
        forged_p = detector.log10_p([self.model.decode(ids) for ids in forged])
        ppl = statistics.median(self.model.perplexity(forged))
        return _cell(detector, "spoof", ("stealing", "1", "spoof", "marked samples stolen (M)"), float(len(stolen)),
                     forged_p, list(clean.unmarked_scores), ppl=ppl,
                     note=f"context width {width}, {learned} contexts learned, boost {STEALING_BOOST}; "
                          f"{len(forged)} forged texts; FPR from the clean unmarked samples")  # fmt: skip


def learn_contexts(samples: Batch, width: int) -> dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]]:
    """For each context of ``width`` tokens in the stolen samples: the tokens after it and their frequencies."""
    counts: defaultdict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
    for ids in samples:
        for t in range(width, len(ids)):
            counts[tuple(ids[t - width : t])][ids[t]] += 1
    learned = {}
    for context, followers in counts.items():
        total = sum(followers.values())
        tokens = np.fromiter(followers.keys(), dtype=np.int64, count=len(followers))
        frequencies = np.fromiter(followers.values(), dtype=np.float64, count=len(followers)) / total
        learned[context] = (tokens, frequencies)
    return learned


def _rate_text(cell: Cell) -> str:
    return f"TPR {cell.tpr.value or 0.0:.3f} [{cell.tpr.low:.3f}, {cell.tpr.high:.3f}] of {cell.tpr.trials}"


def text_targets(cells: Sequence[Cell], options: TextRedTeamOptions) -> tuple[Target, ...]:
    """The issue's text goals, judged from the cells (``met`` is None when the run did not measure one)."""
    targets = []
    for detector in sorted({cell.detector for cell in cells}):
        character = [c for c in cells if c.detector == detector and c.level == "character"]
        judged = [c for c in character if c.strength <= CHARACTER_TARGET_STRENGTH]
        if judged:
            worst = min(judged, key=lambda c: c.tpr.value or 0.0)
            beyond = min(character, key=lambda c: c.tpr.value or 0.0)
            full_n = all(c.tpr.trials >= 500 for c in judged)
            targets.append(Target(
                id=f"text-character-tpr/{detector}",
                claim=f"every character-level attack on up to {CHARACTER_TARGET_STRENGTH:.0%} of the words keeps "
                      "TPR >= 0.95 at p < 1e-6 (N >= 500)",
                measured=f"worst: {worst.attack} at {worst.strength:g}: {_rate_text(worst)}; at any strength: "
                         f"{beyond.attack} at {beyond.strength:g}: {_rate_text(beyond)}"
                         + ("" if full_n else " (reduced N)"),
                met=(worst.tpr.value or 0.0) >= 0.95 if full_n else None,
            ))  # fmt: skip
        spoofs = [c for c in cells if c.detector == detector and c.kind == "spoof"]
        if spoofs:
            largest = max(spoofs, key=lambda c: c.strength)
            claim = "spoofing from 1,000 stolen samples succeeds <= 1 % at p < 1e-6"
            measured = ", ".join(f"M={c.strength:g}: {_rate_text(c)}" for c in spoofs)
            if detector != "native":
                claim += " (the target is the native scheme's; shown for comparison)"
            met = (largest.tpr.value or 0.0) <= 0.01 if largest.strength >= 1000 and detector == "native" else None
            targets.append(Target(f"text-spoof/{detector}", claim, measured, met))
    del options
    return tuple(targets)
