#!/usr/bin/python3
"""torchvision side of scripts/bench/detectors.mjs: one RetinaNet, timed inference and SGD train
steps on random images, printed as one JSON line (median of the reps after a warm-up, and the
process's peak RSS, user and system CPU seconds). Same setup as the mtpd side: FrozenBatchNorm2d
ResNet backbone with trainable_backbone_layers=3 (Swin-T: features.0-1 frozen, as mtpd's
trainable_layers 3; stochastic depth 0.2), 91 classes, min/max size = the image size.
maskrcnn_resnet50: torchvision's MaskRCNN over the same frozen-BN ResNet-50 FPN (p2..p5 + pool), its
default RPN and RoI heads, 91 classes, two instance masks per image.
MTPD_BENCH_AMP=1: forward passes under torch.autocast("cpu") (bfloat16), as mtpd's amp
(scripts/bench/amp.mjs)."""
import json
import os
import resource
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "golden"))
from torchvision.models import resnet18, resnet50
from torchvision.models.detection import MaskRCNN, RetinaNet
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d
from torchvision.ops.feature_pyramid_network import LastLevelP6P7


def main():
    arch, batch, size, reps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    masks = arch.startswith("maskrcnn_")
    if masks:
        body = resnet50(norm_layer=FrozenBatchNorm2d)
        model = MaskRCNN(_resnet_fpn_extractor(body, 3), 91, min_size=size, max_size=size)
    elif arch == "swin_t":
        from torchvision_retinanet import swin_backbone  # mtpd's Swin body + FPN, in torchvision modules
        backbone = swin_backbone(1.0, [2, 2, 6, 2], 0.2, 256)
        for name, p in backbone.body.features.named_parameters():
            if name.split(".")[0] in ("0", "1"):
                p.requires_grad_(False)
    else:
        body = {"resnet18": resnet18, "resnet50": resnet50}[arch](norm_layer=FrozenBatchNorm2d)
        backbone = _resnet_fpn_extractor(body, 3, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    if not masks:
        model = RetinaNet(backbone, 91, min_size=size, max_size=size)
    images = [torch.rand(3, size, size) for _ in range(batch)]
    targets = [{"boxes": torch.tensor([[40.0, 60.0, 200.0, 220.0], [300.0, 100.0, 420.0, 380.0]]),
                "labels": torch.tensor([1, 7])} for _ in range(batch)]
    if masks:
        for t in targets:
            m = torch.zeros(2, size, size, dtype=torch.uint8)
            for k, (x1, y1, x2, y2) in enumerate(t["boxes"].int().tolist()):
                m[k, y1:y2, x1:x2] = 1
            t["masks"] = m
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9, weight_decay=1e-4)

    def median_of(fn):
        # median of `reps` after a warm-up (as the mtpd side)
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        n = len(times)
        return times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2

    amp = os.environ.get("MTPD_BENCH_AMP") == "1"
    if amp:
        # torchvision 0.14 registers nms's autocast rule (boxes and scores to float32) for CUDA
        # only; on the CPU its bfloat16 boxes reach a kernel without a bfloat16 version. The same
        # rule, for the CPU:
        import torchvision.ops.boxes as box_ops
        nms = box_ops.nms
        box_ops.nms = lambda boxes, scores, iou: nms(boxes.float(), scores.float(), iou)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp)

    model.eval()
    with torch.no_grad(), autocast():
        infer = median_of(lambda: model(images))
    model.train()

    def step():
        with autocast():
            losses = model(images, targets)
        loss = sum(v.float() for v in losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()

    train = median_of(step)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"impl": "torchvision " + torchvision.__version__, "arch": arch, "infer_ms": infer * 1e3,
                      "train_ms": train * 1e3, "peak_mb": ru.ru_maxrss / 1024.0, "user_s": ru.ru_utime,
                      "sys_s": ru.ru_stime, "threads": torch.get_num_threads(), "amp": amp}))


if __name__ == "__main__":
    main()
