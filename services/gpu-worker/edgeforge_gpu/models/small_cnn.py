"""A plain convolutional student: five 3x3 conv-BN-ReLU blocks, three of them strided.

Most parameters sit in the last, low-resolution blocks, so the model is big enough for int8
weights to dominate its file (the size ratio stays near 1/4) while its compute stays small.
"""

from collections import OrderedDict

from torch import nn

WIDTHS = (16, 32, 64, 128, 128)
STRIDES = (1, 2, 2, 1, 2)


def small_cnn(in_channels: int, num_classes: int) -> nn.Module:
    """0.25M parameters, about 8M multiply-adds on a 28x28 image."""
    blocks: list[tuple[str, nn.Module]] = []
    previous = in_channels
    for index, (width, stride) in enumerate(zip(WIDTHS, STRIDES, strict=True), start=1):
        block = nn.Sequential(
            nn.Conv2d(previous, width, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        blocks.append((f"block{index}", block))
        previous = width
    return nn.Sequential(
        OrderedDict(
            [
                ("features", nn.Sequential(OrderedDict(blocks))),
                ("pool", nn.AdaptiveAvgPool2d(1)),
                ("flatten", nn.Flatten()),
                ("dropout", nn.Dropout(0.2)),
                ("fc", nn.Linear(previous, num_classes)),
            ]
        )
    )
