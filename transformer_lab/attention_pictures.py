"""Pictures of attention from a run (matplotlib), one drawer per modality (its Task's ``draw_attention``):

- text: a token x token heatmap per head of a layer, labelled with the tokenizer's pieces, for encoder
  self, decoder self and encoder-decoder attention, and one page of all layers x heads per kind;
- images: for a few query positions, the query's attention over the image beside the image itself, per
  head, with the query block and the memory (the keys it may see) outlined (Parmar et al. 2018, Fig. 2);
- music: the piano roll of the example with arcs from chosen notes to the notes each
  head attends to most (after the Music Transformer blog's figures).

Every drawer takes the run, one example's batch (one row), its attention maps
(``attention_maps.attention_weights``) and a ``Choice`` of layer, heads and query positions, writes
PNGs into a folder and returns their paths. Written here: no library draws attention for these models.
"""

from __future__ import annotations

import dataclasses
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import numpy as np  # noqa: E402

DPI = 100


@dataclasses.dataclass
class Choice:
    """What to draw: ``layer`` (None: the last), ``heads`` (None: all), ``positions`` (query positions;
    None: a few spread over the example), ``top`` keys per query (music arcs)."""
    layer: int | None = None
    heads: list[int] | None = None
    positions: list[int] | None = None
    top: int = 3

    def layer_of(self, maps: np.ndarray) -> int:
        return maps.shape[0] - 1 if self.layer is None else self.layer

    def heads_of(self, maps: np.ndarray) -> list[int]:
        return list(range(maps.shape[1])) if self.heads is None else self.heads


def _save(figure, path: str) -> str:
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
    return path


# --- text ---------------------------------------------------------------------------------------

def token_heatmap(weights: np.ndarray, query_labels: list[str], key_labels: list[str], title: str, path: str) -> str:
    """weights [q, k] as a heatmap, queries down and keys across, each labelled with its piece."""
    size = (2 + 0.25 * len(key_labels), 1.5 + 0.25 * len(query_labels))
    figure, axes = plt.subplots(figsize=size)
    axes.imshow(weights, cmap='viridis', vmin=0, vmax=max(float(weights.max()), 1e-9), aspect='auto')
    axes.set_xticks(range(len(key_labels)), key_labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(query_labels)), query_labels, fontsize=7)
    axes.set_xlabel('key (attended to)')
    axes.set_ylabel('query')
    axes.set_title(title, fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def layers_by_heads(maps: np.ndarray, title: str, path: str) -> str:
    """maps [layers, heads, q, k] as one page: a small heatmap per layer (rows) and head (columns)."""
    layers, heads = maps.shape[:2]
    figure, grid = plt.subplots(layers, heads, figsize=(1.6 * heads + 0.4, 1.6 * layers + 0.6), squeeze=False)
    for layer, head in np.ndindex(layers, heads):
        axes = grid[layer, head]
        axes.imshow(maps[layer, head], cmap='viridis', vmin=0, aspect='auto')
        axes.set_xticks([])
        axes.set_yticks([])
        if layer == 0:
            axes.set_title(f'head {head}', fontsize=7)
        if head == 0:
            axes.set_ylabel(f'layer {layer}', fontsize=7)
    figure.suptitle(title, fontsize=8)
    return _save(figure, path)


def _pieces(tokenizer, tokens: np.ndarray) -> list[str]:
    return [tokenizer.piece(t) if t > 1 else ('</s>' if t == 1 else '<s>') for t in tokens]


def draw_text(run, batch: dict, maps: dict[str, np.ndarray], choice: Choice, folder: str) -> list[str]:
    """Per kind: a heatmap per chosen head of the chosen layer and the layers x heads page. Queries
    and keys are labelled with the token each position reads (the decoder reads the target shifted
    right: '<s>' first)."""
    targets = batch['targets'][0][batch['targets'][0] > 0]
    decoder_reads = _pieces(run.tokenizer, np.concatenate([[0], targets[:-1]]))
    labels = {'decoder_self': (decoder_reads, decoder_reads)}
    if 'inputs' in batch:
        source = _pieces(run.tokenizer, batch['inputs'][0][batch['inputs'][0] > 0])
        labels.update(encoder_self=(source, source), encoder_decoder=(decoder_reads, source))
    paths = []
    for kind, kind_maps in maps.items():
        queries, keys = labels[kind]
        kind_maps = kind_maps[:, :, :len(queries), :len(keys)]
        layer = choice.layer_of(kind_maps)
        for head in choice.heads_of(kind_maps):
            paths.append(token_heatmap(kind_maps[layer, head], queries, keys, f'{kind}, layer {layer}, head {head}',
                                       os.path.join(folder, f'{kind}_layer{layer}_head{head}.png')))
        paths.append(layers_by_heads(kind_maps, f'{kind}: every layer (rows) and head (columns)',
                                     os.path.join(folder, f'{kind}_all.png')))
    return paths


# --- images -------------------------------------------------------------------------------------

def _to_pixels(values: np.ndarray, order: np.ndarray, image_shape: tuple[int, int, int], reduce) -> np.ndarray:
    """Values [positions] in generation order -> [H, W] (a position's channels combined by ``reduce``)."""
    raster = np.zeros_like(values)
    raster[order] = values
    height, width, _ = image_shape
    return reduce(raster.reshape(height, width, -1), axis=-1)


def image_attention(image: np.ndarray, maps: np.ndarray, query: tuple[int, int], outlines: dict[str, np.ndarray],
                    title: str, path: str) -> str:
    """The image with the query pixel marked, then each head's attention [heads, H, W] over the image,
    with ``outlines`` (name -> bool [H, W]: the query block, the memory) drawn as contours."""
    heads = len(maps)
    figure, grid = plt.subplots(1, heads + 1, figsize=(2.2 * (heads + 1), 2.6), squeeze=False)
    panels = [(image[..., 0] if image.shape[-1] == 1 else image, 'image', 'gray')] + [
        (head_map, f'head {head}', 'magma') for head, head_map in enumerate(maps)]
    colours = {'query block': 'cyan', 'memory': 'lime'}
    for axes, (picture, name, cmap) in zip(grid[0], panels):
        axes.imshow(picture, cmap=cmap, interpolation='nearest')
        for outline, mask in outlines.items():
            if mask.any() and not mask.all():
                axes.contour(mask.astype(float), levels=[0.5], colors=colours[outline], linewidths=1.0)
        axes.plot(query[1], query[0], marker='s', markersize=4, markerfacecolor='none', markeredgecolor='red')
        axes.set_title(name, fontsize=8)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.suptitle(title + ' (cyan: query block, green: memory)', fontsize=8)
    return _save(figure, path)


def draw_image(run, batch: dict, maps: dict[str, np.ndarray], choice: Choice, folder: str) -> list[str]:
    """For each query position (raster index of a position: a sub-pixel, or a pixel for DMOL; default
    four spread over the image), its attention over the image per chosen head of the chosen layer."""
    model, image_shape = run.model, tuple(run.config.model.image_shape)
    height, width, channels = image_shape
    order = np.asarray(model.order)
    positions_per_pixel = channels // model.head.values_per_position    # sub-pixels: C; DMOL pixels: 1
    image = np.asarray(batch['targets'][0]).reshape(image_shape).astype(np.uint8)
    decoder_maps = maps['decoder_self']
    layer = choice.layer_of(decoder_maps)
    heads = choice.heads_of(decoder_maps)
    core = model.attention_layers()['decoder_self'][layer].core
    structure = np.asarray(core.structure(len(order), len(order)))
    step_of = np.argsort(order)                      # raster index -> generation step
    spread = [(height // 4, width // 2), (height // 2, width // 4), (height // 2, 3 * width // 4),
              (3 * height // 4, width // 2)]
    positions = choice.positions or [(row * width + column + 1) * positions_per_pixel - 1 for row, column in spread]
    paths = []
    for position in positions:
        step = int(step_of[position])
        pixel = divmod(position // positions_per_pixel, width)
        head_maps = np.stack([_to_pixels(decoder_maps[layer, head, step], order, image_shape, np.sum)
                              for head in heads])
        outlines = {'memory': _to_pixels(structure[step], order, image_shape, np.any)}
        block = core.query_block(step, len(order))
        if block is not None:
            outlines['query block'] = _to_pixels(block, order, image_shape, np.any)
        paths.append(image_attention(image, head_maps, pixel, outlines,
                                     f'layer {layer}, query pixel {pixel} (position {position})',
                                     os.path.join(folder, f'query{position}_layer{layer}.png')))
    return paths


# --- music --------------------------------------------------------------------------------------

def piano_roll_arcs(notes: np.ndarray, onsets: np.ndarray, maps: np.ndarray, queries: list[int], top: int,
                    title: str, path: str) -> str:
    """The piano roll of ``notes`` (float [n, 4]: pitch, velocity, start s, end s) and, per head of
    ``maps`` [heads, positions, positions], arcs from each query note to the ``top`` notes it attends to
    most, darker for more weight; ``onsets`` [positions, 2] places each position's note (time s, pitch)."""
    heads = len(maps)
    columns = min(heads, 4)
    rows = -(-heads // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    is_note = ~np.isnan(onsets[:, 0])
    for head, axes in enumerate(grid.reshape(-1)):
        if head >= heads:
            axes.axis('off')
            continue
        axes.hlines(notes[:, 0], notes[:, 2], notes[:, 3], colors='silver', linewidth=2.5)
        for query in queries:
            weights = np.where(is_note, maps[head, query], 0.0)
            for key in np.argsort(weights)[::-1][:top]:
                if weights[key] <= 0:
                    continue
                axes.annotate('', xy=onsets[key], xytext=onsets[query],
                              arrowprops=dict(arrowstyle='-', connectionstyle='arc3,rad=0.3', color='tab:red',
                                              alpha=float(min(1.0, 0.2 + weights[key])), linewidth=1.0))
            axes.scatter(*onsets[query], s=18, c='tab:red')
        axes.set_title(f'head {head}', fontsize=8)
        axes.set_xlabel('time (s)', fontsize=7)
        axes.set_ylabel('pitch', fontsize=7)
    figure.suptitle(title, fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def draw_music(run, batch: dict, maps: dict[str, np.ndarray], choice: Choice, folder: str) -> list[str]:
    """Arcs over the example's notes from chosen query notes (default: six spread over the example) to
    the notes they attend to most, per head of the chosen layer. Position t reads token t - 1."""
    tokens = np.asarray(batch['targets'][0])
    onsets = np.concatenate([np.full((1, 2), np.nan), run.tokenizer.token_onsets(tokens)[:-1]])
    decoder_maps = maps['decoder_self']
    layer = choice.layer_of(decoder_maps)
    notes = np.flatnonzero(~np.isnan(onsets[:, 0]))
    spread = notes[np.linspace(len(notes) // 4, len(notes) - 1, 6).astype(int)] if len(notes) else []
    queries = choice.positions or sorted({int(query) for query in spread})
    head_maps = decoder_maps[layer][choice.heads_of(decoder_maps)]
    return [piano_roll_arcs(run.tokenizer.to_notes(tokens), onsets, head_maps, queries, choice.top,
                            f'decoder self-attention, layer {layer}', os.path.join(folder, f'music_layer{layer}.png'))]

