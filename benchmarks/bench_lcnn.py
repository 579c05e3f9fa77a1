"""One training step (forward, backward, Adam) of the medium W2x2 L-CNN, batch 16, on 8x8 and 32x32 SU(2).

Compares latticeml's engine (the Numba kernels of latticeml.nets.lcnn_kernels + BLAS for the weight
contractions) with the same architecture written in PyTorch (optional: skipped when torch is not
installed), both on one thread and in the same precision (complex128 fields, float64 weights), and
reports the step's useful GFLOP/s against the measured dgemm rate of this machine. The two are timed
interleaved (one latticeml step, one PyTorch step, one dgemm, repeated), so a changing load on a shared
machine hits both; the table gives the best of ``--repeat`` rounds, with the load average and threads.
``--profile`` adds the time of each L-CNN layer's forward and backward (ms per step, best round).

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_lcnn.py [--repeat 10] [--profile]

FLOP count (complex multiply-add = 8 real FLOPs, an N x N complex product 8 N^3): per site and batch entry,
L-Conv: 2 products per transported channel (``P W P^+``) + 2 C_in C_out T real multiply-adds for the weights
(T = 1 + 2 D K terms, complex entries: x 2 N^2); L-Bilin: C_out C1' products + the weight contraction.
The backward costs about twice the forward; we count 3 x forward.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from latticeml.autodiff import optim  # noqa: E402
from latticeml.groups import haar_su  # noqa: E402
from latticeml.nets import lcnn  # noqa: E402


def forward_flops(blocks, D, N, V, B):
    c, total = D * (D - 1), 0.0
    for c_out, K in blocks:
        T = lcnn.n_transport_terms(D, K)
        total += (T - 1) * c * 2 * 8 * N**3  # transports, one link at a time
        total += 2 * c_out * c * T * 2 * N * N  # weighted sum (real weights on complex entries)
        c1, c2 = 2 * c + 1, 2 * c_out + 1
        total += c_out * c1 * c2 * 2 * 2 * N * N + c_out * c1 * 8 * N**3  # contraction + products
        c = c_out
    return total * V * B


def _dgemm_timer(n=512):
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    return (lambda: a @ b), 2 * n**3


def _time(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def latticeml_step(shape, B):
    """One Adam step of the latticeml model as a function of no arguments (warmed up)."""
    rng = np.random.default_rng(0)
    model = lcnn.build_lcnn("2x2", "medium", rng=rng)
    U = haar_su(rng, 2, (B, 2) + shape)
    y = rng.normal(size=(B,) + shape)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        out = model(U)
        loss = ((out - y) ** 2).mean()
        loss.backward()
        opt.step()

    step()
    return step


class _OpTimer:
    """Wraps the forward and backward of the L-CNN's custom ops to add up their time per op."""

    OPS = {"Plaq": "_paths_op", "L-Conv": "_lconv_op", "L-Bilin": "_lbilin_op", "Trace": "_trace_op"}

    def __init__(self):
        self.t = {}
        self._saved = []
        for label, attr in self.OPS.items():
            op = getattr(lcnn, attr)
            self._saved.append((op, op.fwd, op.bwd))
            op.fwd, op.bwd = self._wrap(op.fwd, label + " fwd"), self._wrap(op.bwd, label + " bwd")

    def _wrap(self, f, key):
        def timed(*a, **k):
            t = time.perf_counter()
            r = f(*a, **k)
            self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - t
            return r

        return timed

    def restore(self):
        for op, fwd, bwd in self._saved:
            op.fwd, op.bwd = fwd, bwd


def profile_step(step, repeat):
    """Best-of-``repeat`` time of each op's forward and backward in one step, of the rest, and of the whole step (s)."""
    timer = _OpTimer()
    best, total = {}, float("inf")
    try:
        for _ in range(repeat):
            timer.t = {}
            t = _time(step)
            total = min(total, t)
            timer.t["rest"] = t - sum(timer.t.values())  # everything outside the L-CNN ops, this round
            for k, v in timer.t.items():
                best[k] = min(best.get(k, float("inf")), v)
    finally:
        timer.restore()
    return best, total


def torch_step(shape, B):
    """One Adam step of the same architecture in PyTorch (complex128 fields, float64 weights), or None.

    The straightforward port: ``@`` on ``(..., 2, 2)`` tensors (batched matmuls of tiny matrices) and the
    real weights cast to complex for the einsums. Two rewrites were tried on 2026-12-04 and were not faster
    on this machine (load ~2.7, interleaved with this one): the 2 x 2 products as elementwise multiply-adds
    over the sites (8x8: 0.023-0.043 s against 0.019 s; 32x32: 0.64-1.22 s against 0.42-0.69 s) and the
    weight contractions on real views (``torch.view_as_real``; within the noise).
    """
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    D, blocks = 2, lcnn.ARCHITECTURES["2x2"]["medium"]
    U = torch.tensor(haar_su(rng, 2, (B, 2) + shape))
    y = torch.tensor(rng.normal(size=(B,) + shape))
    dag = lambda a: a.conj().transpose(-1, -2)  # noqa: E731
    params, c = [], D * (D - 1)
    for c_out, K in blocks:
        params.append(torch.randn(c_out, c, lcnn.n_transport_terms(D, K), dtype=torch.float64, requires_grad=True))
        params.append(torch.randn(c_out, 2 * c + 1, 2 * c_out + 1, dtype=torch.float64, requires_grad=True))
        c = c_out
    head = torch.randn(2 * c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam(params + [head], lr=1e-3)

    def transport(W, mu, sign):  # W (B, C, L0, L1, N, N); U_mu (B, L0, L1, N, N)
        Um = U[:, mu]
        if sign > 0:
            Ws = torch.roll(W, -1, dims=2 + mu)
            return Um[:, None] @ Ws @ dag(Um)[:, None]
        Ub = torch.roll(Um, 1, dims=1 + mu)
        return dag(Ub)[:, None] @ torch.roll(W, 1, dims=2 + mu) @ Ub[:, None]

    def forward():
        U0, U1 = U[:, 0], U[:, 1]
        P = U0 @ torch.roll(U1, -1, 1) @ dag(torch.roll(U0, -1, 2)) @ dag(U1)
        W = torch.stack([P, dag(P)], 1)
        for i, (c_out, K) in enumerate(blocks):
            terms = [W]
            for mu in range(D):
                for s in (1, -1):
                    T = W
                    for _ in range(K):
                        T = transport(T, mu, s)
                        terms.append(T)
            X = torch.stack(terms, 2)  # (B, C, T, ...)
            Wc = torch.einsum("oct,bct...->bo...", params[2 * i].to(X.dtype), X)
            eye = torch.eye(2, dtype=W.dtype).expand(W.shape[0], 1, *W.shape[2:])
            Xe = torch.cat([W, dag(W), eye], 1)
            Ye = torch.cat([Wc, dag(Wc), eye], 1)
            Z = torch.einsum("ojk,bk...->boj...", params[2 * i + 1].to(Ye.dtype), Ye)
            W = (Xe[:, None] @ Z).sum(2)
        tr = torch.diagonal(W, dim1=-2, dim2=-1).sum(-1)
        feats = torch.cat([tr.real, tr.imag], 1)
        return torch.einsum("c,bc...->b...", head, feats)

    def step():
        opt.zero_grad()
        loss = ((forward() - y) ** 2).mean()
        loss.backward()
        opt.step()

    step()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--profile", action="store_true", help="time each layer's forward and backward")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
        torch_info = f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread, complex128/float64"
    except ImportError:
        torch = None
        torch_info = "PyTorch not installed"
    import numba

    print(f"threads: numba {numba.get_num_threads()}, OMP {os.environ.get('OMP_NUM_THREADS')}, "
          f"OpenBLAS {os.environ.get('OPENBLAS_NUM_THREADS')}; {torch_info}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    gemm, gemm_flops = _dgemm_timer()
    rows, rates = [], []
    for shape in ((8, 8), (32, 32)):
        ours = latticeml_step(shape, args.batch)
        theirs = torch_step(shape, args.batch) if torch is not None else None
        t, tt = float("inf"), float("inf")
        for _ in range(args.repeat):  # interleaved: the load hits both
            t = min(t, _time(ours))
            if theirs is not None:
                tt = min(tt, _time(theirs))
            rates.append(gemm_flops / _time(gemm) / 1e9)
        flops = 3 * forward_flops(lcnn.ARCHITECTURES["2x2"]["medium"], 2, 2, int(np.prod(shape)), args.batch)
        rows.append((shape, t, tt if theirs is not None else None, flops, ours))
    rate = max(rates)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"dgemm (512^3, one thread): {rate:.2f} GFLOP/s (best of {len(rates)}, interleaved)")
    print(f"{'lattice':>8s} {'latticeml s':>12s} {'torch s':>9s} {'ratio':>6s} {'GFLOP/s':>8s} {'of dgemm':>8s}")
    for shape, t, tt, flops, _ in rows:
        ratio = f"{tt / t:6.2f}" if tt else "   n/a"
        tts = f"{tt:9.4f}" if tt else "      n/a"
        print(f"{'x'.join(map(str, shape)):>8s} {t:12.4f} {tts} {ratio} {flops / t / 1e9:8.3f} {flops / t / 1e9 / rate:8.1%}")
    if args.profile:
        for shape, _, _, _, ours in rows:
            best, total = profile_step(ours, args.repeat)
            print(f"\nprofile {'x'.join(map(str, shape))}: ms per step (best of {args.repeat}), step {1e3 * total:.2f} ms")
            for key in sorted(best, key=lambda k: -best[k]):
                note = "   (head, loss, autodiff bookkeeping, Adam)" if key == "rest" else ""
                print(f"  {key:12s} {1e3 * best[key]:8.2f}{note}")


if __name__ == "__main__":
    main()
