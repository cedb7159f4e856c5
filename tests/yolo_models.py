"""Real ultralytics YOLO checkpoints built offline from the yaml, made to detect deterministically."""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # before ultralytics is imported: no DNS probes, no downloads

import torch


def save_scoring_model(cfg: str, out, *, constant_masks: bool = False):
    """A random-weight model whose every anchor scores ~1 (deterministic detections on any image)."""
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO(cfg)
    net = yolo.model
    # Fresh weights shrink activations to ~1e-9 by the head; one batch of batch-norm statistics gives
    # features that vary over the image, so boxes and scores do too.
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.rand(2, 3, 256, 256))
    net.eval()
    head = net.model[-1]
    with torch.no_grad():
        for branch in head.cv2:  # box sides: 1.5-3.5 strides from the anchor, varying a little per anchor
            last = branch[-1]
            last.weight.mul_(0.1)
            last.bias.zero_()
            for side, peak in enumerate((2, 3, 1, 2)):
                last.bias[side * head.reg_max + peak] = 3.0
        for branch in head.cv3:  # class scores ~1, in an order that varies over the image
            branch[-1].weight.mul_(0.2)
            branch[-1].bias.fill_(10.0)
        if constant_masks:  # protos constant positive, coefficients positive: each mask fills its box
            proto = head.proto.cv3
            proto.conv.weight.zero_()
            proto.bn.running_mean.zero_()
            proto.bn.running_var.fill_(1.0)
            proto.bn.weight.fill_(1.0)
            proto.bn.bias.fill_(1.0)
            for branch in head.cv4:
                branch[-1].weight.zero_()
                branch[-1].bias.fill_(1.0)
    yolo.model.names = {i: f"thing{i}" for i in range(len(yolo.model.names))}
    yolo.save(out)
    return out
