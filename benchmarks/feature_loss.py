"""Speed of one feature-space training step against the per-class, per-vector, per-temperature loop of an
earlier reproduction, in the same process on the same inputs.

One step = generator forward, encoder forward on generated and positive images, every key's drift loss,
backward into the generator. Setting (the earlier reproduction's CIFAR config): 10 classes x 64 generated
x 64 positives, 3x32x32 images, temperatures (0.02, 0.05, 0.2), ResNet-18 (random weights; speed does not
depend on them) on inputs upsampled to 64 px, the full A.5 feature set of its four stages plus the
raw-pixel and per-channel energy terms; a small DiT generator, the same for both.

  * ``ours``: :class:`raydrift.method.features.FeatureObjective` (one batched ``drift_loss`` call per key) as
    training runs it (``drift.compile`` on: on a CPU every key's field in raydrift's kernels, else eager);
  * ``ours-eager`` (CPU only): the same with ``drift.compile`` off, the fields in eager torch;
  * ``loop``: ``compute_drifting_loss`` of github.com/jiaxi98/drifting-model (``train.py``, with
    ``extract_feature_fullsets`` and ``compute_V_from_dists``), transcribed below with its logic intact
    (per class, per feature vector: distances and scale; per temperature: the field), CFG terms dropped
    (no unconditional negatives here) and the kernel fixed to its default ``l2``.

    nice python benchmarks/feature_loss.py [--threads 2] [--repeats 3] [--classes 10] [--n 64]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raydrift.config import DriftConfig  # noqa: E402
from raydrift.method.features import FeatureObjective  # noqa: E402
from raydrift.nets.encoders import build_encoder  # noqa: E402
from raydrift.nets.generators import DiTGenerator  # noqa: E402

TAUS = (0.02, 0.05, 0.2)


# ---- the earlier reproduction, transcribed ----------------------------------------------------------


def loop_feature_vectors(x, encoder):
    """``extract_feature_fullsets``: a list of ``[B, D]`` tensors, one per feature vector."""
    features = [x.flatten(start_dim=1)]  # vanilla term
    features.append((x**2).mean(dim=(2, 3)))  # encoder-input energy
    for fmap in encoder(x).values():
        bsz, channels, height, width = fmap.shape
        per_location = fmap.permute(0, 2, 3, 1).reshape(bsz, height * width, channels)
        for vec in per_location.unbind(dim=1):
            features.append(vec)
        features.append(F.adaptive_avg_pool2d(fmap, 1).flatten(1))
        features.append(fmap.flatten(2).std(dim=2, unbiased=False))
        for p in (2, 4):
            if height >= p and width >= p:
                hp, wp = height // p, width // p
                fmap_p = fmap[:, :, : hp * p, : wp * p]
                mean = F.avg_pool2d(fmap_p, kernel_size=p, stride=p)
                patches = F.unfold(fmap_p, kernel_size=p, stride=p).view(bsz, channels, p * p, hp * wp)
                std = patches.std(dim=2, unbiased=False).view(bsz, channels, hp, wp)
                for vec in mean.permute(0, 2, 3, 1).reshape(bsz, hp * wp, channels).unbind(dim=1):
                    features.append(vec)
                for vec in std.permute(0, 2, 3, 1).reshape(bsz, hp * wp, channels).unbind(dim=1):
                    features.append(vec)
    return features


def loop_compute_v_from_dists(dist_pos, dist_neg, y_pos, y_neg, temperature):
    """``compute_V_from_dists`` with ``mask_self=True``, no weights, ``normalization="xy"``."""
    N = dist_pos.shape[0]
    N_pos = dist_pos.shape[1]
    dist_neg_local = dist_neg.clone()
    mask = torch.eye(N, device=dist_neg.device, dtype=dist_neg.dtype) * 1e6
    dist_neg_local[:, :N] = dist_neg_local[:, :N] + mask
    logit_pos = -dist_pos / temperature
    logit_neg = -dist_neg_local / temperature
    logit = torch.cat([logit_pos, logit_neg], dim=1)
    A_row = torch.softmax(logit, dim=1)
    A_col = torch.softmax(logit, dim=0)
    A = torch.sqrt(A_row * A_col)
    A_pos = A[:, :N_pos]
    A_neg = A[:, N_pos:]
    W_pos = A_pos * A_neg.sum(dim=1, keepdim=True)
    W_neg = A_neg * A_pos.sum(dim=1, keepdim=True)
    V = torch.mm(W_pos, y_pos) - torch.mm(W_neg, y_neg)
    return V, A_pos, A_neg


def loop_drifting_loss(x_gen, labels_gen, class_labels, x_pos, labels_pos, encoder, temperatures):
    """``compute_drifting_loss`` (no CFG negatives, kernel ``l2``): the mean of per-(class, vector) losses."""
    feat_gen_list = loop_feature_vectors(x_gen, encoder)
    feat_pos_list = loop_feature_vectors(x_pos, encoder)
    total_loss = torch.tensor(0.0, device=x_gen.device)
    Z_pos = Z_neg = 0.0
    n_terms = 0
    for class_id in class_labels.tolist():
        mask_gen = labels_gen == class_id
        mask_pos = labels_pos == class_id
        for feat_gen, feat_pos in zip(feat_gen_list, feat_pos_list):
            feat_gen_c = feat_gen[mask_gen]
            feat_pos_c = feat_pos[mask_pos]
            feat_neg = feat_gen_c
            dist_pos_raw = torch.cdist(feat_gen_c, feat_pos_c, p=2)
            dist_neg_raw = torch.cdist(feat_gen_c, feat_neg, p=2)
            c_j = float(feat_gen_c.shape[-1])
            with torch.no_grad():
                pos_sum = dist_pos_raw.sum()
                pos_count = dist_pos_raw.new_tensor(float(dist_pos_raw.numel()))
                neg_sum = dist_neg_raw.sum()
                neg_count = dist_neg_raw.new_tensor(float(dist_neg_raw.numel()))
                avg_dist = (pos_sum + neg_sum) / (pos_count + neg_count + 1e-12)
                s_j = (avg_dist / math.sqrt(c_j)).clamp_min(1e-6)
            feat_gen_n, feat_pos_n, feat_neg_n = feat_gen_c / s_j, feat_pos_c / s_j, feat_neg / s_j
            dist_pos, dist_neg = dist_pos_raw / s_j, dist_neg_raw / s_j
            scale = math.sqrt(c_j)
            v_total = torch.zeros_like(feat_gen_n)
            for tau in temperatures:
                v_tau, a_pos, a_neg = loop_compute_v_from_dists(
                    dist_pos, dist_neg, feat_pos_n, feat_neg_n, temperature=tau * scale
                )
                Z_pos += float(torch.mean(torch.sum(a_pos, dim=-1)).item())
                Z_neg += float(torch.mean(torch.sum(a_neg, dim=-1)).item())
                lambda_j = torch.sqrt(torch.mean(torch.sum(v_tau**2, dim=-1) / c_j) + 1e-8)
                v_total = v_total + v_tau / lambda_j
            target = (feat_gen_n + v_total).detach()
            total_loss = total_loss + F.mse_loss(feat_gen_n, target)
            n_terms += 1
    return total_loss / n_terms, n_terms


# ---- the benchmark ----------------------------------------------------------------------------------


def measure(
    device: str = "cpu", repeats: int = 3, classes: int = 10, n: int = 64, input_size: int = 64
) -> dict[str, Any]:
    """Median seconds per step of ``floor``, ``ours`` and ``loop`` (interleaved repeats) and the sizes."""
    dev = torch.device(device)
    torch.manual_seed(0)
    G = classes
    shape = (3, 32, 32)
    gen = DiTGenerator(shape, G, patch_size=4, dim=64, depth=2, heads=4, style_codebooks=8, codebook_size=16)
    for p in gen.head.parameters():  # a non-zero output head, so generated images differ from the start
        torch.nn.init.normal_(p, std=0.02)
    gen.to(dev)
    encoder = build_encoder("resnet18", random_init=True, input_size=input_size, device=dev)
    objective, objective_eager = (
        FeatureObjective(DriftConfig(space="feature", encoder="resnet18", compile=c, encoder_bf16=False), encoder)
        for c in (True, False)
    )
    labels = torch.arange(G, device=dev).repeat_interleave(n)
    inputs = gen.draw_inputs(labels, generator=torch.Generator(dev).manual_seed(1))
    pos = (torch.rand(G, n, *shape, generator=torch.Generator().manual_seed(2)) * 2 - 1).to(dev)

    def generate():
        gen.zero_grad(set_to_none=True)
        return gen(inputs.noise, inputs.labels, inputs.alpha, inputs.style)

    def ours(obj=objective):
        loss, info = obj(generate().view(G, n, *shape), pos, None, None, TAUS)
        loss.backward()
        return len(info["per_key"])

    def loop():
        loss, n_terms = loop_drifting_loss(
            generate(), labels, torch.arange(G, device=dev), pos.flatten(0, 1), labels, encoder, TAUS
        )
        loss.backward()
        return n_terms

    def floor():  # the work both share: generator and encoder forward, encoder and generator backward
        x = generate()
        maps = encoder(x)
        with torch.no_grad():
            encoder(pos.flatten(0, 1))
        (sum(m.mean() for m in maps.values()) + x.mean()).backward()
        return 0

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # Interleaved repeats, so that a shared machine's changing load hits all of them alike.
    fns = {"floor": floor, "ours": ours, "loop": loop}
    if dev.type == "cpu":
        fns["ours-eager"] = lambda: ours(objective_eager)
    times: dict[str, list[float]] = {k: [] for k in fns}
    out = {k: fn() for k, fn in fns.items()}  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[k].append(time.perf_counter() - t0)
    dims = {k: tuple(v.shape[1:]) for k, v in objective.feature_sets(pos[0, :2]).items()}
    return {
        "s_floor": statistics.median(times["floor"]),
        "s_ours": statistics.median(times["ours"]),
        "s_loop": statistics.median(times["loop"]),
        "s_ours_eager": statistics.median(times["ours-eager"]) if "ours-eager" in times else None,
        "times": times,
        "n_keys": out["ours"],
        "n_terms": out["loop"],
        "vectors_per_image": sum(s[0] for s in dims.values()),
        "classes": G,
        "n": n,
        "input_size": input_size,
        "device": device,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--n", type=int, default=64, help="generated and positive samples per class")
    ap.add_argument("--input-size", type=int, default=64, help="ResNet-18 input size (the reproduction: 64)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both run float32)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    r = measure(args.device, args.repeats, args.classes, args.n, args.input_size)
    t_floor, t_ours, t_loop = r["s_floor"], r["s_ours"], r["s_loop"]
    G, n = r["classes"], r["n"]
    print(
        f"{G} classes x {n} generated x {n} positives, 3x32x32, resnet18 @ {args.input_size} px, "
        f"{args.device} ({args.threads} threads), torch {torch.__version__}"
    )
    print(f"feature set: {r['n_keys']} keys, {r['vectors_per_image']} vectors per image")
    calls = r["n_terms"] * len(TAUS)
    print(f"loop: {r['n_terms']} (class, vector) terms, {calls} per-temperature field calls per step")
    print()
    print("| implementation | s / step (median) | vs loop |")
    print("|---|---:|---:|")
    print(f"| earlier reproduction's loop | {t_loop:.3f} | 1.0x |")
    print(f"| raydrift FeatureObjective | {t_ours:.3f} | {t_loop / t_ours:.1f}x |")
    if r["s_ours_eager"] is not None:
        t_eager = r["s_ours_eager"]
        print(f"| raydrift FeatureObjective, eager fields (compile off) | {t_eager:.3f} | {t_loop / t_eager:.1f}x |")
    print(f"| shared floor: generator + encoder fwd/bwd only | {t_floor:.3f} | {t_loop / t_floor:.1f}x |")
    print("per repeat (s):", {k: [round(t, 2) for t in v] for k, v in r["times"].items()})
    print()
    print(f"speed-up of one training step: {t_loop / t_ours:.1f}x (target >= 20x)")
    print(f"speed-up of the loss alone (step minus the shared floor): {(t_loop - t_floor) / (t_ours - t_floor):.1f}x")
    if r["s_ours_eager"] is not None:
        print(f"the loss alone, CPU kernels vs eager fields: {(r['s_ours_eager'] - t_floor) / (t_ours - t_floor):.2f}x")


if __name__ == "__main__":
    main()
