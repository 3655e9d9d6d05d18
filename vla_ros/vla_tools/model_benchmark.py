"""`vla bench model`: latency of the network per backend, its size and its arithmetic.

Batch 1 at the default rig (six cameras, the model's image size), after a warm-up; both backends
are measured in the same run on the same inputs, so their ratio is meaningful on a noisy machine.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vla_model.config import ModelConfig, student, teacher
from vla_model.export import example_inputs, export_onnx
from vla_model.network import INPUT_NAMES
from vla_model.student_network import build_network, student_v2
from vla_tools.bench_harness import latencies_ms, print_table, summary, write_benchmark_json

WARM_UP = 5
COLUMNS = [  # (title, width) of the printed table
    ('model', 12),
    ('params', 10),
    ('GFLOPs', 8),
    ('torch p50', 10),
    ('p99', 8),
    ('ORT p50', 9),
    ('p99', 8),
    ('ORT speedup', 12),
]


def gflops(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> float:
    """Return the floating-point operations of one forward pass, in GFLOPs (multiply-add = 2)."""
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    return counter.get_total_flops() / 1e9


def measure(config: ModelConfig, repeats: int, workdir: Path) -> dict:
    """Measure one configuration with both backends."""
    from vla_model.backends import OnnxRuntimeBackend, TorchBackend

    torch.manual_seed(0)
    model = build_network(config).eval()
    inputs = example_inputs(config)
    backends = {
        'pytorch': TorchBackend(model),
        'onnxruntime': OnnxRuntimeBackend(export_onnx(model, workdir / f'{config.name}.onnx')),
    }
    result = {
        'model': config.name,
        'parameters': sum(p.numel() for p in model.parameters()),
        'gflops': round(gflops(model, inputs), 3),
        'torch_threads': torch.get_num_threads(),
    }
    for name, backend in backends.items():
        times = latencies_ms(lambda backend=backend: backend.run(inputs), repeats, WARM_UP)
        result[name] = summary(times, 2, key='{}_ms')
    result['onnxruntime_speedup'] = round(
        result['pytorch']['p50_ms'] / result['onnxruntime']['p50_ms'], 2
    )
    return result


def run(repeats: int, json_path: Path | None, include_teacher: bool) -> list[dict]:
    """Measure v1's student and v2's (and v1's teacher), print a table, write JSON if asked.

    Both students in one run, so the ratio of their latencies (issue 16: v2's ONNX Runtime p50
    at most half v1's) is measured under the same load.
    """
    configs = [student(), student_v2()] + ([teacher()] if include_teacher else [])
    print(
        f'batch 1, {configs[0].num_cameras} cameras {configs[0].image_width}x'
        f'{configs[0].image_height}, {repeats} runs after {WARM_UP} warm-up; '
        f'{os.cpu_count()} CPUs, CUDA {"available" if torch.cuda.is_available() else "absent"}'
    )
    with tempfile.TemporaryDirectory() as workdir:
        results = [measure(config, repeats, Path(workdir)) for config in configs]
    print_table(
        COLUMNS,
        (
            [
                r['model'],
                r['parameters'],
                r['gflops'],
                r['pytorch']['p50_ms'],
                r['pytorch']['p99_ms'],
                r['onnxruntime']['p50_ms'],
                r['onnxruntime']['p99_ms'],
                r['onnxruntime_speedup'],
            ]
            for r in results
        ),
    )
    ratio = results[1]['onnxruntime']['p50_ms'] / results[0]['onnxruntime']['p50_ms']
    print(f'{results[1]["model"]} / {results[0]["model"]}, ONNX Runtime p50: {ratio:.2f}')
    if json_path is not None:
        write_benchmark_json(json_path, 'model', results, v2_to_v1_onnxruntime_p50=round(ratio, 3))
    return results
