"""Cross-Iteration BN (Yao et al. 2021) and Darknet's CmBN: the checks of reference/cbn.md, in float64."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layers.cbn_convert import convert_to_cbn
from layers.cross_iteration_bn import CrossIterationBatchNorm2d, conv_stat_derivatives
from models import create_backbone, list_backbones


@pytest.fixture(autouse=True)
def float64_by_default():
    """Float64 where it matters (module-scoped, restored afterwards)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


class ConvNorm(nn.Module):
    def __init__(self, norm: nn.Module, groups: int = 1, **conv_kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, padding=1, bias=False, groups=groups, **conv_kw)
        self.norm = norm

    def forward(self, x):
        return self.norm(self.conv(x))


def _pair(window=4, burnin=0, mode="cbn", seed=0, **conv_kw):
    torch.manual_seed(seed)
    bn_net = ConvNorm(nn.BatchNorm2d(6), **conv_kw)
    with torch.no_grad():
        bn_net.norm.weight.uniform_(0.5, 1.5)
        bn_net.norm.bias.uniform_(-0.5, 0.5)
    cbn_net = copy.deepcopy(bn_net)
    convert_to_cbn(
        cbn_net, window=window, burnin=burnin, mode=mode, example_input=torch.zeros(1, 4, 8, 8)
    )
    return bn_net, cbn_net


def _batches(count, seed=1, n=3):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 4, 8, 8, generator=generator) for _ in range(count)]


def _step(net, index):
    for module in net.modules():
        if isinstance(module, CrossIterationBatchNorm2d):
            module.set_schedule_step(index, 100)


@pytest.mark.parametrize(("window", "burnin"), [(1, 0), (4, 10)])
def test_window_1_and_burnin_are_batchnorm(window, burnin):
    bn_net, cbn_net = _pair(window=window, burnin=burnin)
    bn_net.train(), cbn_net.train()
    for index, x in enumerate(_batches(4)):
        _step(cbn_net, index)
        x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        y1, y2 = bn_net(x1), cbn_net(x2)
        torch.testing.assert_close(y2, y1, rtol=1e-10, atol=1e-10)
        grad = torch.randn_like(y1)
        y1.backward(grad), y2.backward(grad)
        torch.testing.assert_close(x2.grad, x1.grad, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(
            cbn_net.norm.weight.grad, bn_net.norm.weight.grad, rtol=1e-9, atol=1e-10
        )
        torch.testing.assert_close(
            cbn_net.norm.bias.grad, bn_net.norm.bias.grad, rtol=1e-9, atol=1e-10
        )
    torch.testing.assert_close(cbn_net.norm.running_mean, bn_net.norm.running_mean)
    torch.testing.assert_close(cbn_net.norm.running_var, bn_net.norm.running_var)


def test_fixed_weights_give_bn_over_the_concatenated_window():
    k = 4
    _, net = _pair(window=k)
    net.train()
    batches = _batches(k)
    with torch.no_grad():
        for index, x in enumerate(batches[:-1]):
            _step(net, index)
            net(x)
    _step(net, k - 1)
    past = net.norm.compensated_history(net.conv.weight.detach())
    torch.testing.assert_close(past[0], net.norm.hist_mean)  # zero compensation for fixed weights
    torch.testing.assert_close(past[1], net.norm.hist_sqmean)
    x = batches[-1].clone().requires_grad_(True)
    out = net(x)
    with torch.no_grad():
        y_all = net.conv(torch.cat(batches))
    expected = F.batch_norm(
        y_all, None, None, net.norm.weight, net.norm.bias, training=True, eps=net.norm.eps
    )
    torch.testing.assert_close(out, expected[-x.shape[0] :], rtol=1e-10, atol=1e-10)

    # The gradient flows through the current batch's statistics only, weighted 1/k.
    grad = torch.randn_like(out)
    out.backward(grad)
    x_ref = batches[-1].clone().requires_grad_(True)
    y = net.conv(x_ref)
    with torch.no_grad():
        y_past = net.conv(torch.cat(batches[:-1]))
        past_mean, past_sq = y_past.mean(dim=(0, 2, 3)), (y_past**2).mean(dim=(0, 2, 3))
    mean = (y.mean(dim=(0, 2, 3)) + (k - 1) * past_mean) / k
    sq = ((y**2).mean(dim=(0, 2, 3)) + (k - 1) * past_sq) / k
    ref = (y - mean.view(1, -1, 1, 1)) / torch.sqrt(sq - mean**2 + net.norm.eps).view(1, -1, 1, 1)
    ref = ref * net.norm.weight.view(1, -1, 1, 1) + net.norm.bias.view(1, -1, 1, 1)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-9, atol=1e-10)


def test_taylor_step_is_exact_for_the_mean_and_low_by_the_square_for_the_second_moment():
    _, net = _pair(window=2)
    net.train()
    x = _batches(1)[0]
    _step(net, 0)
    with torch.no_grad():
        net(x)
        delta = torch.randn_like(net.conv.weight) * 0.05
        net.conv.weight.add_(delta)
        past_mean, past_sq = net.norm.compensated_history(net.conv.weight.detach())
        y_new = net.conv(x)
        dy = F.conv2d(x, delta, padding=1)
    torch.testing.assert_close(past_mean[0], y_new.mean(dim=(0, 2, 3)), rtol=0, atol=1e-10)
    shortfall = (y_new**2).mean(dim=(0, 2, 3)) - past_sq[0]
    torch.testing.assert_close(shortfall, (dy**2).mean(dim=(0, 2, 3)), rtol=1e-9, atol=1e-12)
    assert (shortfall > 0).all()


@pytest.mark.parametrize(
    "conv_kw",
    [
        {},
        {"stride": 2},
        {"padding": 0},
        {"dilation": 2, "padding": 2},
        {"groups": 2},
        {"stride": 2, "groups": 2, "dilation": 2},
    ],
)
def test_closed_form_derivatives_equal_autograd(conv_kw):
    torch.manual_seed(3)
    groups = conv_kw.get("groups", 1)
    conv = nn.Conv2d(4, 6, 3, bias=False, **{"padding": 1, **conv_kw})
    x = torch.randn(2, 4, 9, 9)
    y = conv(x)
    d_mean, d_sqmean = conv_stat_derivatives(conv, x, y.detach())
    (auto_mean,) = torch.autograd.grad(y.mean(dim=(0, 2, 3)).sum(), conv.weight, retain_graph=True)
    (auto_sq,) = torch.autograd.grad((y**2).mean(dim=(0, 2, 3)).sum(), conv.weight)
    assert d_mean.shape == (groups, 4 // groups, 3, 3)
    torch.testing.assert_close(
        d_mean.repeat_interleave(6 // groups, dim=0), auto_mean, rtol=1e-10, atol=1e-12
    )
    torch.testing.assert_close(d_sqmean, auto_sq, rtol=1e-10, atol=1e-12)


def test_cmbn_is_darknets_cumulative_average_reset_each_step():
    _, net = _pair(mode="cmbn")
    net.train()
    b1, b2, b3 = _batches(3)
    with torch.no_grad():
        _step(net, 0)
        out1 = net(b1)
        out2 = net(b2)  # second mini-batch of the same optimizer step
        _step(net, 1)
        out3 = net(b3)  # a new step: reset
        y1, y2, y3 = net.conv(b1), net.conv(b2), net.conv(b3)

    def normalise(y, mean, sq):
        out = (y - mean.view(1, -1, 1, 1)) / torch.sqrt(sq - mean**2 + net.norm.eps).view(
            1, -1, 1, 1
        )
        return out * net.norm.weight.view(1, -1, 1, 1) + net.norm.bias.view(1, -1, 1, 1)

    stats = [(y.mean(dim=(0, 2, 3)), (y**2).mean(dim=(0, 2, 3))) for y in (y1, y2, y3)]
    torch.testing.assert_close(out1, normalise(y1, *stats[0]), rtol=1e-10, atol=1e-10)
    averaged = ((stats[0][0] + stats[1][0]) / 2, (stats[0][1] + stats[1][1]) / 2)
    torch.testing.assert_close(out2, normalise(y2, *averaged), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out3, normalise(y3, *stats[2]), rtol=1e-10, atol=1e-10)


def test_state_dict_round_trip_mid_training_gives_an_identical_next_step():
    _, net = _pair(window=3)
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    batches = _batches(5)
    for index, x in enumerate(batches[:3]):
        _step(net, index)
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()
    _, restored = _pair(window=3, seed=99)  # different init: everything must come from the state
    # A checkpoint is a copy (as torch.save/torch.load would make): nothing may be shared.
    restored.load_state_dict(copy.deepcopy(net.state_dict()))
    restored_opt = torch.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9)
    restored_opt.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    restored.train()
    for index, x in enumerate(batches[3:], start=3):
        outs = []
        for model, opt in ((net, optimizer), (restored, restored_opt)):
            _step(model, index)
            opt.zero_grad()
            out = model(x)
            out.square().mean().backward()
            opt.step()
            outs.append(out.detach())
        assert torch.equal(outs[0], outs[1])


def test_eval_is_running_stat_bn_and_folds_into_the_conv():
    _, net = _pair(window=3)
    net.train()
    for index, x in enumerate(_batches(4)):
        _step(net, index)
        net(x)
    net.eval()
    x = _batches(1, seed=7)[0]
    out = net(x)
    bn = net.norm
    y = net.conv(x)
    expected = F.batch_norm(
        y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps
    )
    torch.testing.assert_close(out, expected)
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = F.conv2d(
        x, net.conv.weight * factor.view(-1, 1, 1, 1), bn.bias - bn.running_mean * factor, padding=1
    )
    torch.testing.assert_close(out, folded)


def test_channels_last_and_bf16_autocast_match_fp32():
    torch.manual_seed(5)
    reference = ConvNorm(nn.BatchNorm2d(6)).float()
    convert_to_cbn(reference, window=3, example_input=torch.zeros(1, 4, 8, 8, dtype=torch.float32))
    channels_last = copy.deepcopy(reference).to(memory_format=torch.channels_last)
    autocast = copy.deepcopy(reference)
    batches = [b.float() for b in _batches(3)]
    for index, x in enumerate(batches):
        for model in (reference, channels_last, autocast):
            _step(model, index)
        expected = reference(x)
        got_cl = channels_last(x.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bf16 = autocast(x)
        torch.testing.assert_close(got_cl, expected, rtol=1e-5, atol=1e-5)
        assert autocast.norm.hist_mean.dtype == torch.float32  # history stays fp32 under autocast
        torch.testing.assert_close(got_bf16.float(), expected, rtol=0.05, atol=0.05)


# backbone=darknet needs a cfg file; tests/models/darknet/test_darknet.py converts a cfg network.
@pytest.mark.parametrize("name", [n for n in list_backbones() if n != "darknet"])
def test_convert_binds_every_bn_of_every_backbone(name):
    model = create_backbone(name, num_classes=10).float()
    count = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    converted = convert_to_cbn(
        model, window=2, example_input=torch.zeros(1, 3, 32, 32, dtype=torch.float32)
    )
    assert len(converted) == count
    cbns = [m for m in model.modules() if isinstance(m, CrossIterationBatchNorm2d)]
    assert len(cbns) == count and all(m.conv is not None for m in cbns)


def test_convert_names_a_bn_it_cannot_bind():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match=r"no convolution feeds BatchNorm layer\(s\) 2"):
        convert_to_cbn(model, example_input=torch.zeros(1, 3, 8, 8))
    assert isinstance(model[2], nn.BatchNorm2d) and not isinstance(
        model[2], CrossIterationBatchNorm2d
    )


def test_torch_compile_matches_eager_without_recompiling_per_step():
    # All per-step state is in tensors, so the compiled layer sees each step's history and
    # burn-in state without a graph break or a recompile (about 20 s of compilation on a CPU).
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU()
    ).float()
    convert_to_cbn(
        net, window=3, burnin=2, example_input=torch.zeros(1, 4, 8, 8, dtype=torch.float32)
    )
    eager = copy.deepcopy(net).train()
    compiled = torch.compile(net.train())
    for step in range(5):  # steps 0-1 burn-in, then the window fills
        for model in (net, eager):
            model[1].set_schedule_step(step, 10)
        x = torch.randn(3, 4, 8, 8, dtype=torch.float32)
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(net[1].hist_mean, eager[1].hist_mean, rtol=1e-5, atol=1e-6)
    frame_counts = torch._dynamo.utils.counters["frames"]
    assert frame_counts["total"] <= 2, dict(frame_counts)  # one graph, not one per step
