"""Render one CartPole / Pendulum episode to a GIF (Pillow) or MP4 (ffmpeg, if installed).

Frames are drawn from the recorded environment states with Pillow, so no display, pygame or
gymnasium renderer is needed. ``StateRecorder`` keeps ``env.unwrapped.state`` after the reset and
after every step.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image, ImageDraw

from spikeforge.io import atomic_write

__all__ = ["StateRecorder", "draw_frame", "write_animation"]

SIZE = (480, 320)
FPS = {"cartpole": 50, "pendulum": 20}  # the environments' own time steps (0.02 s, 0.05 s)


class StateRecorder(gym.Wrapper):
    """Records ``env.unwrapped.state`` (a copy) after ``reset`` and every ``step``."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.states: list[np.ndarray] = []
        self.rewards: list[float] = []

    def reset(self, **kwargs: Any) -> Any:
        out = self.env.reset(**kwargs)
        self.states = [np.array(self.env.unwrapped.state, dtype=np.float64)]
        self.rewards = []
        return out

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.states.append(np.array(self.env.unwrapped.state, dtype=np.float64))
        self.rewards.append(float(out[1]))
        return out


def draw_frame(task: str, state: np.ndarray, caption: str) -> Image.Image:
    """One frame: CartPole (cart and pole; the track spans x in [-2.4, 2.4]) or Pendulum
    (the rod, upright is θ = 0), with ``caption`` at the top."""
    w, h = SIZE
    img = Image.new("RGB", SIZE, "white")
    d = ImageDraw.Draw(img)
    if task == "cartpole":
        x, _, theta, _ = state
        scale = w / 6.0
        ground = h * 0.7
        cx = w / 2 + x * scale
        d.line([(w / 2 - 2.4 * scale, ground), (w / 2 + 2.4 * scale, ground)], fill="black")
        d.rectangle([cx - 25, ground - 15, cx + 25, ground + 15], fill=(80, 80, 80))
        tip = (cx + math.sin(theta) * scale, ground - math.cos(theta) * scale)
        d.line([(cx, ground), tip], fill=(200, 120, 40), width=6)
    elif task == "pendulum":
        theta = state[0]
        centre, length = (w / 2, h * 0.55), h * 0.38
        tip = (centre[0] + math.sin(theta) * length, centre[1] - math.cos(theta) * length)
        d.line([centre, tip], fill=(200, 60, 60), width=8)
        d.ellipse([centre[0] - 5, centre[1] - 5, centre[0] + 5, centre[1] + 5], fill="black")
    else:
        raise ValueError(f"cannot draw task {task!r}")
    d.text((8, 8), caption, fill="black")
    return img


def write_animation(frames: list[Image.Image], path: str | Path, fps: int) -> Path:
    """Frames to ``.gif`` (Pillow) or ``.mp4`` (the ``ffmpeg`` program), written atomically."""
    path = Path(path)
    if not frames:
        raise ValueError("no frames to write")
    suffix = path.suffix.lower()
    if suffix == ".gif":

        def gif(fh: Any) -> None:
            frames[0].save(
                fh,
                format="GIF",
                save_all=True,
                append_images=frames[1:],
                duration=max(1, round(1000 / fps)),
                loop=0,
            )

        return atomic_write(path, gif)
    if suffix == ".mp4":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise RuntimeError(
                "writing .mp4 needs the ffmpeg program on PATH (e.g. apt-get install ffmpeg); "
                "write a .gif instead"
            )
        with tempfile.TemporaryDirectory() as tmp:
            for i, frame in enumerate(frames):
                frame.save(Path(tmp) / f"{i:06d}.png")
            out = Path(tmp) / "out.mp4"
            subprocess.run(
                [
                    ffmpeg,
                    "-loglevel",
                    "error",
                    "-framerate",
                    str(fps),
                    "-i",
                    str(Path(tmp) / "%06d.png"),
                    "-pix_fmt",
                    "yuv420p",
                    str(out),
                ],
                check=True,
            )
            data = out.read_bytes()
        return atomic_write(path, lambda fh: fh.write(data))
    raise ValueError(f"cannot write {path.name!r}: choose a .gif or .mp4 file name")
