"""What TensorFlow Lite Micro needs for each op an edgekd graph may hold: the ``MicroMutableOpResolver``
method that registers it and the TFLM source files that implement it, for both kernel sets.

Export writes ``ops.h`` and ``kernel_sources.txt`` from these tables; ``edgekd firmware`` compiles exactly the
files ``kernel_sources.txt`` lists, so a wrong entry fails the firmware link, not a user's build. The file lists
are for the pinned TFLM revision in ``../shared/tflm`` (tflite-micro 90b983c2); a test re-derives them from that
tree (the kernel that defines ``Register_OP()``, then every kernel header it includes, as ``NAME.cc`` /
``NAME_common.cc``), so a new TFLM revision that moves code is caught there.
"""

from __future__ import annotations

from edgekd.errors import EdgekdError

TFLM_RESOLVER = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MUL": "AddMul",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "RELU": "AddRelu",
    "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze",
}

KERNEL_SETS = ("reference", "cmsis-nn")
KERNEL_DIR = "tensorflow/lite/micro/kernels"

# Kernel files per op, relative to KERNEL_DIR ("cmsis_nn/..." = the CMSIS-NN tree's optimised kernel).
_REFERENCE = {
    "ADD": ("add.cc", "add_common.cc"),
    "AVERAGE_POOL_2D": ("pooling.cc", "pooling_common.cc"),
    "CONCATENATION": ("concatenation.cc",),
    "CONV_2D": ("conv.cc", "conv_common.cc"),
    "DEPTHWISE_CONV_2D": ("depthwise_conv.cc", "depthwise_conv_common.cc"),
    "EXPAND_DIMS": ("expand_dims.cc",),
    "FULLY_CONNECTED": ("fully_connected.cc", "fully_connected_common.cc"),
    "MAX_POOL_2D": ("pooling.cc", "pooling_common.cc"),
    "MEAN": ("reduce.cc", "reduce_common.cc"),
    "MUL": ("mul.cc", "mul_common.cc"),
    "PAD": ("pad.cc", "pad_common.cc"),
    "PADV2": ("pad.cc", "pad_common.cc"),
    "RELU": ("activations.cc", "activations_common.cc"),
    "RESHAPE": ("reshape.cc", "reshape_common.cc"),
    "SOFTMAX": ("softmax.cc", "softmax_common.cc"),
    "SQUEEZE": ("squeeze.cc",),
}
_CMSIS_NN = {
    **_REFERENCE,
    "ADD": ("cmsis_nn/add.cc",),
    "AVERAGE_POOL_2D": ("cmsis_nn/pooling.cc", "pooling_common.cc"),
    "CONV_2D": ("cmsis_nn/conv.cc", "conv_common.cc"),
    "DEPTHWISE_CONV_2D": ("cmsis_nn/depthwise_conv.cc", "cmsis_nn/conv.cc", "conv_common.cc",
                          "depthwise_conv_common.cc"),
    "FULLY_CONNECTED": ("cmsis_nn/fully_connected.cc", "fully_connected_common.cc"),
    "MAX_POOL_2D": ("cmsis_nn/pooling.cc", "pooling_common.cc"),
    "MUL": ("cmsis_nn/mul.cc", "mul_common.cc"),
    "PAD": ("cmsis_nn/pad.cc", "pad_common.cc"),
    "PADV2": ("cmsis_nn/pad.cc", "pad_common.cc"),
    "SOFTMAX": ("cmsis_nn/softmax.cc", "softmax_common.cc"),
}
TFLM_KERNELS = {"reference": _REFERENCE, "cmsis-nn": _CMSIS_NN}
KERNEL_COMMON = ("kernel_util.cc",)  # every kernel includes kernel_util.h

# The interpreter, allocator, memory planner, flatbuffer parsing and the shared quantisation helpers (every
# non-test, non-kernel source of the tree); a static archive lets the linker keep only what is called.
TFLM_CORE_SOURCES = (
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
    "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/core/api/tensor_utils.cc",
    "tensorflow/lite/core/c/common.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/runtime_shape.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/kernels/internal/tensor_utils.cc",
    "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/hexdump.cc",
    "tensorflow/lite/micro/memory_helpers.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/non_persistent_buffer_planner_shim.cc",
    "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc",
    "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc",
    "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_profiler.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc",
    "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/system_setup.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
)
# Per platform (DebugLog, the tick counter): the reference tree's portable ones, the Cortex-M tree's own.
TFLM_PLATFORM_SOURCES = {
    "reference": ("tensorflow/lite/micro/debug_log.cc", "tensorflow/lite/micro/micro_time.cc"),
    "cmsis-nn": ("tensorflow/lite/micro/cortex_m_generic/debug_log.cc",
                 "tensorflow/lite/micro/cortex_m_generic/micro_time.cc"),
}
# CMSIS-NN's own C library (every source; the archive keeps what the kernels call).
CMSIS_NN_SOURCE_DIR = "third_party/cmsis_nn/Source"
# Include folders inside a tree, per kernel set.
TFLM_INCLUDES = {
    "reference": (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy"),
    "cmsis-nn": (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                 "third_party/cmsis_nn", "third_party/cmsis_nn/Include", "third_party/cmsis/CMSIS/Core/Include"),
}


def kernel_sources(ops: list[str], kernels: str) -> list[str]:
    """The TFLM kernel files (paths inside a TFLM tree) the op set needs with that kernel set."""
    table = TFLM_KERNELS[kernels]
    files = {f for op in ops for f in table[op]} | set(KERNEL_COMMON)
    return [f"{KERNEL_DIR}/{f}" for f in sorted(files)]


def sources_manifest(ops: list[str]) -> str:
    """``kernel_sources.txt``: the TFLM files to compile for this op set, per kernel set, and the include folders
    (paths inside a TFLM tree): what `edgekd firmware` compiles, written for a user's own build."""
    lines = [f"# Generated by edgekd export: the TFLM sources for ops {', '.join(sorted(ops))}.",
             "# Paths are inside a TFLM tree exported by create_tflm_tree.py (tflite-micro 90b983c2). Compile [core],",
             "# the [platform ...] and [kernels ...] sections of your kernel set (or your own DebugLog / tick counter",
             "# in place of [platform]) with its [includes ...]; a path ending in /*.c means every .c file below it.",
             "", "[core]", *TFLM_CORE_SOURCES]
    for kernels in KERNEL_SETS:
        lines += ["", f"[platform {kernels}]", *TFLM_PLATFORM_SOURCES[kernels]]
        lines += ["", f"[kernels {kernels}]", *kernel_sources(ops, kernels)]
        if kernels == "cmsis-nn":
            lines.append(f"{CMSIS_NN_SOURCE_DIR}/*.c")
        lines += ["", f"[includes {kernels}]", *TFLM_INCLUDES[kernels]]
    return "\n".join(lines) + "\n"


def parse_sources_manifest(text: str, source: str) -> dict[str, list[str]]:
    """Section name ("core", "kernels reference", "includes cmsis-nn", ...) -> paths, from ``sources_manifest``."""
    sections: dict[str, list[str]] = {}
    current = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = []
        elif current is None or line.startswith("/") or ".." in line.split("/"):
            raise EdgekdError(f"{source}: line {n}: {line!r} is not a path inside a TFLM tree under a [section]")
        else:
            sections[current].append(line)
    wanted = ["core"] + [f"{kind} {k}" for k in KERNEL_SETS for kind in ("platform", "kernels", "includes")]
    missing = [w for w in wanted if not sections.get(w)]
    if missing:
        raise EdgekdError(f"{source}: no [{'], ['.join(missing)}] section (re-export the artifact)")
    return sections
