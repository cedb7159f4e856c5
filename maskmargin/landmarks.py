"""Facial-feature landmark sets of the MediaPipe 468/478-point face mesh, as used by the mesh-based models.

Hard-coded because the sets exported by mediapipe differ across versions.
"""

from __future__ import annotations

import numpy as np

LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYEBROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
RIGHT_EYEBROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
LEFT_IRIS = (473, 474, 475, 476, 477)
RIGHT_IRIS = (468, 469, 470, 471, 472)
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)

# ("ring", ordered outline), ("hull", unordered points) or ("eye", (corner, corner)): an ellipse over
# the eye, so squinting or tiny eyes still get a usable region to inpaint. Its size best matches the
# hand-drawn eye boxes of the eval photos (mean IoU 0.574; 0.6 x 0.5 gave 0.534): 1.4 x the
# corner-to-corner distance wide, 0.8 x tall, lids and corners included.
Shape = tuple[str, tuple[int, ...]]
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
EYE_HALF_WIDTH, EYE_HALF_HEIGHT = 0.7, 0.4  # of the corner-to-corner distance

# Feature -> its filled shapes. Ordered rings keep concave outlines (the lips' bow); unordered sets
# are filled as their convex hull. Irises only exist in the refined (478-point) mesh.
FEATURE_SHAPES: dict[str, tuple[Shape, ...]] = {
    "face": (("ring", FACE_OVAL),),
    "eyes": (
        ("hull", LEFT_EYE + LEFT_IRIS),
        ("eye", LEFT_EYE_CORNERS),
        ("hull", RIGHT_EYE + RIGHT_IRIS),
        ("eye", RIGHT_EYE_CORNERS),
    ),
    "eyes_band": (
        ("hull", LEFT_EYE + LEFT_IRIS + RIGHT_EYE + RIGHT_IRIS),
        ("eye", LEFT_EYE_CORNERS),
        ("eye", RIGHT_EYE_CORNERS),
    ),
    "lips": (("ring", LIPS_OUTER),),
    "nose": (("hull", NOSE),),
}


def shapes_for(option: str) -> tuple[Shape, ...]:
    """The shapes for a registry option such as "nose+lips"."""
    out: tuple[Shape, ...] = ()
    for part in option.split("+"):
        out += FEATURE_SHAPES[part]
    return out


def outline(shape: Shape, points: np.ndarray) -> np.ndarray:
    """The polygon ([K, 2]) to fill for one shape, from all landmarks ([N, 2] pixels)."""
    kind, idx = shape
    idx = tuple(i for i in idx if i < len(points))
    chosen = points[list(idx)]
    if kind == "eye":
        a, b = chosen
        d = b - a
        width = float(np.hypot(*d))
        return ellipse((a + b) / 2, EYE_HALF_WIDTH * width, EYE_HALF_HEIGHT * width, float(np.arctan2(d[1], d[0])))
    return chosen if kind == "ring" else convex_hull(chosen)


def ellipse(centre: np.ndarray, rx: float, ry: float, angle: float, n: int = 24) -> np.ndarray:
    """An ellipse as an [n, 2] polygon, its x radius along `angle` (radians)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    local = np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)
    c, s = np.cos(angle), np.sin(angle)
    return local @ np.array([[c, s], [-s, c]]) + centre


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of [N, 2] points, counter-clockwise (Andrew's monotone chain)."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]

    def half(seq: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2:
                a, b = chain[-2], chain[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])
