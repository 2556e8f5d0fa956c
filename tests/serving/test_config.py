"""The services:/traffic:/serving: sections of a workload file, and the CLI contract."""

import json
import re
import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from computepool.cli.app import app
from computepool.serving.config import read_serving, serving_settings, with_traffic
from computepool.serving.streams import load_base
from computepool.traces import load_workload
from computepool.traces.errors import TraceError
from tests.shared_data import shared

runner = CliRunner()

SMALL = """\
name: tiny-mix
traffic: {rate_scale: 0.5, duration_hours: 0.25, seed: 1}
serving: {interval_s: 30}
services:
  - {name: chat-7b, model: qwen2.5-7b, trace: conv, accelerators: [H20, H800]}
  - {name: chat-1.5b, model: qwen2.5-1.5b, trace: conv, accelerators: [H20, H800]}
  - {name: code-14b, model: qwen2.5-14b, trace: code, accelerators: [H20, H800]}
jobs:
  - {id: t0, workers: 8, duration_hours: 0.5, reference_accelerator: H100, accelerators: [H800]}
  - {id: t1, workers: 8, duration_hours: 0.5, reference_accelerator: H100, accelerators: [H800],
     preemptible: false}
"""


def _write(tmp_path, text: str, name="w.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_services_sit_beside_jobs_in_one_file(tmp_path):
    p = _write(tmp_path, SMALL)
    sw = read_serving(p)
    assert [s.name for s in sw.services] == ["chat-7b", "chat-1.5b", "code-14b"]
    assert sw.horizon_s == 900.0
    w = load_workload(str(p))
    assert len(w) == 2 and w.preemptible.tolist() == [True, False]
    # Zipf split of the conversation trace over its two services, all code to code-14b
    n = [len(s) for s in sw.streams]
    assert n[0] > n[1] > 0 and n[2] > 0


def test_streams_scale_with_rate_and_keep_token_counts():
    base = load_base("azure-llm-2023", "conv")
    assert len(base.t) == 19366 and base.span == pytest.approx(3501.7, abs=1)
    from computepool.serving.streams import TrafficSpec, build_streams

    one = build_streams(TrafficSpec(rate_scale=1.0, duration_s=3600), ["a"], ["conv"], [1.0])
    three = build_streams(TrafficSpec(rate_scale=3.0, duration_s=3600), ["a"], ["conv"], [1.0])
    assert len(three[0]) == pytest.approx(3 * len(one[0]), rel=0.02)
    assert set(np.unique(one[0].prompt)) <= set(np.unique(base.prompt))


def test_load_step_raises_the_rate_after_it(tmp_path):
    sw = read_serving(_write(tmp_path, SMALL))
    from computepool.serving.streams import LoadStep

    stepped = with_traffic(sw, step=LoadStep(at_s=450.0, factor=4.0, ramp_s=60.0))
    t = stepped.streams[0].t
    before = np.sum((t > 300) & (t < 450)) / 150
    after = np.sum((t > 600) & (t < 900)) / 300
    assert after / before == pytest.approx(4.0, rel=0.25)


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        ("model: qwen2.5-7b", "services[0].model", "unknown model 'nope'"),
        ("trace: conv", "services[0].trace", "Input should be 'conv' or 'code'"),
        ("accelerators: [H20, H800]}", "services[0].max_replicas", "min_replicas 5 is above"),
    ],
)
def test_bad_service_fields_name_file_line_and_field(tmp_path, edit, field, reason):
    bad = {
        "model: qwen2.5-7b": "model: nope",
        "trace: conv": "trace: chat",
        "accelerators: [H20, H800]}": "accelerators: [H20, H800], min_replicas: 5, max_replicas: 2}",
    }[edit]
    text = SMALL.replace(edit, bad, 1)
    p = _write(tmp_path, text)
    with pytest.raises(TraceError) as exc:
        read_serving(p)
    e = exc.value
    assert e.file == str(p) and e.line == 5
    assert e.field in (field, "services[0]")
    assert reason in e.reason


def test_shares_above_one_and_unknown_perf_keys_are_refused(tmp_path):
    text = SMALL.replace("trace: conv,", "trace: conv, share: 0.7,")
    with pytest.raises(TraceError, match="add up to 1.400"):
        read_serving(_write(tmp_path, text))
    text = SMALL.replace("serving: {interval_s: 30}", "serving: {perf: {mfu: 0.5}}")
    with pytest.raises(TraceError, match="unknown perf key"):
        read_serving(_write(tmp_path, text, "b.yaml"))


def test_shipped_llm_mix_has_twenty_services_and_a_training_stream():
    sw = read_serving("examples/serving/llm-mix.yaml")
    assert len(sw.services) == 20
    assert {s.trace for s in sw.services} == {"conv", "code"}
    w = load_workload("examples/serving/llm-mix.yaml")
    assert len(w) > 100 and (~w.preemptible).any() and w.preemptible.any()


def test_cli_contract_services_list_and_dedicated_baseline(tmp_path):
    p = _write(tmp_path, SMALL)
    docs = {}
    for mode in ("pooled", "dedicated"):
        out = tmp_path / f"{mode}.json"
        args = ["simulate", "--pool", "automotive-demo", "--workload", str(p), "--policy", "las"]
        args += ["--json", str(out)] + (["--serving", mode] if mode == "dedicated" else [])
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        docs[mode] = json.loads(out.read_text())
    for doc in docs.values():
        assert [s["name"] for s in doc["services"]] == ["chat-7b", "chat-1.5b", "code-14b"]
        for s in doc["services"]:
            assert 0.0 <= s["slo_attainment"] <= 1.0
            assert s["accelerator_hours"] > 0
        assert doc["jobs_completed"] == 2
    assert docs["pooled"]["serving"]["mode"] == "pooled"
    assert docs["dedicated"]["serving"]["mode"] == "dedicated"


def test_cli_serving_option_errors(tmp_path):
    p = _write(tmp_path, SMALL)
    base = ["simulate", "--pool", "automotive-demo", "--policy", "las"]
    res = runner.invoke(app, [*base, "--workload", str(p), "--serving", "shared"])
    assert res.exit_code == 2 and "give one of pooled, dedicated" in res.output
    plain = _write(tmp_path, "jobs:\n  - {id: a, duration_hours: 1}\n", "plain.yaml")
    res = runner.invoke(app, [*base, "--workload", str(plain), "--serving", "dedicated"])
    assert res.exit_code == 2 and "has no services" in res.output


def test_shipped_trace_copy_matches_the_original_csvs():
    original = str(shared("azure-llm-v2023"))
    for kind in ("conv", "code"):
        a, b = load_base("azure-llm-2023", kind), load_base(original, kind)
        assert len(a.t) == len(b.t)
        assert (a.prompt == b.prompt).all() and (a.output == b.output).all()
        assert np.abs(a.t - b.t).max() < 0.01  # millisecond rounding


@pytest.mark.parametrize(
    ("serving", "reason"),
    [
        ("{perf: {storage_gbs: -1}}", "perf.storage_gbs -1 is outside"),
        ("{perf: {h2d_efficiency: 0}}", "perf.h2d_efficiency 0 is outside"),
        ("{perf: {swap_turn_s: 0}}", "perf.swap_turn_s 0 is outside"),
        ("{multiplex: true, keep_alive_s: 1e9}", "keep_alive_s"),
        ("{disaggregate: true, prefill_keep_alive_s: -1}", "prefill_keep_alive_s"),
        ("{burst_sizing: forecast}", "burst_sizing"),
        ("{burst_sizing: replay, sizing_quantile: 1.5}", "sizing_quantile"),
        ("{burst_sizing: replay, sizing_tail_samples: 100000}", "sizing_tail_samples"),
        ("{ttft_queue_share: 2}", "ttft_queue_share"),
        ("{keep_alive_policy: arima}", "keep_alive_policy"),
        ("{keep_alive_policy: histogram, keep_alive_quantile: 0}", "keep_alive_quantile"),
        ("{keep_alive_policy: histogram, keep_alive_epoch_s: 1}", "keep_alive_epoch_s"),
        ("{keep_alive_policy: histogram, keep_alive_min_samples: 0}", "keep_alive_min_samples"),
        ("{sizing_history_s: -1}", "sizing_history_s"),
        ("{sizing_history_quantile: 1.5}", "sizing_history_quantile"),
    ],
)
def test_multiplexing_settings_are_bounded(tmp_path, serving, reason):
    text = SMALL.replace("serving: {interval_s: 30}", f"serving: {serving}")
    with pytest.raises(TraceError, match=reason) as e:
        read_serving(_write(tmp_path, text))
    assert "serving" in str(e.value)


def test_disaggregation_and_replay_sizing_settings_reach_the_controller(tmp_path):
    text = SMALL.replace(
        "serving: {interval_s: 30}",
        "serving: {interval_s: 30, disaggregate: true, burst_sizing: replay, sizing_quantile: 0.99}",
    )
    cfg = read_serving(_write(tmp_path, text)).config
    assert cfg.disaggregate and cfg.burst_sizing == "replay" and cfg.sizing_quantile == 0.99


def test_the_live_pool_refuses_disaggregation_it_does_not_run(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "services:\n  - name: a\n    model: qwen2.5-0.5b\nserving:\n  multiplex: true\n"
        "  disaggregate: true\n"
    )
    assert read_serving(path).config.disaggregate  # the simulator models it
    with pytest.raises(TraceError) as err:
        read_serving(path, live=True)
    assert "s.yaml:6: field 'serving.disaggregate'" in str(err.value)
    assert "simulator only" in str(err.value)


def test_the_live_pool_refuses_swap_residency_it_does_not_run(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "services:\n  - name: a\n    model: qwen2.5-0.5b\nserving:\n  multiplex: true\n"
        "  residency: swap\n"
    )
    assert read_serving(path).config.residency == "swap"  # the simulator models it
    with pytest.raises(TraceError) as err:
        read_serving(path, live=True)
    assert "s.yaml:6: field 'serving.residency'" in str(err.value)
    assert "simulator only" in str(err.value)
    path.write_text(path.read_text().replace("swap", "muxserve"))
    assert read_serving(path, live=True).config.residency == "muxserve"
    path.write_text(path.read_text().replace("muxserve", "teleport"))
    with pytest.raises(TraceError, match="residency"):
        read_serving(path)


def test_keep_alive_and_history_settings_reach_the_controller(tmp_path):
    text = SMALL.replace(
        "serving: {interval_s: 30}",
        "serving: {interval_s: 30, keep_alive_policy: histogram, keep_alive_max_s: 120,"
        " sizing_history_s: 3600, sizing_history_quantile: 0.5}",
    )
    cfg = read_serving(_write(tmp_path, text)).config
    assert cfg.keep_alive_policy == "histogram" and cfg.keep_alive_max_s == 120
    assert cfg.sizing_history_s == 3600 and cfg.sizing_history_quantile == 0.5


def test_serving_settings_change_the_config_as_the_file_would():
    cfg = read_serving("examples/serving/long-tail.yaml").config
    got = serving_settings(
        ["hot_fraction=2", "burst_sizing=replay", "mux_merge=true", "perf.switch_s=0.5"], cfg
    )
    assert got.hot_fraction == 2.0 and got.burst_sizing == "replay" and got.mux_merge
    assert got.perf.switch_s == 0.5 and got.perf.h2d_efficiency == cfg.perf.h2d_efficiency
    assert got.keep_alive_s == cfg.keep_alive_s  # what was not set stays as the file says
    assert not cfg.mux_merge  # the original is unchanged


@pytest.mark.parametrize(
    ("pairs", "why"),
    [
        (["mux_merge"], "give KEY=VALUE"),
        (["=1"], "give KEY=VALUE"),
        (["no_such_key=1"], "no_such_key: Extra inputs are not permitted"),
        (["hot_fraction=-1"], "hot_fraction: Input should be greater than or equal to 0"),
        (["burst_sizing=sometimes"], "burst_sizing: Input should be 'window' or 'replay'"),
        (["perf.mfu=0.5"], "unknown perf key"),
        (["perf.switch_s=-3"], "perf.switch_s -3 is outside"),
        (["hot_fraction=[1, 2]"], "hot_fraction: give one value"),
        (["hot_fraction=x" * 100], "give KEY=VALUE"),
    ],
)
def test_serving_settings_refuse_bad_input_naming_the_setting(pairs, why):
    cfg = read_serving("examples/serving/long-tail.yaml").config
    with pytest.raises(ValueError, match=re.escape(why)):
        serving_settings(pairs, cfg)


def test_cli_serving_set_applies_and_refuses(tmp_path):
    p = _write(tmp_path, SMALL)
    base = ["simulate", "--pool", "automotive-demo", "--policy", "las", "--workload", str(p)]
    out = tmp_path / "o.json"
    res = runner.invoke(app, [*base, "--serving-set", "keep_alive_s=5", "--json", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--serving-set", "keep_alive_s=-5"])
    assert res.exit_code == 2 and "--serving-set keep_alive_s:" in res.output
    plain = _write(tmp_path, "jobs:\n  - {id: a, duration_hours: 1}\n", "plain.yaml")
    res = runner.invoke(app, [*base[:-1], str(plain), "--serving-set", "mux_merge=true"])
    assert res.exit_code == 2 and "has no services" in res.output
