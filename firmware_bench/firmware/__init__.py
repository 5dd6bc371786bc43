"""`edgekd firmware`: build an artifact into a small test firmware with real TFLM C++ (host or Cortex-M), run it
(natively, or bare-metal under QEMU with semihosting) and compare it with the Python TFLM interpreter and the
edgekd decoder; measure the linked image, the arena and the instructions per inference where the model runs.

targets  the boards (compiler flags, QEMU machine, memory map)
build    the TFLM tree, the cached library per target and flags, the generated firmware, the link, the map
run      windows in, results out, the comparison and the benchmark record
"""
