"""Loss-curve figure for a training history."""

from __future__ import annotations


def loss_curves(history, title: str = ""):
    """A matplotlib figure: train/val loss (and reconstruction parts) and val metric_loss per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h.epoch for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ep, [h.train_loss for h in history], label="train loss")
    ax1.plot(ep, [h.val_loss for h in history], label="validation loss")
    if any(h.train_recon_loss for h in history):
        ax1.plot(ep, [h.train_recon_loss for h in history], "--", label="train reconstruction")
        ax1.plot(ep, [h.val_recon_loss for h in history], "--", label="validation reconstruction")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("MSE (normalised features)")
    ax1.set_yscale("log")
    ax1.legend()
    ax2.plot(ep, [h.val_metric_loss_per_frame for h in history], color="C3")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation metric_loss per frame (cm)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
