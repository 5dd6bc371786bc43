"""The targets `edgekd firmware` builds for: the host (g++) and three Cortex-M cores on QEMU's Arm boards (the
gate's [firmware] table and `rank --firmware` name them too, so they live at the bottom of edgekd).

Memory maps are the boards' (QEMU hw/arm/mps2.c, mps2-tz.c, mps3 AN547): the code region the core boots from
and an SRAM region for data, arena and stack. Clocks are for the latency estimate only (instructions x CPI /
clock), typical of parts with that core; QEMU itself runs at no fixed speed.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.errors import EdgekdError


@dataclass(frozen=True)
class Target:
    name: str
    core: str | None  # as edgekd/mcu_targets.toml names it ("Cortex-M4"); None for the host
    cpu_flags: tuple[str, ...]  # compiler flags for the core; empty for the host
    machine: str | None  # QEMU machine; None = run natively
    flash: tuple[int, int]  # (origin, length) of the region code and constants link into
    ram: tuple[int, int]  # (origin, length) of data, bss (arena) and stack
    clock_mhz: float  # for the labelled latency estimate
    default_kernels: str

    @property
    def cortex_m(self) -> bool:
        return self.machine is not None


_HARD_FP = ("-mthumb", "-mfloat-abi=hard")
TARGETS = {
    "host": Target("host", None, (), None, (0, 0), (0, 0), 0.0, "reference"),
    "cortex-m4": Target("cortex-m4", "Cortex-M4", ("-mcpu=cortex-m4", *_HARD_FP, "-mfpu=fpv4-sp-d16"),
                        "mps2-an386", (0x00000000, 0x400000), (0x20000000, 0x400000), 80.0, "cmsis-nn"),
    "cortex-m33": Target("cortex-m33", "Cortex-M33", ("-mcpu=cortex-m33", *_HARD_FP, "-mfpu=fpv5-sp-d16"),
                         "mps2-an505", (0x10000000, 0x400000), (0x38000000, 0x200000), 160.0, "cmsis-nn"),
    "cortex-m55": Target("cortex-m55", "Cortex-M55", ("-mcpu=cortex-m55", *_HARD_FP),
                         "mps3-an547", (0x00000000, 0x80000), (0x20000000, 0x80000), 160.0, "cmsis-nn"),
}
MCU_TARGETS = tuple(name for name, t in TARGETS.items() if t.cortex_m)  # what a budget's [firmware] may name


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise EdgekdError(f"unknown firmware target '{name}'; known: {', '.join(TARGETS)}")
    return TARGETS[name]
