"""The model: one image channel into a backbone whose first convolution absorbed
MobileNetV2's three identical input channels (same scores as the 3-channel model)."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from birdsong.errors import InvalidParameterError  # noqa: E402
from birdsong.features import MelSpectrogram  # noqa: E402
from birdsong.model import build_model, fold_input_channels, set_fine_tuning  # noqa: E402
from conftest import SHARED_WEIGHTS, tiny_config  # noqa: E402

LABELS = ["a", "b", "c"]


def _randomise(model, seed: int = 0) -> None:
    """Random BatchNorm scales, offsets and statistics (the statistics from one batch, so
    that the signal survives the depth) and random head weights: copying every weight,
    statistics included, is what makes the outputs equal."""
    rng = np.random.default_rng(seed)
    layers = getattr(model, "layers", [model])
    norms = [la for la in layers if isinstance(la, keras.layers.BatchNormalization)]
    for layer in norms:
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights(
            [
                rng.uniform(0.8, 1.2, gamma.shape).astype(np.float32),
                rng.normal(0, 0.1, beta.shape).astype(np.float32),
                mean,
                var,
            ]
        )
        layer.momentum = 0.0
    if norms:
        shape = (8, *model.input_shape[1:])
        model(rng.uniform(-1, 1, shape).astype(np.float32), training=True)
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            k, b = layer.get_weights()
            layer.set_weights(
                [
                    rng.normal(0, 3.0 / np.sqrt(k.shape[0]), k.shape).astype(np.float32),
                    np.zeros_like(b),
                ]
            )


def _three_channel_reference(model, backbone3, config):
    """The same network the pre-fold way: 3-channel image into the 3-channel backbone."""
    f = config.features
    inp = keras.Input((f.num_samples,))
    x = MelSpectrogram(f, channels=3)(inp)
    x = backbone3(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(len(LABELS), activation="softmax")
    out = dense(x)
    dense.set_weights(model.get_layer("species").get_weights())
    return keras.Model(inp, out)


def _waves(config, n=3, seed=0):
    f = config.features
    t = np.arange(f.num_samples) / f.sample_rate
    rng = np.random.default_rng(seed)
    x = 0.05 * rng.standard_normal((n, f.num_samples))
    x[0] += 0.5 * np.sin(2 * np.pi * 1500 * t)
    return x.astype(np.float32)


def test_folded_backbone_equals_the_three_channel_one():
    backbone3 = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, name="backbone"
    )
    _randomise(backbone3)
    folded = fold_input_channels(backbone3, alpha=0.35)
    assert folded.input_shape[-1] == 1 and folded.name == "backbone"
    assert [la.name for la in folded.layers][1:] == [la.name for la in backbone3.layers][1:]
    np.testing.assert_allclose(
        folded.get_layer("Conv1").get_weights()[0][:, :, 0],
        backbone3.get_layer("Conv1").get_weights()[0].sum(axis=2),
        rtol=1e-6,
    )
    image = np.random.default_rng(1).uniform(-1, 1, (4, 32, 32, 1)).astype(np.float32)
    # The fold itself: Conv1 outputs equal up to float rounding of the channel sum.
    conv3 = keras.Model(backbone3.input, backbone3.get_layer("Conv1").output)
    conv1 = keras.Model(folded.input, folded.get_layer("Conv1").output)
    np.testing.assert_allclose(
        np.asarray(conv1(image)), np.asarray(conv3(np.repeat(image, 3, axis=-1))), atol=1e-6
    )
    want = np.asarray(backbone3(np.repeat(image, 3, axis=-1), training=False))
    got = np.asarray(folded(image, training=False))
    assert want.std(axis=0).mean() > 0.5  # outputs depend on the image
    # 17 blocks of random weights (statistics set from one batch) amplify that rounding
    # (measured ~3e-4 of outputs up to 6); with pretrained weights see the test below.
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)


def test_fold_rejects_a_one_channel_backbone():
    one = keras.applications.MobileNetV2(
        input_shape=(32, 32, 1), alpha=0.35, include_top=False, weights=None
    )
    with pytest.raises(InvalidParameterError, match="'backbone'.*3 input channels"):
        fold_input_channels(one, alpha=0.35)


def test_pretrained_model_gets_one_channel_and_scores_as_the_three_channel_model(tmp_path):
    """build_model loads a weights file into the 3-channel backbone and folds it: the
    one-channel model gives the 3-channel model's scores (same weights) within 1e-5."""
    backbone3 = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None, name="backbone"
    )
    _randomise(backbone3, seed=2)
    weights = tmp_path / "mobilenet_v2_0.35_no_top.weights.h5"
    backbone3.save_weights(weights)
    config = tiny_config(weights=str(weights))
    model = build_model(LABELS, config)
    _randomise(model.get_layer("species"), seed=3)
    assert model.get_layer("frontend").output.shape[-1] == 1
    assert model.get_layer("backbone").input_shape[-1] == 1
    assert [la.name for la in model.layers] == [
        "waveform",
        "frontend",
        "spec_augment",
        "backbone",
        "pool",
        "dropout",
        "species",
    ]
    reference = _three_channel_reference(model, backbone3, config)
    x = _waves(config)
    got, want = np.asarray(model(x, training=False)), np.asarray(reference(x))
    assert want.std(axis=0).max() > 1e-3  # scores differ between windows
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert "block_16_expand" in set_fine_tuning(model, "block_16_expand")


def test_auto_fine_tuning_unfreezes_the_whole_backbone_but_batchnorm():
    """``fine_tune_from="auto"``: every backbone layer with weights trains, from Conv1 up,
    except BatchNorm for a pretrained backbone; a named layer keeps the ones under it
    frozen."""
    import keras

    model = build_model(LABELS, tiny_config())
    backbone = model.get_layer("backbone")
    unfrozen = set(set_fine_tuning(model, "auto", pretrained=True))
    weighted = [layer for layer in backbone.layers if layer.weights]
    bn = {layer.name for layer in weighted if isinstance(layer, keras.layers.BatchNormalization)}
    assert "Conv1" in unfrozen and bn and not unfrozen & bn
    assert unfrozen == {layer.name for layer in weighted} - bn
    top = set(set_fine_tuning(model, "block_13_expand", pretrained=True))
    assert "Conv1" not in top and "block_13_expand" in top and top < unfrozen
    scratch = set(set_fine_tuning(model, "auto", pretrained=False))
    assert scratch == {layer.name for layer in weighted}


def test_random_init_model_is_one_channel_end_to_end():
    model = build_model(LABELS, tiny_config())
    assert model.get_layer("backbone").get_layer("Conv1").get_weights()[0].shape[2] == 1
    scores = np.asarray(model(_waves(tiny_config()), training=False))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_WEIGHTS.exists(), reason="offline MobileNetV2 weights absent")
def test_offline_backbone_folds_exactly():
    """The real pretrained backbone (alpha 1.0): folded vs 3-channel, same scores."""
    import dataclasses

    base = tiny_config()
    config = tiny_config(
        alpha=1.0,
        weights=str(SHARED_WEIGHTS),
        features=dataclasses.replace(base.features, image_size=96),
    )
    model = build_model(LABELS, config)
    _randomise(model.get_layer("species"), seed=4)
    backbone3 = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3),
        alpha=1.0,
        include_top=False,
        weights=str(SHARED_WEIGHTS),
        name="backbone",
    )
    reference = _three_channel_reference(model, backbone3, config)
    x = _waves(config, n=4)
    np.testing.assert_allclose(
        np.asarray(model(x, training=False)), np.asarray(reference(x)), atol=1e-5, rtol=0
    )


@pytest.mark.slow
def test_export_is_one_window_in_xnnpack_ops_and_int8_recipes_keep_their_layers_float():
    """float32 export: static (1, samples) input, no RFFT/GATHER, Keras scores within
    1e-4; each int8 recipe runs and keeps its layers float32."""
    from ai_edge_litert.interpreter import Interpreter

    from birdsong.exporting import INT8_RECIPES, convert

    config = tiny_config()
    model = build_model(LABELS, config)
    x = _waves(config, n=4)
    it = Interpreter(model_content=convert(model))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape_signature"]) == [1, config.features.num_samples]
    assert not {d["op_name"] for d in it._get_ops_details()} & {"RFFT2D", "GATHER", "TILE"}
    for w, want in zip(x, np.asarray(model(x, training=False))):
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        np.testing.assert_allclose(it.get_tensor(out["index"])[0], want, atol=1e-4)
    for recipe in INT8_RECIPES:
        it = Interpreter(
            model_content=convert(model, quantize="int8", representative=x, int8_recipe=recipe)
        )
        it.allocate_tensors()
        kinds = {t["name"]: t["dtype"] for t in it.get_tensor_details()}
        conv1 = [d for n, d in kinds.items() if "Conv1_relu" in n]
        assert conv1 and all(
            d == (np.float32 if recipe == "ends-float" else np.int8) for d in conv1
        ), (recipe, conv1)
        assert all(d == np.float32 for n, d in kinds.items() if "frontend" in n and "MatMul" in n)
        it.set_tensor(it.get_input_details()[0]["index"], x[:1])
        it.invoke()
        scores = it.get_tensor(it.get_output_details()[0]["index"])
        np.testing.assert_allclose(scores.sum(), 1.0, atol=1e-2)
    with pytest.raises(InvalidParameterError, match="'int8_recipe'.*'fast'"):
        convert(model, quantize="int8", representative=x, int8_recipe="fast")
