"""The in-memory description of a synthetic clip: its objects, the sentences referring to them, its pixels.

`a2d_annotated_frames` lives here because it is a property of every clip, not only of the A2D layout: the
scene generator redraws a clip until each object is visible in at least one of those frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

A2D_ANNOTATION_STRIDE = 4


@dataclass(frozen=True)
class SyntheticObject:
    """One object of a clip: its id (1-based; pixel value / instance id on disk) and attributes."""

    obj_id: int
    colour: str
    shape: str
    size: str
    direction: str
    speed: str | None  # None when direction == "static"

    def attributes(self) -> dict[str, str | None]:
        """The attribute values keyed by `ATTRIBUTE_KEYS`."""
        return {
            "size": self.size,
            "colour": self.colour,
            "shape": self.shape,
            "direction": self.direction,
            "speed": self.speed,
        }

    def matches(self, attributes: dict[str, str | None]) -> bool:
        """True if this object has every attribute value in `attributes` (a description fits it)."""
        own = self.attributes()
        return all(own[key] == value for key, value in attributes.items())


@dataclass(frozen=True)
class Referral:
    """A sentence referring to one object, the attributes it names and the templates it was built from."""

    obj_id: int
    text: str
    attributes: dict[str, str | None]
    template: str
    motion_template: str | None


@dataclass
class SyntheticClip:
    """The in-memory description of one clip.

    frames: uint8 `[T, H, W, 3]` RGB; labels: uint8 `[T, H, W]`, the id of the object visible at each pixel
    (0 = background), i.e. the masks after occlusion.
    """

    video_id: str
    held_out: bool
    objects: list[SyntheticObject]
    referrals: list[Referral]
    frames: np.ndarray
    labels: np.ndarray

    def mask(self, obj_id: int) -> np.ndarray:
        """Visible mask of one object, bool `[T, H, W]`."""
        return self.labels == obj_id


def video_id_for(index: int) -> str:
    """The video id of clip `index`."""
    return f"syn{index:05d}"


def a2d_annotated_frames(frames: int) -> list[int]:
    """1-based numbers of the A2D annotated frames of a `frames`-long clip: every 4th, starting at the 3rd."""
    return list(range(A2D_ANNOTATION_STRIDE // 2 + 1, frames + 1, A2D_ANNOTATION_STRIDE))
