"""mp4 video through PyAV: a streaming episode encoder, lossless concatenation, and timestamp decoding.

Encoding follows lerobot's defaults (AV1 via libsvtav1, yuv420p, crf 30, keyframe every 2 frames,
SVT preset 12); libx264 is the h264 option. Many episodes share one mp4: an episode's packets are
appended to the file by remuxing (no re-encoding), shifted to start where the file ended, and the
episodes table records the episode's ``from_timestamp``/``to_timestamp`` inside it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from worldrl.data.lerobot_format import DatasetFormatError
from worldrl.errors import ConfigError

CODEC_NAMES = {"libsvtav1": "av1", "libx264": "h264", "h264": "h264", "av1": "av1"}
# SVT-AV1 prints a banner per encoder to stderr; keep only its errors unless the user asked otherwise.
os.environ.setdefault("SVT_LOG", "1")


@dataclass(frozen=True)
class VideoSettings:
    """How episode videos are encoded."""

    vcodec: str = "libsvtav1"
    """Encoder: "libsvtav1" (lerobot's default, AV1) or "libx264" (h264)."""
    crf: int = 30
    """Constant rate factor: lower is better quality and larger files."""
    gop: int = 2
    """Keyframe interval in frames; small keeps random access cheap (decoding starts at a keyframe)."""
    pix_fmt: str = "yuv420p"
    """Pixel format stored in the file."""

    def __post_init__(self) -> None:
        if self.vcodec not in ("libsvtav1", "libx264"):
            raise ConfigError(f"vcodec must be 'libsvtav1' or 'libx264', got {self.vcodec!r}")
        if not 0 <= self.crf <= 63:
            raise ConfigError(f"crf must be in [0, 63], got {self.crf}")
        if self.gop < 1:
            raise ConfigError(f"gop must be >= 1, got {self.gop}")

    def options(self) -> dict[str, str]:
        opts = {"g": str(self.gop), "crf": str(self.crf)}
        if self.vcodec == "libsvtav1":
            opts["preset"] = "12"
        else:
            opts["bf"] = "0"  # no B-frames: decode order equals display order
        return opts


class EpisodeVideoEncoder:
    """Encodes one episode's frames into ``path`` as they arrive (no frame buffer in memory)."""

    def __init__(self, path: Path, fps: int, height: int, width: int, settings: VideoSettings) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.num_frames = 0
        self._container = av.open(str(self.path), mode="w", format="mp4")
        self._stream = self._container.add_stream(settings.vcodec, rate=fps, options=settings.options())
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, settings.pix_fmt

    def add(self, frame: np.ndarray) -> None:
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.num_frames
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.num_frames += 1

    def close(self) -> Path:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        return self.path

    def abort(self) -> None:
        try:
            self._stream.encode()  # end of stream first, or the encoder complains at teardown
            self._container.close()
        except Exception:  # noqa: BLE001 - a half-written temp file is deleted anyway
            pass
        self.path.unlink(missing_ok=True)


def encode_video(frames: np.ndarray, path: Path, fps: int, settings: VideoSettings | None = None) -> Path:
    """Encode ``[N, H, W, 3]`` uint8 frames into an mp4 at ``path`` (not atomic: write to a temp path)."""
    frames = np.asarray(frames)
    enc = EpisodeVideoEncoder(path, fps, frames.shape[1], frames.shape[2], settings or VideoSettings())
    for f in frames:
        enc.add(f)
    return enc.close()


def video_end_pts(path: Path) -> tuple[int, Fraction]:
    """(pts just past the last frame, stream time base) of an mp4: where the next episode starts."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        end = 0
        for p in c.demux(stream):
            if p.pts is not None:
                end = max(end, p.pts + (p.duration or 0))
        return end, stream.time_base


def concatenate_videos(paths: list[Path], out: Path) -> list[float]:
    """Remux ``paths`` one after the other into ``out``; returns each input's start time (seconds) in it."""
    starts: list[float] = []
    with av.open(str(paths[0])) as first:
        template = first.streams.video[0]
        with av.open(str(out), mode="w", format="mp4") as dst:
            out_stream = dst.add_stream_from_template(template, opaque=True)  # copy, no encoder
            offset = 0  # in the template's time base
            for path in paths:
                offset = _append_packets(path, dst, out_stream, template.time_base, offset, starts)
    return starts


def _append_packets(path: Path, dst: Any, out_stream: Any, time_base: Fraction, offset: int, starts: list) -> int:
    starts.append(float(offset * time_base))
    end = offset
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        scale = stream.time_base / time_base
        for p in src.demux(stream):
            if p.dts is None:
                continue  # the demuxer's empty flush packet
            pts = offset + round(p.pts * scale)
            p.pts, p.dts = pts, offset + round(p.dts * scale)
            p.duration = round((p.duration or 0) * scale)
            p.stream = out_stream
            p.time_base = time_base
            end = max(end, pts + p.duration)
            dst.mux(p)
    return end


def probe_video_info(path: Path) -> dict[str, Any]:
    """The ``info`` block lerobot stores for a video feature in ``meta/info.json``."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return {
            "video.height": s.codec_context.height,
            "video.width": s.codec_context.width,
            "video.codec": s.codec_context.codec.name if s.codec_context.codec.name != "libdav1d" else "av1",
            "video.pix_fmt": s.codec_context.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(s.average_rate)
            if s.average_rate and s.average_rate.denominator == 1
            else float(s.average_rate or 0),
            "video.channels": 3,
            "has_audio": any(True for _ in c.streams.audio),
        }


# ----------------------------------------------------------------------------------------------- decoding


def decode_frames(path: Path, timestamps: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Frames of ``path`` shown at ``timestamps`` (seconds), ``[n, H, W, 3]`` uint8.

    Seeks to the keyframe before the earliest timestamp and decodes forward to the latest, so cost
    grows with the span asked for, not with the file. Each timestamp must match a frame within
    ``tolerance_s``, else the episode table and the file disagree and a DatasetFormatError says so.
    """
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if not Path(path).exists():
        raise DatasetFormatError(f"{path} is missing (referenced by the episodes table)")
    lo, hi = float(timestamps.min()), float(timestamps.max())
    times, frames = [], []
    try:
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            c.seek(max(int(lo / stream.time_base), 0), stream=stream, backward=True, any_frame=False)
            for f in c.decode(stream):
                t = float(f.pts * stream.time_base)
                if t < lo - tolerance_s:
                    continue
                if t > hi + tolerance_s:
                    break
                times.append(t)
                frames.append(f.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as err:
        raise DatasetFormatError(f"{path} could not be decoded ({err})") from None
    if not frames:
        raise DatasetFormatError(f"{path} has no frames between {lo:.4f}s and {hi:.4f}s")
    times_arr = np.asarray(times)
    nearest = np.abs(times_arr[None, :] - timestamps[:, None]).argmin(axis=1)
    err = np.abs(times_arr[nearest] - timestamps)
    if (err > tolerance_s).any():
        bad = timestamps[err > tolerance_s][:3]
        raise DatasetFormatError(
            f"{path}: no frame within {tolerance_s:.4f}s of timestamps {bad.tolist()} (closest frames at "
            f"{times_arr[nearest][err > tolerance_s][:3].tolist()}); the episodes table and the video disagree"
        )
    return np.stack([frames[i] for i in nearest])


class FrameCache:
    """LRU of decoded episode segments (bounded in bytes), so windows inside an episode decode it once."""

    def __init__(self, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # DataLoader workers started with "spawn" pickle the dataset: ship the settings, not the cache or lock.
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])

    def frames(
        self, path: Path, seg_times: np.ndarray, wanted: np.ndarray, tolerance_s: float, frame_bytes: int
    ) -> np.ndarray:
        """Frames at ``wanted`` timestamps from the segment whose frames show at ``seg_times``."""
        if frame_bytes * len(seg_times) > self.max_bytes // 4:  # too big to cache: decode only what is asked
            return decode_frames(path, wanted, tolerance_s)
        key = (str(path), float(seg_times[0]), float(seg_times[-1]), len(seg_times))
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
        if hit is None:
            hit = (np.asarray(seg_times, dtype=np.float64), decode_frames(path, seg_times, tolerance_s))
            self._put(key, hit)
        times, frames = hit
        idx = np.abs(times[None, :] - np.asarray(wanted)[:, None]).argmin(axis=1)
        if (np.abs(times[idx] - wanted) > tolerance_s).any():
            raise DatasetFormatError(
                f"{path}: timestamps {np.asarray(wanted).tolist()[:3]}... fall outside the episode segment"
            )
        return frames[idx]

    def _put(self, key: tuple, item: tuple[np.ndarray, np.ndarray]) -> None:
        with self._lock:
            self._items[key] = item
            self._bytes += item[1].nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= old[1].nbytes
