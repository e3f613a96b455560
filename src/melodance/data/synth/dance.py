"""The dances: the dancer's rest pose and proportions, and joints driven by the beat and bar
phase of the song."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from melodance import FPS
from melodance.data.skeleton import N_JOINTS
from melodance.data.synth.plan import STYLES, SequencePlan, Style, plan_rng
from melodance.data.synth.pmath import DEG, apply_rot, pcos, pmatmul, pnorm, psin

# Rest pose, root-relative cm, body frame: y up, +z forward (the toes), side a
# (joints 3-11, 22) at -x. Measured on the 43 real sequences of
# shared/data/music-to-dance: every frame rotated about y so that the hip
# vector 7->16 points along +x, per-joint median over all frames, then each
# bone rescaled (from the root outwards, keeping the median direction) to the
# median bone length over all frames (the neck offset is scaled so that the
# bone from mid head-neck to mid shoulders gets its median length too). It is
# a typical ballroom pose (arms in hold); the generator never needs the real data.
TEMPLATE = np.array([
    (-9.9, 57.6, -9.6),  # 0 head
    (0.5, 60.7, -8.0),  # 1 neck
    (-0.1, 13.0, 4.0),  # 2 pelvis
    (-15.2, 42.2, -2.2),  # 3 shoulder a
    (-42.9, 35.4, 1.6),  # 4 elbow a
    (-45.3, 36.5, 12.5),  # 5 wrist a
    (-40.9, 40.2, 26.9),  # 6 hand a
    (-10.4, -3.3, 0.1),  # 7 hip a
    (-13.6, -47.7, 5.7),  # 8 knee a
    (-12.1, -78.9, -4.6),  # 9 ankle a
    (-6.3, -87.6, -13.1),  # 10 foot a1
    (-10.7, -91.0, 7.4),  # 11 foot a2
    (11.6, 44.0, -5.1),  # 12 shoulder b
    (37.9, 36.1, -3.0),  # 13 elbow b
    (45.2, 52.3, 0.4),  # 14 wrist b
    (56.8, 48.8, 4.1),  # 15 hand b
    (11.4, -3.0, 0.0),  # 16 hip b
    (14.4, -49.7, 4.5),  # 17 knee b
    (10.7, -80.4, -6.6),  # 18 ankle b
    (2.9, -87.1, -15.3),  # 19 foot b1
    (12.4, -91.4, 4.9),  # 20 foot b2
    (42.1, 47.1, -1.8),  # 21 hand direction b
    (-39.5, 39.3, 31.4),  # 22 hand direction a
])
CHEST = np.array((-1.8, 43.1, -3.7))  # top of the spine, mid-shoulders, same fit
THIGH = {"a": 44.86, "b": 47.01}  # median bone lengths (7,8), (16,17), cm
SHIN = {"a": 32.86, "b": 32.90}  # (8,9), (17,18)
ROOT_HEIGHT_CM = 88.0  # median root height above the lowest foot point, real data
FLOOR_Y_CM = 15.0  # world height of the floor (the real capture's floor is near 17)
# Per side: hip, knee, ankle, foot points, shoulder, elbow, wrist, hand, hand direction.
LEG = {"a": (7, 8, 9, 10, 11), "b": (16, 17, 18, 19, 20)}
ARM = {"a": (3, 4, 5, 6, 22), "b": (12, 13, 14, 15, 21)}
SIDE_SIGN = {"a": -1.0, "b": 1.0}


# ----------------------------------------------------------------------------
# dance


def _smooth(x: np.ndarray) -> np.ndarray:
    """Smoothstep on [0, 1] (zero slope at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def rot_x(a: np.ndarray) -> np.ndarray:
    """Rotations about x by angles ``a`` [N] rad -> ``[N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def rot_y(a: np.ndarray) -> np.ndarray:
    """Rotations about y (the vertical); +z turns towards +x. ``[N] -> [N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def rot_z(a: np.ndarray) -> np.ndarray:
    """Rotations about z (the forward axis). ``[N] -> [N, 3, 3]``."""
    c, s = pcos(a), psin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


def rot_axis(axis: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Rotations about a fixed unit ``axis`` [3] by angles ``a`` [N] (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    s, c = psin(a)[:, None, None], pcos(a)[:, None, None]
    return np.eye(3) + s * k + (1.0 - c) * pmatmul(k, k)


def two_link_ik(hip: np.ndarray, target: np.ndarray, l1: float, l2: float,
                bend: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Place knee and ankle for a hip and an ankle target, keeping bone lengths.

    hip, target: ``[N, 3]``; l1, l2: thigh and shin length; bend: ``[3]`` the
    direction the knee bends towards (forward). A target out of reach is pulled
    towards the hip (the foot rises, as on the toes). Returns (knee, ankle),
    each ``[N, 3]``.
    """
    v = target - hip
    d = pnorm(v)[:, None]
    u = v / np.maximum(d, 1e-9)
    d = np.clip(d, 0.35 * (l1 + l2), 0.998 * (l1 + l2))
    a = (l1 * l1 - l2 * l2 + d * d) / (2.0 * d)
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))
    along = (bend[0] * u[:, 0] + bend[1] * u[:, 1]) + bend[2] * u[:, 2]
    w = bend[None, :] - along[:, None] * u
    w /= np.maximum(pnorm(w), 1e-9)[:, None]
    return hip + a * u + h * w, hip + d * u


@dataclass(frozen=True)
class _Steps:
    """Every step of a dance: landing time, foot ("a"/"b"), world xz, foot yaw."""

    t: np.ndarray  # [K] landing times, s (sorted)
    lift_t: np.ndarray  # [K] times the foot leaves the floor, s
    foot: tuple[str, ...]
    xz: np.ndarray  # [K, 2]
    yaw: np.ndarray  # [K]


def _plan_path(plan: SequencePlan, style: Style, rng: np.random.Generator):
    """The line of dance: a slow counter-clockwise circle, plus the body facing (toward +z).

    Returns functions of song time ``t`` [N]: ``xz(t)`` [N, 2] and ``heading(t)``
    [N] (rad, the body's forward is (sin h, cos h) in (x, z)).
    """
    radius = float(rng.uniform(180.0, 260.0))
    centre = rng.uniform(-80.0, 80.0, size=2)
    theta0 = float(rng.uniform(0.0, 2.0 * np.pi))
    bar = plan.beat_s * plan.beats_per_bar
    turn_bars = 1.0

    def xz(t):
        th = theta0 + style.speed_cm_s * t / radius
        return centre + radius * np.stack([pcos(th), psin(th)], -1)

    def heading(t):
        # The dancer faces the audience (+z) while travelling the circle, and the
        # facing swings with the bars. A facing that followed the circle would rotate
        # the root-relative joints by an angle no music can predict (it depends on
        # where the dancer stands), which would make the corpus unlearnable. For the
        # same reason the swing starts on the first downbeat in every sequence.
        swing = psin(2.0 * np.pi * (t - plan.first_beat_s) / (turn_bars * bar))
        return DEG * style.turn_deg * swing

    return xz, heading


def _plan_steps(plan: SequencePlan, style: Style, xz, heading) -> _Steps:
    beat = plan.beat_s
    n_cycles = int(math.ceil(plan.song_s / (beat * style.cycle_beats))) + 2
    times, fwd = [], []
    for c in range(-1, n_cycles):
        sign = -1.0 if (style.rock_flips and c % 2) else 1.0
        for b, f in style.steps:
            times.append(plan.first_beat_s + beat * (c * style.cycle_beats + b))
            fwd.append(sign * f)
    t = np.array(times)
    fwd = np.array(fwd)
    foot = tuple("a" if k % 2 == 0 else "b" for k in range(len(t)))
    prev = np.concatenate([[t[0] - beat], t[:-1]])
    lift_t = np.maximum(prev, t - style.swing_beats * beat)
    # Land half a step ahead of the path, so that the midpoint of the feet
    # (the root) follows the path.
    ahead = t + 0.5 * (t - prev)
    h = heading(ahead)
    side = np.array([SIDE_SIGN[f] for f in foot])
    half_width = 10.0
    # body frame (x right, z forward) -> world (x, z) for heading h
    lx, lz = side * half_width, fwd
    wx = lx * pcos(h) + lz * psin(h)
    wz = -lx * psin(h) + lz * pcos(h)
    pos = xz(ahead) + np.stack([wx, wz], -1)
    yaw = h + side * DEG * 8.0  # feet slightly turned out
    return _Steps(t, lift_t, foot, pos, yaw)


def _foot_track(steps: _Steps, side: str, t: np.ndarray):
    """World xz [N,2], lift phase [N] (0 when planted) and yaw [N] of one foot."""
    idx = np.array([k for k, f in enumerate(steps.foot) if f == side])
    land, lift = steps.t[idx], steps.lift_t[idx]
    xz, yaw = steps.xz[idx], steps.yaw[idx]
    k = np.clip(np.searchsorted(land, t, side="right"), 1, len(land) - 1)  # next landing
    span = np.maximum(land[k] - lift[k], 1e-6)
    phase = np.clip((t - lift[k]) / span, 0.0, 1.0)
    s = _smooth(phase)[:, None]
    pos = xz[k - 1] + (xz[k] - xz[k - 1]) * s
    ang = yaw[k - 1] + (yaw[k] - yaw[k - 1]) * s[:, 0]
    swinging = (phase > 0.0) & (phase < 1.0)
    return pos, np.where(swinging, phase, 0.0), ang


def _weight(steps: _Steps, style: Style, beat: float, t: np.ndarray) -> np.ndarray:
    """Which foot carries the weight, -1 (a) .. +1 (b), moving after each landing."""
    side = np.array([SIDE_SIGN[f] for f in steps.foot])
    k = np.clip(np.searchsorted(steps.t, t, side="right") - 1, 1, len(steps.t) - 1)
    phase = (t - steps.t[k]) / (style.sway_beats * beat)
    return side[k - 1] + (side[k] - side[k - 1]) * _smooth(phase)


def _bob(style: Style, bar_pos: np.ndarray) -> np.ndarray:
    """Root height offset, cm, at fractional beat-of-bar ``bar_pos`` [N]."""
    v = np.array(style.bob_cm)
    i = np.floor(bar_pos).astype(int) % len(v)
    j = (i + 1) % len(v)
    return v[i] + (v[j] - v[i]) * _smooth(bar_pos - np.floor(bar_pos))


def _ankle_height(side: str) -> float:
    """Height of the ankle above the floor when the foot is flat, cm."""
    _, _, ankle, f1, f2 = LEG[side]
    return float(TEMPLATE[ankle, 1] - min(TEMPLATE[f1, 1], TEMPLATE[f2, 1]))


def render_dance(plan: SequencePlan, noise_cm: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """The dance of a sequence, driven by its song's beats and bars.

    Returns ``(joints [N, 23, 3], root [N, 3])``: joints relative to the root
    (world orientation), root in world coordinates, cm, y up, at 25 fps, for
    the frames ``start_frame .. end_frame - 1`` of the song.
    """
    style = STYLES[plan.style]
    rng = plan_rng(plan.seed, 2)
    t = (plan.start_frame + np.arange(plan.n_frames)) / FPS
    beat = plan.beat_s
    beats = (t - plan.first_beat_s) / beat  # fractional beat count
    bar_pos = np.mod(beats, plan.beats_per_bar)  # beat within the bar
    bar_phase = bar_pos / plan.beats_per_bar  # 0..1 over the bar
    n = len(t)

    xz_path, heading_path = _plan_path(plan, style, rng)
    steps = _plan_steps(plan, style, xz_path, heading_path)
    heading = heading_path(t)
    feet = {s: _foot_track(steps, s, t) for s in ("a", "b")}
    weight = _weight(steps, style, beat, t)

    # Root: between the feet, shifted over the standing foot, rising and falling.
    mid = 0.5 * (feet["a"][0] + feet["b"][0])
    sway = style.sway_cm * weight
    root = np.zeros((n, 3))
    root[:, 0] = mid[:, 0] + sway * pcos(heading)
    root[:, 2] = mid[:, 1] - sway * psin(heading)
    root[:, 1] = FLOOR_Y_CM + ROOT_HEIGHT_CM + _bob(style, bar_pos)
    # Long steps need bent knees: lower the root where a foot on the floor
    # would otherwise be out of the leg's reach.
    ch, sh = pcos(heading), psin(heading)
    for side in ("a", "b"):
        hip, ankle = LEG[side][0], LEG[side][2]
        hx = root[:, 0] + TEMPLATE[hip, 0] * ch + TEMPLATE[hip, 2] * sh
        hz = root[:, 2] - TEMPLATE[hip, 0] * sh + TEMPLATE[hip, 2] * ch
        dx, dz = feet[side][0][:, 0] - hx, feet[side][0][:, 1] - hz
        reach = 0.97 * (THIGH[side] + SHIN[side])
        drop = np.sqrt(np.maximum(reach * reach - (dx * dx + dz * dz), 0.0))
        top = FLOOR_Y_CM + _ankle_height(side) + drop - TEMPLATE[hip, 1]
        root[:, 1] = np.minimum(root[:, 1], top)

    # Upper body in the body frame (root at the origin, facing +z).
    roll = DEG * style.roll_deg * weight
    twist = DEG * style.twist_deg * psin(2.0 * np.pi * bar_phase)
    if style.letter == "T":
        # staccato: the torso snaps to a new angle on each downbeat, then holds
        flip = np.where(np.floor(beats / plan.beats_per_bar) % 2 == 0, 1.0, -1.0)
        snap = 2.0 * _smooth(bar_pos / 0.4) - 1.0  # -flip -> +flip within 0.4 beat
        twist = DEG * style.twist_deg * flip * snap
    pelvis_r = pmatmul(rot_y(0.5 * twist), rot_z(roll))
    torso_r = pmatmul(pmatmul(pelvis_r, rot_y(0.5 * twist)), rot_z(-0.6 * roll))
    body = np.zeros((n, N_JOINTS, 3))
    for j in (2, 7, 16):
        body[:, j] = apply_rot(pelvis_r, TEMPLATE[j])
    chest = body[:, 2] + apply_rot(torso_r, CHEST - TEMPLATE[2])
    for j in (1, 3, 12):
        body[:, j] = chest + apply_rot(torso_r, TEMPLATE[j] - CHEST)
    if style.letter == "T":  # head snaps to the side on accented bars
        head_yaw = -1.5 * twist
    else:
        head_yaw = 0.3 * twist
    nod = DEG * 3.0 * pcos(2.0 * np.pi * beats)
    head_r = pmatmul(pmatmul(torso_r, rot_y(head_yaw)), rot_x(nod))
    body[:, 0] = body[:, 1] + apply_rot(head_r, TEMPLATE[0] - TEMPLATE[1])

    # Arms: a closed hold that breathes with the bar, or free arms that swing
    # on the beat and open out over the bar.
    for side in ("a", "b"):
        sh, el, wr, ha, hd = ARM[side]
        sg = SIDE_SIGN[side]
        swing = DEG * style.arm_swing_deg
        if style.hold:
            abduct = swing * psin(2.0 * np.pi * bar_phase)
            flex = np.zeros(n)
            elbow = 0.5 * swing * psin(2.0 * np.pi * bar_phase)
        else:
            bump = psin(np.pi * bar_phase)
            raise_bar = _smooth(1.5 * bump * bump)
            if side == "a":  # the free arm opens out and up over the bar
                abduct = DEG * (-30.0 + style.arm_raise_deg * raise_bar)
            else:
                abduct = DEG * (-35.0 + 0.2 * style.arm_raise_deg * raise_bar)
            flex = swing * sg * psin(np.pi * beats)
            elbow = 0.5 * swing * (1.0 - pcos(np.pi * beats))
        upper = TEMPLATE[el] - TEMPLATE[sh]
        fore = TEMPLATE[wr] - TEMPLATE[el]
        hinge = np.cross(upper, fore)
        hinge /= pnorm(hinge)
        shoulder_r = pmatmul(pmatmul(torso_r, rot_z(sg * abduct)), rot_x(-flex))
        fore_r = pmatmul(shoulder_r, rot_axis(hinge, elbow))
        body[:, el] = body[:, sh] + apply_rot(shoulder_r, upper)
        body[:, wr] = body[:, el] + apply_rot(fore_r, fore)
        body[:, ha] = body[:, wr] + apply_rot(fore_r, TEMPLATE[ha] - TEMPLATE[wr])
        base = ha if side == "a" else wr  # 22 hangs off hand a, 21 off wrist b
        body[:, hd] = body[:, base] + apply_rot(fore_r, TEMPLATE[hd] - TEMPLATE[base])

    # Legs: inverse kinematics from each hip to its foot on the floor.
    inv_heading = rot_y(-heading)
    ground = FLOOR_Y_CM - root[:, 1]  # floor height relative to the root
    for side in ("a", "b"):
        hip, knee, ankle, f1, f2 = LEG[side]
        pos, lift_phase, yaw = feet[side]
        world = np.stack([pos[:, 0] - root[:, 0],
                          ground + _ankle_height(side) + style.lift_cm * psin(np.pi * lift_phase),
                          pos[:, 1] - root[:, 2]], -1)
        target = apply_rot(inv_heading, world)
        k, a = two_link_ik(body[:, hip], target, THIGH[side], SHIN[side],
                           np.array([0.0, 0.0, 1.0]))
        body[:, knee], body[:, ankle] = k, a
        # the foot keeps its own facing and points its toes down while lifted
        foot_r = pmatmul(rot_y(yaw - heading),
                         rot_x(DEG * 25.0 * psin(np.pi * lift_phase)))
        for f in (f1, f2):
            body[:, f] = a + apply_rot(foot_r, TEMPLATE[f] - TEMPLATE[ankle])

    joints = apply_rot(rot_y(heading)[:, None], body)

    # Small smooth jitter, like capture noise; the root gets a little too.
    if noise_cm > 0:
        kernel = np.array([0.25, 0.5, 0.25])
        jit = rng.standard_normal((n + 2, N_JOINTS, 3)) * noise_cm
        jit = kernel[0] * jit[:-2] + kernel[1] * jit[1:-1] + kernel[2] * jit[2:]
        joints = joints + jit
        rj = rng.standard_normal((n + 2, 3)) * (0.3 * noise_cm)
        root = root + kernel[0] * rj[:-2] + kernel[1] * rj[1:-1] + kernel[2] * rj[2:]
    return joints, root


