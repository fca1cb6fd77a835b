"""Huang et al. 2018 (Music Transformer), Table 1 reproduced and extended: the memory of relative attention
per layer, by the paper's formula and as XLA compiles one layer, for Shaw et al.'s gather, skewing and
blockwise skewing, and the longest sequence each fits in 16 GiB.

    python scripts/relative_memory.py [--out=docs/results/music_transformer_memory.md]

writes the document ``--out`` (and prints it). Nothing runs: every figure is compiled memory
(``transformer_lab.attention_memory``), so lengths far beyond this machine's memory get one too. Six to
seven minutes on two CPU cores, most of it compiling skewing (XLA) at long lengths.
"""

import sys
import time

from absl import app, flags

from transformer_lab.attention_memory import (BLOCKWISE, FORMS, PLAIN_XLA, SHAW, SKEWING, TABLE_1_HEAD_DIM,
                                              TABLE_1_LAYER, TABLE_1_MAX_LENGTH, Form, MemoryRow, layer_bytes,
                                              longest_length_within, memory_rows)
from transformer_lab.benchmarking import heading

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'docs/results/music_transformer_memory.md', 'The document to write.')
flags.DEFINE_list('lengths', ['650', '2048', '3500', '8192', '16384', '32768'], 'Sequence lengths of the table.')
flags.DEFINE_integer('budget_gib', 16, "The memory the longest lengths must fit in (the paper's GPU: 16 GB).")

HEADS = TABLE_1_LAYER['heads']


def megabytes(count: float) -> str:
    """Bytes as the paper prints them, MB of 10^6 bytes: three significant figures, whole MB from 100 on."""
    value = count / 1e6
    return f'{value:,.0f}' if abs(value) >= 100 else f'{value:.3g}'


def over_plain(rows: list[MemoryRow]) -> dict[tuple[str, int], tuple[int, int]]:
    """(form, length) -> compiled bytes of a relative form over its plain baseline's at that length, forward +
    backward and forward: the compiled counterpart of the relative term."""
    plain = {(row.form.name, row.length): row for row in rows}
    return {(row.form.name, row.length): (row.train_bytes - plain[row.form.baseline, row.length].train_bytes,
                                          row.forward_bytes - plain[row.form.baseline, row.length].forward_bytes)
            for row in rows if row.form.baseline}


def memory_table(rows: list[MemoryRow]) -> list[str]:
    """The main table: per (length, form) Table 1's figure, the formula and the compiled memory, with
    the compiled memory over the plain form of the same implementation (the relative term's share)."""
    extra = over_plain(rows)
    lines = ['| L | form | Table 1, per head | formula, per head | compiled, per head | over plain, per head '
             '(fwd + bwd / fwd) | per layer, fwd + bwd | per layer, fwd | compile s |', '|---' * 9 + '|']
    for row in rows:
        paper = row.paper.replace('+', ' + ') if row.paper else ''
        formula = ' + '.join(megabytes(part) for part in row.formula_bytes) if row.formula_bytes else ''
        train_extra, forward_extra = extra.get((row.form.name, row.length), (None, None))
        over = '' if train_extra is None else f'{megabytes(train_extra / HEADS)} / {megabytes(forward_extra / HEADS)}'
        lines.append(f'| {row.length} | {row.form.name} | {paper} | {formula} | {megabytes(row.train_bytes / HEADS)} '
                     f'| {over} | {megabytes(row.train_bytes)} | {megabytes(row.forward_bytes)} '
                     f'| {row.compile_seconds:.1f} |')
    return lines


def ratio_range(rows: list[MemoryRow], name: str, *, forward: bool, logits_only: bool = False) -> str:
    """'lo-hi' (or one figure) over the lengths of relative form ``name``: its compiled memory over plain
    attention's per head (forward, or forward + backward) / its formula's bytes (or its logits term alone)."""
    extra = over_plain(rows)
    ratios = []
    for row in rows:
        if row.form.name == name:
            train_extra, forward_extra = extra[name, row.length]
            predicted = row.formula_bytes[1] if logits_only else sum(row.formula_bytes)
            ratios.append((forward_extra if forward else train_extra) / HEADS / predicted)
    low, high = f'{min(ratios):.2f}', f'{max(ratios):.2f}'
    return low if low == high else f'{low}-{high}'


def reading(rows: list[MemoryRow], longest: list[tuple[Form, int, int, float]]) -> list[str]:
    """What the tables say, in figures computed from them."""
    deviations = [abs(float(paper) * 1e6 - formula) / formula for row in rows if row.paper
                  for paper, formula in zip(row.paper.split('+'), row.formula_bytes)]
    paper_check = [f'The formula gives every figure Table 1 prints, within {max(deviations):.0%}: the paper '
                   'rounds (16 for 2048² · 4 bytes = 16.8 MB, 1100 for 1,074).', ''] if deviations else []
    reach = {form.name: length for form, length, _, _ in longest}
    last = max(row.length for row in rows)
    total = {row.form.name: row.train_bytes for row in rows if row.length == last}
    paper_shaw, paper_skewing = TABLE_1_MAX_LENGTH['Shaw et al.'], TABLE_1_MAX_LENGTH['Ours']
    slowest = max(rows, key=lambda row: row.compile_seconds)
    shaw_longest = max((row for row in rows if row.form.name == SHAW), key=lambda row: row.length)
    return [
        f'Every row compiled: the slowest, {slowest.form.name} at L = {slowest.length:,}, in '
        f"{slowest.compile_seconds:.0f} s; Shaw et al.'s gather at L = {shaw_longest.length:,} "
        f'({megabytes(shaw_longest.train_bytes)} MB) in {shaw_longest.compile_seconds:.0f} s.',
        '',
        *paper_check,
        f"Shaw et al.'s gather compiles to what the formula predicts: over plain attention, forward, "
        f'{ratio_range(rows, SHAW, forward=True)}x the formula (the gathered [L, L, D_h] tensor); forward + '
        f'backward {ratio_range(rows, SHAW, forward=False)}x, its gradient being as large again.',
        '',
        "Skewing's compiled extra over plain attention, against the formula's L² term (its [L, L] relative "
        f'logits): forward {ratio_range(rows, SKEWING, forward=True, logits_only=True)}x (the skewed logits '
        'materialised as one bias), forward + backward '
        f"{ratio_range(rows, SKEWING, forward=False, logits_only=True)}x: the bias is dead before the backward "
        "pass's peak, the gradient of the attention's logits serves as the relative logits' too, and skewing's "
        "backward recomputes Q E^T in blocks of 512 query rows. So skewing costs what plain attention costs; "
        f"plain attention's own L² limits its length ({reach[SKEWING] / reach[PLAIN_XLA]:.0%} of plain "
        "attention's longest L), not the relative term, as the paper's O(LD + L²) says.",
        '',
        f'Blockwise skewing has no L² term: at L = {last:,} its layer compiles to {megabytes(total[BLOCKWISE])} MB '
        f"against skewing's {megabytes(total[SKEWING])} MB. Its relative term is "
        f'{ratio_range(rows, BLOCKWISE, forward=True)}x the formula forward and '
        f'{ratio_range(rows, BLOCKWISE, forward=False)}x forward + backward: E is also held zero-padded (the '
        "blocks' windows slice it) and the backward pass adds both their gradients, still O(L·D_h).",
        '',
        f'Longest lengths: ours are {reach[SHAW] / paper_shaw:.1f}x (Shaw et al.) and '
        f"{reach[SKEWING] / paper_skewing:.1f}x (skewing) the paper's Max L, one layer at batch 1 against a "
        f"whole model; skewing reaches {reach[SKEWING] / reach[SHAW]:.1f}x Shaw et al.'s length here, "
        f'{paper_skewing / paper_shaw:.1f}x in the paper. Blockwise reaches {reach[BLOCKWISE] / reach[SKEWING]:.0f}x '
        "skewing's, where its O(L) activations and E fill the budget.",
    ]


def longest_lengths(rows: list[MemoryRow], budget_bytes: int) -> list[tuple[Form, int, int, float]]:
    """Per form: the longest multiple of 64 whose layer compiles (forward + backward) within the budget,
    its compiled bytes and the search's seconds, bisecting between the table's lengths around the budget."""
    results = []
    for form in FORMS:
        sizes = {row.length: row.train_bytes for row in rows if row.form is form}
        fitting = [length for length, size in sizes.items() if size <= budget_bytes]
        exceeding = [length for length, size in sizes.items() if size > budget_bytes]

        def memory_at(length, form=form, sizes=sizes):   # each length compiled once
            if length not in sizes:
                sizes[length] = layer_bytes(form, length)
            return sizes[length]

        start = time.perf_counter()
        length = longest_length_within(budget_bytes, memory_at, fits=max(fitting, default=64),
                                       exceeds=min(exceeding, default=None))
        results.append((form, length, memory_at(length), time.perf_counter() - start))
    return results


def paper_max_length(form: Form) -> str:
    return f'{TABLE_1_MAX_LENGTH[form.paper_row]:,}' if form.paper_row in TABLE_1_MAX_LENGTH else ''


def document(rows: list[MemoryRow], longest: list[tuple[Form, int, int, float]], budget_gib: int,
             seconds: float) -> list[str]:
    return [
        "# Relative attention's memory per layer: Huang et al. 2018 (Music Transformer), Table 1",
        '',
        f'Made by `python {" ".join(sys.argv)}` in {seconds / 60:.1f} minutes.',
        '',
        heading('One layer, compiled, nothing run'),
        '',
        f"One causal self-attention layer with its projections, d_model {TABLE_1_LAYER['d_model']}, {HEADS} "
        f'heads (D_h = {TABLE_1_HEAD_DIM}), batch 1, float32, as the paper\'s text sizes it. XLA:CPU compiles '
        'the sum of its output and the gradients of the parameters and the input (fwd + bwd), and the '
        "output alone (fwd); the figure is the compiled program's temporaries plus outputs "
        '(`memory_analysis()`), read without running it, so lengths far beyond this machine\'s memory get '
        'one too. Relative forms learn every distance: max_relative_position = L. MB are 10^6 bytes, as the '
        "paper's are (108 MB = 650² · 64 · 4 bytes); per head is per layer / 8, as the paper prints it.",
        '',
        '- **Table 1**: the paper\'s printed figure per head, its relative term\'s embeddings + logits '
        '("Ours" is skewing).',
        '- **formula**: the paper\'s formula in float32 bytes. Shaw et al.: L²·D_h (E[j - i] gathered for '
        'every pair) + L² (logits). Skewing: L·D_h (E) + L² (Q E^T). Blockwise: L·D_h (E) + b_q·(b_q + b_k - 1), '
        'one block pair\'s relative logits before skewing, Q_b W^T, with b_q = 128 and b_k = 512 (each at most '
        'L), in place of the [L, L] logits.',
        '- **compiled, per head**: the whole layer\'s fwd + bwd / 8, plain attention\'s own logits, the '
        'projections and what the backward pass keeps included.',
        '- **over plain**: compiled memory minus that of plain causal attention by the same implementation '
        '(XLA\'s, or blockwise), / 8: the compiled counterpart of the relative term, fwd + bwd and fwd.',
        '- **compile s**: both compiles of the row (the first row also starts JAX); rough, on shared cores.',
        '',
        *memory_table(rows),
        '',
        f'### The longest sequence whose layer compiles within {budget_gib} GiB',
        '',
        f'Forward + backward of the layer above, {budget_gib} GiB = {budget_gib * 2**30:,} bytes, bisected '
        'over multiples of 64 from the lengths of the table. The paper\'s Max L is for its whole model on a '
        '16 GB GPU; ours is one layer\'s compiled memory on XLA:CPU, batch 1, without the feed-forward '
        'layers, embeddings, optimizer state or other layers: longer lengths fit, and only the ratios '
        'between forms compare.',
        '',
        "| form | the paper's Max L | longest L | its compiled memory (MB) | search s |",
        '|---|---|---|---|---|',
        *[f'| {form.name} | {paper_max_length(form)} | {length:,} | {megabytes(size)} | {search:.0f} |'
          for form, length, size, search in longest],
        '',
        '### Reading',
        '',
        *reading(rows, longest),
    ]


def main(argv):
    del argv
    start = time.perf_counter()
    rows = memory_rows([int(length) for length in FLAGS.lengths])
    longest = longest_lengths(rows, FLAGS.budget_gib * 2**30)
    lines = document(rows, longest, FLAGS.budget_gib, time.perf_counter() - start)
    text = '\n'.join(lines) + '\n'
    print(text)
    with open(FLAGS.out, 'w') as file:
        file.write(text)


if __name__ == '__main__':
    app.run(main)
