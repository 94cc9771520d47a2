"""Small convolutional nets: a fast test/benchmark model and a compact residual net.

Both end in global average pooling and a linear head; ``num_outputs=0`` drops the head
so the pooled features come out (the embedding case, same convention as timm).
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _head(num_features: int, num_outputs: int) -> nn.Module:
    return nn.Linear(num_features, num_outputs) if num_outputs > 0 else nn.Identity()


class TinyCNN(nn.Module):
    """``depth`` stride-2 conv-BN-ReLU blocks doubling the width, then pool and a linear head.

    Tiny on purpose (about 25k parameters at the defaults): test bundles stay a few
    hundred KB and run in milliseconds on a CPU.
    """

    def __init__(self, num_outputs: int, width: int = 16, depth: int = 3) -> None:
        super().__init__()
        blocks = []
        channels = 3
        for index in range(depth):
            blocks.append(_conv_bn_relu(channels, width * 2**index, stride=2))
            channels = width * 2**index
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.head = _head(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.pool(self.features(x)), 1))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual shortcut (1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetish(nn.Module):
    """A stem plus one stage of ``blocks`` BasicBlocks per width (stride 2 between stages).

    Not torchvision's ResNet (names and stem differ): a readable residual conv net for
    channels_last/bf16 benchmarks and small real models.
    """

    def __init__(
        self,
        num_outputs: int,
        widths: tuple[int, ...] | list[int] = (32, 64, 128, 256),
        blocks: int = 1,
    ) -> None:
        super().__init__()
        self.stem = _conv_bn_relu(3, widths[0], stride=2)
        stages = []
        channels = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers = [BasicBlock(channels, width, stride)]
            layers += [BasicBlock(width, width, 1) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layers))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = channels
        self.head = _head(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1))
