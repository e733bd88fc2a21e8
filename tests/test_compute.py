"""Multiply-accumulates counted from a deployed graph's ops (fast: synthetic op lists; slow:
real TFLite and SavedModel graphs of a model whose count is known by hand)."""

import numpy as np
import pytest

from autotune.measure.compute import conv_macs, tflite_macs


def test_tflite_op_counts():
    shapes = {
        0: (1, 8, 8, 3),  # input
        1: (16, 3, 3, 3),  # conv filter [out, kh, kw, in]
        2: (1, 8, 8, 16),  # conv out
        3: (1, 3, 3, 16),  # depthwise filter
        4: (1, 4, 4, 16),  # depthwise out (stride 2)
        5: (10, 256),  # dense weights [units, depth]
        6: (1, 10),  # dense out
        7: (1, 4, 4, 16),
    }
    ops = [
        {"op_name": "CONV_2D", "inputs": [0, 1, -1], "outputs": [2]},
        {"op_name": "DEPTHWISE_CONV_2D", "inputs": [2, 3, -1], "outputs": [4]},
        {"op_name": "RELU", "inputs": [4], "outputs": [7]},  # element-wise: not counted
        {"op_name": "FULLY_CONNECTED", "inputs": [7, 5, -1], "outputs": [6]},
    ]
    conv = 8 * 8 * 16 * 3 * 3 * 3
    depthwise = 4 * 4 * 16 * 3 * 3
    dense = 10 * 256
    assert tflite_macs(ops, shapes) == conv + depthwise + dense
    assert conv_macs((2, 8, 8, 16), (3, 3), 3) == 2 * conv  # batch counts



def test_sequence_ops_count_every_weight_matrix_once_per_step_and_sample():
    # UNIDIRECTIONAL_SEQUENCE_LSTM over [batch 2, 8 steps, 16 inputs], 32 units, no input
    # gate (coupled: -1), no peepholes or projection.
    shapes = {0: (2, 8, 16), 1: (32, 16), 2: (32, 32), 9: (2, 32)}
    ins = [0, -1, 1, 1, 1, -1, 2, 2, 2] + [-1] * 15
    ops = [{"op_name": "UNIDIRECTIONAL_SEQUENCE_LSTM", "inputs": ins, "outputs": [9]}]
    assert tflite_macs(ops, shapes) == 2 * 8 * 3 * 32 * (16 + 32)


def test_a_while_loop_counts_its_body_once_per_iteration():
    from autotune.measure.compute import while_loop_macs

    main = {"ops": [{"op_name": "WHILE", "inputs": [0, 1, 2], "outputs": [3], "cond": 1, "body": 2}],
            "shapes": {}, "consts": {0: 0, 1: 16}, "inputs": []}
    # cond: loop variable 0 < its input 1, which the caller passes as the constant 16.
    cond = {"ops": [{"op_name": "LESS", "inputs": [0, 1], "outputs": [3]}], "shapes": {}, "consts": {}, "inputs": [0, 1, 2]}
    body = {"ops": [{"op_name": "FULLY_CONNECTED", "inputs": [2, 4, -1], "outputs": [5]}],
            "shapes": {2: (1, 8), 4: (24, 8), 5: (1, 24)}, "consts": {}, "inputs": [0, 1, 2]}
    assert while_loop_macs([main, cond, body]) == 16 * 24 * 8

@pytest.mark.slow
def test_the_artifact_and_the_saved_model_count_the_same_known_macs(tmp_path):
    from autotune._keras import keras
    from autotune.build.convert import to_saved_model, to_tflite
    from autotune.measure.artifact import LiteRTExecutor, TensorFlowExecutor

    k = keras()
    inp = k.Input((16, 16, 3))
    x = k.layers.Conv2D(8, 3, padding="same")(inp)  # 16·16·8 · 3·3·3 = 55 296
    x = k.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 8·8·8 · 9 = 4 608
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(4)(x)  # 4 · 8 = 32
    model = k.Model(inp, out)
    expected = 55_296 + 4_608 + 32
    calib = np.random.default_rng(0).standard_normal((8, 16, 16, 3)).astype(np.float32)
    sample = calib[:2]
    for precision in ("fp32", "int8"):
        d = tmp_path / precision
        d.mkdir()
        assert LiteRTExecutor(to_tflite(model, precision, calib, d), 1).macs(sample) == expected
    saved = to_saved_model(model, False, tmp_path)
    assert TensorFlowExecutor(saved).macs(sample) == expected
