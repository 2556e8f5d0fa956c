import pytest

from computepool.placement.profiles import Profile, get_profile, make_profile, profile_names
from computepool.placement.request import PodRequest


def test_the_fgd_paper_baselines_and_ours_are_registered():
    for name in ("random", "dotprod", "clustering", "packing", "bestfit", "fgd"):
        assert name in profile_names()
    assert get_profile("fgd").needs_target and not get_profile("bestfit").needs_target


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"filters": ("cpu-memory", "nope")}, "unknown filter 'nope'"),
        ({"scorers": (("nope", 1.0),)}, "unknown scorer 'nope'"),
        ({"scorers": (("bestfit", 0.0),)}, "weight must be > 0"),
        ({"scorers": ()}, "at least one scorer"),
        ({"device": "magic"}, "unknown device selector"),
        ({"device": "scorer"}, "device-choosing first scorer"),
    ],
)
def test_profiles_are_validated_at_load(kwargs, match):
    args = {"filters": ("cpu-memory",), "scorers": (("bestfit", 1.0),), "device": "bestfit"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_profile("p", args["filters"], args["scorers"], args["device"])


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: random"):
        get_profile("tetris")
    assert isinstance(get_profile("packing"), Profile)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"num_gpu": 2, "gpu_milli": 500}, "whole devices"),
        ({"num_gpu": 0, "gpu_milli": 100}, "must be 0"),
        ({"num_gpu": 1, "gpu_milli": 0}, "must be > 0"),
        ({"num_gpu": 1, "gpu_milli": 1500}, "within 0..1000"),
        ({"cpu_milli": -1}, ">= 0"),
    ],
)
def test_bad_requests_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        PodRequest(**kw)
