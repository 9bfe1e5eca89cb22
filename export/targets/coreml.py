"""CoreML (.mlpackage, ML Program, iOS 17+, fp16 compute) from the ExportedProgram.

Conversion reads the decomposed ExportedProgram (:class:`passes.decompose.Decompose`).
Core ML multiarrays have no uint8, so pixels are int32 here (:class:`passes.pixels.RetypePixels`,
same values). Core ML cannot
execute on Linux, so here the runner is None and the parity gate validates the spec
structurally; on macOS ``runner`` returns a real ``predict``-based runner.
"""

from __future__ import annotations

import contextlib
import platform
import time
import warnings
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from unittest import mock

from typing import TYPE_CHECKING

import numpy as np

from .base import Lowered, Runner, cast_feeds

if TYPE_CHECKING:
    from ..graphs import GraphSpec


# coremltools 9's module-level tqdm names: one bar per conversion stage (three per graph) and per
# compression pass.
_CONVERTER_BARS = (("coremltools.converters.mil.frontend.torch.ops", "_tqdm"),
                   ("coremltools.converters.mil.mil.passes.pass_pipeline", "tqdm"),
                   ("coremltools.optimize.coreml._quantization_passes", "tqdm"))


@contextlib.contextmanager
def _without_converter_bars() -> Iterator[None]:
    """Turn off coremltools' own progress bars while it converts and compresses.

    They interleave with lrf-export's per-artifact progress display and say nothing it does not;
    coremltools has no option for this, so its tqdm names are swapped for a disabled tqdm.
    """
    from tqdm import tqdm

    with contextlib.ExitStack() as stack:
        for module, name in _CONVERTER_BARS:
            stack.enter_context(mock.patch(f"{module}.{name}", partial(tqdm, disable=True)))
        yield


class CoreMLTarget:
    name = "coreml"
    suffix = ".mlpackage"
    pixel_dtype = "int32"  # multiarrays have no uint8
    precisions = ("fp16", "int8")
    half_traced = ()

    def passes(self, spec: GraphSpec, precision: str, calibration: list[tuple] | None) -> list:
        from ..passes.decompose import Decompose
        from ..passes.pixels import RetypePixels

        return [Decompose(), RetypePixels(self.pixel_dtype)]  # INT8 works on the converted model (coremltools.optimize), after conversion

    def lower(self, program, spec: GraphSpec, path: Path, precision: str,
              calibration: list[tuple] | None = None) -> Lowered:
        import coremltools as ct

        t0 = time.perf_counter()
        np_dtypes = {"float32": np.float32, "int32": np.int32}
        with warnings.catch_warnings(), _without_converter_bars():
            warnings.simplefilter("ignore")
            model = ct.convert(
                program,
                inputs=[ct.TensorType(name=i.name, shape=i.shape, dtype=np_dtypes[i.dtype]) for i in spec.inputs],
                outputs=[ct.TensorType(name=o.name) for o in spec.outputs],
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS17,
                compute_precision=ct.precision.FLOAT16,
            )
            if precision == "int8":
                from ..passes.quantize import quantize_coreml

                model = quantize_coreml(model, "int8")
        model.save(str(path))
        return Lowered(path, precision, time.perf_counter() - t0, structure(path))

    def runner(self, path: Path, inputs: list[dict], outputs: list[dict], threads: int | None = None) -> Runner | None:
        # Core ML schedules its own compute units; ``threads`` has no counterpart there.
        if platform.system() != "Darwin":
            return None
        import coremltools as ct

        model = ct.models.MLModel(str(path))

        def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            arrays = cast_feeds(feeds, inputs)
            result = model.predict({i["name"]: a for i, a in zip(inputs, arrays)})
            return {o["name"]: np.asarray(result[o["name"]], dtype=o["dtype"]) for o in outputs}

        return run


def structure(path: Path) -> dict:
    """Named inputs/outputs with shapes, the op set, and the weight dtypes of a saved .mlpackage."""
    import coremltools as ct

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()

    def io(features):
        out = []
        for f in features:
            arr = f.type.multiArrayType
            dtype = {65568: "float32", 65552: "float16", 131104: "int32"}.get(arr.dataType, str(arr.dataType))
            out.append({"name": f.name, "shape": list(arr.shape), "dtype": dtype})
        return out

    from ..passes.quantize import coverage

    names = {1: "bool", 2: "string", 10: "float16", 11: "float32", 13: "bfloat16", 21: "int8", 22: "int16", 23: "int32", 24: "int64", 31: "uint8"}
    ops, const_dtypes, weights = set(), set(), []
    n_constexpr = n_weighted = 0
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            for op in block.operations:
                ops.add(op.type)
                n_constexpr += op.type.startswith("constexpr")
                n_weighted += op.type in ("linear", "conv", "matmul")
                if op.type == "const" or op.type.startswith("constexpr"):
                    # A weight's stored dtype is that of its tensor attributes ('val' of a const,
                    # 'quantized_data' / 'indices' of a constexpr dequantize).
                    for key, value in op.attributes.items():
                        if key != "name" and value.type.HasField("tensorType"):
                            tt = value.type.tensorType
                            const_dtypes.add(int(tt.dataType))
                            weights.append((names.get(int(tt.dataType), str(tt.dataType)),
                                            tuple(int(d.constant.size) for d in tt.dimensions)))
    return {"inputs": io(spec.description.input), "outputs": io(spec.description.output), "ops": sorted(ops),
            "const_dtypes": sorted(names.get(d, str(d)) for d in const_dtypes), "spec_version": spec.specificationVersion,
            "int8_coverage": coverage(weights, n_constexpr, n_weighted)}
