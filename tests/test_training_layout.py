"""flowgrad.training as a package: one concern per module, every public name where it was."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import flowgrad as fg
from flowgrad import training
from flowgrad.optim import catalogue

MODULES = ("config", "datasets", "model", "loop", "rundir", "evaluation", "plots")

# The 37 public names of the former flowgrad/training.py module.
PUBLIC = """
DATASETS OPTIMIZERS SCHEDULES DEFAULT_LR DEFAULT_LR_28X28 default_lr CHECKPOINT_FILE
CONFIG_FILE METRICS_FILE CURVES_FILE CONFUSION_FILE METRIC_COLUMNS DataUnavailable RunError
ImageError TrainConfig EpochMetrics RunResult DatasetSplits build_reference_model
make_optimizer load_dataset predict_logits read_metrics plot_curves format_epoch train
benchmark_epoch Run load_run Evaluation confusion_matrix plot_confusion evaluate
preprocess_image Prediction predict
""".split()


def test_every_former_public_name_is_importable_from_the_package():
    assert len(PUBLIC) == 37
    for name in PUBLIC:
        assert getattr(training, name) is getattr(fg.training, name), name
    assert set(PUBLIC) <= set(training.__all__)  # later additions (the CNN) come on top


def test_each_module_declares_its_names_and_the_package_reexports_them_all():
    seen: dict[str, str] = {}
    for sub in MODULES:
        module = importlib.import_module(f"flowgrad.training.{sub}")
        assert module.__all__, sub
        for name in module.__all__:
            assert name not in seen, f"{name} in both {seen.get(name)} and {sub}"
            seen[name] = sub
            assert getattr(training, name) is getattr(module, name)
    images = importlib.import_module("flowgrad.data.images")
    assert set(seen) | set(images.__all__) == set(training.__all__)
    assert training.preprocess_image is images.preprocess_image
    assert training.ImageError is images.ImageError


def test_optimizer_names_and_tuned_rates_follow_the_catalogue():
    assert training.OPTIMIZERS == tuple(catalogue.OPTIMIZERS)
    assert set(training.DEFAULT_LR) == set(training.DEFAULT_LR_28X28) == set(catalogue.OPTIMIZERS)
    opt = training.make_optimizer("nesterov", training.build_reference_model(3, 2, 2).parameters())
    assert type(opt) is catalogue.OPTIMIZERS["nesterov"].cls
    assert opt.param_groups[0]["lr"] == training.DEFAULT_LR["nesterov"]
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; choose one of sgd"):
        training.make_optimizer("lbfgs", [])


def test_preprocessing_lives_with_the_data_and_checks_the_dataset():
    from flowgrad.data.images import preprocess_image

    image = np.zeros((40, 30), dtype=np.float32)
    image[8:32, 12:16] = 1.0  # a "1"
    for dataset, shape in (("digits", (8, 8)), ("mnist", (28, 28)), ("fashion-mnist", (28, 28))):
        pytest.importorskip("PIL")
        out = preprocess_image(image, dataset)
        assert out.shape == shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0 and out.max() > 0.5
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; choose one of digits, mnist"):
        preprocess_image(image, "cifar")


def test_evaluation_loss_and_probabilities_are_the_librarys_own(tmp_path):
    pytest.importorskip("PIL")
    result = training.train(training.TrainConfig(epochs=1, hidden=8, out=tmp_path / "r"),
                            progress=False, plot=False)
    evaluation = training.evaluate(result.run_dir, plot=False)
    x, y = fg.data.load_digits("test")
    logits = training.predict_logits(result.model, x.reshape(len(x), -1)).astype(np.float64)
    # The float64 log-softmax reference, written out in NumPy.
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert evaluation.loss == pytest.approx(-log_p[np.arange(len(y)), y].mean(), rel=1e-12)
    assert result.metrics[-1].test_loss == pytest.approx(evaluation.loss, rel=1e-12)
    (pred,) = training.predict(result.run_dir, [x[0]])
    z = training.predict_logits(result.model, pred.input.reshape(1, -1)).astype(np.float64)
    e = np.exp(z - z.max())
    np.testing.assert_allclose(pred.probabilities, (e / e.sum())[0], rtol=1e-12)
    assert pred.probabilities.dtype == np.float64
