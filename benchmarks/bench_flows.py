"""Benchmark of latticeml.flows against PyTorch: the normalizing-flow workloads of the MIT tutorial
(phi^4 and, with ``--theory u1``, the gauge-equivariant U(1) flow).

Workload (Albergo et al., arXiv:2101.08176, phi^4 part; Albergo, Kanwar & Shanahan, PRD 100 (2019)
034515): 2D phi^4 on 8x8 at m^2 = -4, lambda = 8; 16 affine coupling layers with checkerboard
masks; each conv net 1 -> 8 -> 8 -> 2 channels, kernel 3, periodic padding, LeakyReLU between
layers, tanh on the output; prior N(0, 1) per site; reverse-KL loss on a batch of 64 prior
draws; Adam, lr 1e-3. One training step = draw the batch, forward, backward, Adam update.

The PyTorch version below is written from the paper's description (same architecture, same
PyTorch-default initialisation U(+-1/sqrt(fan_in)), same loss); torch is optional and used only here.

Modes
-----
default      time per training step (ms), single thread everywhere: latticeml (fused coupling op),
             latticeml with the engine's reference layers, torch float64, torch float32.
             Implementations are timed in interleaved rounds (median over rounds), because the
             machine is shared and its load drifts.
--compare M  flow-MCMC with the model file M against HMC (trajectory length 1, 10 leapfrog steps)
             and checkerboard Metropolis (width 1.0) on the same target: acceptance, time per step,
             observables with Gamma-method errors, tau_int (32768 proposals, 20000 trajectories/sweeps).
--quality N  train for N steps from --seed and report the tutorial's quality measures:
             ESS per configuration of the batch of 64 (mean over the last 100 steps, as the
             tutorial prints it), ESS of 8192 fresh samples, and an 8192-step flow-MCMC chain
             (acceptance, tau_int of |M| by the Gamma method). --impl picks latticeml or torch.

U(1) workload (``--theory u1``; Albergo et al., arXiv:2101.08176, Sec. 4; Kanwar et al., PRL 125
(2020) 121601): 2D U(1) on 8x8 at beta = 2, Wilson action; 16 gauge-equivariant coupling layers
(mu = i mod 2, offset (i // 2) mod 4), conv nets 2 -> 8 -> 8 -> 3 channels (kernel 3, periodic,
LeakyReLU, no final activation), a mixture of 2 non-compact projections plus a shift on the active
plaquettes; uniform prior; batch 64, Adam lr 1e-3. ``--quality N`` then reports the ESS and the
acceptance of an 8192-step flow-MCMC chain, tau_int of Q and the importance-sampling ln Z against
the exact value.

Run:  NUMBA_CACHE_DIR=.numba_cache .venv/bin/python benchmarks/bench_flows.py [--rounds 5]
      .venv/bin/python benchmarks/bench_flows.py --theory u1 [--rounds 5]
      .venv/bin/python benchmarks/bench_flows.py --theory u1 --quality 1000 --impl latticeml --seed 0
      .venv/bin/python benchmarks/bench_flows.py --quality 2500 --impl latticeml --seed 0
      .venv/bin/python benchmarks/bench_flows.py --compare latticeml/data/phi4_flow_8x8_pretrained.npz
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread for every implementation (set before the imports)

import numpy as np  # noqa: E402

from latticeml.autodiff import optim  # noqa: E402
from latticeml.flows import (  # noqa: E402
    acceptance_estimate,
    action,
    checkerboard_mask,
    effective_sample_size,
    flow_mcmc,
    independence_metropolis,
    active_link_mask,
    phi4_flow,
    plaquette_masks,
    reverse_kl_loss,
)
from latticeml.flows import observables as flow_observables  # noqa: E402
from latticeml import exact  # noqa: E402
from latticeml.flows import log_partition_function, u1_exact_log_partition_function, u1_flow  # noqa: E402
from latticeml.stats import gamma_method  # noqa: E402
from latticeml.theories import make_theory  # noqa: E402
from latticeml.theories.phi4 import Phi4  # noqa: E402

try:
    import torch
except ImportError:  # the library does not need torch; the benchmark then skips its columns
    torch = None

SHAPE, M2, LAM = (8, 8), -4.0, 8.0
BATCH, LR, N_LAYERS, HIDDEN, KERNEL = 64, 1e-3, 16, (8, 8), 3
BETA, N_MIX = 2.0, 2  # U(1): the tutorial's coupling and NCP mixture size
N_EVAL = 8192


# ----------------------------------------------------------------------------- latticeml


class LatticemlTrainer:
    """One training step of the library's flow; ``reference=True`` uses the engine-op layers (phi^4)."""

    def __init__(self, seed: int, *, reference: bool = False, theory: str = "phi4"):
        if theory == "u1":
            self.theory = make_theory("u1", SHAPE, beta=BETA)
            self.flow = u1_flow(SHAPE, n_layers=N_LAYERS, hidden=HIDDEN, kernel_size=KERNEL, transform="ncp",
                                components=N_MIX, rng=np.random.default_rng([seed, 0]))
        else:
            self.theory = Phi4(SHAPE, m2=M2, lam=LAM)
            self.flow = phi4_flow(SHAPE, n_layers=N_LAYERS, hidden=HIDDEN, kernel_size=KERNEL, rng=np.random.default_rng([seed, 0]))
        if reference:
            for layer in self.flow.layers:
                layer.forward = layer.reference_forward
        self.opt = optim.Adam(self.flow.parameters(), lr=LR)
        self.rng = np.random.default_rng([seed, 1])

    def step(self) -> dict:
        z = self.flow.prior.sample(self.rng, BATCH)
        self.opt.zero_grad()
        loss, log_q, S = reverse_kl_loss(self.flow, self.theory, z)
        loss.backward()
        self.opt.step()
        log_w = -S - log_q
        return {"loss": float(loss.value), "ess": effective_sample_size(log_w), "acceptance": acceptance_estimate(log_w)}

    def evaluate(self, seed: int) -> dict:
        rng = np.random.default_rng([seed, 2])
        chain = flow_mcmc(self.flow, self.theory, rng, n_steps=N_EVAL, batch_size=BATCH, keep_fields=False)
        if self.theory.name == "u1":
            return _u1_chain_summary(chain.proposal_log_weights, chain.accepted, chain.records)
        return _chain_summary(chain.proposal_log_weights, chain.accepted, chain.records["abs_magnetization"])


def _u1_chain_summary(proposal_log_w, accepted, records) -> dict:
    log_z, log_z_error = log_partition_function(proposal_log_w)
    out = {
        f"ess_{len(proposal_log_w)}_samples": effective_sample_size(proposal_log_w),
        "flow_mcmc_acceptance": float(np.mean(accepted)),
        "log_z": log_z,
        "log_z_error": log_z_error,
        "log_z_exact": u1_exact_log_partition_function(BETA, SHAPE),
    }
    for key in ("plaquette", "topological_susceptibility", "topological_charge"):
        g = gamma_method(np.asarray(records[key], dtype=np.float64))
        out[key] = g.value
        out[f"{key}_error"] = g.error
        out[f"tau_int_{key}"] = g.tau_int
    out["plaquette_exact"] = exact.u1_2d_plaquette(BETA, SHAPE[0] * SHAPE[1])
    out["topological_susceptibility_exact"] = exact.u1_2d_topological_susceptibility(BETA, SHAPE[0] * SHAPE[1])
    return out


def _chain_summary(proposal_log_w, accepted, abs_m) -> dict:
    g = gamma_method(abs_m)
    return {
        f"ess_{len(proposal_log_w)}_samples": effective_sample_size(proposal_log_w),
        f"ess_batch64_mean_over_{len(proposal_log_w) // 64}_batches": float(
            np.mean([effective_sample_size(b) for b in proposal_log_w.reshape(-1, 64)])
        ),
        "flow_mcmc_acceptance": float(np.mean(accepted)),
        "tau_int_abs_m": g.tau_int,
        "tau_int_abs_m_error": g.tau_int_error,
        "abs_m": g.value,
        "abs_m_error": g.error,
    }


# ----------------------------------------------------------------------------- PyTorch


class TorchTrainer:
    """The same flow, loss and optimizer in PyTorch (written from the paper's description)."""

    def __init__(self, seed: int, dtype):
        torch.manual_seed(seed)
        self.dtype = dtype
        tnn = torch.nn

        class Coupling(tnn.Module):
            def __init__(self, parity):
                super().__init__()
                self.register_buffer("mask", torch.tensor(checkerboard_mask(SHAPE, parity), dtype=dtype))
                sizes = [1, *HIDDEN, 2]
                layers = []
                for j, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                    layers.append(tnn.Conv2d(c_in, c_out, KERNEL, padding=KERNEL // 2, padding_mode="circular", dtype=dtype))
                    layers.append(tnn.LeakyReLU() if j < len(sizes) - 2 else tnn.Tanh())
                self.net = tnn.Sequential(*layers)

            def forward(self, x):
                frozen = self.mask * x
                st = self.net(frozen.unsqueeze(1))
                s, t = st[:, 0], st[:, 1]
                active = 1 - self.mask
                return frozen + active * (x * torch.exp(s) + t), (active * s).sum(dim=(1, 2))

        self.layers = tnn.ModuleList([Coupling(i % 2) for i in range(N_LAYERS)])
        self.opt = torch.optim.Adam(self.layers.parameters(), lr=LR)
        self.volume = math.prod(SHAPE)

    def action(self, phi):
        hop = phi * (torch.roll(phi, -1, 1) + torch.roll(phi, -1, 2))
        return (-2 * hop + (4 + M2) * phi**2 + LAM * phi**4).sum(dim=(1, 2))

    def sample(self, n):
        z = torch.randn((n, *SHAPE), dtype=self.dtype)
        log_q = -0.5 * (z**2).sum(dim=(1, 2)) - 0.5 * self.volume * math.log(2 * math.pi)
        x = z
        for layer in self.layers:
            x, log_det = layer(x)
            log_q = log_q - log_det
        return x, log_q

    def step(self) -> dict:
        self.opt.zero_grad()
        x, log_q = self.sample(BATCH)
        S = self.action(x)
        loss = (log_q + S).mean()
        loss.backward()
        self.opt.step()
        log_w = (-S - log_q).detach().double().numpy()
        return {"loss": float(loss.detach()), "ess": effective_sample_size(log_w), "acceptance": acceptance_estimate(log_w)}

    def evaluate(self, seed: int) -> dict:
        torch.manual_seed(10_000 + seed)
        theory = Phi4(SHAPE, m2=M2, lam=LAM)
        with torch.no_grad():
            batches = [self.sample(BATCH) for _ in range(N_EVAL // BATCH)]
        phi = torch.cat([b[0] for b in batches]).double().numpy()
        log_q = torch.cat([b[1] for b in batches]).double().numpy()
        log_w = -action(theory, phi) - log_q
        index, accepted, _ = independence_metropolis(log_w, np.random.default_rng([seed, 2]).random(N_EVAL))
        abs_m = np.abs(phi.reshape(N_EVAL, -1).mean(axis=1))[index]
        return _chain_summary(log_w, accepted, abs_m)


class TorchU1Trainer:
    """The tutorial's gauge-equivariant U(1) flow in PyTorch, written from its description
    (arXiv:2101.08176, Sec. 4): stripes of plaquette masks, conv net on cos/sin of the frozen
    plaquettes, NCP mixture + shift on the active plaquettes, pushed onto one link each."""

    def __init__(self, seed: int, dtype):
        torch.manual_seed(seed)
        self.dtype = dtype
        tnn = torch.nn
        two_pi = 2 * math.pi
        L0, L1 = SHAPE

        def tmod(x):
            return torch.remainder(x, two_pi)

        def plaq(links):
            return links[:, 0] + torch.roll(links[:, 1], -1, 1) - torch.roll(links[:, 0], -1, 2) - links[:, 1]

        self.plaq, self.tmod = plaq, tmod

        class Layer(tnn.Module):
            def __init__(self, mu, off):
                super().__init__()
                masks = plaquette_masks(SHAPE, mu, off)
                for k, v in masks.items():
                    self.register_buffer(k, torch.tensor(v, dtype=dtype))
                self.register_buffer("link_mask", torch.tensor(active_link_mask(SHAPE, mu, off), dtype=dtype))
                self.sign = 1.0 if mu == 0 else -1.0
                sizes = [2, *HIDDEN, N_MIX + 1]
                layers = []
                for j, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
                    layers.append(tnn.Conv2d(c_in, c_out, KERNEL, padding=KERNEL // 2, padding_mode="circular", dtype=dtype))
                    if j < len(sizes) - 2:
                        layers.append(tnn.LeakyReLU())
                self.net = tnn.Sequential(*layers)

            def forward(self, links):
                p = tmod(plaq(links))
                fp = self.frozen * p
                out = self.net(torch.stack([torch.cos(fp), torch.sin(fp)], dim=1))
                s, t = out[:, :-1], out[:, -1]
                x = (self.active * p).unsqueeze(1)
                # mixture of NCPs: 2 atan(e^s tan(x/2)), its log-derivative
                g = tmod(2 * torch.atan(torch.exp(s) * torch.tan(x / 2)))
                log_g = -torch.log(torch.exp(-s) * torch.cos(x / 2) ** 2 + torch.exp(s) * torch.sin(x / 2) ** 2)
                fx = self.active * g.mean(dim=1)
                log_j = (self.active * (torch.logsumexp(log_g, dim=1) - math.log(N_MIX))).sum(dim=(1, 2))
                new_p = self.active * tmod(fx + t) + (1 - self.active) * p
                delta = new_p - p
                delta_links = torch.stack((delta, -delta), dim=1)
                return self.link_mask * tmod(delta_links + links) + (1 - self.link_mask) * links, log_j

        self.layers = tnn.ModuleList([Layer(i % 2, (i // 2) % 4) for i in range(N_LAYERS)])
        self.opt = torch.optim.Adam(self.layers.parameters(), lr=LR)
        self.n_links = 2 * L0 * L1

    def action(self, links):
        return (BETA * (1 - torch.cos(self.plaq(links)))).sum(dim=(1, 2))

    def sample(self, n):
        x = 2 * math.pi * torch.rand((n, 2, *SHAPE), dtype=self.dtype)
        log_q = torch.zeros(n, dtype=self.dtype)  # density w.r.t. prod dtheta / 2 pi
        for layer in self.layers:
            x, log_j = layer(x)
            log_q = log_q - log_j
        return x, log_q

    def step(self) -> dict:
        self.opt.zero_grad()
        x, log_q = self.sample(BATCH)
        S = self.action(x)
        loss = (log_q + S).mean()
        loss.backward()
        self.opt.step()
        log_w = (-S - log_q).detach().double().numpy()
        return {"loss": float(loss.detach()), "ess": effective_sample_size(log_w), "acceptance": acceptance_estimate(log_w)}

    def evaluate(self, seed: int) -> dict:
        torch.manual_seed(10_000 + seed)
        theory = make_theory("u1", SHAPE, beta=BETA)
        with torch.no_grad():
            batches = [self.sample(BATCH) for _ in range(N_EVAL // BATCH)]
        links = torch.cat([b[0] for b in batches]).double().numpy()
        log_q = torch.cat([b[1] for b in batches]).double().numpy()
        log_w = -action(theory, links) - log_q
        index, accepted, _ = independence_metropolis(log_w, np.random.default_rng([seed, 2]).random(N_EVAL))
        records = {k: v[index] for k, v in flow_observables(theory, links).items()}
        return _u1_chain_summary(log_w, accepted, records)


# ----------------------------------------------------------------------------- modes


def timing(rounds: int, steps_per_round: int, theory: str = "phi4") -> None:
    if theory == "u1":
        impls = {"latticeml (fused coupling op)": LatticemlTrainer(0, theory="u1")}
    else:
        impls = {
            "latticeml (fused coupling op)": LatticemlTrainer(0),
            "latticeml (engine reference layers)": LatticemlTrainer(0, reference=True),
        }
    if torch is not None:
        torch.set_num_threads(1)
        torch_cls = TorchU1Trainer if theory == "u1" else TorchTrainer
        impls["torch float64"] = torch_cls(0, torch.float64)
        impls["torch float32"] = torch_cls(0, torch.float32)
    for trainer in impls.values():  # warm-up: Numba compile, allocator
        trainer.step()
        trainer.step()
    samples = {name: [] for name in impls}
    load_before = os.getloadavg()[0]
    for _ in range(rounds):
        for name, trainer in impls.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                trainer.step()
            samples[name].append((time.perf_counter() - t0) / steps_per_round)
    load_after = os.getloadavg()[0]
    base = np.median(samples["latticeml (fused coupling op)"])
    t64 = np.median(samples["torch float64"]) if "torch float64" in samples else None
    print(f"torch {torch.__version__ if torch else '(not installed)'}, numpy {np.__version__}, one thread each; "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} before / {load_after:.1f} after")
    net = f"2-{'-'.join(map(str, HIDDEN))}-{N_MIX + 1}" if theory == "u1" else f"1-{'-'.join(map(str, HIDDEN))}-2"
    what = f"U(1) beta={BETA}, gauge-equivariant NCP x {N_MIX}" if theory == "u1" else f"phi^4 m2={M2} lam={LAM}, affine"
    print(f"training step ({what}): batch {BATCH}, {N_LAYERS} couplings, conv {net} k={KERNEL}, "
          f"{SHAPE[0]}x{SHAPE[1]}, Adam; median over {rounds} interleaved rounds of {steps_per_round} steps\n")
    print("| implementation | ms / step (median) | min | max | torch float64 / this |")
    print("|---|---|---|---|---|")
    for name, ts in samples.items():
        ratio = f"{t64 / np.median(ts):.2f}" if t64 else "—"
        print(f"| {name} | {1e3 * np.median(ts):.1f} | {1e3 * min(ts):.1f} | {1e3 * max(ts):.1f} | {ratio} |")
    if t64:
        print(f"\nlatticeml is {t64 / base:.2f}x faster per step than torch float64 (one thread)")


def quality(steps: int, impl: str, seed: int, out, theory: str = "phi4") -> dict:
    if impl == "torch":
        if torch is None:
            raise SystemExit("torch is not installed: pip install torch (CPU wheel) to run --impl torch")
        torch.set_num_threads(1)
        trainer = (TorchU1Trainer if theory == "u1" else TorchTrainer)(seed, torch.float64)
    else:
        trainer = LatticemlTrainer(seed, theory=theory)
    history = {"loss": [], "ess": [], "acceptance": []}
    t0 = time.perf_counter()
    for _ in range(steps):
        rec = trainer.step()
        for k in history:
            history[k].append(rec[k])
    train_s = time.perf_counter() - t0
    tail = slice(-100, None)
    result = {
        "impl": impl,
        "theory": theory,
        "seed": seed,
        "steps": steps,
        "train_seconds": train_s,
        "ms_per_step": 1e3 * train_s / steps,
        "loss_last100": float(np.mean(history["loss"][tail])),
        "ess_batch64_last100": float(np.mean(history["ess"][tail])),
        "acceptance_estimate_last100": float(np.mean(history["acceptance"][tail])),
    }
    result.update(trainer.evaluate(seed))
    print(json.dumps(result))
    if out:
        with open(out, "w") as fh:
            json.dump(result, fh)
    return result


def compare(model: str) -> None:
    from latticeml.flows import load_flow
    from latticeml.flows.target import one_numba_thread
    from latticeml.samplers import hmc, metropolis, run_chain

    flow = load_flow(model)
    theory = Phi4(flow.shape, m2=flow.metadata["theory_params"]["m2"], lam=flow.metadata["theory_params"]["lam"])
    t0 = time.perf_counter()
    chain = flow_mcmc(flow, theory, np.random.default_rng(11), n_steps=32768, batch_size=1024, keep_fields=False)
    t1 = time.perf_counter()
    with one_numba_thread():
        h = run_chain(hmc.sampler(theory, step_size=0.1, n_steps=10), theory.cold_start(), np.random.default_rng(12),
                      n_measure=20000, n_therm=500, progress=False)
        t2 = time.perf_counter()
        m = run_chain(metropolis.sampler(theory, step_size=1.0), theory.cold_start(), np.random.default_rng(13),
                      n_measure=20000, n_therm=500, progress=False)
        t3 = time.perf_counter()
    keys = ("abs_magnetization", "susceptibility", "action_density")
    print(f"{model}: {theory}, load average {os.getloadavg()[0]:.1f}\n")
    print("| algorithm | acceptance | ms / step | " + " | ".join(keys) + " | tau_int(abs M) [steps] |")
    print("|---|---|---|" + "---|" * len(keys) + "---|")
    rows = [("flow-MCMC", chain.records, chain.acceptance, (t1 - t0) / 32768),
            ("HMC", h.records, h.acceptance.mean(), (t2 - t1) / 20500),
            ("Metropolis", m.records, m.acceptance.mean(), (t3 - t2) / 20500)]
    for name, rec, acc, sec in rows:
        g = {k: gamma_method(rec[k]) for k in keys}
        cells = " | ".join(f"{g[k].value:.4f} +- {g[k].error:.4f}" for k in keys)
        tau = g["abs_magnetization"]
        print(f"| {name} | {acc:.3f} | {1e3 * sec:.2f} | {cells} | {tau.tau_int:.2f} +- {tau.tau_int_error:.2f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    ap.add_argument("--steps-per-round", type=int, default=5, help="training steps per implementation and round (default 5)")
    ap.add_argument("--quality", type=int, metavar="STEPS", help="train STEPS steps and report ESS / acceptance / tau_int")
    ap.add_argument("--impl", choices=["latticeml", "torch"], default="latticeml", help="implementation for --quality")
    ap.add_argument("--seed", type=int, default=0, help="seed for --quality (default 0)")
    ap.add_argument("--out", help="also write the --quality result as JSON to this file")
    ap.add_argument("--compare", metavar="MODEL", help="flow-MCMC with MODEL vs HMC vs Metropolis (phi^4)")
    ap.add_argument("--theory", choices=["phi4", "u1"], default="phi4", help="workload (default phi4)")
    args = ap.parse_args(argv)
    if args.compare and not os.path.isfile(args.compare):
        ap.error(f"no such model file: {args.compare}")
    if args.compare:
        compare(args.compare)
    elif args.quality:
        quality(args.quality, args.impl, args.seed, args.out, args.theory)
    else:
        timing(args.rounds, args.steps_per_round, args.theory)


if __name__ == "__main__":
    main()
