"""Giving a rendered video the audio track of its source, with PyAV.

The overlay of `rvos infer` is encoded frame by frame without sound; `add_audio_track` then copies its
video packets unchanged into a new file together with the source's first audio stream, cut to the
processed time span and encoded as AAC (which every MP4 player plays, whatever the source's codec was).
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import av

AUDIO_CODEC = "aac"


def has_audio(path: Path) -> bool:
    """True when the media file at `path` holds at least one audio stream (False if it cannot be opened)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError:
        return False


def add_audio_track(video: Path, source: Path, span: tuple[float, float]) -> bool:
    """Add `source`'s first audio stream, from `span[0]` to `span[1]` seconds, to the video file `video`.

    The audio starts with the video (time `span[0]` of the source becomes 0). `video` is replaced
    atomically by the version with sound. Returns False, leaving `video` as it is, when the source has no
    audio; an audio stream that cannot be decoded or encoded gives a warning and the same result.
    """
    if not has_audio(source):
        return False
    temp = video.with_name(f".{video.stem}.audio-{os.getpid()}{video.suffix}")
    try:
        _remux(video, source, span, temp)
        os.replace(temp, video)
        return True
    except (av.error.FFmpegError, ValueError) as error:
        warnings.warn(f"{source}: its audio track could not be copied ({error}); the overlay is silent",
                      stacklevel=2)  # fmt: skip
        return False
    finally:
        temp.unlink(missing_ok=True)


def _remux(video: Path, source: Path, span: tuple[float, float], out_path: Path) -> None:
    """Write `out_path`: the video packets of `video` as they are, and `source`'s audio in `span` as AAC."""
    first, last = span
    with (
        av.open(str(video)) as video_in,
        av.open(str(source)) as audio_in,
        av.open(str(out_path), "w") as out,
    ):
        video_stream_in = video_in.streams.video[0]
        video_stream = out.add_stream_from_template(video_stream_in)
        audio_stream_in = audio_in.streams.audio[0]
        rate = audio_stream_in.rate or 44100
        audio_stream = out.add_stream(AUDIO_CODEC, rate=rate)
        audio_stream.layout = "stereo" if audio_stream_in.channels >= 2 else "mono"
        for packet in video_in.demux(video_stream_in):
            if packet.dts is None:  # the demuxer's final empty packet
                continue
            packet.stream = video_stream
            out.mux(packet)
        for frame in audio_in.decode(audio_stream_in):
            if frame.time is None or not first <= frame.time < last:
                continue
            frame.pts = round((frame.time - first) * rate)
            frame.time_base = Fraction(1, rate)
            out.mux(audio_stream.encode(frame))
        out.mux(audio_stream.encode(None))  # flush the encoder
