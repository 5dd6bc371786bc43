"""The `edgekd` command line. Heavy layers (export, firmware_bench, TensorFlow) are imported inside handlers."""
