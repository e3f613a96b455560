"""Drawing skeleton frames with OpenCV: arrays in, RGB frames out (no I/O).

A perspective camera looks at the dancer from a fixed three-quarter angle and
follows the smoothed root trajectory, so a travelling dancer stays in frame
while the floor grid (fixed in the world) slides by and shows the travel.
Everything that depends on the camera (projections of the joints, their
floor shadows and the grid lines) is computed for all frames at once with
numpy; drawing a frame is then a handful of ``cv2.polylines`` calls on
fixed-point coordinates (sub-pixel precise, anti-aliased).

Coordinates follow the dataset: centimetres, y up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melodance.data.skeleton import BONES, SIDE_A, SIDE_B, bone_side, with_virtual_points

SHIFT = 4  # fixed-point bits for cv2 drawing: 1/16 pixel precision
ONE = 1 << SHIFT
NEAR_CM = 20.0  # near clipping plane of the camera

# RGB colours (frames are RGB, as moviepy expects).
BACKGROUND = (24, 26, 32)
GRID = (62, 66, 78)
SHADOW = (14, 15, 19)
CENTRE = (232, 232, 236)
SIDE_COLOURS = {"a": (255, 138, 36), "b": (44, 170, 255)}  # orange, sky blue
TEXT = (210, 212, 220)


@dataclass(frozen=True)
class View:
    """Camera and stage settings.

    Attributes:
        width, height: frame size, pixels.
        fov_deg: vertical field of view, degrees.
        azimuth_deg: camera direction around the vertical axis (0: on +z looking to -z).
        elevation_deg: how far the camera looks down, degrees.
        distance_cm: camera distance from its target.
        target_height_cm: height of the camera target above the dancer's feet.
        follow_s: Gaussian smoothing (sigma, seconds) of the root trajectory followed.
        max_lag_cm: farthest the camera target may trail the root.
        grid_cm: floor grid spacing; grid_radius_cm: radius of the grid disc around the target.
    """

    width: int = 640
    height: int = 480
    fov_deg: float = 40.0
    azimuth_deg: float = 35.0
    elevation_deg: float = 14.0
    distance_cm: float = 430.0
    target_height_cm: float = 92.0
    follow_s: float = 0.8
    max_lag_cm: float = 60.0
    grid_cm: float = 50.0
    grid_radius_cm: float = 420.0

    @property
    def focal_px(self) -> float:
        return 0.5 * self.height / np.tan(np.radians(self.fov_deg) / 2)

    @property
    def thickness(self) -> int:
        return max(2, round(3 * self.height / 480))


def floor_track(world: np.ndarray, fps: float, window_s: float = 2.0) -> np.ndarray:
    """Floor height (cm) under a dance, frame by frame: [T].

    The lowest point of the body over a sliding window (a step or a jump
    lifts the feet, the other foot or the landing stays down), smoothed. Not
    one height for the whole dance: in this capture the lowest foot drifts by
    25 to 35 cm over a sequence (the stage or the calibration is not level).

    Args:
        world: [T, J, 3] world joint positions, cm.
        fps: frames per second.
        window_s: length of the sliding window, seconds.
    """
    from scipy.ndimage import gaussian_filter1d, minimum_filter1d

    low = np.asarray(world, dtype=np.float64)[..., 1].min(axis=1)
    size = max(1, int(round(window_s * fps)))
    return gaussian_filter1d(minimum_filter1d(low, size, mode="nearest"), size / 4,
                             mode="nearest")


def camera_path(world: np.ndarray, fps: float, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Camera positions following the dancer, and the fixed camera axes.

    The target is the body's centroid smoothed over ``view.follow_s``, held
    within ``view.max_lag_cm`` of it so that a fast-travelling dancer never
    leaves the frame, at ``view.target_height_cm`` above the feet of a body
    of the dance's usual height. Following the body rather than the root
    keeps a generated dance whose root strays from its body, or floats off
    the floor, in frame.

    Args:
        world: [T, J, 3] world joint positions, cm.
        fps: frames per second (for the smoothing time).
        view: camera settings.

    Returns:
        eye [T, 3] camera positions (cm) and axes [3, 3] (rows: right, up,
        forward unit vectors), so that camera coordinates are ``axes @ (p - eye)``.
    """
    from scipy.ndimage import gaussian_filter1d

    world = np.asarray(world, dtype=np.float64)
    centre = world.mean(axis=1)
    sigma = view.follow_s * fps
    smooth = gaussian_filter1d(centre, sigma, axis=0, mode="nearest") if sigma > 0 else centre
    lag = smooth - centre
    norm = np.linalg.norm(lag, axis=1, keepdims=True)
    target = centre + lag * np.minimum(1.0, view.max_lag_cm / np.maximum(norm, 1e-9))
    centre_above_feet = np.median(centre[:, 1] - world[..., 1].min(axis=1))
    target[:, 1] += view.target_height_cm - centre_above_feet
    az, el = np.radians(view.azimuth_deg), np.radians(view.elevation_deg)
    back = np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])
    eye = target + view.distance_cm * back
    forward = -back
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return eye, np.stack([right, up, forward])


def to_camera(points: np.ndarray, eye: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """World points [T, N, 3] -> camera coordinates [T, N, 3] (x right, y up, z depth), cm."""
    return (points - eye[:, None, :]) @ axes.T


def project(cam: np.ndarray, view: View) -> np.ndarray:
    """Camera coordinates [..., 3] -> fixed-point pixel coordinates [..., 2] int32 (<< SHIFT).

    Points must lie in front of the near plane (clip segments first).
    """
    f = view.focal_px
    z = np.maximum(cam[..., 2], 1e-6)
    u = 0.5 * view.width + f * cam[..., 0] / z
    v = 0.5 * view.height - f * cam[..., 1] / z
    uv = np.stack([u, v], axis=-1) * ONE
    # Far off-screen points only need to stay inside int32 for cv2's clipping.
    return np.clip(np.rint(uv), -(2**26), 2**26).astype(np.int32)


def clip_segments(a: np.ndarray, b: np.ndarray, near: float = NEAR_CM
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip camera-space segments a-b [..., 3] to depth >= near.

    Returns the clipped endpoints and a mask [...] of segments with anything left.
    """
    za, zb = a[..., 2:3], b[..., 2:3]
    keep = (za[..., 0] >= near) | (zb[..., 0] >= near)
    dz = np.where(zb == za, 1.0, zb - za)
    ta = np.clip((near - za) / dz, 0.0, 1.0)  # where a-b crosses the plane, from a
    a2 = np.where(za < near, a + ta * (b - a), a)
    b2 = np.where(zb < near, a + ta * (b - a), b)
    return a2, b2, keep


def grid_segments(target_xz: np.ndarray, floor_y: np.ndarray, view: View) -> np.ndarray:
    """World-fixed grid lines clipped to a disc around each frame's target.

    Args:
        target_xz: [T, 2] disc centres (x, z), cm.
        floor_y: [T] floor height, cm.

    Returns:
        [T, L, 2, 3] segment endpoints, world cm (zero-length where a line
        misses the disc).
    """
    g, r = view.grid_cm, view.grid_radius_cm
    k = int(np.ceil(r / g)) + 1
    T = len(target_xz)
    base = np.floor(target_xz / g) * g  # [T, 2]
    offs = np.arange(-k, k + 1) * g  # [n]
    segs = []
    for axis in (0, 1):  # lines of constant x, then constant z
        pos = base[:, axis:axis + 1] + offs  # [T, n]
        d = pos - target_xz[:, axis:axis + 1]
        half = np.sqrt(np.maximum(r * r - d * d, 0.0))
        other = target_xz[:, 1 - axis:2 - axis]
        s = np.empty((T, len(offs), 2, 3))
        s[..., 1] = floor_y[:, None, None]
        s[..., 0, 2 * axis] = pos
        s[..., 1, 2 * axis] = pos
        s[..., 0, 2 - 2 * axis] = other - half
        s[..., 1, 2 - 2 * axis] = other + half
        segs.append(s)
    return np.concatenate(segs, axis=1)


class SkeletonRenderer:
    """Frames of one dance, seen by a camera that follows it.

    Args:
        joints: [T, 23, 3] root-relative joint positions, cm.
        root: [T, 3] root trajectory, world cm.
        fps: frames per second.
        view: camera and frame settings.
        caption: text drawn top left on every frame (None: none).
        show_frame: draw the frame number and time bottom left.

    ``frame(i)`` returns frame i as a [height, width, 3] uint8 RGB array.
    """

    def __init__(self, joints: np.ndarray, root: np.ndarray, fps: float, view: View = View(),
                 caption: str | None = None, show_frame: bool = True):
        joints = np.asarray(joints, dtype=np.float64)
        root = np.asarray(root, dtype=np.float64)
        if joints.ndim != 3 or joints.shape[1:] != (23, 3):
            raise ValueError(f"joints must be [frames, 23, 3], got {list(joints.shape)}")
        if root.shape != (len(joints), 3):
            raise ValueError(f"root must be [{len(joints)}, 3], got {list(root.shape)}")
        if len(joints) == 0:
            raise ValueError("no frames to render")
        if not (np.isfinite(joints).all() and np.isfinite(root).all()):
            raise ValueError("joints or root hold NaN or infinite values")
        self.view, self.fps, self.caption, self.show_frame = view, fps, caption, show_frame
        self.n_frames = len(joints)
        world = with_virtual_points(joints + root[:, None, :])  # [T, 27, 3]
        floor_y = floor_track(world[:, :23], fps)  # [T]
        eye, axes = camera_path(world[:, :23], fps, view)
        self.eye = eye

        cam = to_camera(world, eye, axes)
        shadow = world.copy()
        shadow[..., 1] = floor_y[:, None]
        cam_shadow = to_camera(shadow, eye, axes)

        bones = np.asarray(BONES)
        sides = np.array([bone_side(b) for b in BONES])
        self._bones = {}
        for side in ("centre", "a", "b"):
            sel = bones[sides == side]
            self._bones[side] = self._segments(cam[:, sel[:, 0]], cam[:, sel[:, 1]])
        self._shadow = self._segments(cam_shadow[:, bones[:, 0]], cam_shadow[:, bones[:, 1]])
        # Draw the far side's limbs first so the near side covers them.
        za = cam[:, sorted(SIDE_A), 2].mean(axis=1)
        zb = cam[:, sorted(SIDE_B), 2].mean(axis=1)
        self._a_far = za > zb
        head = cam[:, 0]
        self._head = project(head, view)
        self._head_r = np.rint(np.clip(view.focal_px * 9.0 / np.maximum(head[:, 2], NEAR_CM),
                                       1, 200) * ONE).astype(np.int32)

        target_xz = (eye + view.distance_cm * axes[2])[:, [0, 2]]
        grid = grid_segments(target_xz, floor_y, view)  # [T, L, 2, 3]
        ga = to_camera(grid[:, :, 0], eye, axes)
        gb = to_camera(grid[:, :, 1], eye, axes)
        self._grid = self._segments(ga, gb, drop_short=True)

        self._background = np.empty((view.height, view.width, 3), np.uint8)
        self._background[:] = BACKGROUND

    def __len__(self) -> int:
        return self.n_frames

    def _segments(self, a: np.ndarray, b: np.ndarray, drop_short: bool = False):
        """Camera-space segments [T, S, 3] x2 -> per frame an int32 [k, 2, 2] array for cv2."""
        a2, b2, keep = clip_segments(a, b)
        pts = np.stack([project(a2, self.view), project(b2, self.view)], axis=2)  # [T, S, 2, 2]
        if drop_short:
            keep &= np.abs(pts[:, :, 0] - pts[:, :, 1]).max(axis=-1) > 0
        if keep.all():
            return pts
        return [p[k] for p, k in zip(pts, keep, strict=True)]

    def frame(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        """Frame i as [height, width, 3] uint8 RGB (drawn into ``out`` when given)."""
        import cv2

        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} outside 0..{self.n_frames - 1}")
        v = self.view
        img = out if out is not None else np.empty_like(self._background)
        img[:] = self._background
        aa = cv2.LINE_AA

        def lines(segs, colour, thickness):
            if len(segs):  # all clipped away (behind the camera): nothing to draw
                cv2.polylines(img, segs, False, colour, thickness, aa, SHIFT)

        t = v.thickness
        lines(self._grid[i], GRID, 1)
        lines(self._shadow[i], SHADOW, t + 3)
        near, far = ("b", "a") if self._a_far[i] else ("a", "b")
        lines(self._bones[far][i], SIDE_COLOURS[far], t)
        lines(self._bones["centre"][i], CENTRE, t)
        cv2.circle(img, tuple(int(c) for c in self._head[i]), int(self._head_r[i]), CENTRE, t,
                   aa, SHIFT)
        lines(self._bones[near][i], SIDE_COLOURS[near], t)
        scale = v.height / 960
        if self.caption:
            put_text(img, self.caption, (10, 10), scale)
        if self.show_frame:
            put_text(img, f"frame {i + 1}/{self.n_frames}  {i / self.fps:6.2f} s",
                     (10, v.height - 10), scale, anchor="bottom")
        return img


def put_text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float,
             anchor: str = "top") -> None:
    """Anti-aliased text with its top-left (or bottom-left) corner at xy, pixels."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(scale, 0.4)
    (w, h), base = cv2.getTextSize(text, font, scale, 1)
    x, y = xy
    y = y + h if anchor == "top" else y - base
    cv2.putText(img, text, (x, y), font, scale, TEXT, 1, cv2.LINE_AA)


class SideBySide:
    """Several renderers of equal length drawn next to each other in one frame."""

    def __init__(self, panels: list[SkeletonRenderer]):
        if not panels:
            raise ValueError("no panels")
        n = {len(p) for p in panels}
        h = {p.view.height for p in panels}
        if len(n) != 1 or len(h) != 1:
            raise ValueError(f"panels differ in frames {sorted(n)} or height {sorted(h)}")
        self.panels = panels
        self.n_frames = n.pop()
        self.height = h.pop()
        self.width = sum(p.view.width for p in panels)

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        img = out if out is not None else np.empty((self.height, self.width, 3), np.uint8)
        x = 0
        for p in self.panels:
            p.frame(i, out=img[:, x:x + p.view.width])
            if x:
                img[:, x - 1:x + 1] = GRID  # a thin divider between panels
            x += p.view.width
        return img
