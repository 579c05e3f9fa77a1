"""Which traced Wilson loops an L-CNN can express: a symbolic run of the network on words of links.

Favoni, Ipp, Muller and Schuh, PRL 128 (2022) 032003, table "Number of traced Wilson loops covered
by L-CNN architectures of various sizes in 1+1 D" (also in A. Ipp's talk, seed 001). A channel of
an L-CNN is a sum of closed paths based at x (products of links starting and ending at x); a
generic choice of weights keeps every product, so the loops a network *covers* are the set of
paths its layers can build, traced. Here a path is a word of signed steps ``+-(mu + 1)``
(:mod:`latticeml.smearing.paths`), and

* a product of links is the concatenation of words, freely reduced (``U U^+ = 1``: a step followed
  by its reverse cancels);
* ``W^+`` reverses the word and flips every step;
* parallel transport from ``x + k mu`` is ``(+mu)^k w (-mu)^k``;
* the trace makes the word cyclic: it is cyclically reduced and identified with its rotations, which
  also identifies translated copies (the word carries no base point). ``tr W`` and ``tr W^+`` are
  different loops (opposite orientations), and the empty word is the trivial loop ``tr 1`` (the bias).

The *length* of a loop is the number of links of the cyclically reduced word. :func:`all_loops`
counts every loop of a given length on the infinite lattice (the table's "Max" column: closed
non-backtracking walks without a cancelling end, up to rotation; powers such as the doubly wound
plaquette count).

The architectures of the table (:data:`PRL_ARCHITECTURES`) are stacks of L-CB blocks (L-Conv and
L-Bilin in one layer) with a kernel size k per block, after Plaq. The paper's text leaves the exact
symbolic rule open; the rule that reproduces every entry of its table (checked in the tests and in
lecture 05), and the one used here by default, is

    W''(x) = { a b : a in (W, W^+, 1),  b in (T_{j mu} W, (T_{j mu} W)^+, 1) },  j = 1..k-1, mu = 0..D-1,

i.e. the kernel of size k reaches k-1 links along the *positive* axes only (the non-symmetric
kernel of the authors' code) and the untransported ``W(x)`` enters the product only as the left
factor, not as the right one (``W(x) W(x)``, e.g. the doubly wound plaquette, is not counted).
Both choices are options of :func:`lcb_words` (``symmetric``, ``local``) for comparison. The
published value 7,210 in the ">= 24" row of the W(2x2) L column is not consistent with its own
total 16,725; this rule gives 7,120, which is.
"""

from __future__ import annotations

from collections import Counter

__all__ = [
    "reduce_word",
    "dagger_word",
    "cyclic_word",
    "transport_word",
    "plaquette_words",
    "lcb_words",
    "covered_loops",
    "loop_counts",
    "all_loops",
    "PRL_ARCHITECTURES",
    "PRL_TABLE",
]


def reduce_word(word) -> tuple:
    """Free reduction: remove every step followed by its reverse."""
    out: list[int] = []
    for s in word:
        if out and out[-1] == -s:
            out.pop()
        else:
            out.append(s)
    return tuple(out)


def dagger_word(word) -> tuple:
    """The word of ``W^+``: reversed, every step flipped."""
    return tuple(-s for s in reversed(word))


def cyclic_word(word) -> tuple:
    """Canonical form of ``tr W``: cyclically reduced, then the smallest rotation."""
    w = list(reduce_word(word))
    while len(w) >= 2 and w[0] == -w[-1]:
        w = w[1:-1]
    w = tuple(w)
    return min((w[i:] + w[:i] for i in range(len(w))), default=w)


def transport_word(word, mu: int, k: int) -> tuple:
    """Parallel transport from ``x + k mu`` (``k < 0``: from ``x - |k| mu``), mu = 0..D-1."""
    s = (mu + 1) if k > 0 else -(mu + 1)
    return reduce_word((s,) * abs(k) + tuple(word) + (-s,) * abs(k))


def plaquette_words(D: int = 2) -> set:
    """Plaq: ``U_mu,nu(x)`` for every ordered pair mu != nu (both orientations)."""
    return {(mu + 1, nu + 1, -(mu + 1), -(nu + 1)) for mu in range(D) for nu in range(D) if mu != nu}


def lcb_words(W, kernel_size: int, *, D: int = 2, symmetric: bool = False, local: bool = False) -> set:
    """One L-CB block on a set of words (module docstring): products ``a b`` with ``a`` in
    ``(W, W^+, 1)`` and ``b`` in the transported copies (distances 1..kernel_size-1 along every axis;
    both orientations if ``symmetric``; distance 0 too if ``local``), their conjugates and 1."""
    if int(kernel_size) != kernel_size or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive integer, got {kernel_size!r}")
    W = set(W)
    left = W | {dagger_word(w) for w in W} | {()}
    moved = set(W) if local else set()
    for mu in range(D):
        for k in range(1, int(kernel_size)):
            for w in W:
                moved.add(transport_word(w, mu, k))
                if symmetric:
                    moved.add(transport_word(w, mu, -k))
    right = moved | {dagger_word(w) for w in moved} | {()}
    return {reduce_word(a + b) for a in left for b in right}


def covered_loops(kernel_sizes, *, D: int = 2, **rule) -> set:
    """The traced loops of ``Plaq -> L-CB(k_1) -> ... -> Trace`` (+ the bias, the trivial loop)."""
    W = plaquette_words(D)
    for k in kernel_sizes:
        W = lcb_words(W, k, D=D, **rule)
    return {cyclic_word(w) for w in W} | {()}


def loop_counts(loops) -> dict[int, int]:
    """``{length: number of loops}``, sorted by length."""
    return dict(sorted(Counter(len(w) for w in loops).items()))


def all_loops(length: int, D: int = 2) -> int:
    """Number of distinct traced Wilson loops of ``length`` links on the infinite D-dimensional lattice."""
    if length == 0:
        return 1
    steps = [s for mu in range(D) for s in (mu + 1, -(mu + 1))]
    found: set = set()
    path: list[int] = []
    pos = [0] * D

    def walk():
        rest = length - len(path)
        if sum(abs(p) for p in pos) > rest:
            return
        if rest == 0:
            if path[0] != -path[-1]:  # cyclically reduced
                w = tuple(path)
                found.add(min(w[i:] + w[:i] for i in range(length)))
            return
        for s in steps:
            if path and s == -path[-1]:
                continue
            mu = abs(s) - 1
            d = 1 if s > 0 else -1
            path.append(s)
            pos[mu] += d
            walk()
            pos[mu] -= d
            path.pop()

    walk()
    return len(found)


#: Kernel sizes of the L-CB blocks of the architectures in the PRL's table (1+1 D). W(1x1) S has no
#: block (Plaq -> Trace); the sizes of the others are the ones that reproduce the table.
PRL_ARCHITECTURES = {
    "W1x1 S": (),
    "W1x2 S": (2,),
    "W1x2 M": (3,),
    "W1x2 L": (4,),
    "W2x2 S": (2, 2),
    "W2x2 M": (3, 3),
    "W2x2 L": (4, 4),
}

#: The published table: loops per length (lengths >= 24 summed as 24), totals, max length. The
#: Max column: ``all_loops``. ("W2x2 L", 24) is printed as 7,210 in the paper; its total implies 7,120.
PRL_TABLE = {
    "Max": {0: 1, 2: 0, 4: 2, 6: 4, 8: 28, 10: 152, 12: 1010, 14: 6772, 16: 47646, 18: 343168,
            20: 2529890, 22: 18982172},
    "W1x1 S": {"counts": {0: 1, 4: 2}, "total": 3, "max_len": 4},
    "W1x2 S": {"counts": {0: 1, 4: 2, 6: 4, 8: 4}, "total": 11, "max_len": 8},
    "W1x2 M": {"counts": {0: 1, 4: 2, 6: 4, 8: 4, 10: 8}, "total": 19, "max_len": 10},
    "W1x2 L": {"counts": {0: 1, 4: 2, 6: 4, 8: 4, 10: 8, 12: 8}, "total": 27, "max_len": 12},
    "W2x2 S": {"counts": {0: 1, 4: 2, 6: 4, 8: 22, 10: 48, 12: 92, 14: 120, 16: 100, 18: 136, 20: 32, 22: 64},
               "total": 621, "max_len": 22},
    "W2x2 M": {"counts": {0: 1, 4: 2, 6: 4, 8: 22, 10: 76, 12: 204, 14: 412, 16: 712, 18: 928, 20: 1056,
                          22: 768, 24: 800}, "total": 4985, "max_len": 28},
    "W2x2 L": {"counts": {0: 1, 4: 2, 6: 4, 8: 22, 10: 76, 12: 220, 14: 532, 16: 1080, 18: 1896, 20: 2620,
                          22: 3152, 24: 7120}, "total": 16725, "max_len": 34},
}


def table_column(loops) -> dict:
    """``{"counts": {length: n} with lengths >= 24 summed as 24, "total", "max_len"}`` of a set of loops."""
    counts: dict[int, int] = {}
    for n, c in loop_counts(loops).items():
        key = min(n, 24)
        counts[key] = counts.get(key, 0) + c
    return {"counts": counts, "total": len(loops), "max_len": max(len(w) for w in loops)}
