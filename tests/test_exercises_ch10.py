"""Chapter 10 checkers accept a right answer and reject plausible wrong ones."""
import pytest
import torch

from mixcon_lite import exercises


def tv(x):
    d = (x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1],
         x[:, :, 1:, 1:] - x[:, :, :-1, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, 1:])
    return sum(t.flatten(1).norm(dim=1) for t in d)


def test_tv_l2_right_and_wrong():
    assert exercises.check_tv_l2(tv)
    two = lambda x: (x[:, :, 1:, :] - x[:, :, :-1, :]).flatten(1).norm(dim=1) + \
        (x[:, :, :, 1:] - x[:, :, :, :-1]).flatten(1).norm(dim=1)  # noqa: E731
    v = exercises.check_tv_l2(two)
    assert not v and "diagonal" in v.message
    squared = lambda x: tv(x) ** 2  # noqa: E731
    assert not exercises.check_tv_l2(squared)
    assert not exercises.check_tv_l2(lambda x: tv(x)[:1])


def _batch_tv(x):
    """DeepInversion's get_image_prior_losses: one norm per direction over the whole batch."""
    d = (x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1],
         x[:, :, 1:, 1:] - x[:, :, :-1, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, 1:])
    return sum(t.norm() for t in d)


@pytest.mark.parametrize("wrong", [
    _batch_tv,                                                     # the scalar itself
    lambda x: _batch_tv(x).repeat(len(x)),                         # broadcast to every image
    lambda x: (_batch_tv(x) / len(x)).repeat(len(x)),              # "per image" by dividing by N
])
def test_tv_l2_batch_level_is_named(wrong):
    v = exercises.check_tv_l2(wrong)
    assert not v
    assert "batch-level" in v.message and "diagonal" not in v.message


def test_class_statistics_right_and_wrong():
    def stats(h, y, unbiased=False, dims=(0, 2, 3)):
        return {int(c): (h[y == c].mean(dims), h[y == c].var(dims, unbiased=unbiased)) for c in torch.unique(y)}
    assert exercises.check_class_statistics(stats)
    v = exercises.check_class_statistics(lambda h, y: stats(h, y, unbiased=True))
    assert not v and "biased" in v.message
    v = exercises.check_class_statistics(lambda h, y: {c: (m.mean((1, 2)), s.mean((1, 2)))
                                                       for c, (m, s) in stats(h, y, dims=0).items()})
    assert not v
    assert not exercises.check_class_statistics(lambda h, y: [1, 2, 3])


def test_leaky_set_right_and_wrong():
    g = torch.Generator().manual_seed(0)
    members = torch.rand(100, 1, 12, 12, generator=g)
    nonmembers = torch.rand(100, 1, 12, 12, generator=g)

    def noisy_copies(m, n):
        g2 = torch.Generator().manual_seed(1)
        return m[:40] + 0.25 * torch.randn(m[:40].shape, generator=g2)

    assert exercises.check_leaky_set(noisy_copies, members, nonmembers)
    v = exercises.check_leaky_set(lambda m, n: m[:30].clone(), members, nonmembers)
    assert not v and "copies" in v.message
    v = exercises.check_leaky_set(lambda m, n: torch.rand(30, 1, 12, 12), members, nonmembers)
    assert not v and "nearer a member" in v.message
    v = exercises.check_leaky_set(lambda m, n: m[:5] + 1.0, members, nonmembers)
    assert not v and "at least 20" in v.message


def test_leaky_set_rejects_a_hub():
    # a flat grey member is the nearest neighbour of every noise image: the share is 1.0, but
    # only because of which half that one image fell in (permutation p about one half)
    g = torch.Generator().manual_seed(0)
    members = torch.cat([torch.full((1, 1, 12, 12), 0.5), torch.rand(99, 1, 12, 12, generator=g)])
    nonmembers = torch.rand(100, 1, 12, 12, generator=g)
    noise = lambda m, n: torch.rand(40, 1, 12, 12, generator=torch.Generator().manual_seed(3))  # noqa: E731
    v = exercises.check_leaky_set(noise, members, nonmembers)
    assert not v and "hubs" in v.message, v.message


def test_tv_l2_joint_norm_is_named():
    def joint(x):
        d = (x[:, :, 1:, :] - x[:, :, :-1, :], x[:, :, :, 1:] - x[:, :, :, :-1],
             x[:, :, 1:, 1:] - x[:, :, :-1, :-1], x[:, :, 1:, :-1] - x[:, :, :-1, 1:])
        return torch.cat([t.flatten(1) for t in d], 1).norm(dim=1)
    v = exercises.check_tv_l2(joint)
    assert not v and "one norm per direction" in v.message and "diagonal" not in v.message
