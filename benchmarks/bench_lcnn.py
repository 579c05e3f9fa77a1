"""One training step (forward, backward, Adam) of the medium W2x2 L-CNN, batch 16, on 8x8 and 32x32 SU(2).

Compares latticeml's engine (NumPy + the Numba parallel transport of latticeml.smearing.paths) with the
same architecture written in PyTorch (optional: skipped when torch is not installed), both on one thread,
and reports the step's useful GFLOP/s against the measured dgemm rate of this machine.

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/bench_lcnn.py [--repeat 5]

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


def dgemm_rate(n=512, repeat=3):
    a, b = np.random.rand(n, n), np.random.rand(n, n)
    best = min(_time(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _time(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def latticeml_step(shape, B, repeat):
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
    return min(_time(step) for _ in range(repeat))


def torch_step(shape, B, repeat):
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
    return min(_time(step) for _ in range(repeat))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    rate = dgemm_rate()
    print(f"dgemm (512^3, one thread): {rate:.2f} GFLOP/s")
    print(f"{'lattice':>8s} {'latticeml s':>12s} {'torch s':>9s} {'ratio':>6s} {'GFLOP/s':>8s} {'of dgemm':>8s}")
    for shape in ((8, 8), (32, 32)):
        t = latticeml_step(shape, args.batch, args.repeat)
        tt = torch_step(shape, args.batch, args.repeat)
        flops = 3 * forward_flops(lcnn.ARCHITECTURES["2x2"]["medium"], 2, 2, int(np.prod(shape)), args.batch)
        ratio = f"{tt / t:6.2f}" if tt else "   n/a"
        tts = f"{tt:9.4f}" if tt else "      n/a"
        print(f"{'x'.join(map(str, shape)):>8s} {t:12.4f} {tts} {ratio} {flops / t / 1e9:8.3f} {flops / t / 1e9 / rate:8.1%}")


if __name__ == "__main__":
    main()
