"""--dry-run: the sbatch text submitit would write, with no Slurm and no files touched."""

from __future__ import annotations

import pytest

from igpo_kit.errors import ConfigError
from igpo_kit.launch.profiles import load_profile
from igpo_kit.launch.sbatch import render_profile, render_sbatch, sbatch_lines


@pytest.fixture(autouse=True)
def _no_slurm_no_user_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("IGPO_KIT_CLUSTER_FILE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no srun/sbatch: the preview must not need them


def test_h100_rl_script(tmp_path):
    folder = tmp_path / "runs" / "igpo" / "%j"
    text = render_profile(load_profile("h100", "rl"), folder, name="igpo_full")
    flags = sbatch_lines(text)
    assert flags["--nodes"] == "8"
    assert flags["--ntasks-per-node"] == "8"
    assert flags["--gpus-per-node"] == "8"
    assert flags["--cpus-per-task"] == "12"
    assert flags["--time"] == "1440"
    assert flags["--signal"] == "USR2@180"
    assert flags["--job-name"] == "igpo_full"
    assert flags["--output"].endswith("/%j/%j_0_log.out")
    assert "--partition" not in flags and "--account" not in flags
    assert text.startswith("#!/bin/bash")
    assert "export NCCL_DEBUG=WARN" in text and "export SUBMITIT_EXECUTOR=slurm" in text
    assert "srun --unbuffered" in text and "-m submitit.core._submit" in text
    assert not (tmp_path / "runs").exists(), "a dry run must not create the folder"
    assert list(tmp_path.iterdir()) == []


def test_site_settings_and_overrides(tmp_path, monkeypatch):
    site = tmp_path / "site.toml"
    site.write_text('inherit = "h100"\npartition = "gpu"\naccount = "proj"\nqos = "high"\n'
                    'constraint = "h100"\nsetup = ["module load cuda/12.4"]\n')
    p = load_profile(str(site), "rl", ["nodes=2", "mem_gb=512", "additional_parameters.mail-type=END"])
    text = render_profile(p, tmp_path / "x" / "%j")
    flags = sbatch_lines(text)
    assert (flags["--partition"], flags["--account"], flags["--qos"], flags["--constraint"]) == (
        "gpu", "proj", "high", "h100")
    assert flags["--nodes"] == "2" and flags["--mem"] == "512GB" and flags["--mail-type"] == "END"
    assert text.index("module load cuda/12.4") < text.index("srun ")


def test_local_tiny_has_no_gpu_line(tmp_path):
    flags = sbatch_lines(render_profile(load_profile("local", "tiny"), tmp_path / "%j"))
    assert flags["--partition"] == "debug" and flags["--cpus-per-task"] == "1"
    assert "--gpus-per-node" not in flags


def test_array_script(tmp_path):
    p = load_profile("h100", "sweep_cell", ["array_parallelism=2"])
    text = render_profile(p, tmp_path / "%j", array_size=10)
    flags = sbatch_lines(text)
    assert flags["--array"] == "0-9%2"
    assert "%A_%a" in flags["--output"]
    assert sbatch_lines(render_profile(load_profile("local", "tiny"), tmp_path / "%j", array_size=3))[
        "--array"] == "0-2%3"


def test_bad_parameters_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        render_sbatch({"slurm_bogus": 1}, tmp_path)
    with pytest.raises(ConfigError):
        render_sbatch({"bogus": 1}, tmp_path)
    with pytest.raises(ConfigError):
        render_sbatch({"timeout_min": 1.5}, tmp_path)


def test_preview_is_what_submitit_public_submit_hands_to_sbatch(tmp_path, monkeypatch):
    """Pins the private submitit calls the preview uses (installed submitit version): the public path
    (AutoExecutor.update_parameters + submit) writes byte for byte the same script to a (fake) sbatch."""
    import submitit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    captured = tmp_path / "captured.sh"
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {captured}\necho "Submitted batch job 4242"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    params = load_profile("h100", "rl", ["nodes=2"]).update_parameters(name="igpo_full")
    folder = tmp_path / "runs" / "%j"
    preview = render_sbatch(params, folder)
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(**params)
    job = ex.submit(print, "never runs")
    assert job.job_id == "4242"
    assert captured.read_text() == preview, f"submitit {submitit.__version__} changed its sbatch text"
