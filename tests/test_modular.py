"""Modular Transformers' arithmetic (legonn/nn/modular.py): aligned blocks, assemblies as tilings,
compression ratios to depths, and assembled stacks run through the teacher's own forward pass."""
from __future__ import annotations

import pytest
import torch

from legonn.errors import LegonnError
from legonn.nn.mask import padding_mask
from legonn.nn.modular import (
    Block, assemble, blocks, depth_for_ratio, depths, modular_layers, plans, replacement_probability, sample_plan,
)
from legonn.nn.transformer import Route, TransformerCrossStack, TransformerEncoder


def test_blocks_are_aligned_and_fit():
    assert [b.name for b in blocks(6, [2, 3, 6])] == ["g2_0", "g2_1", "g2_2", "g3_0", "g3_1", "g6_0"]
    assert [(b.start, b.size) for b in blocks(5, [2])] == [(0, 2), (2, 2)]  # no block past layer 4


def test_plans_tile_the_stack_exactly_once_each():
    all_plans = plans(6, [2, 3, 6])
    assert len(all_plans) == len(set(all_plans))
    for plan in all_plans:
        assert sum(b.size for b in plan) == 6
        assert [b.start for b in plan] == [sum(x.size for x in plan[:i]) for i in range(len(plan))]
        assert all(b.start % b.size == 0 for b in plan)
    assert (Block(0, 6),) in all_plans and tuple(Block(i, 1) for i in range(6)) in all_plans
    assert (Block(0, 1), Block(1, 2)) not in plans(3, [2])  # a granularity-2 block starts at an even layer
    assert len(plans(4, [2])) == 4  # 1+1+1+1, 1+1+2, 2+1+1, 2+2 (1+2+1 would start a block at layer 1)
    assert depths(6, [2, 3, 6]) == [1, 2, 3, 4, 5, 6]
    assert depths(6, [3]) == [2, 4, 6]


@pytest.mark.parametrize("ratio, depth", [(1.2, 5), (1.5, 4), (2, 3), (3, 2), (6, 1), (1, 6)])
def test_ratios_map_to_depths(ratio, depth):
    assert depth_for_ratio(6, [2, 3, 6], ratio) == depth


@pytest.mark.parametrize("n, grans, ratio, message", [
    (6, [3], 2, "not reachable for 6 layers"),
    (6, [2, 3, 6], 12, "not reachable"),
    (6, [2], 0.5, "at least 1"),
    (6, [1], 2, "between 2 and the stack's 6 layers"),
    (6, [7], 2, "between 2 and the stack's 6 layers"),
])
def test_impossible_requests_are_refused_in_one_line(n, grans, ratio, message):
    with pytest.raises(LegonnError, match=message) as err:
        depth_for_ratio(n, grans, ratio)
    assert "\n" not in str(err.value)


def test_assembly_is_checked_against_the_stack():
    teacher = TransformerEncoder(8, 2, 16, 4, dropout=0.0)
    modular = modular_layers(teacher.layers, [2])
    with pytest.raises(LegonnError, match="does not tile"):
        assemble((Block(0, 2), Block(3, 1)), teacher.layers, modular)
    with pytest.raises(LegonnError, match="covers 2 of 4"):
        assemble((Block(0, 2),), teacher.layers, modular)
    with pytest.raises(LegonnError, match="g4_0, which were not trained"):
        assemble((Block(0, 4),), teacher.layers, modular)


def test_modular_layers_start_as_copies_of_their_blocks_first_teacher_layer():
    teacher = TransformerEncoder(8, 2, 16, 6, dropout=0.0)
    teacher.requires_grad_(False)
    modular = modular_layers(teacher.layers, [2, 3])
    first = dict(teacher.layers[3].named_parameters())
    for name, p in modular["g3_1"].named_parameters():
        assert torch.equal(p, first[name]) and p.requires_grad and p is not first[name]


def test_the_all_teacher_assembly_is_the_teacher_and_others_differ():
    torch.manual_seed(0)
    enc = TransformerEncoder(8, 2, 16, 4, dropout=0.0).eval()
    dec = TransformerCrossStack(8, 2, 16, 4, dropout=0.0, causal=True).eval()
    x, lengths = torch.randn(2, 5, 8), torch.tensor([5, 3])
    memory, mem_lengths = torch.randn(2, 6, 8), torch.tensor([6, 2])
    keep_all = tuple(Block(i, 1) for i in range(4))
    for stack, run in ((enc, lambda layers: enc(x, padding_mask(lengths), Route(layers))),
                       (dec, lambda layers: dec(x, padding_mask(lengths), memory, padding_mask(mem_lengths), route=Route(layers)))):
        modular = modular_layers(stack.layers, [2, 4])
        assert torch.equal(run(assemble(keep_all, stack.layers, modular)), run(None))
        shallow = run(assemble((Block(0, 4),), stack.layers, modular))
        assert shallow.shape == run(None).shape and not torch.allclose(shallow, run(None))


def test_sampled_plans_follow_p_and_the_generator():
    g = torch.Generator().manual_seed(0)
    assert sample_plan(6, [2, 3], 0.0, g) == tuple(Block(i, 1) for i in range(6))
    for _ in range(20):  # p = 1: a block wherever one fits, so no teacher layer at an even start
        plan = sample_plan(6, [2, 3], 1.0, g)
        assert all(b.size > 1 for b in plan) and sum(b.size for b in plan) == 6
    draws = [sample_plan(6, [2, 3, 6], 0.5, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert draws[0] == draws[1]  # the same generator state, the same assembly
    seen = {sample_plan(6, [2, 3, 6], 0.5, g) for _ in range(300)}
    assert len(seen) > 10 and all(plan in plans(6, [2, 3, 6]) for plan in seen)


def test_replacement_curriculum():
    assert [replacement_probability(t, 0.3, 0.1) for t in (0, 3, 7, 100)] == pytest.approx([0.3, 0.6, 1.0, 1.0])
    assert replacement_probability(0, -0.5, 0.0) == 0.0
