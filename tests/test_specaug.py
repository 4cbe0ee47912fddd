"""SpecAugment masking (legonn/data/specaug.py) and its wiring into the training data (data.specaug)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from legonn.config import DEFAULTS, resolve
from legonn.errors import LegonnError
from legonn.data.specaug import SpecAugment


def masked_rows_cols(before: np.ndarray, after: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    zero = (after == 0) & (before != 0)
    return np.flatnonzero(zero.all(axis=1)), np.flatnonzero(zero.all(axis=0))


def test_mask_counts_and_widths_stay_within_bounds():
    aug = SpecAugment()
    g = torch.Generator().manual_seed(0)
    widths_t, widths_f = [], []
    for frames in (1000, 500, 120):
        for _ in range(100):
            freq, time = aug.draw(frames, 80, g)
            assert len(freq) == 2 and len(time) == 2
            for start, f in freq:
                assert 0 <= f <= 27 and 0 <= start and start + f <= 80
                widths_f.append(f)
            for start, t in time:
                assert 0 <= t <= min(70, int(0.2 * frames)) and 0 <= start and start + t <= frames
                widths_t.append(t)
    assert max(widths_f) == 27 and min(widths_f) == 0  # the whole range U{0..F} is used
    assert max(widths_t) == 70


def test_applied_masks_match_the_drawn_ones():
    feats = np.random.default_rng(0).normal(size=(300, 40)).astype(np.float32) + 5.0  # no zeros
    aug = SpecAugment(freq_masks=2, freq_width=10, time_masks=2, time_width=30)
    freq, time = aug.draw(300, 40, torch.Generator().manual_seed(7))
    out = aug(feats, torch.Generator().manual_seed(7))
    assert out is not feats and out.dtype == feats.dtype and out.shape == feats.shape
    assert np.all(feats != 0)  # the input is not modified
    expect = feats.copy()
    for s, w in freq:
        expect[:, s : s + w] = 0
    for s, w in time:
        expect[s : s + w] = 0
    np.testing.assert_array_equal(out, expect)
    rows, cols = masked_rows_cols(feats, out)
    assert len(rows) <= 60 and len(cols) <= 20
    assert 0 < np.count_nonzero(out == 0) < out.size


def test_time_masks_are_capped_at_twenty_percent_of_short_utterances():
    aug = SpecAugment(freq_masks=0)
    g = torch.Generator().manual_seed(1)
    widths = [t for _ in range(300) for _, t in aug.draw(50, 80, g)[1]]
    assert max(widths) == 10  # 20% of 50 frames, far below T=70
    assert all(t == 0 for _ in range(50) for _, t in aug.draw(4, 80, g)[1])  # int(0.8) = 0: nothing to mask
    feats = np.ones((4, 80), np.float32)
    np.testing.assert_array_equal(aug(feats, g), feats)


def test_narrow_features_never_overflow_the_frequency_axis():
    g = torch.Generator().manual_seed(2)
    for _ in range(50):
        for start, f in SpecAugment().draw(100, 13, g)[0]:
            assert start + f <= 13


def test_prob_zero_leaves_the_input_and_the_rng_untouched():
    feats = torch.randn(200, 80)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    aug = SpecAugment(prob=0.0)
    assert aug(feats) is feats
    assert torch.equal(torch.get_rng_state(), state)
    half = SpecAugment(prob=0.5)
    g = torch.Generator().manual_seed(3)
    hit = sum(bool(half.draw(200, 80, g)[0]) for _ in range(200))
    assert 60 < hit < 140


def test_deterministic_under_a_fixed_torch_seed():
    feats = torch.randn(400, 80) + 3.0
    aug = SpecAugment()
    torch.manual_seed(11)
    a = [aug(feats) for _ in range(3)]
    torch.manual_seed(11)
    b = [aug(feats) for _ in range(3)]
    for x, y in zip(a, b):
        assert isinstance(y, torch.Tensor) and torch.equal(x, y)
    assert not torch.equal(a[0], a[1])  # successive utterances get different masks
    c = aug(feats, torch.Generator().manual_seed(11))
    d = aug(feats, torch.Generator().manual_seed(11))
    assert torch.equal(c, d)


def test_config_values():
    assert DEFAULTS["data"]["specaug"] is None
    assert SpecAugment.from_config(None) is None and SpecAugment.from_config(False) is None
    assert SpecAugment.from_config(True) == SpecAugment()
    assert SpecAugment.from_config({"prob": 0.5, "time_width": 40}) == SpecAugment(time_width=40, prob=0.5)
    assert SpecAugment().to_config() == {"freq_masks": 2, "freq_width": 27, "time_masks": 2, "time_width": 70,
                                         "time_ratio": 0.2, "prob": 1.0}
    with pytest.raises(LegonnError, match=r"data\.specaug: unknown key\(s\) freq_mask \("):
        SpecAugment.from_config({"freq_mask": 2})
    with pytest.raises(LegonnError, match=r"data\.specaug: prob"):
        SpecAugment.from_config({"prob": 1.5})
    with pytest.raises(LegonnError, match=r"data\.specaug: time_width"):
        SpecAugment.from_config({"time_width": -1})
    with pytest.raises(LegonnError, match="data.specaug: expected a mapping"):
        SpecAugment.from_config("yes please")


# --- wiring: data.specaug -> training set only --------------------------------------------


def _feature_corpus(root: Path) -> Path:
    import kaldiio

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("valid", 3)):
        d = root / split
        d.mkdir(parents=True)
        feats = {f"{split}{i}": (rng.normal(size=(60 + 10 * i, 20)) + 4.0).astype(np.float32) for i in range(n)}
        kaldiio.save_ark(str(d / "feats.ark"), feats, scp=str(d / "feats.scp"))
        (d / "text").write_text("".join(f"{u} a b\n" for u in feats), encoding="utf-8")
    (root / "tokens.txt").write_text("<blank>\n<unk>\n<sos/eos>\na\nb\n", encoding="utf-8")
    return root


def _config(root: Path, tmp: Path, specaug) -> dict:
    raw = {"data": {"train": str(root / "train"), "valid": str(root / "valid"), "input": {"file": "feats.scp"},
                    "targets": {"tok": {"file": "text", "vocab": str(root / "tokens.txt")}}, "specaug": specaug}}
    path = tmp / "conf.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return resolve(path)


def test_train_set_is_augmented_and_valid_set_is_not(tmp_path):
    from legonn.engine.experiment import open_dataset

    root = _feature_corpus(tmp_path / "data")
    config = _config(root, tmp_path, {"freq_masks": 2, "freq_width": 5, "time_masks": 2, "time_width": 10})
    train, valid = open_dataset(config, "train"), open_dataset(config, "valid")
    assert isinstance(train.augment, SpecAugment) and valid.augment is None

    idx = list(range(len(train)))
    torch.manual_seed(0)
    batch = train.collate(idx)
    torch.manual_seed(0)
    assert torch.equal(train.collate(idx).inputs, batch.inputs)  # reproducible from torch's RNG
    for i, utt in enumerate(batch.utt_ids):
        raw = train.input.load(utt)
        got = batch.inputs[i, : len(raw)].numpy()
        assert not np.array_equal(got, raw) and np.count_nonzero(got == 0) > 0
        np.testing.assert_array_equal(got[got != 0], raw[got != 0])  # only masking, nothing else changes
    assert torch.equal(batch.input_lengths, torch.tensor([train.input.lengths[u] for u in batch.utt_ids]))

    vbatch = valid.collate(list(range(len(valid))))
    for i, utt in enumerate(vbatch.utt_ids):
        raw = valid.input.load(utt)
        np.testing.assert_array_equal(vbatch.inputs[i, : len(raw)].numpy(), raw)

    plain = open_dataset(_config(root, tmp_path, None), "train")
    assert plain.augment is None


def test_config_errors_surface_when_the_data_is_opened(tmp_path):
    from legonn.data.dataset import ChainDataset, StreamSpec
    from legonn.engine.experiment import open_dataset

    root = _feature_corpus(tmp_path / "data")
    with pytest.raises(LegonnError, match="data.specaug: unknown key.*time_mask"):
        open_dataset(_config(root, tmp_path, {"time_mask": 3}), "valid")
    with pytest.raises(LegonnError, match="needs a feature input"):
        ChainDataset(root / "train", StreamSpec("text", str(root / "tokens.txt")), {}, augment=SpecAugment())
