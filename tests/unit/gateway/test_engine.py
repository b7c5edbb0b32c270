"""The batching engine: rounds, seeds, stop strings, cancellation, and marked output for every scheme."""

from __future__ import annotations

import threading

import pytest

from tests.unit.gateway.conftest import GeneratorFactory
from tracemark.service._openai_engine import (
    BatchingEngine,
    ChoiceOutcome,
    EngineEvent,
    GenerationJob,
    SamplingOptions,
    StepDelta,
    _held_back,
)
from tracemark.text import TextTokenizer, WatermarkedGenerator, detect_watermark


class Collector:
    """A job's events, gathered on the engine thread; ``wait()`` returns when every choice finished."""

    def __init__(self, choices: int = 1) -> None:
        self.events: list[EngineEvent] = []
        self._left = choices
        self._done = threading.Event()

    def post(self, event: EngineEvent) -> None:
        self.events.append(event)
        if isinstance(event, ChoiceOutcome):
            self._left -= 1
            if self._left == 0:
                self._done.set()

    def wait(self) -> list[ChoiceOutcome]:
        assert self._done.wait(120), "the engine did not finish the job"
        return sorted((e for e in self.events if isinstance(e, ChoiceOutcome)), key=lambda e: e.choice)

    def streamed_text(self, choice: int = 0) -> str:
        return "".join(e.text for e in self.events if isinstance(e, StepDelta) and e.choice == choice)


def _job(
    generator: WatermarkedGenerator, prompt: str, options: SamplingOptions, n: int = 1
) -> tuple[GenerationJob, Collector]:
    collector = Collector(n)
    ids = tuple(int(i) for i in generator.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    return GenerationJob(prompt_ids=ids, options=options, n=n, post=collector.post), collector


def _run(engine: BatchingEngine, *jobs: tuple[GenerationJob, Collector]) -> list[list[ChoiceOutcome]]:
    for job, _ in jobs:
        engine.submit(job)
    return [collector.wait() for _, collector in jobs]


def _steps(collector: Collector) -> list[tuple[int, float]]:
    """(token id, its log-probability) of each sampled token, in order."""
    return [(e.token.token_id, e.token.logprob) for e in collector.events if isinstance(e, StepDelta)]


def _same_draws(joined: list[tuple[int, float]], alone: list[tuple[int, float]]) -> None:
    """A job in a batch samples what it would alone, up to floating point.

    The batched forward pass is not bit-identical to the single one (a padded batch takes other
    kernels: logits differ by about 3e-6 here), so the two runs agree token for token, with the same
    log-probabilities to 1e-4, until a seeded draw falls that close to the boundary between two
    neighbouring tokens of the cumulative distribution (inverse-CDF sampling over the vocabulary in id
    order): there they may part, and only to the neighbouring id.  A wrong mask, position or cache
    would move the distribution itself, far beyond 1e-4, or part to any token."""
    common = next((i for i, (a, b) in enumerate(zip(joined, alone, strict=True)) if a[0] != b[0]), len(alone))
    for (_, logprob), (_, logprob_alone) in zip(joined[:common], alone[:common], strict=True):
        assert abs(logprob - logprob_alone) < 1e-4
    if common < len(alone):
        assert abs(joined[common][0] - alone[common][0]) == 1, "parted to a token that is no CDF neighbour"


@pytest.fixture
def native(reference_generator: GeneratorFactory) -> WatermarkedGenerator:
    return reference_generator("native")


def test_held_back_keeps_a_possible_stop_string_and_an_incomplete_character() -> None:
    assert _held_back("the end", ("END",)) == 0
    assert _held_back("the en", ("end.",)) == 2
    assert _held_back("abc\ufffd", ()) == 1
    assert _held_back("abc", ("xyz", "c")) == 0


def test_concurrent_jobs_share_one_round_and_seeds_reproduce(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=8, wait_seconds=0.5)
    try:
        options = [SamplingOptions(max_tokens=12, seed=seed, ignore_eos=True, logprobs=0) for seed in (1, 2, 3)]
        jobs = [_job(native, "The module", o) for o in options]
        batched = _run(engine, *jobs)
        assert (engine.rounds, engine.largest_batch) == (1, 3)
        alone = _job(native, "The module", options[1])
        _run(engine, alone)
        _same_draws(_steps(jobs[1][1]), _steps(alone[1]))
        assert len({outcomes[0].token_ids for outcomes in batched}) == 3
        assert all(outcomes[0].finish_reason == "length" for outcomes in batched)
    finally:
        engine.close()


def test_streamed_deltas_add_up_to_the_text_and_stop_strings_cut_it(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        job, collector = _job(native, "The module", SamplingOptions(max_tokens=40, seed=9, ignore_eos=True))
        ((full,),) = _run(engine, (job, collector))
        assert collector.streamed_text() == full.text
        stop = full.text[10:13]
        job, collector = _job(
            native, "The module", SamplingOptions(max_tokens=40, seed=9, ignore_eos=True, stop=(stop,))
        )
        ((cut,),) = _run(engine, (job, collector))
        assert cut.finish_reason == "stop"
        assert cut.text == full.text[: full.text.find(stop)]
        assert collector.streamed_text() == cut.text
    finally:
        engine.close()


def test_tiny_top_p_and_zero_temperature_both_take_the_best_token(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        greedy = _run(engine, _job(native, "The module", SamplingOptions(max_tokens=10, temperature=0.0, seed=1)))
        nucleus = _run(engine, _job(native, "The module", SamplingOptions(max_tokens=10, top_p=1e-9, seed=2)))
        assert greedy[0][0].token_ids == nucleus[0][0].token_ids
    finally:
        engine.close()


def test_logprobs_are_of_the_sampled_token_with_sorted_alternatives(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        job, collector = _job(native, "The module", SamplingOptions(max_tokens=6, seed=4, logprobs=3, ignore_eos=True))
        ((outcome,),) = _run(engine, (job, collector))
        steps = [e for e in collector.events if isinstance(e, StepDelta)]
        assert [step.token.token_id for step in steps] == list(outcome.token_ids)
        for step in steps:
            values = [alternative.logprob for alternative in step.top]
            assert len(values) == 3
            assert values == sorted(values, reverse=True)
            assert step.token.logprob <= 0.0
            assert step.token.logprob <= values[0] + 1e-6
    finally:
        engine.close()


def test_a_cancelled_job_stops_early_with_what_it_has(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        collector = Collector()
        ids = tuple(int(i) for i in native.tokenizer("The module", add_special_tokens=False)["input_ids"])
        job = GenerationJob(prompt_ids=ids, options=SamplingOptions(max_tokens=200, ignore_eos=True), n=1, post=None)  # type: ignore[arg-type]

        def post(event: EngineEvent) -> None:
            collector.post(event)
            if isinstance(event, StepDelta):
                job.cancel()

        job.post = post
        engine.submit(job)
        (outcome,) = collector.wait()
        assert outcome.finish_reason == "cancelled"
        assert 1 <= len(outcome.token_ids) < 200
    finally:
        engine.close()


def test_n_choices_are_rows_of_one_round_and_differ(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        ((first, second, third),) = _run(
            engine, _job(native, "The module", SamplingOptions(max_tokens=8, seed=1, ignore_eos=True), n=3)
        )
        assert [first.choice, second.choice, third.choice] == [0, 1, 2]
        assert len({first.token_ids, second.token_ids, third.token_ids}) == 3
        with pytest.raises(Exception, match="at most 4"):
            engine.submit(_job(native, "x", SamplingOptions(max_tokens=1), n=5)[0])
    finally:
        engine.close()


@pytest.mark.parametrize("scheme", ["native", "kgw", "synthid"])
def test_every_scheme_is_marked_through_the_engine(reference_generator: GeneratorFactory, scheme: str) -> None:
    generator = reference_generator(scheme)
    engine = BatchingEngine(generator, max_batch=4, wait_seconds=0.05)
    try:
        options = SamplingOptions(max_tokens=150, seed=21, ignore_eos=True)
        results = _run(engine, _job(generator, "The documentation explains", options),
                       _job(generator, "A list is", options))  # fmt: skip
    finally:
        engine.close()
    tokenizer = TextTokenizer(generator.model_dir)
    for (outcome,) in results:
        verdict = detect_watermark(outcome.text, generator.key, tokenizer)
        assert verdict.p_value < 1e-4, (scheme, verdict.p_value)


def test_a_job_that_arrives_mid_round_joins_it_and_samples_what_it_would_alone(native: WatermarkedGenerator) -> None:
    engine = BatchingEngine(native, max_batch=4, wait_seconds=0.0)
    try:
        first_options = SamplingOptions(max_tokens=30, seed=11, ignore_eos=True, logprobs=0)
        late_options = SamplingOptions(max_tokens=20, seed=12, ignore_eos=True, logprobs=0)
        alone_first, alone_first_collector = _job(native, "The module", first_options)
        alone_late, alone_late_collector = _job(native, "A much longer prompt than the first one", late_options)
        _run(engine, (alone_first, alone_first_collector))
        _run(engine, (alone_late, alone_late_collector))
        rounds = engine.rounds

        late, late_collector = _job(native, "A much longer prompt than the first one", late_options)
        first, first_collector = _job(native, "The module", first_options)
        started = threading.Event()
        post = first.post

        def post_and_signal(event: EngineEvent) -> None:
            post(event)
            if isinstance(event, StepDelta) and not started.is_set():
                started.set()
                engine.submit(late)  # from the engine thread, between two steps of the running round

        first.post = post_and_signal
        engine.submit(first)
        first_collector.wait()
        late_collector.wait()
        assert engine.rounds == rounds + 1, "the late job ran inside the first job's round"
        assert engine.largest_batch == 2
        _same_draws(_steps(first_collector), _steps(alone_first_collector))
        _same_draws(_steps(late_collector), _steps(alone_late_collector))
    finally:
        engine.close()
