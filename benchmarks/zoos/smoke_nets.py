"""A user's model file for the zoo smoke (benchmarks/zoos/smoke.yaml): two branches, concatenated."""

import torch
from torch import nn


class TwoBranch(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), self.b(x)], dim=1)
        return self.fc(self.pool(y).flatten(1))
