"""The ablation report: curves (mean and spread over seeds), final metrics, and a verdict per claim."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from melodance.ablate.plan import CLAIMS


def _by_setting(results: dict) -> dict[str, dict[str, list[dict]]]:
    """ablation -> setting -> runs (one per seed)."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        for ablation, name in run["settings"]:
            out[ablation][name].append(run)
    return out


def _curve(runs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = min(len(r["history"]) for r in runs)
    a = np.array([[h[key] for h in r["history"][:n]] for r in runs])
    return np.arange(1, n + 1), a.mean(0), a.std(0)


def _mean(runs: list[dict], f) -> tuple[float, float]:
    v = np.array([f(r) for r in runs], dtype=float)
    return float(np.nanmean(v)), float(np.nanstd(v))


def _final(key):
    return lambda r: r["history"][-1][key]


def _auc(key):
    """Mean of a curve over epochs: lower = fell faster."""
    return lambda r: float(np.mean([h[key] for h in r["history"]]))


def _rises(key):
    """Epochs in which the curve went up: fewer = steadier."""
    return lambda r: int(np.sum(np.diff([h[key] for h in r["history"]]) > 0))


def compare(better: list[dict], worse: list[dict], f) -> tuple[str, float, float]:
    """Does ``better`` score lower than ``worse`` under ``f`` (lower is better)?

    HELD when its mean is lower by more than the larger spread over seeds (and by
    more than 0.5 %), CONTRADICTED when higher by as much, else INCONCLUSIVE.
    Returns (outcome, mean of better, mean of worse).
    """
    (mb, sb), (mw, sw) = _mean(better, f), _mean(worse, f)
    margin = max(sb, sw, 0.005 * abs(mw))
    if mb < mw - margin:
        return "HELD", mb, mw
    if mb > mw + margin:
        return "CONTRADICTED", mb, mw
    return "INCONCLUSIVE", mb, mw


def _all(outcomes: list[str]) -> str:
    if all(o == "HELD" for o in outcomes):
        return "HELD"
    if any(o == "CONTRADICTED" for o in outcomes):
        return "CONTRADICTED"
    return "INCONCLUSIVE"


def verdicts(results: dict) -> dict[str, str]:
    """One line per claim: HELD, CONTRADICTED or INCONCLUSIVE (differences within the
    spread over seeds), with the numbers (means over seeds)."""
    s = _by_setting(results)
    out = {}
    m = "val_metric_loss_per_frame"
    if "normalization" in s:
        n = s["normalization"]
        o1, pf, pd = compare(n["per_feature"], n["per_dim"], _auc(m))
        o2, _, zs = compare(n["per_feature"], n["zscore"], _auc(m))
        rf, rd = (_mean(n[k], _rises(m))[0] for k in ("per_feature", "per_dim"))
        out["normalization"] = (
            f"{_all([o1, o2])}: mean validation metric_loss over epochs per_feature {pf:.2f} cm "
            f"vs per_dim {pd:.2f} cm ({o1}; rises {rf:.1f} vs {rd:.1f} epochs); "
            f"min-max vs z-score {pf:.2f} vs {zs:.2f} cm ({o2})")
    if "windows" in s:
        w = s["windows"]
        ov, no = (_mean(w[k], _final("train_loss"))[0] for k in ("overlap", "no_overlap"))
        o = "HELD" if no > 1.2 * ov else ("CONTRADICTED" if no < ov else "INCONCLUSIVE")
        out["windows"] = (f"{o}: final training loss with overlap {ov:.4f}, without {no:.4f} "
                          "(the claim needs the no-overlap model to fit clearly worse: > 1.2x)")
    if "temporal_normalize" in s:
        t = s["temporal_normalize"]
        o, on, off = compare(t["on"], t["off"], _final(m))
        out["temporal_normalize"] = (
            f"{o}: final validation metric_loss with normalised temporal indexes {on:.2f} cm, "
            f"with raw counters {off:.2f} cm")
    if "variant" in s:
        v = s["variant"]
        parts = []
        for k in sorted(v):
            tr = _mean(v[k], _final("train_loss"))[0]
            va = _mean(v[k], _final(m))[0]
            best = _mean(v[k], lambda r: min(h[m] for h in r["history"]))[0]
            parts.append(f"{k}: train loss {tr:.4f}, val metric_loss {va:.2f} cm (best {best:.2f})")
        names = sorted(v)
        outcome = "INCONCLUSIVE"
        if len(names) == 4:
            a, b, c, d = names
            outcome = _all([compare(v[d], v[a], _final(m))[0], compare(v[d], v[b], _final(m))[0],
                            compare(v[c], v[a], _auc(m))[0]])
        out["variant"] = (f"{outcome} (d ends below a and b on validation, c falls faster than a): "
                          + "; ".join(parts))
    return out


def write_report(results: dict, out_dir: Path) -> Path:
    """``out_dir/README.md`` plus one PNG of curves per ablation; returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from melodance import io

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    s = _by_setting(results)
    v = verdicts(results)
    b = results["budget_settings"]
    lines = [
        f"# Ablations of the seed's claims ({results['budget']} budget)", "",
        f"Seeds {list(b['seeds'])}, {b['epochs']} epochs, window {b['window']} frames, overlap stride "
        f"{b['stride']}, batch {b['batch_size']}, hidden {b['hidden_size']}. Validation metrics on "
        "whole validation sequences generated from their music. Curves: mean over seeds, band = one "
        "standard deviation. MLflow: parent run `ablate-" + results["budget"] + "`, one nested run per "
        "(setting, seed), tagged `melodance.ablation.<name>`.", "",
        "Produced by `melodance ablate --budget " + results["budget"] + "`.", "",
    ]
    for ablation, by_name in s.items():
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for name, runs in by_name.items():
            for ax, key in zip(axes, ("train_loss", "val_loss", "val_metric_loss_per_frame"),
                               strict=True):
                x, mu, sd = _curve(runs, key)
                ax.plot(x, mu, label=name)
                ax.fill_between(x, mu - sd, mu + sd, alpha=0.2)
                ax.set_xlabel("epoch")
                ax.set_title(key)
        axes[0].set_yscale("log")
        axes[1].set_yscale("log")
        axes[2].set_ylabel("cm per frame")
        axes[0].legend()
        fig.suptitle(f"{ablation}")
        fig.tight_layout()
        png = out_dir / f"{ablation}.png"
        with io.atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=90)
        plt.close(fig)
        lines += [f"## {ablation}", "", f"Claim ({CLAIMS.get(ablation, '')}):", "",
                  f"**{v.get(ablation, 'no verdict')}**", "", f"![{ablation}]({ablation}.png)", "",
                  "| setting | final train loss | final val loss | val metric_loss (cm/frame) | "
                  "BAS music (not informative on this data*) | FID_k |", "|---|---|---|---|---|---|"]
        for name, runs in by_name.items():
            def cell(f, fmt=".4f", runs=runs):
                mu, sd = _mean(runs, f)
                return f"{mu:{fmt}} ± {sd:{fmt}}"
            lines.append(
                f"| {name} | {cell(_final('train_loss'))} | {cell(_final('val_loss'))} | "
                f"{cell(lambda r: r['scores']['metric_loss_per_frame'], '.2f')} | "
                f"{cell(lambda r: r['scores']['bas_music'], '.3f')} | "
                f"{cell(lambda r: r['scores']['fid_k'], '.1f')} |")
        lines += ["", "*On the real data beat alignment does not tell a dance under its own song "
                  "from the same dance under another song: see docs/metrics-validity.md.", ""]
    md = out_dir / "README.md"
    io.write_text(md, "\n".join(lines) + "\n")
    return md
