"""The TFLM gate on real converted graphs, and the firmware file generators."""

from __future__ import annotations

import numpy as np
import pytest

from edgekd.errors import EdgekdError


def convert(build, int8: bool, channels: int = 1) -> bytes:
    import keras
    import tensorflow as tf

    inp = keras.Input((200, channels), batch_size=1)
    model = keras.Model(inp, build(inp))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        x = np.random.default_rng(0).standard_normal((8, 1, 200, channels)).astype(np.float32)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([w] for w in x)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def test_rejects_a_float_graph():
    import keras

    from export.checks import check_tflm_ops, op_list

    model = convert(lambda x: keras.layers.Dense(4)(keras.layers.Flatten()(x)), int8=False)
    with pytest.raises(EdgekdError, match="float op"):
        check_tflm_ops(op_list(model), "float.tflite")


def test_rejects_transpose_and_accepts_a_clean_int8_graph():
    import keras

    from export.checks import check_tflm_ops, op_list

    transposed = convert(lambda x: keras.layers.Dense(4)(keras.layers.Permute((2, 1))(x)), int8=True,
                         channels=3)
    with pytest.raises(EdgekdError, match="TRANSPOSE"):
        check_tflm_ops(op_list(transposed), "transpose.tflite")
    clean = convert(lambda x: keras.layers.Conv1D(4, 5, padding="same")(x), int8=True)
    assert "CONV_2D" in check_tflm_ops(op_list(clean), "clean.tflite")


def test_c_identifiers_are_valid():
    from export.c_arrays import c_identifier

    assert c_identifier("hr-2b.v1") == "hr_2b_v1"
    assert c_identifier("2blocks") == "m_2blocks"
    assert c_identifier("---") == "model"
