"""The ``validate`` section of ``params.yaml``: the bounds every sequence must meet.

Each bound was chosen from the 43 real sequences in ``shared/data/music-to-dance``
(measured with ``melodance validate ../shared/data/music-to-dance --no-mlflow``,
see ``outputs/validate/facts.csv``) and from the faults that real copies of this
dataset have had. "Real" below means the range over those 43 sequences.
"""

from __future__ import annotations

from typing import Literal

from melodance.params import Section


class ValidateConfig(Section):
    """Thresholds of the data validation gate."""

    # What a failing sequence does: "stop" fails the stage (and ``dvc repro``)
    # naming each failing sequence and check; "quarantine" drops failing
    # sequences from accepted.json, says so on stderr and in summary.json.
    on_failure: Literal["stop", "quarantine"] = "stop"

    # Real sequences hold 970 to 2819 frames (39 to 113 s); training windows are
    # 120 frames. 250 frames (10 s) rejects stubs with a wide margin.
    min_frames: int = 250

    # Skeleton frames / config span (end - start). Real: 0.978 to 0.999 (the
    # capture stops a little before the claimed end). A copy with 5 % too few
    # frames lands at 0.929-0.949, 5 % too many at 1.027-1.049, a 4x fault
    # (W_1 with 340 frames for 1439) at 0.24: all outside [0.965, 1.01].
    frame_ratio_min: float = 0.965
    frame_ratio_max: float = 1.01

    # Audio left after the span ends, seconds: audio duration - end_position / 25.
    # Real: 5.00 to 5.03 (each song was cut 5 s after the dance). A span must lie
    # inside the song; one motion frame (0.04 s) of slack for codec padding.
    min_audio_margin_s: float = -0.04
    # Audio the header promises but that does not decode (truncated file), s.
    # Real: exactly 0; a truncated MP3 still reports its full duration in its
    # Xing header and silently decodes short.
    max_audio_missing_s: float = 0.05

    # Time scale. Mean joint speed in world coordinates, cm/s. Real: 62.6 to 112
    # (Waltz, Rumba, Cha-cha) and 180 (the one Tango). Squeezed 4x in time a
    # dance moves at 250-720; stretched 4x, at 16-45. [50, 225] keeps about 20 %
    # margin on both sides of the real data and rejects both.
    mean_joint_speed_min_cm_s: float = 50.0
    mean_joint_speed_max_cm_s: float = 225.0
    # Characteristic period of movement, 2*pi*mean|v|/mean|a| (the period of a
    # sine with the same speed-to-acceleration ratio), seconds; independent of
    # how far the joints move. Real: 0.60 (Tango, Cha-cha) to 1.46 (Waltz).
    # Squeezed 4x: 0.23-0.48 (capture noise keeps it from scaling fully);
    # stretched 4x: 2.4-5.9.
    movement_period_min_s: float = 0.5
    movement_period_max_s: float = 2.0

    # Physical bound on the fastest joint, cm/s. Real: 4.6 to 8.4 m/s, and 17.4 m/s
    # on T_5 (a capture glitch the real data must still pass with). 20 m/s is
    # beyond any dancer's hand; a joint teleporting 80 cm in one frame exceeds it.
    max_joint_speed_cm_s: float = 2000.0

    # Bone-length coefficient of variation within a sequence, max over the rigid
    # bones (legs, upper arms, forearms). Real: 2 % to 17.5 % (forearms of the
    # Cha-cha sequences); swapped or mislabelled joints give 30 % and more.
    max_bone_cv: float = 0.25

    # Median head-to-lowest-foot height, cm. Real: 138 to 158. Catches unit
    # mistakes (metres, millimetres) and a z-up axis convention (height ~ 0).
    body_height_min_cm: float = 100.0
    body_height_max_cm: float = 220.0

    # Largest joint offset from the root, any axis, cm. Real: 96 to 108.
    max_abs_joint_cm: float = 150.0
    # Root height (world y), cm. Real: 42 to 161.
    root_height_min_cm: float = 20.0
    root_height_max_cm: float = 250.0
    # Root horizontal distance from the origin on either axis, cm. Real: up to
    # 1009 (W_31 travelling across the floor); 20 m is beyond a ballroom.
    max_abs_root_xz_cm: float = 2000.0
    # Root continuity: largest root step between frames, cm. Real: 5.3 to 9.2
    # (19.1 on T_5). 30 cm per frame is 7.5 m/s: a jump, not a dancer.
    max_root_step_cm: float = 30.0

    # Reported only (never gated; beat alignment is weak in this data, see
    # shared/data/README.md): lag between music onsets and motion accents is
    # searched within +- this many seconds.
    onset_max_lag_s: float = 0.5
