"""`edgekd firmware`: the artifact built with real TFLM C++ and run, on the host (g++, always) and on a Cortex-M4
under QEMU (when Debian's arm-none-eabi toolchain and qemu-system-arm are installed: .ci/run installs them and
sets EDGEKD_REQUIRE_CORTEX_M=1, so there they must run, not skip).

Compiled TFLM objects are cached ($EDGEKD_FIRMWARE_CACHE, else ~/.cache/edgekd/firmware): the first run of a
target compiles about 40 core and 10 kernel files (about 1.5 min on 2 cores), later runs only link.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekd.cli.main import main
from edgekd.errors import EdgekdError


def _windows(artifact: Path) -> Path:
    return artifact.parent.parent / "windows.npz"  # the WindowSet tiny_artifact was calibrated and scored on


@pytest.fixture(scope="module")
def host_record(tiny_artifact, shared_tflm):
    from firmware_bench.firmware.run import firmware_check

    return firmware_check(tiny_artifact, "host", tflm=shared_tflm, windows=24, data=_windows(tiny_artifact),
                          progress=False)


def test_host_firmware_is_bit_exact_with_the_python_interpreter_and_decoder(host_record):
    f = host_record["figures"]
    assert f["windows"] == 24 and f["int8_values"] == 24 * 180
    assert f["input_mismatches"] == 0 and f["int8_mismatches"] == 0 and f["argmax_mismatches"] == 0
    assert f["bpm_mismatches"] == 0 and f["decoder_mismatches"] == 0
    # The arena search on the device: the smallest 16-byte step that allocates, never above what is reserved.
    assert 0 < f["arena_bytes"] <= f["arena_reserved_bytes"] and f["arena_bytes"] % 16 == 0
    assert f["arena_used_bytes"] <= f["arena_bytes"]
    assert host_record["settings"]["kernels"] == "reference"
    assert "instructions_per_inference" not in f  # the host has no instruction counter


def test_cli_writes_the_record_and_exits_0(tiny_artifact, shared_tflm, tmp_path, capsys):
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    code = main(["firmware", str(art), "--tflm", str(shared_tflm), "--windows", "8", "--data",
                 str(_windows(tiny_artifact)), "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((art / "bench" / "firmware-host.json").read_text())
    assert printed["figures"] == written["figures"] and written["runtime"] == "firmware-host"
    assert written["artifact"]["tflite_sha256"] == json.loads((art / "card.json").read_text())[
        "files"]["model_int8.tflite"]["sha256"]


def test_several_artifacts_build_each_and_table_writes_a_study_record(tiny_artifact, shared_tflm, tmp_path, capsys):
    from edgekd.study_report import render, read_record

    arts = [tmp_path / "a", tmp_path / "b"]
    for art in arts:
        shutil.copytree(tiny_artifact, art)
    base = ["firmware", *map(str, arts), "--tflm", str(shared_tflm), "--windows", "4", "--data",
            str(_windows(tiny_artifact))]
    assert main([*base, "--out", str(tmp_path / "rec")]) == 2  # one record folder for two artifacts: refused
    assert "--out takes one artifact" in capsys.readouterr().err and not (tmp_path / "rec").exists()
    table = tmp_path / "results" / "fw.md"
    assert main([*base, "--table", str(table)]) == 0
    assert "IDENTICAL" in capsys.readouterr().out
    for art in arts:
        assert json.loads((art / "bench" / "firmware-host.json").read_text())["figures"]["int8_mismatches"] == 0
    record = read_record(table.with_suffix(".json"))
    assert [r["artifact"] for r in record["rows"]] == [str(a) for a in arts]
    assert record["command"].startswith("edgekd firmware ") and "--table" in record["command"]
    row = record["rows"][0]
    card = json.loads((arts[0] / "card.json").read_text())
    assert row["card_arena_bytes"] == card["tflm"]["arena_bytes"] and 0 < row["arena_bytes"] <= row["card_arena_bytes"]
    assert row["target"] == "host" and "ms" not in row  # no instruction counter on the host
    assert table.read_text() == render(table.with_suffix(".json"))
    assert "| 4 | 0 of " in table.read_text()


def test_a_recorded_non_default_decoder_is_what_the_firmware_runs(tiny_artifact, shared_tflm, tmp_path):
    """Export records the tracker and fusion settings it is given (card, model_data.h), the card's fused MAE is
    scored with them, and the C decoder built from model_data.h agrees with Python's on every window."""
    from edgekd.checkpoint import shipped_decoder, shipped_tracker
    from edgekd.fusion import FusionConfig
    from edgekd.tracking import TrackerConfig
    from export.artifact import export_artifact
    from firmware_bench.firmware.run import firmware_check

    tracker = TrackerConfig(sigma_bpm=5.0, temperature=1.5, kind="laplace", floor=0.01)
    fusion = FusionConfig(weight=2.0, floor=0.05, model_weight=0.5)
    art = tmp_path / "laplace"
    card = export_artifact(tiny_artifact, art, int8=True, calib=_windows(tiny_artifact),
                           evaluate=_windows(tiny_artifact), progress=False, fusion=fusion, tracker=tracker)
    assert shipped_tracker(art) == tracker and shipped_decoder(art) == fusion  # what a re-export or evaluate keeps
    header = (art / "model_data.h").read_text()
    assert "#define LAPLACE_TRACKER_KIND 1" in header and "#define LAPLACE_TRACKER_SIGMA_BPM 5.0f" in header
    assert "#define LAPLACE_FUSION_FLOOR 0.05f" in header
    default = json.loads((tiny_artifact / "card.json").read_text())["accuracy"]["mae_bpm"]["torch"]
    assert card["accuracy"]["mae_bpm"]["torch"]["mae_causal"] != default["mae_causal"]  # scored with the new tracker
    f = firmware_check(art, "host", tflm=shared_tflm, windows=24, data=_windows(tiny_artifact), progress=False)["figures"]
    assert f["bpm_mismatches"] == 0 and f["decoder_mismatches"] == 0 and f["int8_mismatches"] == 0


def test_combinations_are_built_once_and_an_impossible_one_is_refused(tmp_path):
    import argparse

    from edgekd.cli.firmware import combinations

    def ask(**kw):
        base = {"artifacts": [tmp_path / "a", tmp_path / "a"], "target": ["host"], "kernels": None, "keep": None,
                "out": None}
        return combinations(argparse.Namespace(**{**base, **kw}))

    assert ask(target=["host", "host"]) == [(tmp_path / "a", "host", "reference")]
    # the default kernel set last on each target: its record is the one that stays in bench/
    assert [k for _, _, k in ask(target=["cortex-m4"], kernels=["cmsis-nn", "reference"])] == ["reference", "cmsis-nn"]
    with pytest.raises(EdgekdError, match="nothing to build on host"):
        ask(target=["host", "cortex-m4"], kernels=["cmsis-nn"])


def test_bad_inputs_are_one_line_errors(tiny_artifact, shared_tflm, tmp_path, capsys):
    assert main(["firmware", str(tiny_artifact), "--tflm", str(tmp_path / "nowhere")]) == 2
    assert "no TFLM source tree" in capsys.readouterr().err
    assert main(["firmware", str(tiny_artifact), "--tflm", str(shared_tflm), "--kernels", "cmsis-nn"]) == 2
    assert "needs a Cortex-M target" in capsys.readouterr().err
    old = tmp_path / "old"
    shutil.copytree(tiny_artifact, old)
    (old / "kernel_sources.txt").unlink()  # what an artifact exported before kernel_sources.txt existed lacks
    assert main(["firmware", str(old), "--tflm", str(shared_tflm)]) == 2
    err = capsys.readouterr().err
    assert "kernel_sources.txt" in err and err.count("\n") == 1
    before_gate = tmp_path / "before-gate"  # its hr_spectral.c has no hr_spectral_motion: refused, not a C error
    shutil.copytree(tiny_artifact, before_gate)
    card = json.loads((before_gate / "card.json").read_text())
    del card["accuracy"]["decoder"]["fusion"]["motion_g"]
    (before_gate / "card.json").write_text(json.dumps(card))
    assert main(["firmware", str(before_gate), "--tflm", str(shared_tflm)]) == 2
    err = capsys.readouterr().err
    assert "motion gate" in err and "re-export" in err and err.count("\n") == 1


def test_a_wrong_kernel_list_fails_the_link_by_name(tiny_artifact, shared_tflm, tmp_path):
    """kernel_sources.txt is what gets compiled: an entry removed is a link error naming the file, not a
    silently different build."""
    from edgekd.layout import file_record
    from firmware_bench.firmware.run import firmware_check

    art = tmp_path / "art"
    shutil.copytree(tiny_artifact, art)
    path = art / "kernel_sources.txt"
    path.write_text(path.read_text().replace("tensorflow/lite/micro/kernels/conv.cc\n", ""))
    card = json.loads((art / "card.json").read_text())
    card["files"]["kernel_sources.txt"] = file_record(path)
    (art / "card.json").write_text(json.dumps(card))
    with pytest.raises(EdgekdError, match="kernel_sources.txt: the firmware does not link .*Register_CONV_2D"):
        firmware_check(art, "host", tflm=shared_tflm, windows=4, data=_windows(tiny_artifact), progress=False)


def test_linker_map_is_split_by_component(tmp_path):
    from firmware_bench.firmware.build import image_sizes

    (tmp_path / "x.map").write_text("""Archive member included ...
Linker script and memory map

.text           0x00000000     0x1000
 *(.isr_vector)
 .isr_vector    0x00000000       0x40 /w/size/startup.o
 .text._ZN6tflite16MicroInterpreter6InvokeEv
                0x00000040      0x200 /c/libtflm-core-0123.a(tensorflow__lite__micro__micro_interpreter.o)
                0x00000040                tflite::MicroInterpreter::Invoke()
 .text.arm_convolve_s8
                0x00000240      0x300 /c/libcmsis-nn-ab.a(arm_convolve_s8.o)
 .rodata.g_m_model_data
                0x00000540      0x400 /w/size/model_data.o
 .text.memcpy   0x00000940       0x20 /usr/lib/arm-none-eabi/lib/thumb/libc_nano.a(libc_a-memcpy.o)
 .rodata.str1.1
                0x00000960       0x30 /w/size/main.o
 .rodata.str1.1
                0x00000960       0x18 /c/libtflm-core-0123.a(tensorflow__lite__micro__micro_log.o)
 *fill*         0x00000990        0x4
.data           0x20000000       0x10 load address 0x00000964
 .data.x        0x20000000       0x10 /w/size/hr_tracker.o
.bss            0x20000010     0x9010
 .bss._ZL7g_arena
                0x20000010     0x9000 /w/size/main.o
 .bss.g_window  0x20009010       0x10 /w/size/main.o
.comment        0x00000000       0x20
 .comment       0x00000000       0x20 /w/size/main.o
""")
    sizes = image_sizes(tmp_path / "x.map")
    # Merged strings share one address range: counted once (main.o's 0x30; micro_log's 0x18 adds nothing).
    assert sizes["flash"] == {"app": 0x40 + 0x30, "tflm": 0x200, "kernels": 0x300, "model": 0x400, "libc": 0x20,
                              "tracker": 0x10, "padding": 0x1000 - 0x990}
    assert sum(sizes["flash"].values()) == 0x1000 + 0x10  # the output sections: .text + .data's load image
    assert sizes["ram"] == {"tracker": 0x10, "arena": 0x9000, "app": 0x10}


@pytest.fixture(scope="module")
def m4_keep(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("m4")


@pytest.fixture(scope="module")
def m4_record(tiny_artifact, shared_tflm, m4_keep, cortex_m_tier):
    from firmware_bench.firmware.run import firmware_check

    return firmware_check(tiny_artifact, "cortex-m4", tflm=shared_tflm, windows=6, data=_windows(tiny_artifact),
                          progress=False, keep=m4_keep)


def test_cortex_m4_on_qemu_is_bit_exact_and_measured(m4_record, m4_keep, tiny_artifact):
    f = m4_record["figures"]
    assert m4_record["settings"]["kernels"] == "cmsis-nn" and m4_record["settings"]["machine"] == "mps2-an386"
    assert f["int8_mismatches"] == 0 and f["bpm_mismatches"] == 0 and f["decoder_mismatches"] == 0
    # SysTick on the processor clock under -icount shift=0: a fixed number of instructions per tick.
    assert f["instructions_per_tick"] == pytest.approx(40.0, rel=1e-3)
    assert 1e5 < f["instructions_per_inference"] < 1e9
    # The decoder (Goertzel evidence, fusion, tracker) is about 0.15 M multiply-adds: part of every window.
    assert 5e4 < f["instructions_per_decode"] < 5e6
    assert f["instructions_per_window"] == pytest.approx(f["instructions_per_inference"] + f["instructions_per_decode"],
                                                         rel=0.02)
    assert f["latency_ms_estimate"]["ms"] == pytest.approx(f["instructions_per_window"] / 80e3)
    assert 1024 < f["stack_bytes"] < 64 * 1024  # measured high-water mark of the run build
    # The linked image holds the model, TFLM, kernels, libc and the decoder; RAM holds the reserved arena.
    card = json.loads((tiny_artifact / "card.json").read_text())
    assert f["flash_by_component"]["model"] == card["files"]["model_int8.tflite"]["bytes"]
    assert all(f["flash_by_component"][c] > 0 for c in ("tflm", "kernels", "libc", "tracker", "app"))
    assert f["flash_bytes"] == sum(f["flash_by_component"].values())
    # The map's totals are the ELF's: flash = what loads into FLASH, RAM = .data + .bss (arm-none-eabi-size -A).
    sections = dict(line.split()[:2] for line in subprocess.run(
        ["arm-none-eabi-size", "-A", str(m4_keep / "size" / "firmware.elf")], capture_output=True, text=True,
        check=True).stdout.splitlines()[2:] if line.strip() and not line.startswith("Total"))
    size = {k: int(v) for k, v in sections.items()}
    assert f["flash_bytes"] == sum(size.get(k, 0) for k in (".text", ".ARM.exidx", ".ARM.extab", ".preinit_array",
                                                            ".init_array", ".fini_array", ".data"))
    assert f["ram_bytes"] == size[".data"] + size[".bss"]
    assert f["ram_by_component"]["arena"] == card["tflm"]["arena_bytes"]
    assert 0 < f["arena_bytes"] <= card["tflm"]["arena_bytes"]


def test_the_firmware_table_row_sets_measured_beside_estimated(m4_record, tiny_artifact):
    from edgekd.study_report import firmware_markdown
    from firmware_bench.artifact import load_artifact
    from firmware_bench.firmware.summary import summary_row

    art = load_artifact(tiny_artifact)
    row = summary_row(art, m4_record)
    f = m4_record["figures"]
    assert row["flash_bytes"] == f["flash_bytes"] and row["ms"] == f["latency_ms_estimate"]["ms"]
    assert row["flash_bytes_est"] > len(art.tflite_bytes())  # flatbuffer + the code table
    # the MAC estimate: MACs x the M4 row's cycles/MAC at the target's clock
    assert row["mac_ms"] == pytest.approx(art.card.macs * row["cycles_per_mac"] / 80e3)
    text = firmware_markdown({"command": "edgekd firmware x", "rows": [row]})
    assert f"{row['instructions_per_inference'] / 1e6:.2f} + " in text and "@ 80 MHz" in text
