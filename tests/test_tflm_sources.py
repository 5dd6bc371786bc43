"""The TFLM source tables of edgekd.tflm_ops against the pinned tree in ../shared/tflm (both kernel sets)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.tflm_ops import (KERNEL_COMMON, KERNEL_DIR, KERNEL_SETS, TFLM_CORE_SOURCES, TFLM_INCLUDES, TFLM_KERNELS,
                             TFLM_PLATFORM_SOURCES, TFLM_RESOLVER, kernel_sources, parse_sources_manifest,
                             sources_manifest)


def _tree(shared_tflm: Path, kernels: str) -> Path:
    return shared_tflm / kernels


def _derived(tree: Path, op: str, kernels: str) -> set[str]:
    """Kernel files op needs in this tree: the one defining Register_OP(), then each kernel header it includes
    as NAME.cc / NAME_common.cc (the CMSIS-NN tree's cmsis_nn/ version first), transitively."""
    kd = tree / KERNEL_DIR

    def impl(stem: str) -> Path | None:
        for d in ([kd / "cmsis_nn"] if kernels == "cmsis-nn" else []) + [kd]:
            if (d / f"{stem}.cc").is_file():
                return d / f"{stem}.cc"
        return None

    files = {p for p in [*kd.glob("*.cc"), *kd.glob("cmsis_nn/*.cc")]
             if re.search(rf"TFLMRegistration Register_{op}\(\)\s*{{", p.read_text(errors="replace"))}
    todo = list(files)
    while todo:
        for inc in re.findall(r'#include "tensorflow/lite/micro/kernels/(\w+)\.h"', todo.pop().read_text()):
            for stem in (inc, f"{inc}_common"):
                p = impl(stem)
                if p is not None and p not in files:
                    files.add(p)
                    todo.append(p)
    return {str(p.relative_to(kd)) for p in files}


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_kernel_table_is_what_the_tree_needs(shared_tflm, kernels):
    tree = _tree(shared_tflm, kernels)
    for op in TFLM_RESOLVER:
        assert _derived(tree, op, kernels) == set(TFLM_KERNELS[kernels][op]) | set(KERNEL_COMMON), op


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_core_sources_and_includes_exist(shared_tflm, kernels):
    tree = _tree(shared_tflm, kernels)
    for path in (*TFLM_CORE_SOURCES, *TFLM_PLATFORM_SOURCES[kernels], *kernel_sources(list(TFLM_RESOLVER), kernels)):
        assert (tree / path).is_file(), path
    for inc in TFLM_INCLUDES[kernels]:
        assert (tree / inc).is_dir(), inc


def test_manifest_round_trips_and_refuses_paths_outside_the_tree():
    text = sources_manifest(["CONV_2D", "ADD"])
    parsed = parse_sources_manifest(text, "k.txt")
    assert parsed["core"] == list(TFLM_CORE_SOURCES)
    assert f"{KERNEL_DIR}/cmsis_nn/conv.cc" in parsed["kernels cmsis-nn"]
    assert f"{KERNEL_DIR}/conv.cc" in parsed["kernels reference"]
    with pytest.raises(EdgekdError, match="not a path inside a TFLM tree"):
        parse_sources_manifest(text.replace("tensorflow/lite/micro/micro_log.cc", "../../etc/passwd"), "k.txt")
    with pytest.raises(EdgekdError, match="no \\[core\\]"):
        parse_sources_manifest(text.replace("[core]", "[corr]"), "k.txt")
