import numpy as np
import pytest
import torch

from edgekd.bpm import BPM_MIN, N_CLASSES, bpm_to_class, class_to_bpm, decode_argmax, decode_expectation
from edgekd.model import ResNet1D, block_specs, deployed_param_count, lengths, macs, paper_param_count, same_pad

# WildPPG / distillation paper Table 1 and REFERENCE.md section 1.
PAPER_PARAMS = {1: 23292, 2: 33724, 3: 44156, 4: 54588, 5: 97852, 6: 139196, 8: 221884, 10: 534460, 12: 863676}
USED_PARAMS = {1: 16628, 2: 27060, 3: 37492, 4: 47924, 5: 84788, 6: 126132, 8: 208820, 10: 508596, 12: 837812}
MMACS = {1: 2.09, 2: 3.11, 3: 4.13, 4: 4.65, 5: 6.19, 6: 7.21, 8: 8.77, 10: 11.52, 12: 13.33}


@pytest.mark.parametrize("blocks", sorted(PAPER_PARAMS))
def test_param_counts_match_table1(blocks):
    assert paper_param_count(blocks) == PAPER_PARAMS[blocks]
    assert deployed_param_count(blocks) == USED_PARAMS[blocks]
    assert round(macs(blocks) / 1e6, 2) == MMACS[blocks]


def test_lengths_follow_reference():
    assert lengths(12) == [200, 200, 100, 100, 50, 50, 25, 25, 13, 13, 7, 7, 4]


def test_same_padding_puts_smaller_half_left():
    assert same_pad(200, 5, 2) == (1, 2)
    assert same_pad(200, 5, 1) == (2, 2)


@pytest.mark.parametrize("blocks,in_ch", [(1, 1), (4, 4), (12, 1)])
def test_forward_shapes_and_features(blocks, in_ch):
    m = ResNet1D(blocks, in_channels=in_ch).eval()
    logits, feats, pooled = m.forward_features(torch.randn(3, in_ch, 200))
    assert logits.shape == (3, N_CLASSES)
    assert [f.shape[-1] for f in feats] == lengths(blocks)[1:]
    assert [f.shape[1] for f in feats] == [s.out_ch for s in block_specs(blocks)]
    assert pooled.shape == (3, block_specs(blocks)[-1].out_ch)


def test_widths_double_every_fourth_block():
    assert [(s.in_ch, s.out_ch, s.stride) for s in block_specs(6)] == [
        (32, 32, 1), (32, 32, 2), (32, 32, 1), (32, 32, 2), (32, 64, 1), (64, 64, 2)]


def test_bpm_mapping_round_trip_and_clamp():
    bpm = np.array([10.0, 30.0, 30.6, 120.4, 209.0, 250.0])
    assert bpm_to_class(bpm).tolist() == [0, 0, 1, 90, 179, 179]
    assert class_to_bpm(np.array([0, 179])).tolist() == [BPM_MIN, BPM_MIN + N_CLASSES - 1]
    t = torch.tensor([72.4])
    assert bpm_to_class(t).item() == 42


def test_decoding_argmax_and_expectation_agree_on_peaked_logits():
    logits = np.full((2, N_CLASSES), -50.0)
    logits[0, 42] = 50.0
    logits[1, 100] = 50.0
    assert decode_argmax(logits).tolist() == [72.0, 130.0]
    np.testing.assert_allclose(decode_expectation(logits), [72.0, 130.0], atol=1e-3)
    tl = torch.tensor(logits)
    np.testing.assert_allclose(decode_expectation(tl).numpy(), [72.0, 130.0], atol=1e-3)
    # Two equal peaks: expectation sits between them, argmax picks one.
    two = np.full((1, N_CLASSES), -50.0)
    two[0, [40, 60]] = 10.0
    assert decode_expectation(two)[0] == pytest.approx(80.0, abs=1e-3)


def test_checkpoint_round_trip_and_mismatch(tmp_path):
    from edgekd.checkpoint import load_model, save_weights
    from edgekd.errors import EdgekdError

    m = ResNet1D(2, in_channels=4).eval()
    save_weights(m, tmp_path / "run" / "model.safetensors")
    back = load_model(tmp_path / "run")  # architecture from the safetensors metadata
    x = torch.randn(2, 4, 200)
    torch.testing.assert_close(back(x), m(x))
    # config.json naming another architecture: refused with a message naming the file
    (tmp_path / "run" / "config.json").write_text('{"model": {"blocks": 3, "in_channels": 4, "n_classes": 180}}')
    with pytest.raises(EdgekdError, match="do not fit"):
        load_model(tmp_path / "run")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(EdgekdError):
        load_model(tmp_path / "bad")


def test_the_readme_shows_what_edgekd_models_prints(capsys) -> None:
    from pathlib import Path

    from edgekd.cli.main import main

    assert main(["models", "--blocks", "1", "2", "4", "12"]) == 0
    shown = "$ edgekd models --blocks 1 2 4 12\n" + capsys.readouterr().out
    assert shown in (Path(__file__).resolve().parent.parent / "README.md").read_text()
