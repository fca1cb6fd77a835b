"""BLEU both ways on a fixed tiny corpus: the paper's tokenised BLEU against a count by hand, and the
detokenised sacreBLEU against sacrebleu itself."""

import collections
import math

import pytest
import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from transformer_lab.training.evaluators import detokenized_bleu, split_compounds, tokenized_bleu

HYPOTHESES = ['Der Hund läuft schnell nach Hause.', 'Das ist ein state-of-the-art Modell, sagt er.']
REFERENCES = ['Der Hund rennt schnell nach Hause.', 'Das ist ein state-of-the-art Modell, sagte er.']
# What Moses tokenisation and the compound split make of them (punctuation split off, hyphens apart).
TOKENIZED_HYPOTHESES = ['Der Hund läuft schnell nach Hause .',
                        'Das ist ein state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art Modell , sagt er .']
TOKENIZED_REFERENCES = ['Der Hund rennt schnell nach Hause .',
                        'Das ist ein state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art Modell , sagte er .']


def bleu_by_hand(hypotheses, references):
    """Corpus BLEU of Papineni et al. (2002) over whitespace tokens: clipped n-gram matches summed over
    the corpus for n = 1..4, their geometric mean, and the brevity penalty exp(1 - r / c) when c < r."""
    matches, totals = [0] * 4, [0] * 4
    for hypothesis, reference in zip(hypotheses, references):
        hyp, ref = hypothesis.split(), reference.split()
        for n in range(1, 5):
            hyp_ngrams = collections.Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
            ref_ngrams = collections.Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum(min(count, ref_ngrams[gram]) for gram, count in hyp_ngrams.items())
            totals[n - 1] += sum(hyp_ngrams.values())
    c = sum(len(h.split()) for h in hypotheses)
    r = sum(len(x.split()) for x in references)
    brevity = 1.0 if c >= r else math.exp(1 - r / c)
    return 100 * brevity * math.exp(sum(math.log(m / t) for m, t in zip(matches, totals)) / 4)


def test_compounds_split_as_the_papers_evaluation_does():
    assert split_compounds('state-of-the-art') == 'state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art'
    assert split_compounds('Gut-Aiderbichl , - x') == 'Gut ##AT##-##AT## Aiderbichl , - x'


def test_tokenized_bleu_counts_the_moses_tokens_and_split_compounds():
    expected = bleu_by_hand(TOKENIZED_HYPOTHESES, TOKENIZED_REFERENCES)
    assert 30 < expected < 90    # a real partial match, not a degenerate 0 or 100
    assert tokenized_bleu(HYPOTHESES, REFERENCES, 'de')[0] == pytest.approx(expected, abs=1e-6)
    # The hyphens count: without the split the compound is one token and the score differs.
    unsplit = [h.replace('state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art', 'state-of-the-art')
               for h in TOKENIZED_HYPOTHESES]
    references = [r.replace('state ##AT##-##AT## of ##AT##-##AT## the ##AT##-##AT## art', 'state-of-the-art')
                  for r in TOKENIZED_REFERENCES]
    assert bleu_by_hand(unsplit, references) != pytest.approx(expected, abs=0.1)


def test_detokenized_bleu_counts_sacrebleus_own_tokens():
    tokenize = Tokenizer13a()
    expected = bleu_by_hand([tokenize(h) for h in HYPOTHESES], [tokenize(r) for r in REFERENCES])
    score, signature = detokenized_bleu(HYPOTHESES, REFERENCES)
    assert score == pytest.approx(expected, abs=1e-6)
    assert score == pytest.approx(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score)
    assert signature == f'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}'


def test_tokenized_bleu_reads_german_quotes_as_the_papers_evaluation_did():
    # The reference quotes „ “ as German text does, the output " as a subword model trained on both writes.
    hypotheses, references = ['Er sagte "ja" und ging.'], ['Er sagte \u201eja\u201c und ging.']
    score, signature = tokenized_bleu(hypotheses, references, 'de')
    assert score == pytest.approx(100.0)
    assert signature.startswith('nrefs:1|case:mixed|eff:no|tok:none|smooth:exp|version:')
    assert signature.endswith('|prepared:quotes+moses-de+compounds')
    assert detokenized_bleu(hypotheses, references)[0] < 60     # sacreBLEU leaves the text as it is
