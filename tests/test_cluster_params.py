"""The cluster's parameters: the `cluster` address and the `shard` spec (outside input, so property tests),
slices of a task's items, and what a run cut into slices records in its settings."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from slmlib import evaluate, params
from slmlib.aggregate import registry
from slmlib.params import ClusterSpec, ParamsError

HOST_LABEL = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
HOSTS = st.one_of(st.lists(HOST_LABEL, min_size=1, max_size=4).map(".".join),
                  st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]"))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["cluster", "shard"]), st.text(max_size=80))
def test_any_text_is_a_value_or_an_error_naming_the_field(field, text):
    parse = params.parse_cluster if field == "cluster" else params.parse_shard
    try:
        value = parse(text)
    except ParamsError as exc:
        assert str(exc).startswith(f"{field}: ") and ("tcp://" in str(exc) or field == "shard")
        return
    if field == "cluster":
        assert value.kind in ("", "local", "address")
        assert (value.kind == "address") == text.startswith(("tcp://", "tls://"))
    else:
        assert value is None if text == "" else 1 <= value[0] <= value[1]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["tcp", "tls"]), HOSTS, st.integers(1, 65535))
def test_every_scheduler_address_is_accepted_as_written(scheme, host, port):
    address = f"{scheme}://{host}:{port}"
    assert params.parse_cluster(address) == ClusterSpec("address", address=address)


@pytest.mark.parametrize("text", ["local:0", "local:1025", "local:", "tcp://host", "tcp://host:0", "tcp://host:65536",
                                  "http://host:8786", "tcp://-host:8786", "tcp://a..b:8786", "tcp://[::g]:8786",
                                  "tcp://[1.2.3.4]:8786", "tcp://host:8786/x", " local", "tcp://ho st:1"])
def test_bad_cluster_values_are_refused(text):
    with pytest.raises(ParamsError, match="^cluster: "):
        params.parse_cluster(text)


def test_local_and_sequential_specs():
    assert params.parse_cluster("") == ClusterSpec("")
    assert params.parse_cluster("local") == ClusterSpec("local")
    assert params.parse_cluster("local:3") == ClusterSpec("local", workers=3)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(), max_size=60, unique=True), st.integers(1, 60))
def test_slices_cover_the_items_once_in_order_and_differ_by_at_most_one(items, n):
    parts = [evaluate.shard_slice(items, k, n) for k in range(1, n + 1)]
    assert [x for part in parts for x in part] == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert params.parse_shard(f"{n}/{n}") == (n, n)


@pytest.mark.parametrize("values, field", [
    ({"shard": "0/3"}, "shard"), ({"shard": "4/3"}, "shard"), ({"shard": "1/"}, "shard"),
    ({"cluster": "local:0"}, "cluster"), ({"shard_size": 0}, "shard_size"), ({"threads": -1}, "threads"),
    ({"suite": "standard", "shard_size": 10}, "shard / shard_size"),
])
def test_bad_cluster_params_are_refused_with_the_field(values, field):
    with pytest.raises(ParamsError, match=rf"{field}: "):
        params.validate(values)


def test_a_run_cut_into_slices_on_a_cluster_records_the_slice_size():
    card = {"model_id": "m", "weights": {"kind": "hf_dir"}}
    base = params.validate({"backend": "hf"})
    assert "shard_size" not in evaluate.settings_of(base, card)
    assert "shard_size" not in evaluate.settings_of(params.validate({"backend": "hf", "shard_size": 40}), card)
    assert "shard_size" not in evaluate.settings_of(params.validate({"backend": "hf", "cluster": "local"}), card)
    sharded = params.validate({"backend": "hf", "cluster": "local", "shard_size": 40})
    assert evaluate.settings_of(sharded, card) == {**evaluate.settings_of(base, card), "shard_size": 40}


def test_a_run_cut_into_slices_is_an_entry_of_its_own():
    run = {"model_card": {"weights": {"sha256": "ab" * 32}}, "suite": "embedded", "limit": None,
           "limit_generative": None, "seed": 1234, "settings": {"backend": "llamacpp", "apply_chat_template": "auto"}}
    sliced = {**run, "settings": {**run["settings"], "shard_size": 400}}
    assert registry.group_key(sliced) != registry.group_key(run)
    assert registry.group_key(run) == registry.group_key({**run, "settings": {**run["settings"], "threads": 2}})
