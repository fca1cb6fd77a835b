"""Evaluators, chosen by name in ``config.eval.evaluators``; each returns metrics for one split.

An evaluator is ``fn(context, params, split) -> {metric: value}``, declaring its metric names with
``@reports`` (validation checks ``checkpoint.best_metric`` against them); the loop prefixes the split
name. A value may also be text that belongs beside the numbers (BLEU's signature): logged, not ranked. Likelihoods are unsmoothed (label smoothing is a training device only).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable

import jax
import numpy as np
import sacrebleu
import sacremoses
from jax.experimental import multihost_utils

from transformer_lab import decoding
from transformer_lab.config import ConfigError, one_of, positive, require
from transformer_lab.training import parallel, steps


@dataclasses.dataclass
class EvalContext:
    config: object
    pipeline: object
    graphdef: object
    mesh: object
    eval_step: Callable
    report: Callable[[str], None] = print


def make_context(config, pipeline, graphdef, mesh, report: Callable[[str], None] = print) -> EvalContext:
    # Replicated sums: every host reads them, including the hosts of a multi-host run.
    eval_step = jax.jit(steps.make_eval_step(graphdef), out_shardings=parallel.replicated(mesh))
    return EvalContext(config, pipeline, graphdef, mesh, eval_step, report)


def reports(*metrics: str, single_host: bool = False):
    """Declares the metric names an evaluator returns, and whether it can only run in a one-host run
    (decoding evaluators: their host-side loop is not sharded over hosts)."""
    def declare(evaluator):
        evaluator.metrics, evaluator.single_host = metrics, single_host
        return evaluator
    return declare


def check_hosts(evaluator_names) -> None:
    """Refuses single-host evaluators in a multi-host run, before training starts."""
    for name in evaluator_names:
        if EVALUATORS[name].single_host and jax.process_count() > 1:
            raise ConfigError('eval.evaluators', f'{name!r} runs on one host only, and this run has '
                                                 f'{jax.process_count()}; evaluate it afterwards with '
                                                 f'scripts/evaluate.py on one host')


TOKEN_METRICS = ('nll', 'perplexity', 'bits_per_token', 'accuracy')


def host_eval_batches(context: EvalContext, split: str, rows: int) -> list[dict]:
    """This host's share of the evaluation batches. On many hosts every host must run the same number
    of (global) eval steps, so the hosts with fewer batches add empty ones (no target tokens)."""
    batches = list(context.pipeline.eval_batches(split, rows, max_examples=context.config.eval.max_examples,
                                                 shard_index=jax.process_index(), shard_count=jax.process_count()))
    if jax.process_count() > 1:
        most = int(multihost_utils.process_allgather(np.int32(len(batches))).max())
        batches += [jax.tree.map(np.zeros_like, batches[0])] * (most - len(batches))
    return batches


def _split_batches(context: EvalContext, split: str) -> list[dict]:
    return host_eval_batches(context, split, parallel.local_rows(context.config.eval.batch_size, 'eval.batch_size'))


def _likelihood_sums(context: EvalContext, params, batches: Iterable[dict], count_characters: bool) -> dict:
    totals = {'nll_sum': 0.0, 'tokens': 0.0, 'correct': 0.0, 'characters': 0, 'nll_by_position': 0.0,
              'tokens_by_position': 0.0}
    for batch in batches:
        sums = jax.device_get(context.eval_step(params, parallel.to_global(batch, context.mesh)))
        for name in ('nll_sum', 'tokens', 'correct', 'nll_by_position', 'tokens_by_position'):
            totals[name] += np.asarray(sums[name], np.float64)
        if count_characters:
            totals['characters'] += sum(len(context.pipeline.tokenizer.decode(row)) for row in batch['targets'])
    if count_characters and jax.process_count() > 1:  # the sums above are global, the characters per host
        totals['characters'] = int(multihost_utils.process_allgather(np.int64(totals['characters'])).sum())
    return totals


def _token_metrics(totals: dict) -> dict[str, float]:
    nll = float(totals['nll_sum'] / max(totals['tokens'], 1.0))
    return {'nll': nll, 'perplexity': math.exp(min(nll, 50.0)), 'bits_per_token': nll / math.log(2),
            'accuracy': float(totals['correct'] / max(totals['tokens'], 1.0))}


@reports(*TOKEN_METRICS)
def negative_log_likelihood(context: EvalContext, params, split: str) -> dict[str, float]:
    """NLL per target token in nats, perplexity, bits per token and next-token accuracy."""
    return _token_metrics(_likelihood_sums(context, params, _split_batches(context, split), count_characters=False))


def nll_by_position(context: EvalContext, params, batches: Iterable[dict],
                    edges: list[int]) -> tuple[dict[str, float | None], dict[str, int]]:
    """NLL per target token (nats) at the positions of each bin ``[edges[i], edges[i + 1])`` of the rows
    of ``batches``, named 'A-B' (None for a bin without tokens), and the tokens each bin held: how well
    a model predicts with A to B tokens of context (e.g. past the length it trained on, evaluate.py
    --length)."""
    totals = _likelihood_sums(context, params, batches, count_characters=False)
    nll, tokens = totals['nll_by_position'], totals['tokens_by_position']
    bins = {f'{begin}-{end}': (float(nll[begin:end].sum()), int(tokens[begin:end].sum()))
            for begin, end in zip(edges[:-1], edges[1:])}
    return ({name: total / count if count else None for name, (total, count) in bins.items()},
            {name: count for name, (_, count) in bins.items()})


@reports(*TOKEN_METRICS, 'bits_per_char')
def bits_per_character(context: EvalContext, params, split: str) -> dict[str, float]:
    """Total NLL in bits over the number of characters of the decoded targets (any tokenizer)."""
    totals = _likelihood_sums(context, params, _split_batches(context, split), count_characters=True)
    return {**_token_metrics(totals),
            'bits_per_char': float(totals['nll_sum'] / math.log(2) / max(totals['characters'], 1))}


def split_compounds(text: str) -> str:
    """Hyphenated compounds split as in the paper's evaluation (tensor2tensor's get_ende_bleu.sh):
    ``Gut-Aiderbichl`` -> ``Gut ##AT##-##AT## Aiderbichl``, so each part counts as a word."""
    return re.sub(r'(\S)-(\S)', r'\1 ##AT##-##AT## \2', text)


# The paper's evaluation (tensor2tensor's get_ende_bleu.sh) turned German quotes into ASCII ones before
# tokenising; only these: normalize-punctuation.perl also moves quotes around commas (tensor2tensor#317).
GERMAN_QUOTES = str.maketrans({'\u201e': '"', '\u201c': '"', '\u201d': '"'})   # „ “ ”


def detokenized_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacreBLEU (Post 2018) of detokenised output against raw references, with its own 13a tokenisation:
    the BLEU comparable across papers and toolkits, and its signature (what to cite beside it)."""
    metric = sacrebleu.BLEU()
    return metric.corpus_score(hypotheses, [references]).score, metric.get_signature().format()


def tokenized_bleu(hypotheses: list[str], references: list[str], language: str) -> tuple[float, str]:
    """BLEU as the Transformer paper reports it (27.3 for base on newstest2014): both sides with German
    quotes „ “ ” made ASCII (``GERMAN_QUOTES``), Moses-tokenised (sacremoses, as tokenizer.perl:
    punctuation split off, special characters escaped), compounds split (``split_compounds``), then corpus
    BLEU over those tokens with no further tokenisation (sacreBLEU with ``tokenize='none'``, the
    computation of multi-bleu.perl); and its signature, sacreBLEU's with that preparation. Not comparable
    across tokenisations: report the detokenised sacreBLEU beside it."""
    tokenizer = sacremoses.MosesTokenizer(lang=language)

    def prepared(texts):
        return [split_compounds(tokenizer.tokenize(text.translate(GERMAN_QUOTES), return_str=True)) for text in texts]

    metric = sacrebleu.BLEU(tokenize='none')
    score = metric.corpus_score(prepared(hypotheses), [prepared(references)]).score
    return score, f'{metric.get_signature().format()}|prepared:quotes+moses-{language}+compounds'


@reports(*TOKEN_METRICS, 'bits_per_dim')
def bits_per_dimension(context: EvalContext, params, split: str) -> dict[str, float]:
    """Images: NLL per sub-pixel in bits (the image models' bits/dim), with the token metrics."""
    metrics = _token_metrics(_likelihood_sums(context, params, _split_batches(context, split), count_characters=False))
    return {**metrics, 'bits_per_dim': metrics['bits_per_token']}


@reports('bleu', 'tokenized_bleu', single_host=True)
def bleu(context: EvalContext, params, split: str) -> dict[str, float | str]:
    """BLEU of translations (``eval.beam_size``, ``eval.length_penalty``, ``eval.extra_length``) both
    ways: ``bleu`` (``detokenized_bleu``, comparable across papers) and ``tokenized_bleu`` (the
    Transformer paper's own), each with its signature (``bleu_signature``, ``tokenized_bleu_signature``:
    text, logged beside the numbers)."""
    pairs = context.pipeline.translation_pairs(split, context.config.eval.max_examples)
    evaluation, data = context.config.eval, context.config.data
    hypotheses = decoding.translate(context.graphdef, params, context.pipeline.tokenizer, [source for source, _ in pairs],
                           rows=evaluation.batch_size, source_length=data.max_length, max_length=data.max_length,
                           beam_size=evaluation.beam_size, alpha=evaluation.length_penalty,
                           extra_length=evaluation.extra_length)
    for (source, reference), hypothesis in list(zip(pairs, hypotheses))[:evaluation.num_show]:
        context.report(f'  source:     {source}\n  reference:  {reference}\n  hypothesis: {hypothesis}')
    references = [reference for _, reference in pairs]
    (detokenized, signature), (tokenized, tokenized_signature) = (
        detokenized_bleu(hypotheses, references), tokenized_bleu(hypotheses, references, data.targets_feature))
    return {'bleu': detokenized, 'tokenized_bleu': tokenized, 'bleu_signature': signature,
            'tokenized_bleu_signature': tokenized_signature}


EVALUATORS = {
    'nll': negative_log_likelihood,
    'bits_per_char': bits_per_character,
    'bits_per_dim': bits_per_dimension,
    'bleu': bleu,
}


def due(config, step: int, *, last: bool) -> tuple[str, ...]:
    """The evaluators to run after ``step``: each on its cadence (``eval.evaluator_every_steps``, else
    ``eval.every_steps``; 0: at the end only), every one of them after the ``last`` step."""
    evaluation = config.eval
    return tuple(name for name in evaluation.evaluators
                 if last or ((every := evaluation.evaluator_every_steps.get(name, evaluation.every_steps))
                             and step % every == 0))


def reported_metrics(config) -> list[str]:
    """The numbers a run's evaluations report, ``split/metric`` (and ``split_ema/metric`` for a run that
    keeps a moving average of its parameters)."""
    splits = [config.data.eval_split] + ([f'{config.data.eval_split}_ema'] if config.train.ema_decay else [])
    return sorted(f'{split}/{metric}' for split in splits for name in config.eval.evaluators
                  for metric in EVALUATORS[name].metrics)


def check_eval(config) -> None:
    """``eval.evaluators`` by name, and ``checkpoint.best_metric`` among the metrics they report."""
    positive(config.eval, 'eval', 'batch_size')
    for name in config.eval.evaluators:
        one_of('eval.evaluators', name, EVALUATORS)
    for name, every in config.eval.evaluator_every_steps.items():   # an evaluator not in use: no matter
        one_of('eval.evaluator_every_steps', name, EVALUATORS)
        require(isinstance(every, int) and every > 0, f'eval.evaluator_every_steps.{name}',
                f'must be a positive number of steps, got {every!r}')
    if config.checkpoint.best_metric:
        one_of('checkpoint.best_metric', config.checkpoint.best_metric, reported_metrics(config))
