"""One training run at a time for ``flowgrad explore``, in a child process.

:class:`TrainingJob` starts :mod:`flowgrad.explore.worker` with the run's settings, reads its
JSON lines on a thread, and keeps what it reported (the epochs so far, the final confusion
matrix, or the error) for the page's live stream. A second start while one runs is refused
with HTTP 409. :meth:`TrainingJob.predict` classifies a drawing with the run's latest
checkpoint, through the same ``flowgrad.training.predict`` as ``flowgrad predict``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from flowgrad.explore.api import ApiError, Limits, _Body

__all__ = ["TrainingJob", "available_models"]

_PNG_PREFIX = "data:image/png;base64,"


def available_models() -> tuple[str, ...]:
    """The networks ``flowgrad.training`` can train (``"mlp"``, and ``"cnn"`` where offered)."""
    from flowgrad import training

    return tuple(getattr(training, "MODELS", ("mlp",)))


def _config_fields() -> set[str]:
    from flowgrad.training import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)}


def _last_line(run_dir: Path | None) -> str:
    try:
        lines = (run_dir / "worker.log").read_text(errors="replace").strip().splitlines()
    except (OSError, TypeError):
        return ""
    return f": {lines[-1]}" if lines else ""


class TrainingJob:
    """The server's one training run: start, stop, live status and predictions.

    Args:
        limits: request limits (epochs, hidden width, image size).
        lock: the lock every flowgrad computation in the server process holds.
    """

    def __init__(self, limits: Limits, lock: threading.Lock):
        self.limits = limits
        self._compute = lock
        self._lock = threading.Lock()
        self._root = Path(tempfile.mkdtemp(prefix="flowgrad-explore-"))
        self._process: subprocess.Popen | None = None
        self._run = 0
        self._state = "idle"
        self._config: dict[str, Any] | None = None
        self._epochs: list[dict[str, Any]] = []
        self._result: dict[str, Any] | None = None
        self._error: str | None = None
        self._run_dir: Path | None = None
        self._loaded: tuple[Path, float, Any] | None = None
        self._version = 0  # bumped on every change, for the event stream

    # -- status ---------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def status(self) -> dict[str, Any]:
        """``GET /api/train``: the run's state, settings, epochs so far, result, folder."""
        with self._lock:
            return {
                "run": self._run,
                "state": self._state,
                "config": self._config,
                "epochs": list(self._epochs),
                "result": self._result,
                "error": self._error,
                # The run folder flowgrad train writes (flowgrad evaluate/predict read it);
                # it lives in a temporary folder removed when the server stops.
                "run_dir": None if self._run_dir is None else str(self._run_dir),
            }

    def _bump(self) -> None:
        self._version += 1

    # -- start and stop -------------------------------------------------------------------

    def _settings(self, body: Any) -> dict[str, Any]:
        from flowgrad.training import OPTIMIZERS, TrainConfig

        b = _Body(body, ("model", "epochs", "hidden", "batch_size", "lr", "optimizer",
                         "schedule", "seed"))
        settings: dict[str, Any] = {
            "dataset": "digits",
            "epochs": b.integer("epochs", 10, 1, self.limits.max_epochs),
            "hidden": b.integer("hidden", 64, 1, self.limits.max_hidden),
            "batch_size": b.integer("batch_size", 32, 1, 2048),
            "seed": b.integer("seed", 0, 0, 2**31 - 1),
            "optimizer": b.string("optimizer", "sgd", max_length=40),
            "schedule": b.string("schedule", "cosine", max_length=40),
        }
        if settings["optimizer"] not in OPTIMIZERS:
            raise ApiError(400, f"unknown optimizer {settings['optimizer']!r}; known: "
                                f"{', '.join(OPTIMIZERS)}")
        if b.has("lr"):
            settings["lr"] = b.number("lr", positive=True)
        model = b.string("model", "mlp", max_length=40)
        models = available_models()
        if model not in models:
            raise ApiError(400, f"unknown model {model!r}; this flowgrad trains: "
                                f"{', '.join(models)}")
        if "model" in _config_fields():
            settings["model"] = model
        try:
            TrainConfig(**settings)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc)) from None
        return settings

    def start(self, body: Any) -> dict[str, Any]:
        """``POST /api/train``: start a run on the embedded digits (409 if one is running)."""
        settings = self._settings(body)
        with self._lock:
            if self._state in ("running", "stopping"):
                raise ApiError(409, "a training run is already in progress; stop it first "
                                    "(one run at a time)")
            self._run += 1
            run_dir = self._root / f"run-{self._run}"
            env = dict(os.environ)
            # The child must import this very flowgrad (a checkout, not another install).
            package_parent = str(Path(__file__).resolve().parents[2])
            env["PYTHONPATH"] = os.pathsep.join(
                [package_parent, *filter(None, [env.get("PYTHONPATH")])])
            # The child's stderr goes to a file: its last line explains a crash.
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir / "worker.log", "w") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-m", "flowgrad.explore.worker"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    text=True, env=env)
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"config": settings,
                                                  "run_dir": str(run_dir)}) + "\n")
            self._process.stdin.flush()
            self._state, self._config, self._run_dir = "running", settings, run_dir
            self._epochs, self._result, self._error = [], None, None
            self._bump()
            threading.Thread(target=self._read, args=(self._process, self._run),
                             daemon=True).start()
            return {"run": self._run, "state": self._state, "config": settings}

    def stop(self) -> dict[str, Any]:
        """``POST /api/train/stop``: ask the run to stop after its current epoch."""
        with self._lock:
            if self._state == "running" and self._process is not None:
                self._state = "stopping"
                try:
                    assert self._process.stdin is not None
                    self._process.stdin.write("stop\n")
                    self._process.stdin.flush()
                except OSError:
                    pass  # it already ended; the reader reports how
                self._bump()
            return {"run": self._run, "state": self._state}

    def _read(self, process: subprocess.Popen, run: int) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            event = message.pop("event", None)
            with self._lock:
                if run != self._run:
                    return
                if event == "epoch":
                    self._epochs.append(message)
                elif event == "done":
                    self._result = message
                    self._state = "stopped" if message.get("stopped") else "done"
                elif event == "error":
                    self._error = message.get("message", "training failed")
                    self._state = "failed"
                self._bump()
        process.wait()
        with self._lock:
            if run == self._run and self._state in ("running", "stopping"):
                self._error = (f"the training process ended unexpectedly (exit "
                               f"{process.returncode}){_last_line(self._run_dir)}")
                self._state = "failed"
                self._bump()

    def close(self) -> None:
        """End a running child and remove the run folders (at server shutdown)."""
        with self._lock:
            process, self._process = self._process, None
            self._run += 1  # readers of the old run stop reporting
            if self._state in ("running", "stopping"):
                self._state = "stopped"
            self._bump()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self._root, ignore_errors=True)

    # -- predict --------------------------------------------------------------------------

    def _trained(self) -> Any:
        """The run's latest checkpoint, loaded (cached until the checkpoint changes)."""
        from flowgrad.training import CHECKPOINT_FILE, load_run

        with self._lock:
            run_dir = self._run_dir
        checkpoint = None if run_dir is None else run_dir / CHECKPOINT_FILE
        if checkpoint is None or not checkpoint.is_file():
            raise ApiError(409, "no trained network yet: train at least one epoch first")
        mtime = checkpoint.stat().st_mtime
        if self._loaded is None or self._loaded[:2] != (run_dir, mtime):
            for _ in range(3):
                try:
                    self._loaded = (run_dir, mtime, load_run(run_dir))
                    break
                except ValueError:  # caught the checkpoint mid-replace; it is atomic, retry
                    time.sleep(0.05)
            else:
                raise ApiError(409, "the run's checkpoint cannot be read yet; try again")
        return self._loaded[2]

    def predict(self, body: Any) -> dict[str, Any]:
        """``POST /api/predict``: classify a drawing, as ``flowgrad predict --json`` does.

        Args:
            body: ``{"image": "data:image/png;base64,..."}``, a PNG of a digit, any size up
                to the limit, dark on light or light on dark (or strokes on transparency).

        Returns:
            ``flowgrad predict --json``'s entry for the image (``class``, ``name``,
            ``probability``, ``probabilities``) plus ``input``: the preprocessed image the
            network saw (8x8 for the digits).
        """
        from PIL import Image, UnidentifiedImageError

        from flowgrad.training import ImageError, predict

        b = _Body(body, ("image",))
        data = b.string("image", max_length=self.limits.max_body_bytes)
        if not data.startswith(_PNG_PREFIX):
            raise ApiError(400, "'image' must be a PNG data URL (data:image/png;base64,...)")
        try:
            raw = base64.b64decode(data[len(_PNG_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "'image' is not valid base64") from None
        try:
            image = Image.open(io.BytesIO(raw), formats=["PNG"])
            side = max(image.size)
            if side > self.limits.max_image_side:
                raise ApiError(413, f"the image is {image.size[0]}x{image.size[1]} pixels; "
                                    f"at most {self.limits.max_image_side} per side")
            image.load()
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            raise ApiError(400, "'image' is not a readable PNG") from None
        with self._compute:
            run = self._trained()
            try:
                (p,) = predict(run, [image])
            except ImageError as exc:
                raise ApiError(400, str(exc).replace("the image", "the drawing")) from None
        answer = p.as_dict(run.classes)
        answer["image"] = "drawing"
        answer["input"] = p.input.tolist()
        return answer
