"""LSTM models of "Dance with Melody" (Tang, Jia, Mao, ACM MM 2018), seed section 2.

Shapes: batch B, frames T (25 fps), music dims Dm, temporal dims 3, motion dims Dmo.

The beat mask (variants c and d)
--------------------------------
Frame-level acoustic features jitter from one 40 ms frame to the next; a
network that reacts to every jitter produces motion that jumps within a
beat. The mask hides that jitter: inside each beat (the frames from one beat
flag up to the next) the acoustic features are replaced by their mean over the
beat, so the music input only changes at beat boundaries. What happens
*within* a beat is left to the temporal indexes (phase in the beat, frame
index) and the LSTM state, which change smoothly, so the generated motion is
continuous within a beat. The beat boundaries come from the song's beats, the
same ones the temporal indexes use, so training and generation agree.
"""

from __future__ import annotations

import torch
from torch import nn

from melodance.features.temporal import BEAT_FLAG
from melodance.models.config import ModelConfig


def beat_mask(music: torch.Tensor, beat_flag: torch.Tensor) -> torch.Tensor:
    """Replace each frame's music features by their mean over its beat.

    music: [B, T, Dm]; beat_flag: [B, T], > 0.5 on beat frames.
    Returns [B, T, Dm]. Frames before the first beat form one segment.
    """
    B, T, D = music.shape
    seg = torch.cumsum((beat_flag > 0.5).long(), dim=1)              # [B, T] beat index per frame
    sums = torch.zeros(B, T + 1, D, dtype=music.dtype, device=music.device)
    sums.scatter_add_(1, seg.unsqueeze(-1).expand(B, T, D), music)
    counts = torch.zeros(B, T + 1, 1, dtype=music.dtype, device=music.device)
    counts.scatter_add_(1, seg.unsqueeze(-1), torch.ones(B, T, 1, dtype=music.dtype,
                                                          device=music.device))
    means = sums / counts.clamp_min(1.0)
    return torch.gather(means, 1, seg.unsqueeze(-1).expand(B, T, D))


def mlp(d_in: int, d_hidden: int, d_out: int, slope: float, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.LeakyReLU(slope), nn.Dropout(dropout),
        nn.Linear(d_hidden, d_out),
    )


def lstm(d_in: int, hidden: int, layers: int, dropout: float) -> nn.LSTM:
    m = nn.LSTM(d_in, hidden, num_layers=layers, batch_first=True,
                dropout=dropout if layers > 1 else 0.0)
    # Seed: orthogonal initialisation of the LSTM weights; forget-gate bias 1
    # so early training keeps state (a common companion of orthogonal init).
    for name, p in m.named_parameters():
        if name.startswith("weight"):
            for gate in p.data.chunk(4, dim=0):
                nn.init.orthogonal_(gate)
        elif name.startswith("bias"):
            nn.init.zeros_(p.data)
            p.data[hidden:2 * hidden] = 0.5  # two biases (ih, hh) sum to a forget bias of 1
    return m


State = tuple[torch.Tensor, torch.Tensor]


class DanceModel(nn.Module):
    """Music (+ temporal indexes) -> motion, one of the four seed variants.

    ``forward`` returns a dict with ``motion`` [B, T, Dmo] and, for the
    autoencoder, ``recon`` [B, T, Dm] (reconstruction of the masked music
    input) and ``target_recon`` (what ``recon`` should equal).
    """

    def __init__(self, cfg: ModelConfig, music_dim: int, temporal_dim: int, motion_dim: int):
        super().__init__()
        self.cfg = cfg
        self.music_dim, self.temporal_dim, self.motion_dim = music_dim, temporal_dim, motion_dim
        d_in = music_dim + (temporal_dim if cfg.uses_temporal else 0)
        h, L, p = cfg.hidden_size, cfg.layers, cfg.dropout
        if cfg.variant == "lstm_autoencoder":
            self.encoder = lstm(d_in, h, L, p)
            self.to_code = nn.Linear(h, cfg.code_size)
            self.recon_decoder = lstm(cfg.code_size, h, 1, 0.0)
            self.recon_head = nn.Linear(h, music_dim)
            self.motion_decoder = lstm(cfg.code_size, h, L, p)
        else:
            self.motion_decoder = lstm(d_in, h, L, p)
        self.motion_head = mlp(h, cfg.mlp_hidden, motion_dim, cfg.leaky_slope, p)

    def prepare(self, music: torch.Tensor, temporal: torch.Tensor | None) -> tuple:
        """Apply the beat mask and join the temporal indexes.

        Returns ``(x, masked_music)``: the network input [B, T, Din] and the
        (masked) music the autoencoder reconstructs [B, T, Dm]. The mask needs
        whole beats, so it is applied to whole sequences, before any chunking.
        """
        if (self.cfg.uses_mask or self.cfg.uses_temporal) and temporal is None:
            raise ValueError(f"variant {self.cfg.variant} needs temporal indexes (beat flags)")
        if self.cfg.uses_mask:
            music = beat_mask(music, temporal[..., BEAT_FLAG])
        x = torch.cat([music, temporal], dim=-1) if self.cfg.uses_temporal else music
        return x, music

    def step(self, x: torch.Tensor, state: dict[str, State] | None = None,
             with_recon: bool = True) -> dict:
        """Run the recurrent layers on prepared input x [B, T, Din], carrying ``state``."""
        state = state or {}
        out: dict = {"state": {}}
        if self.cfg.variant == "lstm_autoencoder":
            enc, out["state"]["encoder"] = self.encoder(x, state.get("encoder"))
            x = self.to_code(enc)
            out["code"] = x
            if with_recon:
                rec, _ = self.recon_decoder(x)
                out["recon"] = self.recon_head(rec)
        dec, out["state"]["motion"] = self.motion_decoder(x, state.get("motion"))
        out["motion"] = self.motion_head(dec)
        return out

    def forward(self, music: torch.Tensor, temporal: torch.Tensor | None = None) -> dict:
        """music: [B, T, Dm]; temporal: [B, T, 3] or None (variant a)."""
        x, masked_music = self.prepare(music, temporal)
        out = self.step(x)
        if "recon" in out:
            out["target_recon"] = masked_music
        return out

    @torch.no_grad()
    def generate(self, music: torch.Tensor, temporal: torch.Tensor | None = None,
                 chunk_frames: int = 2000) -> torch.Tensor:
        """Motion for a whole song of any length: [T, Dm] (+ [T, 3]) -> [T, Dmo].

        The recurrent state runs through the whole song (chunks only bound
        memory), so there are no seams between windows.
        """
        was_training = self.training
        self.eval()
        # One sequence (batch 1) is a chain of tiny matrix products: extra threads
        # only add synchronisation, which under load costs 10-100x.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            x, _ = self.prepare(music.unsqueeze(0),
                                temporal.unsqueeze(0) if temporal is not None else None)
            outs, state = [], None
            for s in range(0, x.shape[1], chunk_frames):
                o = self.step(x[:, s:s + chunk_frames], state, with_recon=False)
                outs.append(o["motion"])
                state = o["state"]
        finally:
            torch.set_num_threads(threads)
            self.train(was_training)
        return torch.cat(outs, dim=1)[0]


def build_model(cfg: ModelConfig, music_dim: int, temporal_dim: int, motion_dim: int,
                seed: int | None = None) -> DanceModel:
    """The model selected by ``cfg.variant``; seeded weights when ``seed`` is given."""
    if seed is not None:
        torch.manual_seed(seed)
    return DanceModel(cfg, music_dim, temporal_dim, motion_dim)
