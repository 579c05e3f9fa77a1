"""The loop enumerator (latticeml.nets.lcnn_loops) reproduces the PRL's table of traced Wilson loops
covered by L-CNN architectures (1+1 D): the Max column up to length 12 here (14 in lecture 05) and
every architecture's column, total and maximal length."""

import pytest

from latticeml.nets import lcnn_loops as LL

SEED = 5


def test_max_column_counts_every_traced_loop():
    for n in range(0, 13, 2):
        assert LL.all_loops(n) == LL.PRL_TABLE["Max"][n], n


@pytest.mark.parametrize("name", list(LL.PRL_ARCHITECTURES))
def test_architecture_columns_match_the_paper(name):
    column = LL.table_column(LL.covered_loops(LL.PRL_ARCHITECTURES[name]))
    assert column == LL.PRL_TABLE[name]


def test_covered_loops_are_loops_and_the_rule_matters():
    loops = LL.covered_loops((2,))
    for w in loops:
        assert LL.cyclic_word(w) == w
        assert sum(1 if s == 1 else -1 if s == -1 else 0 for s in w) == 0  # closed along axis 0
    # the double plaquette W(x) W(x) appears once the untransported W may be a right factor
    double = LL.cyclic_word((1, 2, -1, -2) * 2)
    assert double not in loops and double in LL.covered_loops((2,), local=True)
    assert LL.table_column(LL.covered_loops((2,), symmetric=True, local=True))["total"] == 13
    # each architecture's loops are loops of the lattice: never more than Max
    for n, c in LL.loop_counts(LL.covered_loops((2, 2))).items():
        assert c <= LL.PRL_TABLE["Max"][n]
