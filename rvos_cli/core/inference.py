"""Inference post-processing: mask upsampling, TSVS sequence selection, A2D predictions, long-video windows.

Everything here works on the model's output dict, never on the model itself.

Shape legend: T frames, B clips in a batch, Nq object queries, h4×w4 = H/4×W/4 mask-logit resolution,
H×W padded input size, h×w resized (un-padded) input size, H0×W0 original frame size.

Mask pipeline shared by every path (spec §8.1/§8.2): logits bilinearly upsampled (align_corners False) to
the padded input size → sigmoid > 0.5 (strict) → crop the bottom/right padding → nearest resize to the
original frame size.

Long videos (spec §8.3/§8.4) are cut into overlapping windows by `plan_windows`; `WindowLinker` follows
one object through them: instead of letting each window's own TSVS choice overwrite the previous one, it
picks in every new window the query whose masks agree with the track on the shared frames.

Selection (`SELECT_MODES`): "top1" is MTTR's TSVS, one sequence per sentence; "threshold" (MeViS, where a
sentence may refer to several objects or to none) keeps every sequence whose TSVS score exceeds
`score_threshold` and outputs the union of their masks, or an empty mask when none does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from rvos_cli.core.selection import DEFAULT_SCORE_THRESHOLD, check_selection
from rvos_cli.errors import RvosError

Size = tuple[int, int]


def logits_to_masks(
    logits: torch.Tensor, padded_size: Size, resized_size: Size, orig_size: Size
) -> torch.Tensor:
    """Turn low-resolution mask logits into binary masks at the original frame size.

    Takes `logits` `[N, h4, w4]` (any float dtype), the padded input size (H, W), the un-padded resized
    size (h, w) and the original size (H0, W0). Returns a bool tensor `[N, H0, W0]`.
    """
    up = F.interpolate(logits[None].float(), size=padded_size, mode="bilinear", align_corners=False)
    masks = (up.sigmoid() > 0.5)[:, :, : resized_size[0], : resized_size[1]]  # [1, N, h, w]
    if tuple(resized_size) != tuple(orig_size):
        masks = F.interpolate(masks.to(torch.uint8), size=orig_size, mode="nearest") > 0
    return masks[0]  # [N, H0, W0]


def referred_probability(pred_is_referred: torch.Tensor) -> torch.Tensor:
    """P(referred) = softmax over the last dim, class 0. Takes `[..., 2]` logits, returns `[...]`."""
    return pred_is_referred.float().softmax(dim=-1)[..., 0]


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """Encode binary masks as COCO RLEs that can go straight into JSON.

    Takes `masks` `[N, H, W]` (bool or {0,1}). Returns N dicts `{'size': [H, W], 'counts': str}`
    (pycocotools encoding of the Fortran-ordered uint8 masks, counts decoded to ASCII).
    """
    if masks.shape[0] == 0:
        return []
    fortran = np.asfortranarray(masks.astype(np.uint8).transpose(1, 2, 0))  # [H, W, N]
    rles = mask_utils.encode(fortran)
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def a2d_postprocess(
    outputs: dict,
    padded_size: Size,
    resized_sizes: list[Size],
    orig_sizes: list[Size],
    image_ids: list[str],
) -> list[dict]:
    """COCO result dicts for A2D-/JHMDB-Sentences evaluation (spec §8.1, §11).

    `outputs['pred_masks']` `[T', B, Nq, h4, w4]` logits and `outputs['pred_is_referred']` `[T', B, Nq, 2]`,
    with T' = 1 (only the annotated centre frame passes the transformer). Time and batch are flattened
    time-major, so `resized_sizes`, `orig_sizes` and `image_ids` hold one entry per flattened sample.
    Returns T'·B·Nq dicts `{image_id, category_id: 1, segmentation: RLE, score: P(referred)}`: every query
    of every sample, in query order (mAP uses them all, P@K/IoU only the top-scoring one).
    """
    pred_masks = outputs["pred_masks"].flatten(0, 1)  # [T'·B, Nq, h4, w4]
    scores = referred_probability(outputs["pred_is_referred"].flatten(0, 1))  # [T'·B, Nq]
    predictions: list[dict] = []
    for i, image_id in enumerate(image_ids):
        masks = logits_to_masks(pred_masks[i], padded_size, resized_sizes[i], orig_sizes[i])  # [Nq, H0, W0]
        rles = masks_to_rle(masks.cpu().numpy())
        for rle, score in zip(rles, scores[i].tolist(), strict=True):
            predictions.append({"image_id": image_id, "category_id": 1, "segmentation": rle, "score": score})
    return predictions


def tsvs_select(pred_is_referred: torch.Tensor) -> tuple[int, torch.Tensor]:
    """Temporal segment voting: pick the query whose sequence is most associated with the text.

    Takes `pred_is_referred` `[T, Nq, 2]` logits. The sequence score of a query is the mean over the T
    frames of P(referred); returns (argmax query, the `[Nq]` sequence scores). Ties go to the lower index.
    """
    sequence_scores = referred_probability(pred_is_referred).mean(dim=0)  # [Nq]
    return int(sequence_scores.argmax()), sequence_scores


def video_postprocess(
    pred_masks: torch.Tensor,
    pred_is_referred: torch.Tensor,
    padded_size: Size,
    resized_size: Size,
    orig_size: Size,
) -> tuple[torch.Tensor, int, float]:
    """Ref-YouTube-VOS style post-processing of one video and one expression (spec §8.2).

    Takes `pred_masks` `[T, Nq, h4, w4]` logits and `pred_is_referred` `[T, Nq, 2]` for a single clip.
    Returns (masks bool `[T, H0, W0]` of the TSVS-selected query, that query, its sequence score).
    Only the selected query is upsampled: the masks equal upsampling all queries and then selecting.
    """
    query, sequence_scores = tsvs_select(pred_is_referred)
    masks = logits_to_masks(pred_masks[:, query], padded_size, resized_size, orig_size)  # [T, H0, W0]
    return masks, query, float(sequence_scores[query])


def threshold_select(sequence_scores: torch.Tensor, score_threshold: float) -> list[int]:
    """The queries whose TSVS sequence score (`[Nq]`) is strictly above `score_threshold`, best first."""
    passing = torch.nonzero(sequence_scores > score_threshold).flatten().tolist()
    return sorted(passing, key=lambda q: (-float(sequence_scores[q]), q))


def plan_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open (start, end) windows covering `num_frames` frames, consecutive ones sharing `overlap`.

    Windows start at 0, window − overlap, 2·(window − overlap), …; the last one is cut at the end of the
    video (so it may be shorter, like the MTTR demo's) and planning stops as soon as a window reaches the
    end, so no window lies wholly inside its predecessor and each brings at least one new frame.
    Raises RvosError for num_frames < 1, window < 1, or overlap outside [0, window).
    """
    if num_frames < 1:
        raise RvosError(f"video has {num_frames} frames; expected at least 1")
    if window < 1:
        raise RvosError(f"window size {window} must be at least 1 frame")
    if not 0 <= overlap < window:
        raise RvosError(f"window overlap {overlap} must be >= 0 and smaller than the window size {window}")
    stride = window - overlap
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + window, num_frames)
        windows.append((start, end))
        if end == num_frames:
            return windows
        start += stride


@dataclass(frozen=True)
class LinkedFrame:
    """One finished frame of a linked track.

    `mask` is bool `[H0, W0]`; `score` is the TSVS sequence score of the chosen query in the window that
    supplied the frame; `window` and `query` say which window and query that was. With "threshold"
    selection `query` is the best passing query (−1 when none passed and the mask is empty) and `score`
    the window's best sequence score.
    """

    frame_index: int
    mask: torch.Tensor
    score: float
    window: int
    query: int


class WindowLinker:
    """Follows one referred object through the overlapping windows of a long video (one per sentence).

    Feed the model's outputs for the windows of `plan_windows(num_frames, window, overlap)` in order with
    `push`; each call returns the frames it finished, so memory stays flat however long the video is.
    With `num_frames=None` (a stream of unknown length) the windows are not planned ahead: window k starts
    at k·(window − overlap) and covers as many frames as its outputs hold, which gives the same windows as
    `plan_windows` when the caller cuts the last one at the end of the stream.

    Choice of query per window:
      * first window (and any window whose shared frames carry no foreground in the track): TSVS argmax;
      * otherwise every query's masks on the shared frames are compared with the track's masks there
        (per-frame IoU, empty-vs-empty = 1, averaged over the shared frames); if the best mean IoU is
        at least `iou_threshold` that query is chosen (ties → higher TSVS score, then lower index),
        else the track is considered lost and the window's TSVS argmax is taken.
    With `select="threshold"` each window instead takes the union of all queries whose sequence score
    exceeds `score_threshold` (an empty mask when none does); no query is followed across windows then.
    Merge on shared frames: the earlier window's masks are kept. Hence a frame is final as soon as the
    first window covering it is pushed, and `push` returns all of that window's not-yet-emitted frames at
    once; only the last `overlap` masks are retained for matching against the next window.
    """

    def __init__(
        self,
        num_frames: int | None,
        window: int,
        overlap: int,
        padded_size: Size,
        resized_size: Size,
        orig_size: Size,
        iou_threshold: float = 0.3,
        select: str = "top1",
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> None:
        """Plan the windows (RvosError on bad sizes, see `plan_windows`) and start an empty track.

        `padded_size`, `resized_size`, `orig_size` are (height, width) pairs shared by all windows;
        `select` and `score_threshold` choose the sequences (see the class doc; RvosError if invalid).
        """
        if not 0.0 <= iou_threshold <= 1.0:
            raise RvosError(f"IoU threshold {iou_threshold} must be between 0 and 1")
        check_selection(select, score_threshold)
        self.select = select
        self.score_threshold = score_threshold
        self.windows = plan_windows(num_frames or 1, window, overlap)
        self._open_ended = num_frames is None
        if self._open_ended:
            self.windows = []  # appended by `push`
        self._window = window
        self.padded_size = padded_size
        self.resized_size = resized_size
        self.orig_size = orig_size
        self.iou_threshold = iou_threshold
        self._next_window = 0
        self._emitted_end = 0  # frames [0, _emitted_end) have been returned
        self._recent: dict[int, torch.Tensor] = {}  # frame index → final mask [H0, W0], last `overlap` only
        self._overlap = overlap

    @property
    def done(self) -> bool:
        """True once every planned window has been pushed (and so every frame emitted)."""
        return not self._open_ended and self._next_window == len(self.windows)

    def push(self, pred_masks: torch.Tensor, pred_is_referred: torch.Tensor) -> list[LinkedFrame]:
        """Add the next window's outputs and return the frames it finishes, in frame order.

        Takes `pred_masks` `[T, Nq, h4, w4]` logits and `pred_is_referred` `[T, Nq, 2]` for the window
        `self.windows[k]` (T = its length), k counting the pushes so far.
        """
        if self.done:
            raise ValueError("all windows have already been pushed")
        k = self._next_window
        if self._open_ended:
            self._plan_next(pred_masks.shape[0])
        start, end = self.windows[k]
        if pred_masks.shape[0] != end - start or pred_is_referred.shape[0] != end - start:
            raise ValueError(f"window {k} covers {end - start} frames, got {pred_masks.shape[0]}")
        tsvs_query, sequence_scores = tsvs_select(pred_is_referred)
        first_new = self._emitted_end
        if self.select == "threshold":
            query, new_masks = self._threshold_masks(pred_masks[first_new - start :], sequence_scores)
            score = float(sequence_scores.max())
        else:
            query = self._choose_query(start, pred_masks, sequence_scores, tsvs_query)
            score = float(sequence_scores[query])
            new_masks = logits_to_masks(
                pred_masks[first_new - start :, query], self.padded_size, self.resized_size, self.orig_size
            )  # [end - first_new, H0, W0]
        finished = [
            LinkedFrame(frame_index=first_new + i, mask=mask, score=score, window=k, query=query)
            for i, mask in enumerate(new_masks)
        ]
        for frame in finished:
            self._recent[frame.frame_index] = frame.mask
        self._recent = {f: m for f, m in self._recent.items() if f >= end - self._overlap}
        self._emitted_end = end
        self._next_window += 1
        return finished

    def _plan_next(self, length: int) -> None:
        """Append the next window of a stream of unknown length: `length` frames from k·(window − overlap)."""
        k = len(self.windows)
        if not 1 <= length <= self._window or (k > 0 and length <= self._overlap):
            raise ValueError(f"window {k} of {length} frames: expected {self._overlap + 1}..{self._window}")
        start = k * (self._window - self._overlap)
        self.windows.append((start, start + length))

    def _threshold_masks(
        self, pred_masks: torch.Tensor, sequence_scores: torch.Tensor
    ) -> tuple[int, torch.Tensor]:
        """(best passing query or −1, union mask bool `[t, H0, W0]`) of the queries above the threshold.

        `pred_masks` `[t, Nq, h4, w4]` holds the window's frames still to emit.
        """
        queries = threshold_select(sequence_scores, self.score_threshold)
        union = torch.zeros(pred_masks.shape[0], *self.orig_size, dtype=torch.bool)
        for q in queries:
            union |= logits_to_masks(
                pred_masks[:, q], self.padded_size, self.resized_size, self.orig_size
            ).cpu()
        return (queries[0] if queries else -1), union

    def _choose_query(
        self, start: int, pred_masks: torch.Tensor, sequence_scores: torch.Tensor, tsvs_query: int
    ) -> int:
        """The query that continues the track in a window starting at `start` (rules in the class doc)."""
        shared = [f for f in range(start, self._emitted_end) if f in self._recent]
        if not shared:
            return tsvs_query
        track = torch.stack([self._recent[f] for f in shared])  # [S, H0, W0]
        if not track.any():
            return tsvs_query
        offsets = [f - start for f in shared]
        best_query, best_key = tsvs_query, (-1.0, -1.0)
        for q in range(pred_masks.shape[1]):
            candidate = logits_to_masks(
                pred_masks[offsets, q], self.padded_size, self.resized_size, self.orig_size
            )  # [S, H0, W0]
            inter = (candidate & track).flatten(1).sum(dim=1).double()
            union = (candidate | track).flatten(1).sum(dim=1).double()
            iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            key = (float(iou.mean()), float(sequence_scores[q]))
            if key > best_key:  # strict: on a full tie the lower index stays
                best_query, best_key = q, key
        return best_query if best_key[0] >= self.iou_threshold else tsvs_query


def link_windows(
    windows: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_frames: int,
    window: int,
    overlap: int,
    padded_size: Size,
    resized_size: Size,
    orig_size: Size,
    iou_threshold: float = 0.3,
    select: str = "top1",
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
) -> Iterator[LinkedFrame]:
    """Stream the linked track of a long video, frame by frame, in order.

    `windows` yields (`pred_masks` `[T, Nq, h4, w4]`, `pred_is_referred` `[T, Nq, 2]`) for the windows of
    `plan_windows(num_frames, window, overlap)` in order (lazily, e.g. one model call each). Yields one
    `LinkedFrame` per video frame; see `WindowLinker` for how queries are linked across windows and for
    `select` / `score_threshold`.
    """
    linker = WindowLinker(
        num_frames,
        window,
        overlap,
        padded_size,
        resized_size,
        orig_size,
        iou_threshold,
        select,
        score_threshold,
    )
    for pred_masks, pred_is_referred in windows:
        yield from linker.push(pred_masks, pred_is_referred)
    if not linker.done:
        raise ValueError(f"got fewer windows than the {len(linker.windows)} planned")


def merge_object_masks(masks: np.ndarray, object_ids: list[int]) -> np.ndarray:
    """One indexed label map from per-object binary masks (Ref-DAVIS17 predictions, spec §2b).

    Takes masks bool `[N, H, W]` in expression order and the label of each object. Returns uint8
    `[H, W]`: 0 where no mask is set, else the label of the first object (in expression order) whose
    mask is set. That is ReferFormer's argmax over the thresholded probabilities with a 0.1 background
    when all masks are equally confident; binary masks carry no confidence to break ties by.
    """
    labels = np.zeros(masks.shape[1:], dtype=np.uint8)
    for mask, object_id in zip(masks[::-1], object_ids[::-1], strict=True):
        labels[mask] = object_id
    return labels
