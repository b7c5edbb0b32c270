"""The gateway's batching engine: concurrent completion requests share one marked step loop.

One engine thread per served key decodes *rounds*.  A round starts with the oldest waiting job,
waits at most ``wait_seconds`` (the wait budget) for more to arrive, up to ``max_batch`` rows
(a job asking for ``n`` choices is ``n`` rows), then decodes them together: one forward pass
of the model per step for the whole batch (left-padded prompts, a KV cache), the key's
watermark ``LogitsProcessor`` over the batch's logits, then each row's own temperature, top-p
and seeded sampler.  Between two steps, finished rows leave the batch (their KV-cache rows are
dropped) and waiting jobs join it (continuous batching): they are prefilled apart, and their
tokens, mask and KV cache are left-padded to the batch's width and appended, so that a row
samples the same tokens whichever rows it shares a batch with, up to floating point (a batched
forward pass is not bit-identical to a single one; see ``_sample``; the tests check both).

Each step's output reaches the job's consumer through ``post`` (on its event loop): the text
delta (held back while it could be the start of a stop string or an incomplete UTF-8
sequence), the token id and, when asked for, its log-probability and the most likely
alternatives.  A cancelled job (its client went away) finishes at the next step with
``finish_reason`` ``"cancelled"`` and what was generated so far, so that its route still logs it.

Order of the logits transforms, as in Hugging Face ``generate()`` with
``logits_processor=[watermark]``: end-of-text suppression (``min_tokens``, ``ignore_eos``), the
watermark, then temperature and top-p.  A SynthID key does its own temperature and top-k
inside its processor (:meth:`WatermarkScheme.generation_kwargs` makes the request's neutral),
and it follows each row of one batch from step to step: its rounds take no joiners and keep
finished rows (fed padding) until the round ends.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tracemark.errors import InvalidInputError
from tracemark.text import WatermarkedGenerator, logits_processor

#: ``error``: the round failed after the row had tokens (they are reported so that the route logs them).
FinishReason = Literal["stop", "length", "cancelled", "error"]

#: How long (seconds) the engine thread waits for work before it checks whether it should stop.
_IDLE_POLL = 0.5


@dataclass(frozen=True)
class SamplingOptions:
    """What one request asks of the sampler (already validated by the route)."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: None: no log-probabilities; k >= 0: the sampled token's and the k most likely alternatives'.
    logprobs: int | None = None
    min_tokens: int = 0
    ignore_eos: bool = False


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability under the distribution it was sampled from (watermark included)."""

    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class StepDelta:
    """One step of one choice: the new text (possibly empty) and the sampled token."""

    choice: int
    text: str
    token: TokenLogprob
    top: tuple[TokenLogprob, ...]
    logprobs_wanted: bool


@dataclass(frozen=True)
class ChoiceOutcome:
    """A finished choice: the whole text, its token ids and why it ended."""

    choice: int
    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason


@dataclass(frozen=True)
class EngineFailure:
    """The round this job was in failed; ``error`` is what the route reports."""

    error: BaseException


EngineEvent = StepDelta | ChoiceOutcome | EngineFailure


@dataclass
class GenerationJob:
    """One request's rows in the engine: its prompt, ``n`` choices and the way back to its event loop."""

    prompt_ids: tuple[int, ...]
    options: SamplingOptions
    n: int
    post: Callable[[EngineEvent], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.monotonic)

    def cancel(self) -> None:
        """Stop generating at the next step (the finished choices report ``cancelled``)."""
        self.cancelled.set()


def asyncio_poster(loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[EngineEvent]) -> Callable[[EngineEvent], None]:
    """A ``post`` that hands engine events to ``inbox`` on ``loop`` from the engine thread."""

    def post(event: EngineEvent) -> None:
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, event)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return

    return post


@dataclass
class _Row:
    """One choice being decoded."""

    job: GenerationJob
    choice: int
    sampler: Any  # torch.Generator
    ids: list[int] = field(default_factory=list)
    sent_chars: int = 0
    finished: FinishReason | None = None
    text: str = ""


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Characters at the end of ``text`` not to send yet: a partial stop string or an incomplete character."""
    if text.endswith("\ufffd"):
        return len(text) - len(text.rstrip("\ufffd"))
    hold = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:size]):
                hold = size
                break
    return hold


class BatchingEngine:
    """The step loop over a :class:`WatermarkedGenerator` (one key), fed by :meth:`submit` from any thread."""

    def __init__(
        self,
        generator: WatermarkedGenerator,
        *,
        max_batch: int = 16,
        wait_seconds: float = 0.02,
        max_waiting: int = 256,
    ) -> None:
        if max_batch < 1:
            raise InvalidInputError("max_batch must be at least 1")
        self.generator = generator
        self.max_batch = max_batch
        self.wait_seconds = max(0.0, wait_seconds)
        self.max_waiting = max_waiting
        self._torch = generator._torch
        self._queue: queue.Queue[GenerationJob] = queue.Queue()
        self._carry: GenerationJob | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracemark-gateway-engine", daemon=True)
        self._thread.start()
        tokenizer = generator.tokenizer
        self.eos_token_id: int | None = tokenizer.eos_token_id
        self.pad_token_id: int = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
        settings = generator.scheme.generation_kwargs()
        #: A scheme that samples itself (SynthID) fixes temperature and top-p; the request's are not applied.
        self.scheme_samples = "temperature" in settings
        #: Rounds run and rows decoded (for the benchmark and the tests).
        self.rounds = 0
        self.largest_batch = 0

    # -- the client side --------------------------------------------------------------------------
    def waiting(self) -> int:
        """Jobs submitted and not yet in a round."""
        return self._queue.qsize() + (self._carry is not None)

    def submit(self, job: GenerationJob) -> None:
        """Queue ``job`` for the next round (raises when too many are waiting or the engine is closed)."""
        if self._closed.is_set():
            raise InvalidInputError("the generation engine is shut down")
        if job.n > self.max_batch:
            raise InvalidInputError(f"n is at most {self.max_batch} on this service")
        self._queue.put(job)

    def close(self) -> None:
        """Stop the engine thread after the current round."""
        self._closed.set()
        self._thread.join(timeout=30)

    # -- the engine thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed.is_set():
            jobs = self._take_round()
            if not jobs:
                continue
            self._decode_round(jobs)  # a failing round posts its error to its jobs and the engine goes on

    def _next_job(self, timeout: float) -> GenerationJob | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        try:
            return self._queue.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def _take_round(self) -> list[GenerationJob]:
        """The next round's jobs: the first waiting job, then whatever arrives within the wait budget."""
        first = self._next_job(_IDLE_POLL)
        if first is None:
            return []
        jobs, rows = [first], first.n
        deadline = first.submitted + self.wait_seconds
        while rows < self.max_batch:
            job = self._next_job(deadline - time.monotonic()) if self._carry is None else self._next_job(0)
            if job is None:
                break
            if rows + job.n > self.max_batch:
                self._carry = job
                break
            jobs.append(job)
            rows += job.n
        return [job for job in jobs if not self._skip_cancelled(job)]

    @staticmethod
    def _skip_cancelled(job: GenerationJob) -> bool:
        if not job.cancelled.is_set():
            return False
        for choice in range(job.n):
            job.post(ChoiceOutcome(choice=choice, text="", token_ids=(), finish_reason="cancelled"))
        return True

    def take_waiting(self, room: int, width: int, window: int | None, longest_left: int) -> list[GenerationJob]:
        """Waiting jobs (engine thread only) that fit ``room`` rows and keep a batch of ``width`` tokens that
        still needs ``longest_left`` steps within the model's ``window``; the first that does not fit waits."""
        jobs: list[GenerationJob] = []
        rows = 0
        while rows < room:
            job = self._next_job(0)
            if job is None:
                break
            needed = max(width, len(job.prompt_ids) + 1) + max(longest_left, job.options.max_tokens)
            if job.n > room - rows or (window is not None and needed > window):
                self._carry = job
                break
            if not self._skip_cancelled(job):
                jobs.append(job)
                rows += job.n
        return jobs

    def rows_for(self, jobs: list[GenerationJob]) -> list[_Row]:
        """One decoding row per choice of each job, each with its own seeded sampler."""
        return self._rows(jobs)

    def _rows(self, jobs: list[GenerationJob]) -> list[_Row]:
        torch = self._torch
        rows = []
        for job in jobs:
            for choice in range(job.n):
                sampler = torch.Generator(device="cpu")
                seed = job.options.seed
                # choice c of a seeded request draws from seed + c: reproducible, and the n choices differ
                sampler.manual_seed(int.from_bytes(os.urandom(8), "little") if seed is None else seed + choice)
                rows.append(_Row(job=job, choice=choice, sampler=sampler))
        return rows

    def _decode_round(self, jobs: list[GenerationJob]) -> None:
        rows = self._rows(jobs)
        if not rows:
            return
        self.rounds += 1
        self.largest_batch = max(self.largest_batch, len(rows))
        decoder = _RoundDecoder(self, rows)
        try:
            decoder.run()
        except Exception as exc:  # every job of the round, those that joined it included, gets the error
            for row in decoder.rows:
                if row.finished is None and row.ids:  # what was generated (and maybe streamed) is still logged
                    row.finished = "error"
                    row.job.post(ChoiceOutcome(row.choice, row.text, tuple(row.ids), "error"))
            for job in {id(row.job): row.job for row in [*rows, *decoder.rows]}.values():
                job.post(EngineFailure(exc))


def _window(model: Any) -> int | None:
    """The model's context length (absolute positions), when its config says."""
    config = model.config
    window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return window if isinstance(window, int) else None


def _left_pad(tensor: Any, width: int, dim: int, value: float, torch: Any) -> Any:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.full(shape, value, dtype=tensor.dtype, device=tensor.device), tensor], dim=dim)


@dataclass
class _Batch:
    """The decoding state of the rows in one batch: every row's tokens so far (left-padded), the attention
    mask over them, the next positions and inputs, the KV cache, and which of the round's rows they are."""

    full_ids: Any
    mask: Any
    positions: Any
    step_ids: Any
    cache: Any
    active: list[int]

    def select(self, torch: Any, keep: list[int]) -> None:
        """Keep only the rows at ``keep`` (finished rows leave), then drop padding no row needs any more."""
        index = torch.tensor(keep, dtype=torch.long)
        self.cache.reorder_cache(index)
        self.full_ids, self.mask, self.positions, self.step_ids = (
            t.index_select(0, index) for t in (self.full_ids, self.mask, self.positions, self.step_ids)
        )
        self.active = [self.active[place] for place in keep]
        used = self.mask.any(dim=0).nonzero()
        unused = int(used[0]) if used.numel() else 0
        layers = _plain_layers(self.cache)
        if unused > 0 and layers is not None:
            self.full_ids, self.mask = self.full_ids[:, unused:], self.mask[:, unused:]
            for layer in layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]

    def join(self, torch: Any, other: _Batch, pad_id: int) -> bool:
        """Append ``other``'s rows, left-padding the shorter side's tokens, mask and cache; False when the
        caches are not transformers' plain per-layer tensors (then nothing changes)."""
        mine, theirs = _plain_layers(self.cache), _plain_layers(other.cache)
        if mine is None or theirs is None or len(mine) != len(theirs):
            return False
        width = max(self.full_ids.shape[1], other.full_ids.shape[1])
        for a, b in zip(mine, theirs, strict=True):
            cached = width - 1  # the cache holds every token but the one fed next
            a.keys = torch.cat([_left_pad(a.keys, cached, 2, 0.0, torch), _left_pad(b.keys, cached, 2, 0.0, torch)])
            a.values = torch.cat(
                [_left_pad(a.values, cached, 2, 0.0, torch), _left_pad(b.values, cached, 2, 0.0, torch)]
            )
        self.full_ids = torch.cat([_left_pad(t.full_ids, width, 1, pad_id, torch) for t in (self, other)])
        self.mask = torch.cat([_left_pad(t.mask, width, 1, 0, torch) for t in (self, other)])
        self.positions = torch.cat([self.positions, other.positions])
        self.step_ids = torch.cat([self.step_ids, other.step_ids])
        self.active = [*self.active, *other.active]
        return True


def _plain_layers(cache: Any) -> list[Any] | None:
    """The cache's layers when each is a plain growing key/value pair (``DynamicLayer``), else None."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    return list(layers)


class _RoundDecoder:
    """One round: prefill the left-padded prompts, then one batched step per token until every row is done."""

    def __init__(self, engine: BatchingEngine, rows: list[_Row]) -> None:
        self.engine = engine
        self.torch = engine._torch
        self.model = engine.generator.model
        self.tokenizer = engine.generator.tokenizer
        self.processor = logits_processor(engine.generator.scheme)  # fresh: SynthID's keeps per-round state
        self.rows = rows
        accepted = inspect.signature(self.model.forward).parameters
        #: transformers 5.25 renamed ``past_key_values`` to ``cache`` (the old name warns until 5.40).
        self.cache_name = "cache" if "cache" in accepted else "past_key_values"
        self.extra: dict[str, object] = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}

    def _prefill_inputs(self, rows: list[_Row]) -> tuple[Any, Any]:
        torch = self.torch
        width = max(len(row.job.prompt_ids) for row in rows)
        ids = torch.full((len(rows), width), self.engine.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            prompt = row.job.prompt_ids
            ids[index, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[index, width - len(prompt) :] = 1
        return ids, mask

    def _step(self, batch: _Batch) -> None:
        """One forward pass and one sampled token per active row; finished rows leave (unless SynthID)."""
        torch = self.torch
        caching: dict[str, object] = {self.cache_name: batch.cache}
        output = self.model(input_ids=batch.step_ids, attention_mask=batch.mask, position_ids=batch.positions,
                            use_cache=True, **caching, **self.extra)  # fmt: skip
        batch.cache = getattr(output, self.cache_name)
        chosen = self._sample([self.rows[i] for i in batch.active], batch.full_ids, output.logits[:, -1, :].float())
        batch.full_ids = torch.cat([batch.full_ids, chosen[:, None]], dim=1)
        batch.mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=1)
        batch.positions = batch.positions[:, -1:] + 1
        batch.step_ids = chosen[:, None]
        keep = [place for place, index in enumerate(batch.active) if self.rows[index].finished is None]
        if not keep:
            batch.active = []
        elif not self.engine.scheme_samples and len(keep) < len(batch.active):
            batch.select(torch, keep)

    def _start(self, rows: list[_Row]) -> _Batch:
        """Prefill ``rows`` (appended to the round's rows) and sample their first tokens."""
        first = len(self.rows)
        self.rows.extend(rows)
        full_ids, mask = self._prefill_inputs(rows)
        batch = _Batch(full_ids=full_ids, mask=mask, positions=(mask.cumsum(-1) - 1).clamp(min=0),
                       step_ids=full_ids, cache=None, active=list(range(first, first + len(rows))))  # fmt: skip
        self._step(batch)
        return batch

    def run(self) -> None:
        rows, self.rows = self.rows, []
        with self.torch.inference_mode():
            batch = self._start(rows)
            while batch.active:
                self._step(batch)
                if batch.active and self.joins:
                    self._admit(batch)

    @property
    def joins(self) -> bool:
        """Whether waiting jobs may join this round at a step boundary (continuous batching): not for
        SynthID, whose processor follows each row of one batch from step to step."""
        return not self.engine.scheme_samples

    def _admit(self, batch: _Batch) -> None:
        """Prefill waiting jobs that fit in the batch and join them to it."""
        room = self.engine.max_batch - len(batch.active)
        if room <= 0 or _plain_layers(batch.cache) is None:
            return
        jobs = self.engine.take_waiting(room, batch.full_ids.shape[1], _window(self.model), self._longest_left(batch))
        if not jobs:
            return
        newcomers = self._start(self.engine.rows_for(jobs))
        if newcomers.active and not batch.join(self.torch, newcomers, self.engine.pad_token_id):
            while newcomers.active:  # cannot happen with one model's caches; finish them apart rather than lose them
                self._step(newcomers)
        self.engine.largest_batch = max(self.engine.largest_batch, len(batch.active))

    def _longest_left(self, batch: _Batch) -> int:
        return max(self.rows[i].job.options.max_tokens - len(self.rows[i].ids) for i in batch.active)

    def _adjust(self, rows: list[_Row], full_ids: Any, logits: Any) -> Any:
        """End-of-text suppression, the watermark, then each row's temperature (SynthID: the key's own)."""
        torch = self.torch
        eos = self.engine.eos_token_id
        if eos is not None and eos < logits.shape[-1]:
            for place, row in enumerate(rows):
                if row.job.options.ignore_eos or len(row.ids) < row.job.options.min_tokens:
                    logits[place, eos] = -torch.inf
        scores = self.processor(full_ids, logits)
        if self.engine.scheme_samples:
            return scores
        temperatures = torch.tensor([row.job.options.temperature or 1.0 for row in rows], dtype=scores.dtype)
        return scores / temperatures[:, None]

    def _sample(self, rows: list[_Row], full_ids: Any, logits: Any) -> Any:
        """One token per row: inverse-CDF sampling of the whole batch, with one uniform draw per row from
        that row's seeded generator (so a seeded request samples the same tokens in any batch, up to
        the batched forward pass's floating-point difference at a boundary between two neighbouring tokens)."""
        torch = self.torch
        scores = self._adjust(rows, full_ids, logits)
        log_probs = torch.log_softmax(scores, dim=-1)
        probs = self._nucleus(log_probs.exp(), rows)
        cumulative = probs.cumsum(-1)
        draws = torch.cat([torch.rand(1, generator=row.sampler, dtype=cumulative.dtype) for row in rows])
        chosen = torch.searchsorted(cumulative, (draws * cumulative[:, -1])[:, None]).squeeze(1)
        chosen = chosen.clamp(max=probs.shape[-1] - 1)
        greedy = [place for place, row in enumerate(rows) if row.job.options.temperature == 0.0]
        if greedy and not self.engine.scheme_samples:
            places = torch.tensor(greedy, dtype=torch.long)
            chosen[places] = scores[places].argmax(-1)
        for place, row in enumerate(rows):
            if row.finished is not None:  # a SynthID round keeps finished rows: feed them padding
                chosen[place] = self.engine.pad_token_id
            else:
                self._advance(row, int(chosen[place]), log_probs[place])
        return chosen

    def _nucleus(self, probs: Any, rows: list[_Row]) -> Any:
        """``probs`` with each row's top-p applied (the smallest set of most likely tokens holding ``top_p``)."""
        torch = self.torch
        top_p = [row.job.options.top_p for row in rows]
        if self.engine.scheme_samples or min(top_p) >= 1.0:
            return probs
        ordered, order = torch.sort(probs, dim=-1, descending=True)
        limits = torch.tensor(top_p, dtype=probs.dtype)[:, None]
        ordered = ordered.masked_fill(ordered.cumsum(-1) - ordered > limits, 0.0)
        return torch.zeros_like(probs).scatter(-1, order, ordered)

    def _logprobs(self, token: int, log_probs: Any, count: int) -> tuple[TokenLogprob, tuple[TokenLogprob, ...]]:
        decode = self.tokenizer.decode
        sampled = TokenLogprob(token, str(decode([token])), float(log_probs[token]))
        if count <= 0:
            return sampled, ()
        values, indices = self.torch.topk(log_probs, count)
        top = tuple(
            TokenLogprob(int(i), str(decode([int(i)])), float(v))
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        )
        return sampled, top

    def _advance(self, row: _Row, token: int, log_probs: Any) -> None:
        """Add ``token`` to ``row``, decide whether it is finished, post the delta and, when done, the outcome."""
        options = row.job.options
        is_eos = token == self.engine.eos_token_id and not options.ignore_eos and len(row.ids) >= options.min_tokens
        if not is_eos:
            row.ids.append(token)
        text = str(self.tokenizer.decode(row.ids, skip_special_tokens=True))
        reason: FinishReason | None = "stop" if is_eos else None
        for stop in options.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        if reason is None and len(row.ids) >= options.max_tokens:
            reason = "length"
        if reason is None and row.job.cancelled.is_set():
            reason = "cancelled"
        row.text = text
        end = len(text) if reason is not None else len(text) - _held_back(text, options.stop)
        delta = text[row.sent_chars : max(end, row.sent_chars)]
        row.sent_chars = max(end, row.sent_chars)
        if options.logprobs is not None and not is_eos:
            sampled, top = self._logprobs(token, log_probs, options.logprobs)
            row.job.post(StepDelta(choice=row.choice, text=delta, token=sampled, top=top, logprobs_wanted=True))
        elif delta:  # without logprobs (or for end-of-text) only text matters
            row.job.post(StepDelta(row.choice, delta, TokenLogprob(token, "", 0.0), (), logprobs_wanted=False))
        if reason is not None:
            row.finished = reason
            row.job.post(ChoiceOutcome(choice=row.choice, text=text, token_ids=tuple(row.ids), finish_reason=reason))
