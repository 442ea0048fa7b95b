#!/usr/bin/python3
"""torchvision side of scripts/bench/detectors.mjs: one RetinaNet, timed inference and SGD train
steps on random 512x512 images, printed as one JSON line. Same setup as the mtpd side:
FrozenBatchNorm2d backbone with trainable_backbone_layers=3, 91 classes, min/max size 512."""
import json
import os
import resource
import sys
import time

import torch
import torchvision
from torchvision.models import resnet18, resnet50
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


def main():
    arch, batch, size, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    body = {"resnet18": resnet18, "resnet50": resnet50}[arch](norm_layer=FrozenBatchNorm2d)
    backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    model = RetinaNet(backbone, 91, min_size=size, max_size=size)
    images = [torch.rand(3, size, size) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[40.0, 60.0, 200.0, 220.0], [300.0, 100.0, 420.0, 380.0]]),
                "labels": torch.tensor([1, 7])} for _ in range(batch)]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=1e-4)

    model.eval()
    with torch.no_grad():
        model(images)
        t0 = time.perf_counter()
        for _ in range(reps):
            model(images)
        infer = (time.perf_counter() - t0) / reps
    model.train()

    def step():
        losses = model(images, targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(reps):
        step()
    train = (time.perf_counter() - t0) / reps
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "torchvision " + torchvision.__version__, "arch": arch, "infer_ms": infer * 1e3,
                      "train_ms": train * 1e3, "peak_mb": peak, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
