"""`--batch-size auto`, the half-batch retry on out-of-memory, and `--compile`, with a fake OOM."""

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from zoomkit.engine.forward import CPU_AUTO_BATCH, CropClassifier, auto_batch_size, probe_batch_size
from zoomkit.specs import LoadedModel
from zoomkit.testing import make_tiny_module

CPU = torch.device("cpu")


class OutOfMemoryAbove(nn.Module):
    """Wraps a module and raises CUDA's out-of-memory error for batches larger than `limit`."""

    def __init__(self, module: nn.Module, limit: int):
        super().__init__()
        self.inner, self.limit, self.sizes = module, limit, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return self.inner(x)


def tiny_loaded(module=None):
    return LoadedModel("tiny", module if module is not None else make_tiny_module(), (0.485, 0.456, 0.406),
                       (0.229, 0.224, 0.225))


def crops(n, size=32, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))


def test_probe_takes_the_largest_candidate_that_fits():
    tried, cleared = [], []

    def trial(size):
        tried.append(size)
        if size > 100:
            raise torch.OutOfMemoryError("fake")

    assert probe_batch_size(trial, on_oom=lambda: cleared.append(1)) == 64
    assert tried == [1024, 512, 256, 128, 64] and len(cleared) == 4


def test_probe_lets_other_errors_through_and_fails_when_nothing_fits():
    def broken(size):
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        probe_batch_size(broken)

    def never(size):
        raise torch.OutOfMemoryError("fake")

    with pytest.raises(torch.OutOfMemoryError):
        probe_batch_size(never, candidates=(4, 2, 1))


def test_auto_batch_size_on_cpu_is_the_fixed_default():
    assert auto_batch_size(CropClassifier(tiny_loaded(), CPU, None)) == CPU_AUTO_BATCH == 64


def test_out_of_memory_halves_the_chunk_and_gives_the_same_answers():
    batch = crops(8)
    reference = CropClassifier(tiny_loaded(), CPU, None)(batch)
    wrapped = OutOfMemoryAbove(make_tiny_module(), limit=3)
    notices = []
    classifier = CropClassifier(tiny_loaded(wrapped), CPU, None, on_notice=notices.append)
    out = classifier(batch)
    # 8 fails, 4 fails, then chunks of 2: [8, 4, 2, 2, 2, 2]
    assert wrapped.sizes == [8, 4, 2, 2, 2, 2]
    assert classifier.max_chunk == 2 and len(notices) == 2 and "retrying with 2" in notices[-1]
    np.testing.assert_array_equal(out.top1, reference.top1)
    np.testing.assert_allclose(out.confidence, reference.confidence, rtol=1e-5)
    np.testing.assert_allclose(out.topk_prob, reference.topk_prob, rtol=1e-5)
    # the next batch goes straight to chunks of 2
    wrapped.sizes.clear()
    classifier(crops(5, seed=1))
    assert wrapped.sizes == [2, 2, 1]


def test_out_of_memory_with_a_single_crop_is_raised():
    classifier = CropClassifier(tiny_loaded(OutOfMemoryAbove(make_tiny_module(), limit=0)), CPU, None)
    with pytest.raises(torch.OutOfMemoryError):
        classifier(crops(2))


def test_other_errors_are_not_retried():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch")

    classifier = CropClassifier(tiny_loaded(Broken()), CPU, None)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        classifier(crops(4))
    assert classifier.max_chunk is None


def test_compiled_model_pads_short_batches_to_the_static_size():
    sizes = []
    module = make_tiny_module()
    module.register_forward_pre_hook(lambda _, args: sizes.append(args[0].shape[0]))
    reference = CropClassifier(tiny_loaded(), CPU, None)(crops(3))
    classifier = CropClassifier(tiny_loaded(module), CPU, None, compile=True, compile_backend="eager")
    classifier.static_batch = 8
    out = classifier(crops(3))
    assert sizes == [8] and out.top1.shape == (3,)
    np.testing.assert_array_equal(out.top1, reference.top1)
    np.testing.assert_allclose(out.entropy, reference.entropy, rtol=1e-5)


def test_cli_batch_size_auto_on_cpu(run_cli, tiny_model, sample_manifest, tmp_path):
    root = sample_manifest(n=1)
    result = run_cli("oracle", "-m", tiny_model, "-d", "manifest", "--data-root", root, "--crops", "center",
                     "-o", tmp_path, "-j", "0", "-b", "auto")
    assert result.exit_code == 0, result.output
    (path,) = tmp_path.glob("*.h5")
    with h5py.File(path) as f:
        assert f.attrs["batch_size"] == 64


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_cli_rejects_bad_batch_sizes(run_cli, tiny_model, tmp_path, value):
    result = run_cli("oracle", "-m", tiny_model, "-o", tmp_path, "-b", value)
    assert result.exit_code == 2 and "batch-size" in result.output
