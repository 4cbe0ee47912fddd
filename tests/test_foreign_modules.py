"""A module folder someone else made is data, never code (issue 19): every defect below is refused
with one line naming the file and the defect, nothing unpickled, nothing allocated, nothing written."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from fixtures import run_legonn_parallel
from legonn.data.vocab import SPECIALS, Vocabulary
from legonn.errors import LegonnError
from legonn.modules.artifact import load_module, save_module
from legonn.modules.composed import file_sha256, part_folders
from legonn.nn.chain import Chain

V = 12
SIZE = {"d_model": 16, "heads": 2, "d_ff": 32, "layers": 1, "dropout": 0.0}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A well-formed encoder + decoder pair of folders (root/encoder, root/decoder)."""
    root = tmp_path_factory.mktemp("foreign")
    chain = Chain.from_specs([
        {"name": "encoder", "type": "lego_encoder", "target": "en",
         "conf": {"input": {"type": "embedding", "vocab_size": V}, **SIZE, "ctc_vocab_size": V}},
        {"name": "decoder", "type": "lego_decoder", "target": "en",
         "conf": {"vocab_size": V, "ingestor": {"type": "wemb", "vocab_size": V}, **SIZE}},
    ])
    vocab = Vocabulary(list(SPECIALS) + [f"w{i}" for i in range(V - len(SPECIALS))])
    for name in ("encoder", "decoder"):
        save_module(chain.blocks[name], root / name, name, vocab, vocab)
    return root


def variant(good: Path, tmp_path: Path, edit) -> Path:
    """A copy of the good encoder folder changed by ``edit(folder, meta)``; module.json is rewritten."""
    folder = tmp_path / "encoder"
    shutil.copytree(good / "encoder", folder)
    meta = json.loads((folder / "module.json").read_text())
    edit(folder, meta)
    (folder / "module.json").write_text(json.dumps(meta))
    return folder


def set_vocab_file(name):
    def edit(folder, meta):
        meta["output"]["vocab"]["tokens"] = name
    return edit


def symlinked_vocab(folder, meta):
    outside = folder.parent / "elsewhere.txt"
    shutil.copy(folder / "output.tokens.txt", outside)
    (folder / "output.tokens.txt").unlink()
    os.symlink(outside, folder / "output.tokens.txt")


def huge_d_model(folder, meta):
    meta["conf"]["d_model"] = 10**9


def pickled_weights(folder, meta):
    torch.save({"x": torch.zeros(2)}, folder / "model.safetensors")
    meta.pop("weights_sha256")  # a folder from before legonn recorded it: the format itself must refuse


def truncated_weights(folder, meta):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def bit_flip(folder, meta):
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-3] ^= 0x40
    (folder / "model.safetensors").write_bytes(bytes(data))


def half_precision_tensor(folder, meta):
    module = load_module(folder).module
    state = {k: v.half() if k == "ctc.proj.weight" else v for k, v in module.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    meta["weights_sha256"] = file_sha256(folder / "model.safetensors")


def other_vocab_checksum(folder, meta):
    meta["output"]["vocab"]["sha256"] = "0" * 64


def duplicate_piece(folder, meta):
    lines = (folder / "output.tokens.txt").read_text().splitlines()
    (folder / "output.tokens.txt").write_text("\n".join(lines + [lines[-1]]) + "\n")


def empty_piece(folder, meta):
    lines = (folder / "output.tokens.txt").read_text().splitlines()
    (folder / "output.tokens.txt").write_text("\n".join(lines[:4] + [""] + lines[5:]) + "\n")


CASES = {
    "parent path": (set_vocab_file("../../../../etc/passwd"), "is not a relative name inside"),
    "absolute path": (set_vocab_file("/etc/passwd"), "is not a relative name inside"),
    "symlink leaving": (symlinked_vocab, "leads outside"),
    "d_model 10^9": (huge_d_model, "architecture cannot exist"),
    "d_model 10^4": (lambda folder, meta: meta["conf"].update(d_model=10**4), "module.json's architecture needs"),
    "pickle as weights": (pickled_weights, "not a readable safetensors file"),
    "truncated weights": (truncated_weights, "does not match"),
    "bit flip": (bit_flip, "does not match"),
    "tensor dtype": (half_precision_tensor, "tensor ctc.proj.weight is F16"),
    "vocabulary checksum": (other_vocab_checksum, "does not match the recorded"),
    "duplicate piece": (duplicate_piece, "repeats line"),
    "empty piece": (empty_piece, "is empty or contains whitespace"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_defect_is_refused_with_one_line(good, tmp_path, case):
    edit, message = CASES[case]
    folder = variant(good, tmp_path, edit)
    with pytest.raises(LegonnError, match=message) as err:
        load_module(folder)
    assert "\n" not in str(err.value) and str(folder) in str(err.value)


def test_the_commands_refuse_them_without_a_traceback_or_output(good, tmp_path):
    folders = {case: variant(good, tmp_path / case.replace(" ", "_"), CASES[case][0]) for case in CASES}
    runs = run_legonn_parallel(*[["compose", "--modules", folder, good / "decoder", "--out", folder.parent / "composed"]
                                 for folder in folders.values()])
    for (case, folder), proc in zip(folders.items(), runs):
        assert proc.returncode == 1, (case, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, (case, proc.stderr)
        assert CASES[case][1] in proc.stderr, (case, proc.stderr)
        assert not (folder.parent / "composed").exists(), case
    print(f"\n{len(CASES)} defects of foreign module folders refused by compose, one line each")


def test_a_composed_part_leading_outside_is_refused(good, tmp_path):
    composed = tmp_path / "composed"
    done = run_legonn_parallel(["compose", "--modules", good / "encoder", good / "decoder", "--out", composed])[0]
    assert done.returncode == 0, done.stderr
    index = json.loads((composed / "composed.json").read_text())
    os.symlink(good / "encoder", composed / "escape")
    index["parts"][0]["folder"] = "escape"
    (composed / "composed.json").write_text(json.dumps(index))
    with pytest.raises(LegonnError, match="leads outside"):
        part_folders(composed)


def test_weights_checksum_is_recorded_at_save(good):
    meta = json.loads((good / "encoder" / "module.json").read_text())
    assert meta["weights_sha256"] == file_sha256(good / "encoder" / "model.safetensors")
