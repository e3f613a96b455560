"""Train/validation/test split by original sequence (never by window).

Sequences are grouped first: takes whose first frames are identical (several
Waltz sequences share an opening of 143-297 frames) form one group, found by
hashing the opening, and a group always lands on one side. Groups are then
dealt out per style in a seeded order, each to the split furthest below its
target share, which stratifies by style and keeps every split's share close
to its fraction overall.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val", "test")


def opening_key(joints: np.ndarray, root: np.ndarray, n_frames: int) -> str:
    """Hash of the first ``n_frames`` frames (joints and root, exact values)."""
    h = hashlib.sha1()
    for a in (joints[:n_frames], root[:n_frames]):
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


def group_by_key(names: list[str], keys: list[str]) -> list[list[str]]:
    """Names with equal keys grouped together, groups in order of first name."""
    groups: dict[str, list[str]] = {}
    for name, key in zip(names, keys, strict=True):
        groups.setdefault(key, []).append(name)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def split_groups(groups: list[list[str]], styles: dict[str, str], val_fraction: float,
                 test_fraction: float, seed: int) -> dict[str, list[str]]:
    """Assign groups of sequence names to train/val/test.

    Args:
        groups: sequence names that must share a side.
        styles: name -> style letter (a group takes its first member's style).
        val_fraction, test_fraction: target shares of sequences.
        seed: seeds the order within each style.

    Returns:
        {"train": [...], "val": [...], "test": [...]} sorted sequence names.
        Every split with a positive fraction gets at least one group when
        there are enough groups (three or more).
    """
    fractions = {"train": 1.0 - val_fraction - test_fraction, "val": val_fraction,
                 "test": test_fraction}
    rng = np.random.default_rng(seed)
    by_style: dict[str, list[list[str]]] = {}
    for g in groups:
        by_style.setdefault(styles[g[0]], []).append(g)
    order: list[list[str]] = []
    for style in sorted(by_style):
        gs = by_style[style]
        order += [gs[i] for i in rng.permutation(len(gs))]

    assigned: dict[str, list[list[str]]] = {s: [] for s in SPLITS}
    count = dict.fromkeys(SPLITS, 0)
    seen = 0
    for g in order:
        seen += len(g)
        # The split furthest below its share of the sequences dealt so far;
        # walking style by style keeps each style's shares close too.
        best = max(SPLITS, key=lambda s: (fractions[s] * seen - count[s], -SPLITS.index(s)))
        assigned[best].append(g)
        count[best] += len(g)

    # Tiny corpora: give an empty split one group from the split holding most.
    for s in SPLITS:
        if fractions[s] > 0 and not assigned[s]:
            donor = max(SPLITS, key=lambda d: len(assigned[d]))
            if len(assigned[donor]) >= 2:
                smallest = min(assigned[donor], key=len)
                assigned[donor].remove(smallest)
                assigned[s].append(smallest)
    return {s: sorted(n for g in assigned[s] for n in g) for s in SPLITS}
