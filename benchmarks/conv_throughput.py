"""How much of the device's convolution throughput the backbone's forward and backward pass achieves.

    python benchmarks/conv_throughput.py --device cuda --size 1024 --dtype bfloat16

The backbone is VGG19 truncated after relu5_1 (the default layers), channels_last, with the image as the
only tensor that needs a gradient, exactly as in a run. Its FLOPs per forward+backward are counted with
``torch.utils.flop_counter.FlopCounterMode``; its rate is FLOPs / median seconds. The attainable rate
is the best rate of any one of its convolution shapes run alone (forward and input-gradient, the same
dtype and memory format) in a tight loop. The ratio is the figure the issue asks for (target ≥ 60 % on
a GPU, bf16, 1024 px). On a CPU use ``--dtype float32`` (``bfloat16`` autocast there is emulated).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import nullcontext

import torch
from common import median, seconds_per_call
from torch.utils.flop_counter import FlopCounterMode

from nst_lightning.model.backbones.vgg import VGG19

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def flops_of(fn: Callable[[], None]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=1024, help="long edge; the image is 4:3")
    parser.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    device, dtype = args.device, getattr(torch, args.dtype)
    torch.backends.cudnn.benchmark = True
    autocast = torch.autocast(device, dtype=dtype) if dtype != torch.float32 else nullcontext()
    vgg = VGG19(weights="none").to(device)
    vgg.truncate(LAYERS)
    image = torch.rand(1, 3, args.size * 3 // 4, args.size, device=device, requires_grad=True)

    def backbone() -> None:
        with autocast:
            features = vgg(image, LAYERS)
        sum(f.float().square().mean() for f in features.values()).backward()

    flops = flops_of(backbone)
    seconds = seconds_per_call(backbone, device, args.repeats, warmup=2, reduce=median)
    rate = flops / seconds

    # Each convolution shape of the backbone alone: its input as the backbone sees it, forward + input gradient.
    best, best_shape = 0.0, ""
    x = vgg.normalize(image.detach()).contiguous(memory_format=torch.channels_last)
    for module in vgg.features:
        if isinstance(module, torch.nn.Conv2d):
            inp = x.detach().requires_grad_()

            def conv(module: torch.nn.Module = module, inp: torch.Tensor = inp) -> None:
                with autocast:
                    out = module(inp)
                out.backward(torch.ones_like(out))

            conv_rate = flops_of(conv) / seconds_per_call(conv, device, args.repeats, warmup=2, reduce=median)
            if conv_rate > best:
                best, best_shape = conv_rate, f"{module.in_channels}→{module.out_channels} at {inp.shape[-2]}×{inp.shape[-1]}"
        with torch.no_grad(), autocast:
            x = module(x)

    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"# {name}, torch {torch.__version__}, {args.dtype}, {args.size * 3 // 4}×{args.size} px")
    print("| what | TFLOP per pass | seconds | TFLOP/s |")
    print("|---|---|---|---|")
    print(f"| VGG19 to relu5_1, forward + backward | {flops / 1e12:.3f} | {seconds:.4f} | {rate / 1e12:.2f} |")
    print(f"| best single convolution ({best_shape}) | | | {best / 1e12:.2f} |")
    print(f"\nbackbone / best convolution: {rate / best:.0%}")


if __name__ == "__main__":
    main()
