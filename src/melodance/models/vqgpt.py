"""A generative dance family: motion tokens (VQ-VAE) and a music-conditioned GPT over them.

After Bailando (Li et al., CVPR 2022): a VQ-VAE turns motion into a sequence of
discrete "dance moves" (one token per ``down`` frames), and a small causal
transformer samples the next move from the moves so far and the music. Each
sample is a different dance; the same seed gives the same dance.

Shapes: frames T (25 fps), tokens N = T / down, motion dims Dmo (72, see
features.motion), condition dims Dc (music + temporal indexes, 19).

Why it does not jitter or stand still
-------------------------------------
- Regressing motion from music averages the many dances a song allows into
  the mean pose. Sampling tokens keeps one of them.
- The decoder upsamples with nearest-neighbour repeats followed by
  convolutions, so every frame is a smooth blend of neighbouring tokens; its
  loss also matches joint velocity and acceleration and the rigid bones'
  lengths (in cm), which the plain reconstruction loss leaves loose.

Long songs without seams
------------------------
The transformer uses rotary (relative) positions and is trained on windows
cut anywhere in a sequence, its first input being the real preceding token.
Generation slides a window of ``context`` tokens forward one token at a time,
so the 1000th token is sampled exactly like the 10th. The decoder is a stack
of local convolutions run over the whole token sequence at once, so no frame
is ever stitched.

Saved as plain tensors and plain dicts (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from melodance.errors import InputError, MissingInput

FORMAT = "melodance-vqgpt-1"


@dataclass
class VQGPTConfig:
    """Sizes and training budget. Times in seconds, lengths in frames unless named."""

    down: int = 4                 # frames per token (x4 temporal downsampling)
    codes: int = 512              # codebook size (of each group)
    code_dim: int = 64            # token vector size (all groups together)
    code_groups: int = 1          # tokens per step, each from its own codebook (Bailando: 2, upper/lower)
    # Residual quantisers per step (RVQ, as in SoundStream and MoMask): level l codes what the
    # levels before it left of the token vector, so a step carries code_levels x log2(codes)
    # bits while level 0 alone still says the move. The GPT draws a step's levels in order,
    # each given the ones before it. Not together with code_groups > 1.
    code_levels: int = 1
    canonical: bool = True        # tokens see the pose facing one way, the turning as a rate (see below)
    vq_width: int = 192           # conv channels of the VQ-VAE
    vq_window: int = 64           # frames per VQ-VAE training window
    vel_weight: float = 1.0       # decoder loss on frame-to-frame differences
    acc_weight: float = 1.0       # ... on second differences
    # ... on the rigid bones' lengths and the limb spans (normalised by the data's spread):
    # 0.75 keeps the bones' share of 0.5 from before the spans (8 of 12 lengths); 1.5 was worse
    bone_weight: float = 0.75
    # Weight of the turn-per-frame channel (canonical only) against each pose channel in the
    # decoder's position loss. Turning carries much of a ballroom dancer's body-centred
    # speed (arms swing round with the body); at weight 1 the decoder smoothed the fast
    # turns away (docs/models.md, "Turning").
    turn_weight: float = 10.0
    gpt_dim: int = 192
    gpt_depth: int = 4
    gpt_heads: int = 4
    context: int = 32             # tokens each attention layer sees (32 x 4 frames = 5.1 s)
    music_lookahead: int = 2      # tokens of music after the current one the model may hear
    dropout: float = 0.1
    # Each training song is tokenised from this many first frames (0 .. token_shifts - 1, at
    # most `down`): token sequences that differ while the dance is the same, so the GPT
    # learns the dance rather than one tokenisation of 26 songs.
    token_shifts: int = 4
    # The GPT also learns each training song played slower or faster by these duration
    # factors (music, beats and dance stretched together; 1.1: 10 % slower): the same
    # dance at another tempo, so it sees that denser beats go with faster motion.
    tempo_factors: list = field(default_factory=lambda: [0.9, 1.0, 1.1])
    batch: int = 32
    lr: float = 3e-4
    # The kept run on the real data (docs/models.md, vqgpt-best) stopped on time budgets
    # after about 1900 VQ-VAE steps and 360 GPT steps (best validation loss at 350, still
    # falling); these defaults round that up, and the GPT kept is the best-validation one.
    # Step counts keep a run reproducible on any machine; the time budgets are a safety net.
    vq_steps: int = 2000
    gpt_steps: int = 600
    vq_budget_s: float = 1800.0
    gpt_budget_s: float = 1800.0
    temperature: float = 1.0      # sampling temperature of the next token
    top_k: int = 0                # 0: sample from all codes
    seed: int = 0
    rigid_bones: list = field(default_factory=lambda: [[3, 4], [4, 5], [12, 13], [13, 14],
                                                       [7, 8], [8, 9], [16, 17], [17, 18]])
    # Joint pairs across a bent joint (shoulder-wrist, hip-ankle, both sides) whose distance
    # the decoder's loss matches with the bones': rigid bones alone let it shorten the arms'
    # reach (bent elbows) and the legs' bends, which made most of KID_g (docs/models.md,
    # "Limb spans").
    limb_spans: list = field(default_factory=lambda: [[3, 5], [12, 14], [7, 9], [16, 18]])


def tokens_per_step(cfg: VQGPTConfig) -> int:
    """Tokens the VQ-VAE gives each step (``down`` frames): code groups or residual levels."""
    return cfg.code_groups * cfg.code_levels


N_JOINTS = 23
"""Joints of the motion features (features.motion: x, y, z of 23 joints, coordinate-major)."""
HEADING_JOINTS = ((7, 16), (3, 12))
"""(side a, side b) joint pairs whose horizontal directions give the body's heading: hips and
shoulders (data.skeleton)."""


def saved_config(d: dict) -> VQGPTConfig:
    """The VQGPTConfig a saved model holds. Models saved before ``canonical`` existed
    modelled world-axis motion: a saved config without the key means False; before
    ``limb_spans``, none."""
    names = {f.name for f in fields(VQGPTConfig)}
    return VQGPTConfig(**{"canonical": False, "limb_spans": [],
                          **{k: v for k, v in d.items() if k in names}})


def heading(motion: torch.Tensor) -> torch.Tensor:
    """Motion features [..., T, 72+] -> the body's heading [..., T], radians about the vertical
    (y) axis: the direction of side a -> side b of hips plus shoulders in the floor plane."""
    x, z = motion[..., :N_JOINTS], motion[..., 2 * N_JOINTS:3 * N_JOINTS]
    sx = sum(x[..., b] - x[..., a] for a, b in HEADING_JOINTS)
    sz = sum(z[..., b] - z[..., a] for a, b in HEADING_JOINTS)
    return torch.atan2(sz, sx)


def _turn(x: torch.Tensor, z: torch.Tensor, angle: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate floor-plane coordinates (x, z) by ``-angle`` about the vertical axis."""
    c, s = angle.cos(), angle.sin()
    return c * x + s * z, c * z - s * x


def to_canonical(motion: torch.Tensor) -> torch.Tensor:
    """Motion features [T, 72] -> [T, 73]: joints and root velocity turned so that the body
    faces one way in every frame, joint heights above the floor (root height + the joint's
    height above the root), root height, and the turn since the previous frame (radians,
    0 at frame 0).

    Ballroom dancers turn all the time; in world axes the same figure is a different
    vector at every heading, and a convolutional VQ-VAE spends its codes (and 12 cm of
    reconstruction error on the real data) on headings. Facing one way, a code is a pose.
    Heights above the floor, not above the root: an error in the decoded root height then
    moves no joint (a root height decoded apart from the pose made the whole body bob,
    4-5x the real vertical kinetic energy of the trunk).
    """
    n = N_JOINTS
    theta = heading(motion)
    x, z = _turn(motion[:, :n], motion[:, 2 * n:3 * n], theta[:, None])
    vx, vz = _turn(motion[:, 3 * n], motion[:, 3 * n + 1], theta)
    height = motion[:, 3 * n + 2:3 * n + 3]
    turn = torch.remainder(torch.diff(theta, prepend=theta[:1]) + math.pi, 2 * math.pi) - math.pi
    return torch.cat([x, motion[:, n:2 * n] + height, z, vx[:, None], vz[:, None], height,
                      turn[:, None]], dim=1)


def from_canonical(rep: torch.Tensor, start_heading: float = 0.0) -> torch.Tensor:
    """Inverse of :func:`to_canonical`: [T, 73] -> motion features [T, 72], the heading
    integrated from ``start_heading`` (radians) at frame 0."""
    n = N_JOINTS
    theta = start_heading + torch.cumsum(rep[:, -1].double(), 0).to(rep.dtype) - rep[0, -1]
    x, z = _turn(rep[:, :n], rep[:, 2 * n:3 * n], -theta[:, None])
    vx, vz = _turn(rep[:, 3 * n], rep[:, 3 * n + 1], -theta)
    height = rep[:, 3 * n + 2:3 * n + 3]
    return torch.cat([x, rep[:, n:2 * n] - height, z, vx[:, None], vz[:, None], height], dim=1)


def _res_block(ch: int, dilation: int) -> nn.Module:
    return _Residual(nn.Sequential(
        nn.ReLU(), nn.Conv1d(ch, ch, 3, padding=dilation, dilation=dilation),
        nn.ReLU(), nn.Conv1d(ch, ch, 1)))


class _Residual(nn.Module):
    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class MotionVQVAE(nn.Module):
    """Normalised motion [B, T, Dmo] <-> tokens [B, T / down]."""

    def __init__(self, cfg: VQGPTConfig, motion_dim: int):
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ, VectorQuantize

        w, n_down = cfg.vq_width, int(round(math.log2(cfg.down)))
        if 2 ** n_down != cfg.down:
            raise InputError(f"down must be a power of 2, got {cfg.down}")
        enc = [nn.Conv1d(motion_dim, w, 3, padding=1)]
        for _ in range(n_down):
            enc += [nn.ReLU(), nn.Conv1d(w, w, 4, stride=2, padding=1), _res_block(w, 1), _res_block(w, 3)]
        enc += [nn.ReLU(), nn.Conv1d(w, cfg.code_dim, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)
        # EMA codebook, k-means initialised, dead codes replaced by batch vectors:
        # the usual cures for a codebook where a few codes do all the work. A batch
        # holds about as many tokens as there are codes (1 use per code on average),
        # so "dead" must mean well under 1: at 2 every code is reset every step and
        # the codebook is just the last batch (no bottleneck while training).
        # Groups: the token vector is cut into `code_groups` parts, each quantised by its
        # own codebook, so a step carries code_groups x log2(codes) bits (one codebook of
        # 512 codes every 4 frames left 12 cm of reconstruction error on the real data).
        g, levels = cfg.code_groups, cfg.code_levels
        if g < 1 or cfg.code_dim % g:
            raise InputError(f"code_groups must divide code_dim ({cfg.code_dim}), got {g}")
        if levels < 1 or (levels > 1 and g > 1):
            raise InputError(f"code_levels must be at least 1, and 1 when code_groups > 1; "
                             f"got code_levels {levels}, code_groups {g}")
        self.groups, self.residual = g * levels, levels > 1
        vq_args = dict(codebook_size=cfg.codes, decay=0.99, kmeans_init=True, kmeans_iters=10,
                       threshold_ema_dead_code=0.2, commitment_weight=0.25)
        if self.residual:
            self.vq = ResidualVQ(dim=cfg.code_dim, num_quantizers=levels, **vq_args)
        else:
            self.vq = VectorQuantize(dim=cfg.code_dim, heads=g, codebook_dim=cfg.code_dim // g,
                                     separate_codebook_per_head=g > 1, **vq_args)
        dec = [nn.Conv1d(cfg.code_dim, w, 3, padding=1), _res_block(w, 3), _res_block(w, 1)]
        for _ in range(n_down):
            # Nearest repeat + conv, not a transposed conv: no checkerboard jitter.
            dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(w, w, 3, padding=1),
                    _res_block(w, 3), _res_block(w, 1)]
        dec += [nn.ReLU(), nn.Conv1d(w, motion_dim, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, D] -> (quantised [B, N, C], tokens [B, N, groups or levels], commitment loss)."""
        z = self.encoder(x.transpose(1, 2)).transpose(1, 2)
        q, idx, commit = self.vq(z)
        return q, (idx if idx.ndim == 3 else idx.unsqueeze(-1)), commit.sum()

    def decode_codes(self, q: torch.Tensor) -> torch.Tensor:
        """[B, N, C] -> [B, N * down, D]."""
        return self.decoder(q.transpose(1, 2)).transpose(1, 2)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B, N, groups or levels] (or [B, N] with one) -> [B, N * down, D]."""
        if self.residual:
            return self.decode_codes(self.vq.get_output_from_indices(tokens))
        if tokens.ndim == 3 and self.groups == 1:
            tokens = tokens[..., 0]
        return self.decode_codes(self.vq.get_codes_from_indices(tokens))


def rope_table(pos: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position angles for token positions pos [n]: (cos, sin), each [n, head_dim / 2].

    Attention scores then depend only on the distance between tokens, so a window
    that slides along a song sees the same thing wherever it is. Angles in float64:
    positions run to thousands of tokens on long songs.
    """
    # float64 where the device has it (MPS has not): positions run to thousands of tokens.
    dt = torch.float64 if pos.device.type != "mps" else torch.float32
    freqs = 10000.0 ** (-torch.arange(0, head_dim, 2, dtype=dt, device=pos.device) / head_dim)
    ang = pos.to(dt)[:, None] * freqs
    return ang.cos().float(), ang.sin().float()


def _rotate(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate pairs of channels of x [B, h, n, hd] by the angles of ``rope_table``."""
    cos, sin = rope
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class Block(nn.Module):
    """Pre-norm transformer block whose attention sees the last ``window`` tokens only."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))

    def attend(self, x: torch.Tensor, rope: tuple, mask: torch.Tensor | None,
               cache: dict | None, window: int) -> torch.Tensor:
        B, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, rope), _rotate(k, rope)
        if cache is not None:  # one new token: keep the last `window` keys and values
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k[:, :, -window:], v[:, :, -window:]
            k, v = cache["k"], cache["v"]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, n, d))

    def forward(self, x, rope, mask=None, cache=None, window=0):
        x = x + self.attend(x, rope, mask, cache, window)
        return x + self.mlp(self.ln2(x))


class MusicGPT(nn.Module):
    """Next-token logits from the previous tokens and the music around each token.

    Sliding-window attention (each token attends to itself and the ``context - 1``
    tokens before it, in every layer), trained on windows of ``2 * context`` tokens:
    generation with a rolling key/value cache of ``context`` tokens then computes
    exactly what training computed, at any distance into a song.
    """

    def __init__(self, cfg: VQGPTConfig, cond_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cfg.gpt_dim
        self.groups = g = tokens_per_step(cfg)
        # One table for all groups (+ 1 code each: start of song); a step's input is the sum
        # of its groups' embeddings, and the head gives logits for every group.
        # Residual levels are chained: level l's logits also see this step's tokens of the
        # levels before it (teacher-forced in training, drawn first in generation), through
        # a small MLP added to the hidden state, since a fine level's code means something
        # only beside the coarse one it refines.
        self.chained = cfg.code_levels > 1
        if self.chained:
            self.cur = nn.Embedding(g * cfg.codes, d)
            self.level_mlp = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
                                           for _ in range(g - 1))
        self.tok = nn.Embedding(g * (cfg.codes + 1), d)
        self.register_buffer("tok_offset", torch.arange(g) * (cfg.codes + 1), persistent=False)
        # Music per token: the `down` frames of conditions flattened, then a
        # convolution that hears `music_lookahead` tokens ahead (dancers
        # anticipate) and as many behind. No padding inside: callers pass the
        # margin (pad_cond), so a training window and a whole song see the same.
        k = 2 * cfg.music_lookahead + 1
        self.music = nn.Sequential(nn.Linear(cond_dim * cfg.down, d), nn.GELU())
        self.music_conv = nn.Conv1d(d, d, k)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, cfg.gpt_heads, cfg.dropout) for _ in range(cfg.gpt_depth))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, g * cfg.codes)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens [..., groups] -> summed embeddings [..., d]."""
        return self.tok(tokens + self.tok_offset).sum(-2)

    def logits(self, x: torch.Tensor, current: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [..., d] -> logits [..., groups, codes].

        Chained levels: logits [..., k, codes] of the first k = 1 + current.shape[-1] levels,
        given this step's tokens ``current`` [..., k - 1] of the levels before (None: level 0).
        """
        h, codes = self.ln(x), self.cfg.codes
        if not self.chained:
            return self.head(h).unflatten(-1, (self.groups, codes))
        w, b = self.head.weight.view(self.groups, codes, -1), self.head.bias.view(self.groups, codes)
        out, below = [F.linear(h, w[0], b[0])], 0
        for lv in range(1, 1 + (0 if current is None else current.shape[-1])):
            below = below + self.cur(current[..., lv - 1] + (lv - 1) * codes)
            out.append(F.linear(h + self.level_mlp[lv - 1](h + below), w[lv], b[lv]))
        return torch.stack(out, dim=-2)

    def pad_cond(self, cond: torch.Tensor) -> torch.Tensor:
        """Normalised conditions [B, T, Dc] -> with ``music_lookahead`` tokens of zeros each side."""
        m = self.cfg.music_lookahead * self.cfg.down
        return F.pad(cond, (0, 0, m, m))

    def music_embedding(self, cond: torch.Tensor) -> torch.Tensor:
        """Padded conditions [B, (N + 2 lookahead) * down, Dc] -> [B, N, d]."""
        B, T, Dc = cond.shape
        m = self.music(cond.reshape(B, T // self.cfg.down, self.cfg.down * Dc))
        la = self.cfg.music_lookahead
        return m[:, la:m.shape[1] - la] + F.gelu(self.music_conv(m.transpose(1, 2))).transpose(1, 2)

    def forward(self, prev_tokens: torch.Tensor, music: torch.Tensor,
                target: torch.Tensor | None = None) -> torch.Tensor:
        """prev_tokens [B, n, groups] (tokens before each position; [B, n] with one group),
        music [B, n, d] -> logits [B, n, groups, codes]. Chained levels need ``target``
        [B, n, levels], the tokens at each position (the later levels see the earlier ones)."""
        if prev_tokens.ndim == 2:
            prev_tokens = prev_tokens.unsqueeze(-1)
        n = prev_tokens.shape[1]
        pos = torch.arange(n, device=prev_tokens.device)
        i, j = pos[:, None], pos[None, :]
        mask = (j <= i) & (i - j < self.cfg.context)
        x = self.drop(self.embed(prev_tokens) + music)
        rope = rope_table(pos, self.cfg.gpt_dim // self.cfg.gpt_heads)
        for blk in self.blocks:
            x = blk(x, rope, mask)
        if not self.chained:
            return self.logits(x)
        if target is None:
            raise ValueError("chained code levels: forward needs the target tokens")
        return self.logits(x, (target if target.ndim == 3 else target.unsqueeze(-1))[..., :-1])

    def hidden_step(self, prev_token: torch.Tensor, music: torch.Tensor, pos: int,
                    caches: list[dict], rope: tuple | None = None) -> torch.Tensor:
        """One position with the rolling cache: prev_token [groups], music [d] -> the last
        block's output [1, 1, d] (``logits`` turns it into logits).

        ``rope``: this position's rows of a precomputed ``rope_table`` (saves recomputing it).
        """
        x = (self.embed(prev_token.view(self.groups)) + music).view(1, 1, -1)
        if rope is None:
            rope = rope_table(torch.tensor([pos]), self.cfg.gpt_dim // self.cfg.gpt_heads)
        for blk, cache in zip(self.blocks, caches, strict=True):
            x = blk(x, rope, None, cache, self.cfg.context)
        return x

    def step(self, prev_token: torch.Tensor, music: torch.Tensor, pos: int,
             caches: list[dict], rope: tuple | None = None) -> torch.Tensor:
        """``hidden_step``'s logits [groups, codes] (chained levels: level 0's only)."""
        return self.logits(self.hidden_step(prev_token, music, pos, caches, rope))[0, 0]


class VQGPTDancer(nn.Module):
    """The whole family: normalisation statistics, VQ-VAE and GPT in one module."""

    def __init__(self, cfg: VQGPTConfig, cond_dim: int, motion_dim: int):
        super().__init__()
        self.cfg, self.cond_dim, self.motion_dim = cfg, cond_dim, motion_dim
        self.rep_dim = rep_dim = motion_dim + 1 if cfg.canonical else motion_dim  # + 1: the turn per frame
        self.vqvae = MotionVQVAE(cfg, rep_dim)
        self.gpt = MusicGPT(cfg, cond_dim)
        # Per-dimension standardisation fitted on the training motion (in the tokens'
        # representation) and conditions.
        for name, dim in (("motion_mean", rep_dim), ("motion_std", rep_dim),
                          ("cond_mean", cond_dim), ("cond_std", cond_dim)):
            self.register_buffer(name, torch.zeros(dim) if "mean" in name else torch.ones(dim))
        n_lengths = len(cfg.rigid_bones) + len(cfg.limb_spans)
        self.register_buffer("bone_mean", torch.ones(n_lengths))  # cm
        self.register_buffer("bone_std", torch.ones(n_lengths))
        # Per-channel weights of the position loss (training only, not saved), mean 1.
        w = torch.ones(rep_dim)
        if cfg.canonical:
            w[-1] = cfg.turn_weight
        self.register_buffer("rec_weight", w / w.mean(), persistent=False)

    # -- representation ----------------------------------------------------------------------
    def to_rep(self, motion_raw: torch.Tensor) -> torch.Tensor:
        """Raw motion features [T, 72] -> what the VQ-VAE models ([T, 73] when canonical)."""
        return to_canonical(motion_raw) if self.cfg.canonical else motion_raw

    def from_rep(self, rep: torch.Tensor, start_heading: float = 0.0) -> torch.Tensor:
        return from_canonical(rep, start_heading) if self.cfg.canonical else rep

    def norm_motion(self, m: torch.Tensor) -> torch.Tensor:
        return (m - self.motion_mean) / self.motion_std

    def denorm_motion(self, m: torch.Tensor) -> torch.Tensor:
        return m * self.motion_std + self.motion_mean

    def norm_cond(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.cond_mean) / self.cond_std

    def bone_lengths(self, motion_raw: torch.Tensor) -> torch.Tensor:
        """Raw motion features or their representation [..., 72+] (joints coordinate-major, cm)
        -> lengths of the rigid bones, then of the limb spans [..., n] (a turn about the
        vertical keeps them)."""
        j = motion_raw[..., :3 * N_JOINTS].unflatten(-1, (3, N_JOINTS)).transpose(-1, -2)  # [..., 23, 3]
        b = torch.tensor(self.cfg.rigid_bones + self.cfg.limb_spans, device=motion_raw.device)
        return (j[..., b[:, 0], :] - j[..., b[:, 1], :]).norm(dim=-1)

    # -- losses ------------------------------------------------------------------------------
    def position_loss(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Decoded vs real normalised motion [..., D]: smooth L1 per channel, the turn channel
        weighted ``turn_weight`` times a pose channel."""
        return (F.smooth_l1_loss(y, x, reduction="none") * self.rec_weight).mean()

    def vq_loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Normalised motion window [B, T, D] -> (loss, parts)."""
        q, _, commit = self.vqvae.encode(x)
        y = self.vqvae.decode_codes(q)
        rec = self.position_loss(y, x)
        vel = F.smooth_l1_loss(y.diff(dim=1), x.diff(dim=1))
        acc = F.smooth_l1_loss(y.diff(n=2, dim=1), x.diff(n=2, dim=1))
        bone = F.smooth_l1_loss(self.bone_lengths(self.denorm_motion(y)) / self.bone_std,
                                self.bone_lengths(self.denorm_motion(x)) / self.bone_std)
        c = self.cfg
        loss = rec + c.vel_weight * vel + c.acc_weight * acc + c.bone_weight * bone + commit
        return loss, {"rec": rec.item(), "vel": vel.item(), "acc": acc.item(), "bone": bone.item(),
                      "commit": commit.item()}

    # -- generation --------------------------------------------------------------------------
    @torch.inference_mode()
    def sample_tokens(self, cond: torch.Tensor, seed: int, prefix: torch.Tensor | None = None,
                      temperature: float | None = None, top_k: int | None = None) -> torch.Tensor:
        """Normalised conditions [T, Dc] (T a multiple of down) -> tokens [T / down, groups].

        ``prefix``: tokens to continue from (a seed motion's tokens), else the song starts
        from the start token. One token at a time with a rolling cache of ``context`` tokens.
        """
        c = self.cfg
        temperature = c.temperature if temperature is None else temperature
        top_k = c.top_k if top_k is None else top_k
        gen = torch.Generator().manual_seed(int(seed))
        music = self.gpt.music_embedding(self.gpt.pad_cond(cond.unsqueeze(0)))[0]  # [N, d]
        N = music.shape[0]
        g = tokens_per_step(c)
        start = torch.full((g,), c.codes, dtype=torch.long)
        prev = [start] + ([] if prefix is None else list(prefix.long().view(-1, g)))
        caches: list[dict] = [{} for _ in self.gpt.blocks]
        out = []
        cos, sin = rope_table(torch.arange(N), c.gpt_dim // c.gpt_heads)
        def draw(logits: torch.Tensor) -> torch.Tensor:  # [k, codes] -> [k]
            logits = logits / max(temperature, 1e-6)
            if top_k and top_k < logits.shape[-1]:
                kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, -float("inf"))
            return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=gen)[:, 0]

        for i in range(N):
            h = self.gpt.hidden_step(prev[i], music[i], i, caches, (cos[i:i + 1], sin[i:i + 1]))
            if i + 1 < len(prev):  # still inside the prefix: its tokens are given
                out.append(prev[i + 1])
                continue
            if self.gpt.chained:  # level by level, each given the ones drawn before it
                tok = draw(self.gpt.logits(h)[0, 0])
                while len(tok) < g:
                    tok = torch.cat([tok, draw(self.gpt.logits(h, tok.view(1, 1, -1))[0, 0, -1:])])
            else:  # the groups of a step are drawn independently given everything before it
                tok = draw(self.gpt.logits(h)[0, 0])
            prev.append(tok)
            out.append(tok)
        return torch.stack(out[:N])

    @torch.inference_mode()
    def generate(self, cond_raw: np.ndarray, seed: int = 0, seed_motion: np.ndarray | None = None,
                 **sampling) -> np.ndarray:
        """A whole song: raw conditions [T, Dc] (music + temporal) -> raw motion features [T, Dmo].

        ``seed``: random seed (same seed, same dance). ``seed_motion``: optional raw motion
        [S, Dmo] the dance continues from (its tokens start the sequence; they are re-decoded,
        so the first S frames come out as the VQ-VAE's reconstruction of it).
        """
        cond_raw = np.asarray(cond_raw, dtype=np.float32)
        if cond_raw.ndim != 2 or cond_raw.shape[1] != self.cond_dim:
            raise InputError(f"conditions must be [frames, {self.cond_dim}], got {list(cond_raw.shape)}")
        T = cond_raw.shape[0]
        if T == 0:
            raise InputError("no frames to generate")
        was = self.training
        self.eval()
        try:
            d = self.cfg.down
            pad = (-T) % d
            cond = torch.from_numpy(cond_raw)
            if pad:  # repeat the last frame so the last token has its music
                cond = torch.cat([cond, cond[-1:].expand(pad, -1)])
            prefix, start_heading = None, 0.0
            if seed_motion is not None:
                sm = np.asarray(seed_motion, dtype=np.float32)
                if sm.ndim != 2 or sm.shape[1] != self.motion_dim:
                    raise InputError(f"seed motion must be [frames, {self.motion_dim}], got {list(sm.shape)}")
                S = min(len(sm) // d * d, len(cond))
                if S:
                    rep = self.to_rep(torch.from_numpy(sm[:S]))
                    _, prefix, _ = self.vqvae.encode(self.norm_motion(rep).unsqueeze(0))
                    prefix = prefix[0]
                    start_heading = float(heading(torch.from_numpy(sm[:1]))[0]) if self.cfg.canonical else 0.0
            tokens = self.sample_tokens(self.norm_cond(cond), seed, prefix, **sampling)
            rep = self.denorm_motion(self.vqvae.decode_tokens(tokens.unsqueeze(0))[0])[:T]
            motion = self.from_rep(rep, start_heading)
        finally:
            self.train(was)
        return motion.numpy()

    # -- saving ------------------------------------------------------------------------------
    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Weights as plain tensors and the config as a plain dict (weights_only=True loads it)."""
        from melodance import io

        payload = {"format": FORMAT, "config": asdict(self.cfg), "dims": [self.cond_dim, self.motion_dim],
                   "state_dict": self.state_dict(), "extra": extra or {}}
        with io.atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> tuple[VQGPTDancer, dict]:
        path = Path(path)
        if not path.is_file():
            raise MissingInput(f"{path}: no saved vqgpt model here")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise InputError(f"{path}: not a {FORMAT} file")
        model = cls(saved_config(payload["config"]), *payload["dims"])
        model.load_state_dict(payload["state_dict"])
        model.eval()
        return model, payload.get("extra") or {}


# -- training --------------------------------------------------------------------------------
def song_arrays(fs, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(raw conditions [T, Dc] = music + temporal, raw motion [T, Dmo]) per segment of a split."""
    out = []
    for name in fs.split[split]:
        s = fs.sequences[name]
        out.append((np.concatenate([s.music, s.temporal], axis=1).astype(np.float32),
                    s.motion.astype(np.float32)))
    return out


def _windows(songs: list[np.ndarray], length: int, rng: np.random.Generator, n: int,
             step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """n random windows of ``length`` (starts on multiples of ``step``): (song index, start)."""
    ok = [i for i, s in enumerate(songs) if len(s) >= length]
    if not ok:
        raise InputError(f"no sequence holds {length} frames")
    w = np.array([len(songs[i]) - length + 1 for i in ok], dtype=np.float64)
    which = rng.choice(ok, size=n, p=w / w.sum())
    starts = np.array([rng.integers(0, (len(songs[i]) - length) // step + 1) * step for i in which])
    return which, starts


def _token_batch(tokens: list[torch.Tensor], conds: list[torch.Tensor], cfg: VQGPTConfig,
                 rng: np.random.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n random windows of 2 x context tokens from songs of tokens [N, groups]: (previous tokens
    [n, L, groups], padded conditions, targets [n, L, groups])."""
    L, d = 2 * cfg.context, cfg.down
    which, starts = _windows([np.zeros(len(t)) for t in tokens], L, rng, n)
    start_tok = torch.full((1, tokens_per_step(cfg)), cfg.codes, dtype=torch.long, device=tokens[0].device)
    prev, music_in, target = [], [], []
    for i, s in zip(which, starts, strict=True):
        t = tokens[i]
        target.append(t[s:s + L])
        prev.append(torch.cat([start_tok, t[:s + L - 1]])[s:s + L])  # token before each position
        # Padded song: token s's music starts at frame s * d of the padded array.
        music_in.append(conds[i][s * d:(s + L + 2 * cfg.music_lookahead) * d])
    return torch.stack(prev), torch.stack(music_in), torch.stack(target)


def _fit_statistics(model: VQGPTDancer, reps: list[torch.Tensor], conds: list[np.ndarray]) -> None:
    """Standardisation of the representation ``reps`` and the conditions, and the bones' spread,
    from the training songs."""
    allm = torch.cat(reps).numpy()
    allc = np.concatenate(conds)
    model.motion_mean.copy_(torch.from_numpy(allm.mean(0)))
    model.motion_std.copy_(torch.from_numpy(np.maximum(allm.std(0), 1e-3)))
    model.cond_mean.copy_(torch.from_numpy(allc.mean(0)))
    model.cond_std.copy_(torch.from_numpy(np.maximum(allc.std(0), 1e-3)))
    bones = model.bone_lengths(torch.from_numpy(allm))
    model.bone_mean.copy_(bones.mean(0))
    model.bone_std.copy_(bones.std(0).clamp_min(0.5))


def _train_vqvae(model: VQGPTDancer, motions: list[np.ndarray], nm: list[torch.Tensor],
                 cfg: VQGPTConfig, rng: np.random.Generator, on_step) -> None:
    """Stage 1: the VQ-VAE on short random windows of the standardised songs ``nm``."""
    opt = torch.optim.AdamW(model.vqvae.parameters(), lr=cfg.lr * 2)
    model.train()
    t0 = time.perf_counter()
    for step in range(1, cfg.vq_steps + 1):
        which, starts = _windows(motions, cfg.vq_window, rng, cfg.batch)
        x = torch.stack([nm[i][s:s + cfg.vq_window] for i, s in zip(which, starts, strict=True)])
        loss, parts = model.vq_loss(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.vqvae.parameters(), 1.0)
        opt.step()
        elapsed = time.perf_counter() - t0
        if on_step and step % 50 == 0:
            on_step("vq", step, elapsed, {"loss": loss.item(), **parts})
        if elapsed > cfg.vq_budget_s:
            break


def _val_batch(model: VQGPTDancer, fs, cfg: VQGPTConfig, dev: torch.device):
    """Held-out token windows of the validation split (the GPT's curve, where overfitting
    shows, and the choice of the kept GPT); None without a usable validation split."""
    d = cfg.down
    val = [(torch.from_numpy(c), torch.from_numpy(m))
           for c, m in (song_arrays(fs, "val") if "val" in fs.split else [])
           if len(m) >= 2 * cfg.context * d]
    if not val:
        return None
    with torch.no_grad():
        vt = [model.vqvae.encode(model.norm_motion(model.to_rep(m[:len(m) // d * d]).to(dev))
                                 .unsqueeze(0))[1][0] for _, m in val]
    vc = [model.gpt.pad_cond(model.norm_cond(c.to(dev)).unsqueeze(0))[0] for c, _ in val]
    return _token_batch(vt, vc, cfg, np.random.default_rng(cfg.seed + 1), 32)


def _token_loss(model: VQGPTDancer, batch, cfg: VQGPTConfig, autocast) -> torch.Tensor:
    prev, music_in, target = batch
    with autocast:
        logits = model.gpt(prev, model.gpt.music_embedding(music_in), target)
    return F.cross_entropy(logits.float().reshape(-1, cfg.codes), target.reshape(-1))


def stretch_song(music: np.ndarray, beat_frames: np.ndarray, rep: torch.Tensor, factor: float,
                 temporal_normalize: bool, velocity_channels: list[int]
                 ) -> tuple[np.ndarray, torch.Tensor]:
    """One song played ``factor`` times as long: music [T, Dm] and the motion representation
    [T, D] linearly resampled to round(T x factor) frames, the channels that are changes per
    frame (``velocity_channels``) divided by ``factor``, the temporal indexes rebuilt from
    the beats moved to ``beat_frames x factor``. Returns (raw conditions [T', Dm + 3], rep)."""
    from melodance.features.temporal import temporal_indexes

    T = len(music)
    n = max(2, int(round(T * factor)))
    src = np.minimum(np.arange(n) / factor, T - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, T - 1)
    w = (src - lo)[:, None]
    music_s = (1 - w) * music[lo] + w * music[hi]
    wt = torch.from_numpy(w.astype(np.float32))
    rep_s = (1 - wt) * rep[torch.from_numpy(lo)] + wt * rep[torch.from_numpy(hi)]
    rep_s[:, velocity_channels] /= factor
    temporal = temporal_indexes(n, np.asarray(beat_frames, np.float64) * factor, temporal_normalize)
    return np.concatenate([music_s, temporal], axis=1).astype(np.float32), rep_s


def tempo_stretched(model: VQGPTDancer, fs, reps: list[torch.Tensor]
                    ) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """The training songs at each ``tempo_factors`` factor other than 1: (raw conditions,
    representation) per song and factor. ``reps``: the representation of each training song
    (``fs.split["train"]`` order), as ``fit`` made it."""
    from melodance.features.motion import ROOT_VELOCITY

    bad = [f for f in model.cfg.tempo_factors if not f > 0]
    if bad:
        raise InputError(f"tempo_factors must be positive, got {bad}")
    vel = list(range(ROOT_VELOCITY.start, ROOT_VELOCITY.stop))  # turned with the body, same indexes
    if model.cfg.canonical:
        vel.append(model.rep_dim - 1)  # the turn per frame
    conds, stretched = [], []
    for factor in (f for f in model.cfg.tempo_factors if f != 1.0):
        for name, rep in zip(fs.split["train"], reps, strict=True):
            s = fs.sequences[name]
            c, r = stretch_song(s.music.astype(np.float32), s.beat_frames, rep, float(factor),
                                fs.settings.temporal_normalize, vel)
            conds.append(c)
            stretched.append(r)
    return conds, stretched


@torch.no_grad()
def training_tokens(model: VQGPTDancer, nm: list[torch.Tensor], conds: list[np.ndarray]
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The GPT's training songs: each standardised song ``nm[i]`` [T, D] tokenised from each
    first frame 0 .. token_shifts - 1 (deterministic encoder, eval mode), with its padded
    conditions from the same frame (``conds[i]`` raw [T, Dc]). Returns (tokens [N, groups]
    per song and shift, shift-major; padded conditions of each)."""
    model.vqvae.eval()
    d = model.cfg.down
    tokens, padded = [], []
    for o in range(max(1, min(model.cfg.token_shifts, d))):
        for m, c in zip(nm, conds, strict=True):
            n = (len(m) - o) // d * d
            tokens.append(model.vqvae.encode(m[o:o + n].unsqueeze(0))[1][0])
            c = model.norm_cond(torch.from_numpy(c[o:]).to(m.device))
            padded.append(model.gpt.pad_cond(c.unsqueeze(0))[0])
    return tokens, padded


def _train_gpt(model: VQGPTDancer, tokens: list[torch.Tensor], nc: list[torch.Tensor],
               cfg: VQGPTConfig, rng: np.random.Generator, val_batch, autocast, on_step) -> dict | None:
    """Stage 2: the GPT on windows of 2 x context tokens, cut anywhere; returns the state with
    the lowest validation token loss (checked every 50 steps), None without validation."""
    used = sum(torch.cat(tokens)[:, g].unique().numel() for g in range(tokens_per_step(cfg)))
    best_val, best_step, best_state = float("inf"), 0, None
    opt = torch.optim.AdamW(model.gpt.parameters(), lr=cfg.lr, weight_decay=0.01)
    model.gpt.train()
    t0 = time.perf_counter()
    for step in range(1, cfg.gpt_steps + 1):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * min(1.0, step / 200)  # warm-up
        loss = _token_loss(model, _token_batch(tokens, nc, cfg, rng, cfg.batch), cfg, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.gpt.parameters(), 1.0)
        opt.step()
        elapsed = time.perf_counter() - t0
        if step % 50 == 0:
            figs = {"loss": loss.item(), "codes_used": float(used)}
            if val_batch is not None:
                model.gpt.eval()
                with torch.no_grad():
                    vl = _token_loss(model, val_batch, cfg, autocast).item()
                figs["val_loss"] = vl
                if vl < best_val:
                    best_val, best_step = vl, step
                    best_state = {k: v.detach().cpu().clone() for k, v in model.gpt.state_dict().items()}
                figs["best_step"] = float(best_step)
                model.gpt.train()
            if on_step:
                on_step("gpt", step, elapsed, figs)
        if elapsed > cfg.gpt_budget_s:
            break
    return best_state


def fit(fs, cfg: VQGPTConfig | None = None,
        on_step: Callable[[str, int, float, dict], None] | None = None,
        tokenizer: VQGPTDancer | None = None, device: str = "cpu") -> VQGPTDancer:
    """Train both stages on the training split of a FeatureSet.

    ``on_step(stage, step, elapsed_s, figures)`` is called every 50 steps (logging).
    Each stage stops at its step count or its time budget, whichever comes first.
    The GPT kept is the one with the lowest validation token loss (checked every 50
    steps; on a few dozen songs the GPT starts to memorise them well before the
    budget ends). ``tokenizer``: a trained model whose VQ-VAE and statistics are
    reused (only the GPT is trained; its ``down``, ``codes``, ``code_dim`` and
    ``vq_width`` must match ``cfg``). ``device``: where to train (``cuda``: the GPT in
    bfloat16 autocast; the VQ-VAE stays in float32, nearest-code search is precision
    sensitive); the model comes back on the CPU, where it samples.
    """
    cfg = cfg or VQGPTConfig()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = song_arrays(fs, "train")
    if not train:
        raise InputError("the feature set's training split is empty")
    conds = [c for c, _ in train]
    motions = [m for _, m in train]
    model = VQGPTDancer(cfg, conds[0].shape[1], motions[0].shape[1])
    reps = [model.to_rep(torch.from_numpy(m)) for m in motions]
    _fit_statistics(model, reps, conds)
    if tokenizer is not None:
        keep = {k: v for k, v in tokenizer.state_dict().items() if not k.startswith("gpt.")}
        model.load_state_dict(keep, strict=False)
    dev = torch.device(device)
    nm = [model.norm_motion(r).to(dev) for r in reps]
    model.to(dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    # Before the VQ-VAE stage, so a bad tempo_factors fails at once.
    more_conds, more_reps = tempo_stretched(model, fs, reps)
    if tokenizer is None:
        _train_vqvae(model, motions, nm, cfg, rng, on_step)

    tokens, tc = training_tokens(model, nm + [model.norm_motion(r).to(dev) for r in more_reps],
                                 conds + more_conds)
    best_state = _train_gpt(model, tokens, tc, cfg, rng, _val_batch(model, fs, cfg, dev), autocast, on_step)
    model.to("cpu")
    if best_state is not None:
        model.gpt.load_state_dict(best_state)
    model.eval()
    return model
