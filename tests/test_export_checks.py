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

    from export.checks import check_tflm_ops
    from edgekd.runtimes import flatbuffer_ops

    model = convert(lambda x: keras.layers.Dense(4)(keras.layers.Flatten()(x)), int8=False)
    with pytest.raises(EdgekdError, match="float op"):
        check_tflm_ops(flatbuffer_ops(model), "float.tflite")


def test_rejects_transpose_and_accepts_a_clean_int8_graph():
    import keras

    from export.checks import check_tflm_ops
    from edgekd.runtimes import flatbuffer_ops

    transposed = convert(lambda x: keras.layers.Dense(4)(keras.layers.Permute((2, 1))(x)), int8=True,
                         channels=3)
    with pytest.raises(EdgekdError, match="TRANSPOSE"):
        check_tflm_ops(flatbuffer_ops(transposed), "transpose.tflite")
    clean = convert(lambda x: keras.layers.Conv1D(4, 5, padding="same")(x), int8=True)
    assert "CONV_2D" in check_tflm_ops(flatbuffer_ops(clean), "clean.tflite")


def test_c_identifiers_are_valid():
    from export.c_arrays import c_identifier

    assert c_identifier("hr-2b.v1") == "hr_2b_v1"
    assert c_identifier("2blocks") == "m_2blocks"
    assert c_identifier("---") == "model"
    for keyword in ("int", "new", "std", "tflite", "uint8_t", "NDEBUG", "class"):
        assert c_identifier(keyword) == f"m_{keyword}"
    assert c_identifier("a__b") == "a_b"  # double underscores are the implementation's


def test_two_models_link_into_one_c_program(tmp_path):
    """Names are per model (array, macros, guards): two artifacts' headers and arrays build into one image."""
    import shutil
    import subprocess

    from edgekd.arch import GraphInput
    from export.c_arrays import QuantParams, model_data_cc, model_data_h
    from edgekd.fusion import FusionConfig
    from edgekd.tracking import TrackerConfig

    cxx, cc = shutil.which("g++"), shutil.which("gcc")
    if cxx is None or cc is None:
        pytest.fail("gcc/g++ needed to check the generated C")
    includes = []
    # a window-reading model and a spectral student (its input: hr_spectral_features of the window)
    for ident, blob, gin in (("hr_a", b"\x01\x02\x03", GraphInput("window", 4, 200, None, 0)),
                             ("hr_b", b"\x04\x05", GraphInput("spectra", 7, 180, "hr_spectral_features", 439_200))):
        (tmp_path / ident).mkdir()
        (tmp_path / ident / "model_data.h").write_text(model_data_h(ident, len(blob), 1024, 900, 4, gin, QuantParams(
            0.05, -3, 0.1, 7), FusionConfig(), TrackerConfig()))
        (tmp_path / ident / "model_data.cc").write_text(model_data_cc(ident, blob))
        includes.append(f'#include "{ident}/model_data.h"')
    (tmp_path / "main.c").write_text("\n".join(includes) + """
int main(void) {
  return (int)(g_hr_a_model_data_size + g_hr_b_model_data_size + g_hr_b_model_data[1]) - 10 + HR_A_INPUT_ZERO_POINT + 3
         + (HR_B_ARENA_SIZE - 1024) + HR_A_SPECTRAL_INPUT + (HR_B_MODEL_INPUT_LENGTH * HR_B_MODEL_INPUT_CHANNELS - 1260)
         + (HR_A_MODEL_INPUT_LENGTH - HR_A_WINDOW_LENGTH) + (HR_B_SPECTRAL_INPUT - 1);
}
""")
    objs = []
    for src, tool, std in (("main.c", cc, "-std=c99"), ("hr_a/model_data.cc", cxx, "-std=c++17"),
                           ("hr_b/model_data.cc", cxx, "-std=c++17")):
        obj = tmp_path / (src.replace("/", "_") + ".o")
        subprocess.run([tool, std, "-Wall", "-Werror", "-c", f"-I{tmp_path}", str(tmp_path / src), "-o", str(obj)],
                       check=True)
        objs.append(str(obj))
    subprocess.run([cxx, *objs, "-o", str(tmp_path / "app")], check=True)
    assert subprocess.run([str(tmp_path / "app")]).returncode == 0
