"""Times the PyTorch EfficientAD reference on CUDA for `deno task bench:gpu` (tools/bench_gpu.ts).

Benchmark tool only: never a runtime or test dependency. It drives
tools/fixtures/efficientad_ref.py (a torch implementation written from the SPEC and checked
against anomalib's own outputs; the same layers, interpolations and post-processing as
anomalib's ``EfficientAdModel`` in eval mode, including its ``mean_std`` / quantile checks
that read a value back from the GPU on every call) with random weights, and prints one JSON
object per line on stdout:

    {"kind": "device", "name": "NVIDIA H200", "torch": "2.11.0+cu130"}
    {"kind": "result", "size": "s", "batch": 1, "precision": "fp32", "ms": 1.9, ...}
    {"kind": "unavailable", "reason": "no CUDA torch"}

``ms`` is the median time of one batch (CUDA events around the call, after warm-up runs),
input already on the GPU, as anomalib's own benchmark times it. ``first_ms`` is the time to
the first result: building the model, moving it to the GPU and the first call (the CUDA
context is made once before). ``mem_mib`` is ``torch.cuda.max_memory_reserved()`` for that
configuration. fp16 is ``torch.autocast("cuda", dtype=torch.float16)`` around fp32 weights.

    python3 tools/bench_torch.py --sizes s,m --batches 1,8,32 --runs 20 --warmup 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="s,m")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--teacher-out-channels", type=int, default=384)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--device", default="cuda",
                    help="cuda (the benchmark) or cpu (to check this script without a GPU)")
    args = ap.parse_args()

    try:
        import torch
    except ImportError as e:
        emit({"kind": "unavailable", "reason": f"no CUDA torch (import torch failed: {e})"})
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        emit({"kind": "unavailable", "reason": "no CUDA torch (torch.cuda.is_available() is False)"})
        return 0

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    from efficientad_ref import EfficientAdRef  # noqa: E402

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    torch.backends.cudnn.benchmark = True
    if cuda:
        torch.zeros(1, device=dev).sum().item()  # CUDA context up before any timing
        name = torch.cuda.get_device_name(dev)
    else:
        name = "cpu"
    emit({"kind": "device", "name": name, "torch": torch.__version__,
          "cudnn": torch.backends.cudnn.version() if cuda else None})

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    def build(size: str) -> "EfficientAdRef":
        torch.manual_seed(0)
        c = args.teacher_out_channels
        m = EfficientAdRef(size, c, padding=False, pad_maps=True)
        with torch.no_grad():
            # Set, as after training: the teacher normalisation and the quantile
            # normalisation run, as in a trained anomalib model.
            m.mean_std["mean"].normal_(0, 0.5)
            m.mean_std["std"].uniform_(0.5, 1.5)
            for k, v in (("qa_st", 0.1), ("qb_st", 1.0), ("qa_ae", 0.1), ("qb_ae", 1.0)):
                m.quantiles[k].fill_(v)
        return m.eval().to(dev)

    def timed(fn, n: int) -> float:
        if cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
        ts = []
        for _ in range(n):
            if cuda:
                start.record()
                fn()
                end.record()
                end.synchronize()
                ts.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1000)
        return statistics.median(ts)

    hw = args.image_size
    batches = [int(b) for b in args.batches.split(",")]
    for size in args.sizes.split(","):
        for precision in args.precisions.split(","):
            if precision not in ("fp32", "fp16"):
                raise SystemExit(f"Cannot time precision {precision!r}: expected fp32 or fp16")
            if precision == "fp16" and not cuda:
                continue
            if cuda:
                torch.cuda.empty_cache()
            sync()
            t0 = time.perf_counter()
            model = build(size)
            first_ms = None
            for batch in batches:
                gen = torch.Generator(device="cpu").manual_seed(batch)
                x = torch.rand(batch, 3, hw, hw, generator=gen).to(dev)
                if cuda:
                    torch.cuda.reset_peak_memory_stats(dev)

                def run() -> None:
                    with torch.no_grad(), torch.autocast(
                            dev.type, dtype=torch.float16, enabled=precision == "fp16"):
                        out = model(x)
                    return out

                run()
                sync()
                if first_ms is None:
                    first_ms = (time.perf_counter() - t0) * 1000
                for _ in range(max(0, args.warmup - 1)):
                    run()
                sync()
                ms = timed(run, args.runs)
                mem = torch.cuda.max_memory_reserved(dev) / 2**20 if cuda else None
                emit({"kind": "result", "size": size, "batch": batch, "precision": precision,
                      "ms": ms, "first_ms": first_ms if batch == batches[0] else None,
                      "mem_mib": mem, "runs": args.runs})
            del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
