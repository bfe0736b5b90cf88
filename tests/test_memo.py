"""MEMO core on hand-computed cases: marginal entropy, its gradient step, BN prior blending, episodic
reset."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from zoomkit.engine.memo import (
    MemoAdapter,
    MemoConfig,
    StateSnapshot,
    blended_batch_norm,
    build_memo,
    make_optimizer,
    marginal_entropy,
    prior_weight,
)
from zoomkit.engine.tta import TTAOptions
from zoomkit.specs import LoadedModel
from zoomkit.testing import make_tiny_module


def test_marginal_entropy_of_opposite_views_is_log2():
    # softmax rows (1/4, 3/4) and (3/4, 1/4): the mean is (1/2, 1/2), entropy ln 2
    logits = torch.tensor([[0.0, math.log(3)], [math.log(3), 0.0]], dtype=torch.float64)
    loss, log_mean = marginal_entropy(logits)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-12)
    assert torch.allclose(log_mean.exp(), torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_marginal_entropy_is_not_the_mean_entropy():
    # rows (1/2, 1/2) and (3/4, 1/4): mean (5/8, 3/8)
    logits = torch.tensor([[0.0, 0.0], [math.log(3), 0.0]], dtype=torch.float64)
    loss, _ = marginal_entropy(logits)
    expected = -(5 / 8 * math.log(5 / 8) + 3 / 8 * math.log(3 / 8))
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    mean_of_entropies = (math.log(2) - (0.75 * math.log(0.75) + 0.25 * math.log(0.25))) / 2
    assert loss.item() != pytest.approx(mean_of_entropies, abs=1e-3)


def _linear(weight, bias):
    layer = nn.Linear(2, 3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float64))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return layer


def _expected_step(weight, bias, views, lr):
    """One SGD step on the marginal entropy, from the closed-form gradient (no autograd).

    dH/dz_ij = -(1/B) p_ij (log pbar_j - sum_k p_ik log pbar_k); dW = sum_i g_i x_i^T; db = sum_i g_i.
    """
    weight, bias, views = np.array(weight), np.array(bias), np.array(views)
    z = views @ weight.T + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    log_pbar = np.log(p.mean(axis=0))
    g = -(p * (log_pbar[None, :] - (p * log_pbar[None, :]).sum(axis=1, keepdims=True))) / len(views)
    return weight - lr * g.T @ views, bias - lr * g.sum(axis=0)


def test_one_sgd_step_matches_the_closed_form_gradient():
    weight, bias = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.5, -0.5]
    views = [[1.0, 0.0], [0.0, 2.0]]
    layer = _linear(weight, bias)
    adapter = MemoAdapter(layer, MemoConfig(augmentations=2, optimizer="sgd", lr=0.5))
    adapter.adapt(torch.tensor(views, dtype=torch.float64))
    new_weight, new_bias = _expected_step(weight, bias, views, lr=0.5)
    np.testing.assert_allclose(layer.weight.detach().numpy(), new_weight, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.detach().numpy(), new_bias, rtol=0, atol=1e-12)
    assert not np.allclose(new_weight, weight)  # the step is visible


def test_prediction_uses_the_adapted_weights_then_the_model_is_restored():
    weight, bias = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.5, -0.5]
    views, center = [[1.0, 0.0], [0.0, 2.0]], [[0.5, -1.0]]
    layer = _linear(weight, bias)
    adapter = MemoAdapter(layer, MemoConfig(augmentations=2, optimizer="sgd", lr=0.5))
    logits = adapter(torch.tensor(views, dtype=torch.float64), torch.tensor(center, dtype=torch.float64))
    new_weight, new_bias = _expected_step(weight, bias, views, lr=0.5)
    np.testing.assert_allclose(logits.numpy(), np.array(center) @ new_weight.T + new_bias, atol=1e-12)
    assert layer.weight.detach().numpy().tolist() == weight
    assert layer.bias.detach().numpy().tolist() == bias


def test_memo_optimizer_defaults():
    layer = nn.Linear(2, 2)
    sgd = make_optimizer(list(layer.parameters()), "auto", layer)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["lr"] == 2.5e-4
    assert sgd.param_groups[0]["momentum"] == 0 and sgd.param_groups[0]["weight_decay"] == 0

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 1)

    model = Transformer()
    adamw = make_optimizer(list(model.parameters()), "auto", model)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["lr"] == 1e-5 and adamw.param_groups[0]["weight_decay"] == 0.01


def test_prior_weight():
    assert prior_weight(16) == 16 / 17
    assert prior_weight(0) == 0.0
    assert prior_weight(-1) == 1.0


def _bn(cls=nn.BatchNorm2d, **kwargs):
    layer = cls(1, eps=0.0, **kwargs).double().eval()
    with torch.no_grad():
        layer.running_mean.fill_(1.0)
        layer.running_var.fill_(4.0)
        layer.weight.fill_(2.0)
        layer.bias.fill_(0.5)
    return layer


def test_bn_prior_blends_running_and_batch_statistics():
    # one image, values 2 and 4: batch mean 3, unbiased variance 2
    x = torch.tensor([2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 2)
    layer = _bn()
    original_forward = nn.BatchNorm2d.forward
    running_mean, running_var = layer.running_mean, layer.running_var
    with blended_batch_norm(layer, prior_weight(16)):
        y = layer(x).flatten().tolist()
        assert nn.BatchNorm2d.forward is original_forward  # nothing patched on the class
    mean, var = (16 * 1 + 3) / 17, (16 * 4 + 2) / 17  # 19/17 and 66/17
    assert y == pytest.approx([2 * (2 - mean) / math.sqrt(var) + 0.5, 2 * (4 - mean) / math.sqrt(var) + 0.5],
                              abs=1e-12)
    # outside the block: plain eval-mode normalisation with the untouched running statistics
    assert layer(x).flatten().tolist() == pytest.approx([2 * (2 - 1) / 2 + 0.5, 2 * (4 - 1) / 2 + 0.5])
    assert layer.running_mean is running_mean and layer.running_var is running_var
    assert running_mean.item() == 1.0 and running_var.item() == 4.0


def test_bn_prior_zero_uses_batch_statistics_and_other_models_are_untouched():
    x = torch.tensor([2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 2)
    layer, other = _bn(), _bn()
    with blended_batch_norm(layer, prior_weight(0)):
        y = layer(x).flatten().tolist()
        untouched = other(x).flatten().tolist()
    assert y == pytest.approx([2 * (2 - 3) / math.sqrt(2) + 0.5, 2 * (4 - 3) / math.sqrt(2) + 0.5])
    assert untouched == pytest.approx([1.5, 3.5])


def test_bn_prior_keeps_timm_batchnorm_act_activation():
    from timm.layers import BatchNormAct2d

    layer = _bn(BatchNormAct2d, act_layer=nn.ReLU)
    x = torch.tensor([2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 2)
    with torch.no_grad():
        layer.bias.fill_(-2.0)
    with blended_batch_norm(layer, prior_weight(16)):
        y = layer(x).flatten().tolist()
    mean, var = 19 / 17, 66 / 17
    expected = [max(0.0, 2 * (v - mean) / math.sqrt(var) - 2.0) for v in (2.0, 4.0)]
    assert y == pytest.approx(expected, abs=1e-12)
    assert y[0] == 0.0  # the ReLU of BatchNormAct2d still ran


def _state(module):
    return {k: v.detach().clone() for k, v in [*module.named_parameters(), *module.named_buffers()]}


def test_episodic_restore_is_bit_exact_after_each_image():
    module = make_tiny_module(num_classes=10)
    before = _state(module)
    adapter = MemoAdapter(module, MemoConfig(augmentations=4, optimizer="sgd", lr=0.1))
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        views = torch.randn(4, 3, 64, 64, generator=generator)
        center = torch.randn(1, 3, 64, 64, generator=generator)
        adapter(views, center)
        after = _state(module)
        assert after.keys() == before.keys()
        for name, tensor in before.items():
            assert torch.equal(after[name], tensor), name
        assert not adapter.optimizer.state
        assert all(p.grad is None for p in module.parameters())


def test_adapt_changes_weights_and_reset_restores_them_with_adamw_state_cleared():
    module = make_tiny_module(num_classes=10)
    before = _state(module)
    adapter = MemoAdapter(module, MemoConfig(augmentations=4, optimizer="adamw", lr=1e-2))
    adapter.adapt(torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    changed = _state(module)
    assert not torch.equal(changed["0.weight"], before["0.weight"])
    assert adapter.optimizer.state  # Adam moments exist after the step
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):  # eval(): buffers untouched
        assert torch.equal(changed[name], before[name])
    adapter.reset()
    assert not adapter.optimizer.state
    for name, tensor in before.items():
        assert torch.equal(_state(module)[name], tensor), name


def test_snapshot_restores_buffers_too():
    module = make_tiny_module(num_classes=10)
    snapshot = StateSnapshot(module)
    expected = module[1].running_var.clone()
    with torch.no_grad():
        module[1].running_var.mul_(3)
        module[0].weight.add_(1)
    snapshot.restore()
    assert torch.equal(module[1].running_var, expected)


def test_build_memo_counts_passes_and_is_reproducible():
    from PIL import Image

    model = LoadedModel("tiny", make_tiny_module(num_classes=10), mean=(0.5,) * 3, std=(0.5,) * 3,
                        num_classes=10)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 100, 3), dtype=np.uint8))
    options = TTAOptions(augmentations=3)
    before = _state(model.module)
    for views in ("augmix", "rrc"):
        classify = build_memo(model, options, views=views)
        first, cost = classify(image, np.random.default_rng(5))
        again, _ = classify(image, np.random.default_rng(5))
        assert cost == {"forward": 4, "backward": 3}
        assert first.shape == (10,) and torch.equal(first, again)
    for name, tensor in before.items():
        assert torch.equal(_state(model.module)[name], tensor), name


def test_adapter_blends_batch_norm_while_adapting_and_predicting():
    # BN + Flatten: an image of 1 x 1 x 2 pixels becomes 2 logits
    module = nn.Sequential(_bn(), nn.Flatten())
    seen = []
    module[0].register_forward_hook(lambda layer, args, out: seen.append(out.detach().clone()))
    adapter = MemoAdapter(module, MemoConfig(augmentations=2, optimizer="sgd", lr=0.0))
    views = torch.tensor([[2.0, 4.0], [0.0, 6.0]], dtype=torch.float64).view(2, 1, 1, 2)
    center = torch.tensor([2.0, 4.0], dtype=torch.float64).view(1, 1, 1, 2)
    logits = adapter(views, center)
    # adapting: the views' mean 3, unbiased variance (1 + 1 + 9 + 9) / 3 = 20/3, blended 16:1 with (1, 4)
    mean, var = 19 / 17, (64 + 20 / 3) / 17
    expected = [2 * (v - mean) / math.sqrt(var) + 0.5 for v in (2.0, 4.0, 0.0, 6.0)]
    assert seen[0].flatten().tolist() == pytest.approx(expected, abs=1e-12)
    # predicting: the single centre image's own statistics (mean 3, variance 2)
    mean, var = 19 / 17, 66 / 17
    assert logits.flatten().tolist() == pytest.approx([2 * (v - mean) / math.sqrt(var) + 0.5 for v in (2, 4)],
                                                      abs=1e-12)
