"""Cluster/resources profiles: loading, merging, overrides, errors, and submitit accepting the result."""

from __future__ import annotations

from pathlib import Path

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.launch import profiles
from igpo_kit.launch.profiles import load_profile, parse_override

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_user_config(tmp_path, monkeypatch):
    """No user profiles leak in from ~/.config or the environment."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IGPO_KIT_CLUSTER_FILE", raising=False)


def test_shipped_profiles_are_listed():
    assert {"h100", "local"} <= set(profiles.list_clusters())
    assert {"sft", "rl", "eval", "sweep_cell", "tiny"} <= set(profiles.list_resources())
    assert profiles.slurm_dir().resolve() == (REPO / "slurm").resolve()


def test_slurm_folder_is_data_only():
    folder = REPO / "slurm"
    assert not list(folder.rglob("*.py")), "slurm/ must hold no Python modules"
    assert not list(folder.rglob("__init__.py"))
    assert (folder / "local-cluster.sh").is_file() and (folder / "local" / "slurm.conf.in").is_file()


@pytest.mark.parametrize("kind", ["rl", "sft"])
def test_default_h100_paper_scale(kind):
    p = load_profile("h100", kind)
    assert (p.nodes, p.tasks_per_node, p.gpus_per_node) == (8, 8, 8)
    assert p.num_tasks == 64 and p.num_gpus == 64
    assert p.max_num_timeout >= 10 and p.signal_delay_s >= 120
    kw = p.update_parameters(name="igpo")
    assert kw["nodes"] == 8 and kw["tasks_per_node"] == 8 and kw["gpus_per_node"] == 8
    assert kw["name"] == "igpo" and isinstance(kw["timeout_min"], int)
    assert kw["cpus_per_task"] == 12  # cpus_per_gpu = 12 with one task per GPU
    assert any(line.startswith("export NCCL_DEBUG=") for line in kw["slurm_setup"])
    assert p.executor_kwargs()["slurm_max_num_timeout"] == p.max_num_timeout


def test_h100_is_the_default_cluster():
    assert profiles.default_cluster() == "h100"
    assert load_profile(resources="eval").cluster == "h100"


def test_shrink_paper_run_with_overrides():
    p = load_profile("h100", "rl", ["nodes=1", "partition=gpu", "time=30", "env.NCCL_DEBUG=INFO"])
    assert (p.nodes, p.tasks_per_node, p.partition, p.time) == (1, 8, "gpu", 30)
    assert p.env["NCCL_DEBUG"] == "INFO" and "OMP_NUM_THREADS" in p.env
    assert p.overrides == ("nodes=1", "partition=gpu", "time=30", "env.NCCL_DEBUG=INFO")


def test_local_cluster_profile():
    p = load_profile("local", "tiny")
    assert (p.partition, p.gpus_per_node, p.cpus_per_task, p.tasks_per_node, p.nodes) == ("debug", 0, 1, 1, 1)
    kw = p.update_parameters()
    assert "gpus_per_node" not in kw and kw["slurm_partition"] == "debug"
    assert any("GPU" in n for n in p.notes)  # tiny asks 1 GPU, capped at the cluster's 0


def test_one_task_per_gpu_follows_gpu_override():
    assert load_profile("h100", "eval", ["gpus_per_node=4"]).tasks_per_node == 4
    assert load_profile("local", "eval").tasks_per_node == 1
    assert load_profile("h100", "eval", ["tasks_per_node=2"]).tasks_per_node == 2


def test_local_rejects_multi_node_with_fix():
    with pytest.raises(ConfigError) as e:
        load_profile("local", "rl")
    assert "max_nodes=1" in str(e.value) and "-S nodes=1" in str(e.value)
    assert load_profile("local", "rl", ["nodes=1"]).nodes == 1


def test_override_parsing():
    assert parse_override("nodes=2") == ("nodes", 2)
    assert parse_override("mem_gb=64.5") == ("mem_gb", 64.5)
    assert parse_override("exclusive=true") == ("exclusive", True)
    assert parse_override("partition=gpu") == ("partition", "gpu")
    assert parse_override("account=1234") == ("account", "1234")
    assert parse_override("account=") == ("account", None)
    assert parse_override("setup=module load cuda") == ("setup", ["module load cuda"])
    assert parse_override('setup=["a", "b"]') == ("setup", ["a", "b"])
    assert parse_override("tasks_per_node=gpus") == ("tasks_per_node", "gpus")
    assert parse_override("env.NCCL_DEBUG=INFO") == ("env.NCCL_DEBUG", "INFO")
    assert parse_override("additional_parameters.mail-type=END") == ("additional_parameters.mail-type", "END")


@pytest.mark.parametrize("text, needle", [
    ("nodess=2", "did you mean 'nodes'"),
    ("nodes=two", "nodes must be int"),
    ("nodes=0", "nodes must be >= 1"),
    ("nodes", "expected key=value"),
    ("=3", "expected key=value"),
    ("tasks_per_node=many", "one task per GPU"),
    ("partition.x=1", "dotted key"),
    ("exclusive=3", "exclusive must be bool"),
])
def test_override_errors(text, needle):
    with pytest.raises(ConfigError) as e:
        parse_override(text)
    assert needle in str(e.value)


def test_override_removes_a_cluster_setting(tmp_path, monkeypatch):
    f = tmp_path / "site.toml"
    f.write_text('inherit = "h100"\naccount = "proj"\n')
    monkeypatch.setenv("IGPO_KIT_CLUSTER_FILE", str(f))
    assert load_profile("site", "eval").account == "proj"
    assert load_profile("site", "eval", ["account="]).account is None


def test_unknown_key_names_key_file_and_close_match(tmp_path, monkeypatch):
    f = tmp_path / "mysite.toml"
    f.write_text('gpus_per_nod = 8\npartition = "gpu"\n')
    monkeypatch.setenv("IGPO_KIT_CLUSTER_FILE", str(f))
    with pytest.raises(ConfigError) as e:
        load_profile("mysite", "eval")
    msg = str(e.value)
    assert "'gpus_per_nod'" in msg and str(f) in msg and "did you mean 'gpus_per_node'" in msg


def test_key_in_the_wrong_file_says_where_it_belongs(tmp_path, monkeypatch):
    f = tmp_path / "mysite.toml"
    f.write_text("nodes = 2\n")
    monkeypatch.setenv("IGPO_KIT_CLUSTER_FILE", str(f))
    with pytest.raises(ConfigError, match="belongs in a resources profile"):
        load_profile("mysite", "eval")


def test_all_problems_reported_at_once(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('partiton = "gpu"\ngpus_per_node = "eight"\ncpus_per_task = 2\ncpus_per_gpu = 3\n')
    with pytest.raises(ConfigError) as e:
        load_profile(str(f), "eval")
    assert len(e.value.lines) == 3


def test_secrets_are_rejected(tmp_path):
    f = tmp_path / "leaky.toml"
    f.write_text('[env]\nWANDB_API_KEY = "abc"\n')
    with pytest.raises(ConfigError, match="looks like a secret"):
        load_profile(str(f), "eval")
    g = tmp_path / "leaky2.toml"
    g.write_text('setup = ["module load cuda", "export HF_TOKEN=hf_abc"]\n')
    with pytest.raises(ConfigError, match="setup line 2 looks like it sets a secret") as info:
        load_profile(str(g), "eval")
    assert "hf_abc" not in str(info.value)  # never echoed
    h = tmp_path / "leaky3.toml"
    h.write_text('[env]\nNCCL_DEBUG = "hf_AbCdEfGhIjKlMnOpQrStUvWx"\n')  # a token under an innocent name
    with pytest.raises(ConfigError, match="env.NCCL_DEBUG looks like a secret") as info:
        load_profile(str(h), "eval")
    assert "hf_AbC" not in str(info.value)
    with pytest.raises(ConfigError, match="secret"):
        load_profile("h100", "eval", ["env.HF_TOKEN=x"])


def test_user_files_inherit_and_win(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "igpo-kit" / "clusters").mkdir(parents=True)
    (xdg / "igpo-kit" / "resources").mkdir(parents=True)
    (xdg / "igpo-kit" / "clusters" / "mysite.toml").write_text(
        'inherit = "h100"\npartition = "gpu"\naccount = "proj"\nqos = "high"\nconstraint = "h100"\n'
        'setup = ["module load cuda/12.4"]\nmax_time = 600\n[env]\nNCCL_DEBUG = "INFO"\n')
    (xdg / "igpo-kit" / "resources" / "rl.toml").write_text('inherit = "sweep_cell"\nnodes = 2\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    p = load_profile("mysite", "rl")
    assert (p.partition, p.account, p.qos, p.constraint) == ("gpu", "proj", "high", "h100")
    assert p.gpus_per_node == 8 and p.tasks_per_node == 8 and p.nodes == 2
    assert p.env["NCCL_DEBUG"] == "INFO" and p.env["OMP_NUM_THREADS"] == "1"
    assert p.time == 600 and any("max_time" in n for n in p.notes)  # sweep_cell's 720 min capped
    kw = p.update_parameters()
    assert kw["slurm_setup"][0] == "module load cuda/12.4"
    assert (kw["slurm_account"], kw["slurm_qos"], kw["slurm_constraint"]) == ("proj", "high", "h100")
    assert p.sources[-1].endswith("rl.toml") and len(p.sources) == 4
    with pytest.raises(ConfigError, match="max_time"):
        load_profile("mysite", "rl", ["time=900"])


def test_cluster_file_env_sets_default(tmp_path, monkeypatch):
    f = tmp_path / "campus.toml"
    f.write_text('partition = "a100"\ngpus_per_node = 4\ncpus_per_task = 8\n')
    monkeypatch.setenv("IGPO_KIT_CLUSTER_FILE", str(f))
    assert profiles.default_cluster() == "campus"
    p = load_profile(resources="rl")
    assert (p.cluster, p.partition, p.tasks_per_node, p.cpus_per_task) == ("campus", "a100", 4, 8)


def test_unknown_profile_names():
    with pytest.raises(ConfigError, match="did you mean 'h100'"):
        load_profile("h10", "rl")
    with pytest.raises(ConfigError, match="did you mean 'eval'"):
        load_profile("h100", "evl")


def test_inherit_cycle(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg" / "igpo-kit" / "clusters"
    xdg.mkdir(parents=True)
    (xdg / "a.toml").write_text('inherit = "b"\n')
    (xdg / "b.toml").write_text('inherit = "a"\n')
    with pytest.raises(ConfigError, match="inherit cycle"):
        load_profile("a", "eval")


def test_cpus_per_gpu_conversion(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("gpus_per_node = 8\ncpus_per_gpu = 6\n")
    assert load_profile(str(f), "eval").cpus_per_task == 6
    assert load_profile(str(f), "eval", ["tasks_per_node=2"]).cpus_per_task == 24
    assert load_profile(str(f), "eval", ["cpus_per_task=3"]).cpus_per_task == 3


def test_to_dict_is_json_able():
    import json

    d = load_profile("h100", "rl").to_dict()
    assert json.loads(json.dumps(d))["nodes"] == 8


@pytest.mark.parametrize("cluster", ["h100", "local"])
@pytest.mark.parametrize("resources", ["sft", "rl", "eval", "sweep_cell", "tiny"])
def test_submitit_accepts_every_profile(cluster, resources, tmp_path):
    """Every shipped combination maps onto parameter names submitit's AutoExecutor accepts."""
    import submitit

    overrides = ["nodes=1"] if cluster == "local" and resources in ("rl", "sft") else []
    p = load_profile(cluster, resources, overrides)
    ex = submitit.AutoExecutor(folder=tmp_path / "%j", cluster="debug", **p.executor_kwargs())
    ex.update_parameters(**p.update_parameters(name="check"))  # validates slurm_* names too
