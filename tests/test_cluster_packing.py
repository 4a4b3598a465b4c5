"""GPU trials on a cluster: what each trial's real TorchTrainer asks Ray for (no GPU needed), and the dry run of
`raydrift tune` against an existing cluster (``--address auto --storage <uri>``) as cluster/README.md uses it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from raydrift.cli import main
from raydrift.orchestration.ray_train import make_trainer
from raydrift.orchestration.study_file import load_study

REPO = Path(__file__).resolve().parents[1]


def trainer_request(study, params: dict, seed: int = 0):
    """(resources per worker, use_gpu, workers, backend) of the Train run one trial of ``study`` builds."""
    trainer = make_trainer(study.trial_config(params, seed), "/tmp/unused", storage_path="/tmp/unused", name="t")
    s = trainer.scaling_config
    return s.resources_per_worker, s.use_gpu, s.num_workers, trainer.backend_config.backend


def test_fractional_gpu_trial_requests_a_quarter_gpu_per_worker(study_file):
    path = study_file(
        'from ray import tune\nSPACE = {"drift.kernel": tune.grid_search(["laplace", "gaussian"])}\n'
        'TRIAL = {"num_workers": 1, "cpus_per_worker": 2, "use_gpu": True, "gpus_per_worker": 0.25}\n'
    )
    resources, use_gpu, workers, backend = trainer_request(load_study(path), {"drift.kernel": "laplace"})
    assert resources == {"CPU": 2, "GPU": 0.25} and use_gpu and workers == 1 and backend == "nccl"
    assert int(1 / resources["GPU"]) == 4  # four such trials share one GPU


def test_multi_gpu_trial_requests_whole_gpus(study_file):
    path = study_file(
        'from ray import tune\nSPACE = {"drift.kernel": tune.grid_search(["laplace"])}\n'
        'TRIAL = {"num_workers": 8, "cpus_per_worker": 4, "use_gpu": True, "gpus_per_worker": 1}\n'
    )
    resources, use_gpu, workers, backend = trainer_request(load_study(path), {"drift.kernel": "laplace"})
    assert resources == {"CPU": 4, "GPU": 1} and use_gpu and workers == 8 and backend == "nccl"


def test_a_preset_can_pack_its_trials_onto_gpus(study_file):
    path = study_file(
        'from ray import tune\nSPACE = {"drift.kernel": tune.grid_search(["laplace"])}\n'
        'TRIAL = {"num_workers": 1, "cpus_per_worker": 1}\n'
        'PRESETS = {"mnist": {"scaling.use_gpu": True, "scaling.gpus_per_worker": 0.25}}\n'
    )
    on_gpu = trainer_request(load_study(path, preset="mnist"), {"drift.kernel": "laplace"})
    assert on_gpu[:2] == ({"CPU": 1, "GPU": 0.25}, True)
    assert trainer_request(load_study(path), {"drift.kernel": "laplace"})[:2] == ({"CPU": 1}, False)  # digits


def test_cpu_trial_requests_no_gpu():
    resources, use_gpu, _, backend = trainer_request(
        load_study(REPO / "search_spaces" / "smoke.py"), {"drift.kernel": "laplace"}
    )
    assert resources == {"CPU": 1} and not use_gpu and backend == "gloo"


def test_tune_on_a_cluster_packs_cifar10_trials_four_per_gpu():
    """The command of cluster/README.md, as a dry run: the study, its storage URI and what each trial asks for."""
    args = [
        "tune",
        str(REPO / "search_spaces" / "kernels.py"),
        "--preset", "cifar10",
        "--address", "auto",
        "--storage", "s3://bucket/raydrift",
        "--set", "scaling.use_gpu=true",
        "--set", "scaling.gpus_per_worker=0.25",
        "--max-concurrent", "16",
        "--dry-run",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "experiment dir: s3://bucket/raydrift/kernels-cifar10" in result.output  # a URI stays a URI
    assert "16 at once" in result.output
    assert "each trial: 1 worker x (1 CPU + 0.25 GPU): 4 trials per GPU" in result.output
    study = load_study(REPO / "search_spaces" / "kernels.py", preset="cifar10")
    study.cli = {"scaling.use_gpu": True, "scaling.gpus_per_worker": 0.25}
    params = {"drift.kernel": "gaussian"}
    resources, use_gpu, workers, backend = trainer_request(study, params)
    assert resources == {"CPU": 1, "GPU": 0.25} and use_gpu and workers == 1 and backend == "nccl"
    assert study.trial_config(params, 0).model.dim == 384  # the cifar10 preset's DiT
