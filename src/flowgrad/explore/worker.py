"""The training process of ``flowgrad explore``: ``python -m flowgrad.explore.worker``.

The server trains in a child process, so that a training run never shares flowgrad's
global state (grad mode, the random generator) with the requests the server answers
meanwhile, and so that the server stays responsive. The protocol is JSON lines:

* stdin, first line: ``{"config": {...TrainConfig fields...}, "run_dir": "..."}``; any later
  line, or the end of stdin (the server went away), asks the run to stop after the current
  epoch;
* stdout, one object per line: ``{"event": "started", ...}``, then ``{"event": "epoch",
  ...EpochMetrics}`` after every epoch, then ``{"event": "done", ...}`` (with the test
  set's confusion matrix) or ``{"event": "error", "message": ...}``.

The run folder is the one ``flowgrad train`` writes, so ``flowgrad evaluate`` and ``flowgrad
predict`` work on it too.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from typing import Any


def _send(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def main() -> int:
    request = json.loads(sys.stdin.readline())
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.readline()  # a line, or EOF when the server is gone
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        from flowgrad.training import TrainConfig, evaluate, train

        config = TrainConfig(**request["config"], out=request["run_dir"])
        _send("started", config=dataclasses.asdict(config))

        def on_epoch(metrics: Any) -> bool:
            _send("epoch", **dataclasses.asdict(metrics))
            return stop.is_set()

        result = train(config, progress=False, plot=False, on_epoch=on_epoch)
        evaluation = evaluate(result.run_dir, plot=False)
        _send(
            "done",
            stopped=stop.is_set() and len(result.metrics) < config.epochs,
            epochs=len(result.metrics),
            accuracy=evaluation.accuracy,
            loss=evaluation.loss,
            classes=list(evaluation.classes),
            confusion=evaluation.confusion.tolist(),
            per_class_accuracy=[None if v != v else float(v)
                                for v in evaluation.per_class_accuracy],
            seconds=result.seconds,
        )
    except Exception as exc:  # reported to the page as one line; the server lives on
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        _send("error", message=message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
