import pytest
import torch
import torch.nn.functional as F

from maed_cli.model.backbone import MaxPool2dSame, ResNetV2, StdConv2dSame, same_padding


def test_same_padding_is_asymmetric_like_tensorflow():
    assert same_padding(224, 7, 2) == (2, 3)
    assert same_padding(56, 3, 2) == (0, 1)
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(56, 3, 1) == (1, 1)
    assert same_padding(14, 1, 1) == (0, 0)


def test_std_conv_formula():
    torch.manual_seed(0)
    conv = StdConv2dSame(4, 8, 3, stride=2)
    x = torch.randn(2, 4, 9, 9)
    w = conv.weight
    mean = w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.std(dim=(1, 2, 3), keepdim=True, unbiased=False)
    expected = F.conv2d(F.pad(x, (1, 1, 1, 1)), (w - mean) / (std + 1e-5), stride=2)
    torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape[-2:] == (5, 5)  # ceil(9 / 2)


def test_std_conv_cache_follows_weight_updates():
    conv = StdConv2dSame(2, 4, 1).eval()
    x = torch.randn(1, 2, 3, 3)
    with torch.no_grad():
        first = conv(x)
        conv.weight.mul_(-1.0)  # in-place update moves the version counter
        second = conv(x)
    torch.testing.assert_close(second, -first)


def test_max_pool_pads_with_minus_infinity():
    x = -torch.ones(1, 1, 4, 4)
    out = MaxPool2dSame(3, 2)(x)
    assert out.shape[-2:] == (2, 2)
    assert (out == -1).all()  # zero padding would have produced 0


@pytest.mark.parametrize("size", [(112, 112), (4, 5), (7, 9), (1, 2)])
def test_max_pool_equals_explicit_same_padding(size):
    """Sizes whose padding is all after (ceil_mode path) and sizes with padding before too."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size)
    top, bottom = same_padding(size[0], 3, 2)
    left, right = same_padding(size[1], 3, 2)
    padded = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    torch.testing.assert_close(MaxPool2dSame(3, 2)(x), F.max_pool2d(padded, 3, 2))


def test_backbone_output_grid():
    out = ResNetV2().eval()(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1024, 14, 14)
