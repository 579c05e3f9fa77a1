"""Benchmark of latticeml.autodiff: time per training step (forward + backward + Adam).

Workloads (float64 throughout):
  mlp     Dense net 1 -> 32 -> 32 -> 1 (tanh), batch 128, mean squared error
  conv    2D periodic conv net 1 -> 8 -> 8 -> 1 (tanh, kernel 3), batch 64 on 8x8
  flow    16 affine coupling layers (checkerboard masks), each with a conv net 1 -> 8 -> 8 -> 2,
          batch 64 on 8x8, loss = mean(S(phi) - log det J) for a phi^4-like action: the
          workload of the normalizing-flow lecture (Albergo, Kanwar & Shanahan, PRD 100 (2019) 034515)

Columns: the engine; plain NumPy with the backward written by hand (the same Numba conv kernels,
no tape, no Tensor objects: the engine's overhead is the difference); PyTorch on the CPU when
installed, with its default threads and with one thread (torch/engine uses the faster of the two).
The engine runs single-threaded (see ``autodiff/conv.py`` on why). Also: this machine's dgemm rate (2000 x 2000 matmul), the achieved conv GFLOP/s, the
conv kernel design (im2col + BLAS, as in the library, against direct Numba loops), and the
first-call Numba compile time (fresh cache) against a warm cache.

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_autodiff.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
from numba import njit

from _reference import dgemm_gflops

from latticeml.autodiff import Tensor, nn, optim
from latticeml.autodiff import ops as F
from latticeml.autodiff.conv import _correlate, _correlate_weight_grad, _site_chunk, neighbour_table

try:
    import torch
except ImportError:  # the library does not need torch; the benchmark just skips its column
    torch = None

B_MLP, B_CONV, L, N_COUPLINGS = 128, 64, 8, 16


def time_per_call(fn, *, repeats: int, number: int) -> float:
    """Median over ``repeats`` of the mean time of ``number`` calls, in seconds (after warm-up)."""
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


# --- plain NumPy with hand-written backward ------------------------------------------------------


class NumpyAdam:
    """Adam on a list of arrays (same formula as latticeml.autodiff.optim.Adam)."""

    def __init__(self, params, lr):
        self.params, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        c1, c2 = 1 - 0.9**self.t, 1 - 0.999**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * (g * g)
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + 1e-8)


def numpy_mlp_step(params, opt, x, y):
    W1, b1, W2, b2, W3, b3 = params
    h1 = np.tanh(x @ W1 + b1)
    h2 = np.tanh(h1 @ W2 + b2)
    out = h2 @ W3 + b3
    d = 2 * (out - y) / out.size
    gW3, gb3 = h2.T @ d, d.sum(0)
    d2 = (d @ W3.T) * (1 - h2 * h2)
    gW2, gb2 = h1.T @ d2, d2.sum(0)
    d1 = (d2 @ W2.T) * (1 - h1 * h1)
    gW1, gb1 = x.T @ d1, d1.sum(0)
    opt.step([gW1, gb1, gW2, gb2, gW3, gb3])
    return np.mean((out - y) ** 2)


def _np_conv(x3, w3, b, nbr):
    (B, I, V), O, K = x3.shape, w3.shape[0], w3.shape[2]
    out = np.empty((B, O, V))
    _correlate(x3, w3, nbr, b, out, _site_chunk(O, I, K, V))
    return out


def _np_conv_bwd(g3, x3, w3, nbr, need_x):
    gw = np.empty_like(w3)
    _correlate_weight_grad(x3, g3, nbr, gw, _site_chunk(*w3.shape, x3.shape[2]))
    gb = g3.sum(axis=(0, 2))
    gx = None
    if need_x:
        wf = np.ascontiguousarray(w3[:, :, ::-1].transpose(1, 0, 2))
        gx = _np_conv(g3, wf, np.zeros(w3.shape[1]), nbr)
    return gx, gw, gb


def numpy_convnet_step(params, opt, x3, y3, nbr):
    """conv -> tanh -> conv -> tanh -> conv, MSE; params = [w1, b1, w2, b2, w3, b3] with w (O, I, K)."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.tanh(_np_conv(x3, w1, b1, nbr))
    h2 = np.tanh(_np_conv(h1, w2, b2, nbr))
    out = _np_conv(h2, w3, b3, nbr)
    d = 2 * (out - y3) / out.size
    g2, gw3, gb3 = _np_conv_bwd(d, h2, w3, nbr, True)
    g2 = g2 * (1 - h2 * h2)
    g1, gw2, gb2 = _np_conv_bwd(g2, h1, w2, nbr, True)
    g1 = g1 * (1 - h1 * h1)
    _, gw1, gb1 = _np_conv_bwd(g1, x3, w1, nbr, False)
    opt.step([gw1, gb1, gw2, gb2, gw3, gb3])


# --- the engine ------------------------------------------------------------------------------------


def engine_step(net, opt, loss_fn):
    opt.zero_grad()
    loss = loss_fn(net)
    loss.backward()
    opt.step()
    return loss


def checkerboard(parity):
    return ((np.add.outer(np.arange(L), np.arange(L)) % 2) == parity).astype(float)[None, None]


def phi4_action(phi, *, m2=-4.0, lam=8.0):
    """Albergo et al. form: sum_x [-2 sum_mu phi(x) phi(x+mu) + (4 + m2) phi^2 + lam phi^4], per config."""
    kinetic = phi * (F.roll(phi, -1, axis=2) + F.roll(phi, -1, axis=3))
    return (-2.0 * kinetic + (4.0 + m2) * phi**2 + lam * phi**4).sum(axis=(1, 2, 3))


class CouplingFlow(nn.Module):
    """Stack of affine coupling layers x' = m x + (1 - m)(x e^s + t), (s, t) = net(m x)."""

    def __init__(self, *, rng):
        self.nets = [nn.conv_net([1, 8, 8, 2], kernel_size=3, rng=rng) for _ in range(N_COUPLINGS)]
        self.masks = [checkerboard(j % 2) for j in range(N_COUPLINGS)]

    def forward(self, z):
        x, logdet = z, 0.0
        for net, m in zip(self.nets, self.masks):
            frozen = x * m
            st = net(frozen)
            s, t = st[:, 0:1], st[:, 1:2]
            x = frozen + (1.0 - m) * (x * F.exp(s) + t)
            logdet = logdet + ((1.0 - m) * s).sum(axis=(1, 2, 3))
        return x, logdet


def flow_loss(flow, z):
    x, logdet = flow(z)
    return (phi4_action(x) - logdet).mean()


# --- PyTorch ---------------------------------------------------------------------------------------


def torch_setup():
    torch.set_default_dtype(torch.float64)
    tnn = torch.nn

    class CConv(tnn.Module):
        def __init__(self, i, o):
            super().__init__()
            self.c = tnn.Conv2d(i, o, 3)

        def forward(self, x):
            return self.c(tnn.functional.pad(x, (1, 1, 1, 1), mode="circular"))

    def tconvnet(c):
        layers = []
        for j, (i, o) in enumerate(zip(c[:-1], c[1:])):
            layers.append(CConv(i, o))
            if j < len(c) - 2:
                layers.append(tnn.Tanh())
        return tnn.Sequential(*layers)

    return tnn, tconvnet


def torch_rows(x_mlp, y_mlp, x_conv, y_conv, z):
    tnn, tconvnet = torch_setup()
    torch.manual_seed(0)
    out = {}

    mlp = tnn.Sequential(tnn.Linear(1, 32), tnn.Tanh(), tnn.Linear(32, 32), tnn.Tanh(), tnn.Linear(32, 1))
    tx, ty = torch.tensor(x_mlp), torch.tensor(y_mlp)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)

    def mlp_step():
        opt.zero_grad()
        loss = ((mlp(tx) - ty) ** 2).mean()
        loss.backward()
        opt.step()

    out["mlp"] = mlp_step

    cn = tconvnet([1, 8, 8, 1])
    cx, cy = torch.tensor(x_conv), torch.tensor(y_conv)
    copt = torch.optim.Adam(cn.parameters(), lr=1e-3)

    def conv_step():
        copt.zero_grad()
        loss = ((cn(cx) - cy) ** 2).mean()
        loss.backward()
        copt.step()

    out["conv"] = conv_step

    nets = tnn.ModuleList([tconvnet([1, 8, 8, 2]) for _ in range(N_COUPLINGS)])
    masks = [torch.tensor(checkerboard(j % 2)) for j in range(N_COUPLINGS)]
    tz = torch.tensor(z)
    fopt = torch.optim.Adam(nets.parameters(), lr=1e-3)

    def flow_step():
        fopt.zero_grad()
        x, logdet = tz, 0.0
        for net, m in zip(nets, masks):
            frozen = x * m
            st = net(frozen)
            s, t = st[:, 0:1], st[:, 1:2]
            x = frozen + (1 - m) * (x * torch.exp(s) + t)
            logdet = logdet + ((1 - m) * s).sum(dim=(1, 2, 3))
        kin = x * (torch.roll(x, -1, 2) + torch.roll(x, -1, 3))
        S = (-2 * kin + (4.0 - 4.0) * x**2 + 8.0 * x**4).sum(dim=(1, 2, 3))
        loss = (S - logdet).mean()
        loss.backward()
        fopt.step()

    out["flow"] = flow_step
    return out


# --- conv kernel design: direct Numba loops (the alternative that lost) ------------------------------


@njit(cache=True)
def _direct_correlate(x, w, nbr, bias, out):
    """out[b, o, s] = bias[o] + sum_{i, d} w[o, i, d] x[b, i, nbr[d, s]] by plain loops."""
    B, I, V = x.shape
    O = w.shape[0]
    K = nbr.shape[0]
    wt = np.empty((I, K, O))
    for o in range(O):
        for i in range(I):
            for d in range(K):
                wt[i, d, o] = w[o, i, d]
    acc = np.empty(O)
    for b in range(B):
        for s in range(V):
            for o in range(O):
                acc[o] = bias[o]
            for d in range(K):
                n = nbr[d, s]
                for i in range(I):
                    xv = x[b, i, n]
                    for o in range(O):
                        acc[o] += wt[i, d, o] * xv
            for o in range(O):
                out[b, o, s] = acc[o]


def conv_flops(channels, *, batch, sites, k=9, input_grad_first=False):
    """Multiply-adds x 2 of forward + weight gradient + input gradient of a conv stack."""
    total = 0
    for j, (i, o) in enumerate(zip(channels[:-1], channels[1:])):
        per = 2 * batch * sites * i * o * k
        total += per * (3 if (j > 0 or input_grad_first) else 2)
    return total


def compile_time() -> tuple[float, float]:
    """First conv forward+backward in a fresh process: (empty Numba cache, warm cache) in seconds."""
    code = textwrap.dedent(
        """
        import time, numpy as np
        t0 = time.perf_counter()
        from latticeml.autodiff import Tensor, periodic_conv
        x = Tensor(np.ones((2, 3, 4, 4)), requires_grad=True)
        for co in (5, 2):   # both kernel paths (gather input / gather output)
            w = Tensor(np.ones((co, 3, 3, 3)), requires_grad=True)
            periodic_conv(x, w, np.zeros(co)).sum().backward()
        print(time.perf_counter() - t0)
        """
    )
    times = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            times.append(float(r.stdout.strip().splitlines()[-1]))
    return times[0], times[1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else 7
    rng = np.random.default_rng(0)
    load = os.getloadavg()

    gemm = dgemm_gflops()
    first, warm = compile_time()

    # data
    x_mlp = rng.uniform(-1.5, 1.5, (B_MLP, 1))
    y_mlp = x_mlp**3
    x_conv = rng.standard_normal((B_CONV, 1, L, L))
    y_conv = np.roll(x_conv, 1, axis=2) ** 2
    z = rng.standard_normal((B_CONV, 1, L, L))

    # engine
    mlp = nn.mlp([1, 32, 32, 1], rng=np.random.default_rng(1))
    mlp_opt = optim.Adam(mlp.parameters(), lr=1e-3)
    conv = nn.conv_net([1, 8, 8, 1], rng=np.random.default_rng(2))
    conv_opt = optim.Adam(conv.parameters(), lr=1e-3)
    flow = CouplingFlow(rng=np.random.default_rng(3))
    flow_opt = optim.Adam(flow.parameters(), lr=1e-3)
    engine = {
        "mlp": lambda: engine_step(mlp, mlp_opt, lambda n: ((n(x_mlp) - y_mlp) ** 2).mean()),
        "conv": lambda: engine_step(conv, conv_opt, lambda n: ((n(x_conv) - y_conv) ** 2).mean()),
        "flow": lambda: engine_step(flow, flow_opt, lambda f: flow_loss(f, z)),
    }

    # plain NumPy, hand-written backward
    mp = [p.value.copy() for p in nn.mlp([1, 32, 32, 1], rng=np.random.default_rng(1)).parameters()]
    mopt = NumpyAdam(mp, 1e-3)
    cps = []
    for p in nn.conv_net([1, 8, 8, 1], rng=np.random.default_rng(2)).parameters():
        v = p.value.copy()
        cps.append(np.ascontiguousarray(v.reshape(v.shape[0], v.shape[1], -1)) if v.ndim == 4 else v)
    copt = NumpyAdam(cps, 1e-3)
    nbr = neighbour_table((L, L), (3, 3))
    x3, y3 = x_conv.reshape(B_CONV, 1, -1).copy(), y_conv.reshape(B_CONV, 1, -1).copy()
    plain = {
        "mlp": lambda: numpy_mlp_step(mp, mopt, x_mlp, y_mlp),
        "conv": lambda: numpy_convnet_step(cps, copt, x3, y3, nbr),
    }

    theirs = torch_rows(x_mlp, y_mlp, x_conv, y_conv, z) if torch is not None else {}

    number = {"mlp": 200, "conv": 50, "flow": 5}
    flops = {
        "conv": conv_flops([1, 8, 8, 1], batch=B_CONV, sites=L * L),
        "flow": N_COUPLINGS * conv_flops([1, 8, 8, 2], batch=B_CONV, sites=L * L, input_grad_first=True),
    }
    rows = []
    for name in ("mlp", "conv", "flow"):
        t_e = time_per_call(engine[name], repeats=repeats, number=number[name])
        t_n = time_per_call(plain[name], repeats=repeats, number=number[name]) if name in plain else None
        t_t = t_t1 = None
        if name in theirs:
            t_t = time_per_call(theirs[name], repeats=repeats, number=number[name])
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            t_t1 = time_per_call(theirs[name], repeats=repeats, number=number[name])
            torch.set_num_threads(threads)
        rows.append((name, t_e, t_n, t_t, t_t1))

    # conv kernel design, forward of the 8 -> 8 layer, batch 64 on 8x8
    xs = rng.standard_normal((B_CONV, 8, L * L))
    w = rng.standard_normal((8, 8, 9))
    b = np.zeros(8)
    out = np.empty_like(xs)
    _direct_correlate(xs, w, nbr, b, out)
    ref = np.empty_like(xs)
    vc = _site_chunk(8, 8, 9, L * L)
    _correlate(xs, w, nbr, b, ref, vc)
    assert np.allclose(out, ref)
    t_lib = time_per_call(lambda: _correlate(xs, w, nbr, b, ref, vc), repeats=repeats, number=50)
    t_dir = time_per_call(lambda: _direct_correlate(xs, w, nbr, b, out), repeats=repeats, number=50)
    f88 = 2 * B_CONV * L * L * 8 * 8 * 9

    ms = lambda t: "—" if t is None else f"{1e3 * t:.3f}"  # noqa: E731
    ratio = lambda a, c: "—" if c is None else f"{a / c:.2f}"  # noqa: E731
    label = {
        "mlp": "MLP 1-32-32-1, batch 128",
        "conv": "conv net 1-8-8-1, k=3, 8x8, batch 64",
        "flow": "16 affine couplings (conv 1-8-8-2), 8x8, batch 64",
    }
    print(f"threads: OpenBLAS/OMP={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"torch={torch.get_num_threads() if torch else '—'}, cores={os.cpu_count()}")
    print(f"load average before the run (other processes on this machine): {load[0]:.2f}")
    print(f"dgemm 2000x2000: {gemm:.1f} GFLOP/s")
    print(f"first call (compile, empty cache): {first:.2f} s; warm cache: {warm:.2f} s (incl. import)\n")
    print("| training step (fwd + bwd + Adam) | engine ms | NumPy hand-written ms | torch CPU ms "
          "| torch 1 thread ms | engine/NumPy | torch/engine | engine GFLOP/s (% dgemm) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, t_e, t_n, t_t, t_t1 in rows:
        gf = f"{flops[name] / t_e / 1e9:.1f} ({100 * flops[name] / t_e / 1e9 / gemm:.0f}%)" if name in flops else "—"
        best_torch = None if t_t is None else min(t_t, t_t1)
        print(f"| {label[name]} | {ms(t_e)} | {ms(t_n)} | {ms(t_t)} | {ms(t_t1)} | {ratio(t_e, t_n)} | "
              f"{ratio(best_torch, t_e)} | {gf} |")
    print()
    print("| conv 8->8 forward, batch 64, 8x8 | ms | GFLOP/s |")
    print("|---|---|---|")
    print(f"| im2col + BLAS (library) | {1e3 * t_lib:.3f} | {f88 / t_lib / 1e9:.1f} |")
    print(f"| direct Numba loops | {1e3 * t_dir:.3f} | {f88 / t_dir / 1e9:.1f} |")


if __name__ == "__main__":
    main()
