"""What a new user trips on (issues 23 and 25): every bad input is one line and exit status 2 before anything
loads; Ctrl-C and a non-finite loss stop a run with one line that says what was kept; an exception while training
keeps its traceback; --tag always gives a run its own folder; the quick start reuses what it finished; model files
are readable like their siblings; the published fp16 teachers' cards work as written; the README's examples use
what a fresh clone has."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch

from icd_hf.cli_utils import EXIT_INTERRUPTED, run_from_argv
from icd_hf.config import ConfigError, load_config
from icd_hf.losses import get_loss_class, hyperparameter_types, hyperparameters, list_losses
from icd_hf.losses.base import check_hyperparameters

ROOT = Path(__file__).resolve().parents[1]
CPU_BUDGET = ROOT / "recipes" / "configs" / "cpu_budget"
TEACHER_DIR = ROOT / "benchmarks" / "teachers" / "resnet56-cpu-budget"
TINY_ARGS = ["--dataset", "digits", "--student", "resnet8", "--max_train_samples", "64", "--max_eval_samples", "32",
             "--training.per_device_train_batch_size", "16", "--training.per_device_eval_batch_size", "32",
             "--training.eval_strategy", "no", "--training.dataloader_num_workers", "0", "--training.use_cpu", "true",
             "--training.disable_tqdm", "true", "--training.report_to", "none"]


@pytest.fixture
def nothing_loads(monkeypatch):
    """Loading data or a model fails the test: a bad input must be refused before either."""
    import icd_hf.data
    import icd_hf.models.auto_classifier

    monkeypatch.setattr(icd_hf.data, "build_datasets", lambda *a, **k: pytest.fail("loaded the data"))
    monkeypatch.setattr(icd_hf.models.auto_classifier, "load_image_classifier",
                        lambda *a, **k: pytest.fail("loaded a model"))


@pytest.fixture
def offline_hub(monkeypatch):
    """The Hub is unreachable and HF_HUB_OFFLINE is not set: the one probe gets a connection error."""
    import huggingface_hub
    from huggingface_hub import constants

    from icd_hf.preflight import hub_connection_error

    probes = []

    class _Session:
        def head(self, url, timeout=None):  # noqa: ANN001, ANN202
            probes.append(url)
            raise ConnectionError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_session", lambda: _Session())
    hub_connection_error.cache_clear()
    yield probes
    hub_connection_error.cache_clear()


def _base_cycle(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("_base_: b.yaml\nmethod: vanilla\n")
    (tmp_path / "b.yaml").write_text("_base_: a.yaml\nstudent: resnet8\n")
    return ["--config", str(tmp_path / "a.yaml")]


def _same_teacher_twice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "teachers" / "x").mkdir(parents=True)
    return ["--method", "kd", "--teacher", "teachers/x", "--teacher", "./teachers/x/"]


def _output_dir_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "run").write_text("not a folder")
    return []


def _output_dir_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    return ["--output_dir", str(tmp_path / "file" / "run")]


def _read_only_output_dir(tmp_path, monkeypatch):
    # Tests may run as root, for whom chmod does not stop a write: the file system's answer is simulated.
    (tmp_path / "run").mkdir()
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: ANN001, ANN202, A002
        if dir is not None and Path(dir) == tmp_path / "run":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return []


def _hub_unreachable(tmp_path, monkeypatch):
    return ["--method", "kd", "--teacher_checkpoint", "someorg/some-teacher"]


# (name, extra arguments or a function (tmp_path, monkeypatch) -> them, fragment of the one line)
BAD_INPUTS = [
    ("base_cycle", _base_cycle, "inherits from itself through _base_ ("),
    ("nan_learning_rate", ["--training.learning_rate", "nan"],
     "--training.learning_rate takes float, got 'nan' (not a finite number)"),
    ("inf_weight_decay", ["--training.weight_decay", "inf"], "--training.weight_decay takes float, got 'inf'"),
    ("same_teacher_twice", _same_teacher_twice, "teachers lists the same teacher more than once ('teachers/x' and "
                                                "'./teachers/x/' are "),
    ("negative_loss_hyperparameter", ["--method", "icd+kd", "--teacher_checkpoint", "t", "--loss_overrides",
                                      "{icd: {invariance_weight: -5}}"],
     "icd hyper-parameter invariance_weight must be >= 0, got -5"),
    ("zero_temperature", ["--method", "kd", "--teacher_checkpoint", "t", "--loss_overrides", "{kd: {temperature: 0}}"],
     "kd hyper-parameter temperature must be > 0, got 0"),
    ("negative_term_weight", ["--method", "icd+kd", "--teacher_checkpoint", "t", "--loss_overrides",
                              "{icd: {weight: -1}}"], "icd.weight must be a finite number >= 0, got -1"),
    ("loss_hyperparameter_not_a_number", ["--method", "icd+kd", "--teacher_checkpoint", "t", "--loss_overrides",
                                          "{icd: {invariance_weight: abc}}"],
     "loss_overrides.icd.invariance_weight takes float, got 'abc'"),
    ("list_item_not_a_number", ["--training.lr_milestones", "5", "x"],
     "--training.lr_milestones[1] takes float, got 'x'"),
    ("training_field_at_top_level", ["--learning_rate", "0.1"],
     "Unknown config field 'learning_rate' (did you mean 'training.learning_rate'?)"),
    ("output_dir_is_a_file", _output_dir_is_a_file, "run' is a file, not a folder. Pass --output_dir a folder path"),
    ("output_dir_under_a_file", _output_dir_under_a_file, "cannot be created: "),
    ("read_only_output_dir", _read_only_output_dir,
     "run' cannot be written (Read-only file system). Pass --output_dir"),
    ("hub_unreachable", _hub_unreachable, "cannot be reached (ConnectionError: [Errno -3] Temporary failure in name "
                                          "resolution), and this run loads 'someorg/some-teacher' from it. Work "
                                          "offline with HF_HUB_OFFLINE=1"),
]


@pytest.mark.parametrize("name, extra, message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_one_line_before_anything_loads(name, extra, message, tmp_path, monkeypatch, capsys,
                                                     nothing_loads, offline_hub):
    extra = extra(tmp_path, monkeypatch) if callable(extra) else extra
    argv = ["--dataset", "digits", "--method", "vanilla", "--output_dir", str(tmp_path / "run"), *extra]
    code = run_from_argv(argv, prog="distill.py")
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("distill.py: error: "), err
    assert message in lines[0]
    assert offline_hub == (["https://huggingface.co"] if name == "hub_unreachable" else [])
    assert not (tmp_path / "run" / "results.json").exists()


def test_the_hub_is_asked_once_and_not_at_all_offline(tmp_path, monkeypatch, nothing_loads, offline_hub):
    from huggingface_hub import constants

    from icd_hf.preflight import HubOfflineError, check_hub_reachable

    cfg = load_config(None, {"student": "someorg/student", "teacher_checkpoint": "someorg/teacher", "method": "kd",
                             "dataset": "someorg/images", "output_dir": str(tmp_path)})
    for _ in range(2):
        with pytest.raises(HubOfflineError, match="loads 'someorg/student', 'someorg/teacher', the dataset "
                                                  "'someorg/images' from it"):
            check_hub_reachable(cfg)
    assert len(offline_hub) == 1  # one probe per process, not one per model and retry
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    check_hub_reachable(cfg)  # offline mode: the loaders read the cache, nothing is asked
    local = load_config(None, {"student": "resnet8", "method": "vanilla", "dataset": "digits"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_hub_reachable(local)
    assert len(offline_hub) == 1


def test_every_loss_hyperparameter_is_range_and_type_checked_from_one_declaration():
    for name in list_losses():
        cls = get_loss_class(name)
        for key, allowed in cls.hyperparameter_ranges.items():
            outside = (allowed.low - 1 if allowed.low is not None else allowed.high + 1)
            expected = f"{name} hyper-parameter {key} must be {re.escape(allowed.describe())}"
            with pytest.raises(ValueError, match=expected):
                check_hyperparameters(name, {key: outside})
        for key, hint in hyperparameter_types(cls).items():
            if hint is float:
                with pytest.raises(ValueError, match=f"{key} must be .*got nan"):
                    check_hyperparameters(name, {key: float("nan")})
                with pytest.raises(TypeError, match=f"{name} hyper-parameter {key} takes float, got 'abc'"):
                    check_hyperparameters(name, {key: "abc"})
        check_hyperparameters(name, {k: v for k, v in hyperparameters(cls).items() if v is not None})  # defaults pass
    assert get_loss_class("icd").hyperparameter_ranges["invariance_weight"].describe() == ">= 0"
    assert get_loss_class("crd").hyperparameter_ranges["nce_mom"].describe() == "in [0, 1)"
    # Strings from YAML become the declared type; an int given for a float stays as written in the record.
    cfg = load_config(None, {"method": "dkd", "teacher_checkpoint": "t", "loss_overrides": {
        "dkd": {"beta": 2, "temperature": "1e1"}, "ce_weight": "0.5"}})
    assert cfg.loss_overrides == {"dkd": {"beta": 2, "temperature": 10.0}, "ce_weight": 0.5}


def test_tag_gives_every_run_its_own_folder_as_the_error_says(tmp_path, monkeypatch, capsys):
    import icd_hf.data
    from icd_hf.experiment import experiment_fingerprint
    from icd_hf.losses.presets import resolve_method
    from icd_hf.runs import write_run_record
    from icd_hf.sweep import plan_sweep

    config = str(CPU_BUDGET / "resnet56__resnet20.yaml")
    assert load_config(config, {"tag": "s1"}).output_dir == "runs/cpu_budget/resnet56__resnet20-s1"
    assert load_config(str(CPU_BUDGET / "teacher_resnet56.yaml"), {"tag": "s1"}).output_dir == (
        "runs/cpu_budget/teachers/resnet56-s1")
    assert load_config(None, {"method": "vanilla", "tag": "s1"}).output_dir == "runs/teachers/wrn_16_2-s1"
    # The config's folder holds an icd+kd run; a kd run there is refused, and the suggested --tag works.
    monkeypatch.chdir(tmp_path)
    common = ["--config", config, "--teacher_checkpoint", str(TEACHER_DIR), "--dataset", "digits"]
    first = load_config(config, {"teacher_checkpoint": str(TEACHER_DIR), "dataset": "digits"})
    write_run_record(first.output_dir, {"fingerprint": experiment_fingerprint(first, resolve_method(first.method))})
    assert run_from_argv([*common, "--method", "kd"], prog="distill.py") == 2
    assert "holds a different run (" in capsys.readouterr().err

    class Loaded(Exception):
        pass

    def build_datasets(*args, **kwargs):
        raise Loaded

    monkeypatch.setattr(icd_hf.data, "build_datasets", build_datasets)
    with pytest.raises(Loaded):  # past every check, into loading the data
        run_from_argv([*common, "--method", "kd", "--tag", "kd"], prog="distill.py")
    # A sweep tags each method's folder, not the pair's.
    _, _, configs, _ = plan_sweep(config, ["kd", "icd+kd"], {"tag": "s1", "teacher_checkpoint": str(TEACHER_DIR),
                                                            "dataset": "digits"})
    assert {m: c.output_dir for m, c in configs.items()} == {
        "kd": "runs/cpu_budget/resnet56__resnet20/kd-s1", "icd+kd": "runs/cpu_budget/resnet56__resnet20/icd_kd-s1"}


class _FakeTrainer:
    def is_world_process_zero(self) -> bool:
        return True


def test_ctrl_c_is_one_line_saying_where_to_resume(tmp_path, monkeypatch, capsys):
    import icd_hf.experiment

    monkeypatch.setattr(icd_hf.experiment, "prepare_experiment", lambda cfg: type("E", (), {"trainer": _FakeTrainer()}))

    def interrupted(experiment, command=None):
        for step, complete in ((2, True), (4, True), (6, False)):  # checkpoint-6: a save cut short by the Ctrl-C
            folder = tmp_path / "run" / f"checkpoint-{step}"
            folder.mkdir(parents=True)
            (folder / "model.safetensors").write_bytes(b"x")
            if complete:
                (folder / "trainer_state.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(icd_hf.experiment, "execute_experiment", interrupted)
    argv = ["--dataset", "digits", "--method", "vanilla", "--output_dir", str(tmp_path / "run")]
    assert run_from_argv(argv, prog="distill.py") == EXIT_INTERRUPTED == 130
    last = tmp_path / "run" / "checkpoint-4"
    assert capsys.readouterr().err.strip().splitlines() == [
        f"distill.py: interrupted: Training was interrupted; the last checkpoint is {last}: the same command resumes "
        f"from it."]
    monkeypatch.setattr(icd_hf.experiment, "execute_experiment", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt))
    assert run_from_argv([*argv, "--resume", "never"], prog="distill.py") == 130
    assert "the same command with --resume auto resumes from it." in capsys.readouterr().err
    assert run_from_argv([*argv[:-1], str(tmp_path / "new")], prog="distill.py") == 130
    assert "interrupted before a checkpoint was saved in" in capsys.readouterr().err


def test_an_exception_while_training_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    import icd_hf.experiment
    import icd_hf.sweep
    from icd_hf.sweep import sweep_from_argv

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    fake = type("E", (), {"trainer": _FakeTrainer()})
    monkeypatch.setattr(icd_hf.experiment, "prepare_experiment", lambda cfg: fake)
    monkeypatch.setattr(icd_hf.experiment, "execute_experiment", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        run_from_argv(["--dataset", "digits", "--method", "vanilla", "--output_dir", str(tmp_path / "a")],
                      prog="distill.py")
    monkeypatch.setattr(icd_hf.sweep, "prepare_experiment", lambda cfg: fake)
    monkeypatch.setattr(icd_hf.sweep, "execute_experiment", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        sweep_from_argv(["--dataset", "digits", "--methods", "vanilla", "--output_dir", str(tmp_path / "s")])
    # A bad input in the sweep is still one line, before anything trains.
    assert sweep_from_argv(["--dataset", "digits", "--methods", "vanilla,nope", "--output_dir",
                            str(tmp_path / "s")]) == 2
    assert "Unknown distillation method component 'nope'" in capsys.readouterr().err


def test_a_non_finite_loss_stops_the_run_keeping_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*TINY_ARGS, "--method", "vanilla", "--output_dir", str(out), "--training.num_train_epochs", "2",
            "--training.learning_rate", "1e30", "--training.save_strategy", "steps", "--training.save_steps", "1",
            "--training.logging_steps", "1"]
    assert run_from_argv(argv, prog="distill.py") == 1
    lines = capsys.readouterr().err.strip().splitlines()
    line = lines[-1]
    assert re.fullmatch(r"distill\.py: error: (At step \d+ the loss term\(s\) ce became nan or inf|After step \d+ "
                        r"the weights .* became nan or inf \(the losses were finite\)): training stopped before "
                        r"logging, evaluating or saving that state \((the last checkpoint, .*, holds an earlier, "
                        r"finite state|no checkpoint was saved)\)\. Lower training\.learning_rate .*", line), line
    assert not (out / "results.json").exists() and not (out / "student").exists()
    checkpoints = sorted(out.glob("checkpoint-*"))
    for folder in checkpoints:  # nothing broken was saved
        weights = safetensors.torch.load_file(folder / "model.safetensors")
        assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point()), folder
        # safetensors writes 0600; a checkpoint's weights are as readable as its other files.
        assert (folder / "model.safetensors").stat().st_mode & 0o777 == (folder / "trainer_state.json").stat(
        ).st_mode & 0o777
    if "the last checkpoint, " in lines[-1]:
        assert str(checkpoints[-1]) in lines[-1]


def test_the_guard_reads_the_loss_only_when_the_trainer_logs_saves_or_stops(tmp_path):
    from trainer_helpers import ClassBlobs, tiny_args, tiny_pair

    from icd_hf.trainer import DistillationTrainer

    student, teacher = tiny_pair()
    trainer = DistillationTrainer(model=student, teacher=teacher, method="kd", train_dataset=ClassBlobs(),
                                  args=tiny_args(tmp_path, max_steps=6, logging_steps=3))
    calls = []
    check = trainer.check_finite
    trainer.check_finite = lambda weights=False: calls.append(weights) or check(weights)
    trainer.train()
    # Steps 3 and 6 log (6 also stops), the epoch that step 6 ends with still says so, then train() checks the
    # weights once: no read-out on the four other steps.
    assert calls == [False, False, False, True]
    trainer.distiller.student.conv1.weight.data[0, 0, 0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"After step 6 the weights student\.conv1\.weight became nan or inf"):
        trainer.check_finite(weights=True)


def test_quickstart_reuses_its_finished_stages_and_model_files_are_readable(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "recipes"))
    import quickstart

    import icd_hf.experiment

    argv = ["--output_dir", str(tmp_path / "qs"), "--teacher_epochs", "1", "--training.num_train_epochs", "1",
            "--max_train_samples", "64", "--max_eval_samples", "32", "--training.disable_tqdm", "true"]
    assert quickstart.main(argv) == 0
    first = capsys.readouterr().out
    assert "reusing" not in first
    monkeypatch.setattr(quickstart, "run_experiment", lambda *a, **k: pytest.fail("trained a finished stage again"))
    monkeypatch.setattr(icd_hf.experiment, "run_experiment", lambda *a, **k: pytest.fail("trained again"))
    assert quickstart.main(argv) == 0
    again = capsys.readouterr().out
    assert again.count("is finished (same run): reusing it; --overwrite_output_dir trains it again.") == 3
    assert first.split("Quick start on", 1)[1] == again.split("Quick start on", 1)[1]  # the same table
    # model.safetensors (0600 from safetensors) is readable like the files next to it, here and in an export.
    student = tmp_path / "qs" / "icd_kd" / "student"
    mode = 0o666 & ~_umask()
    assert {p.name: p.stat().st_mode & 0o777 for p in student.iterdir() if p.is_file()} == {
        p.name: mode for p in student.iterdir() if p.is_file()}
    from icd_hf.hub import export_for_hub

    export = export_for_hub(tmp_path / "qs" / "icd_kd", tmp_path / "export", measure_latency=False)
    assert (Path(export) / "model.safetensors").stat().st_mode & 0o777 == mode


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_fp16_teachers_card_snippet_runs_as_written_without_icd_hf(tmp_path):
    from icd_hf.models import create_model

    # A tiny model saved as the published teachers are: float16 weights, its modeling code, a processor.
    torch.manual_seed(0)
    folder = tmp_path / "tiny-fp16"
    create_model("resnet8", num_classes=100).half().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text((TEACHER_DIR / "preprocessor_config.json").read_text())
    assert json.loads((folder / "config.json").read_text())["dtype"] == "float16"
    from PIL import Image

    Image.new("RGB", (32, 32), (120, 30, 200)).save(tmp_path / "image.png")
    for card in sorted((ROOT / "benchmarks" / "teachers").glob("*-cpu-budget/README.md")):
        snippet = re.search(r"## How to use\n\n```python\n(.*?)```", card.read_text(), re.S).group(1)
        assert snippet.count("path/to/this/folder") == 2, card
        (tmp_path / f"{card.parent.name}.py").write_text(snippet.replace("path/to/this/folder", str(folder)))
    block = textwrap.dedent("""
        import runpy, sys

        class _BlockIcdHf:
            def find_spec(self, name, path=None, target=None):
                if name == "icd_hf" or name.startswith("icd_hf."):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")

        sys.meta_path.insert(0, _BlockIcdHf())
        from transformers import AutoModelForImageClassification
        plain = AutoModelForImageClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
        print("loaded as", plain.dtype)  # the trap the snippet avoids: float16 weights, float32 inputs
        for path in sys.argv[2:]:
            runpy.run_path(path)
        """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1",
               TRANSFORMERS_VERBOSITY="error")
    scripts = sorted(str(p) for p in tmp_path.glob("*-cpu-budget.py"))
    assert len(scripts) == 2
    proc = subprocess.run([sys.executable, "-c", block, str(folder), *scripts], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "loaded as torch.float16" and len(lines) == 3  # each snippet printed a class name
    # The template the cards are rendered from has the same line.
    for name in ("teacher_card.md", "student_card.md"):
        template = ROOT / "icd_hf" / "hub" / "templates" / name
        assert 'from_pretrained("{{ repo_ref }}", trust_remote_code=True).float()' in template.read_text()


def test_readme_examples_use_what_a_fresh_clone_has(tmp_path):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    ensemble = next(b for b in blocks if "--teacher " in b and "--teacher_weighting" in b)
    publish = next(b for b in blocks if "icd-hf export" in b)
    for block in (ensemble, publish):
        # Only the quick start's folders, which the README's first command makes.
        assert all(m == "runs/quickstart/" for m in re.findall(r"runs/[\w.-]*/?", block)), block
        for path in re.findall(r"benchmarks/teachers/[\w.-]+", block):
            assert (ROOT / path / "config.json").is_file(), path
    # The ensemble command's arguments make a valid config with two different teachers.
    words = ensemble.replace("\\\n", " ").split("#")[0].split()
    argv = words[words.index("recipes/distill.py") + 1:]
    from icd_hf.config import parse_overrides

    overrides = parse_overrides(argv)
    cfg = load_config(ROOT / overrides.pop("config"), overrides)
    assert len(cfg.teacher_sources()) == 2
    # The "In Python" snippet gives the trainer the processor that pipeline() needs: save_model writes it.
    python = re.search(r"### In Python\n\n```python\n(.*?)```", text, re.S).group(1)
    assert "processing_class=processor" in python and 'load_model("benchmarks/teachers/resnet56-cpu-budget"' in python
    from trainer_helpers import ClassBlobs, tiny_args, tiny_pair
    from transformers import ViTImageProcessor, pipeline

    from icd_hf.trainer import DistillationTrainer

    student, teacher = tiny_pair()
    info = type("Info", (), {"image_size": 32, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    expression = re.search(r"processor = (ViTImageProcessor\(.*?\))\n", python, re.S).group(1)
    processor = eval(expression, {"ViTImageProcessor": ViTImageProcessor, "info": info})  # the README's own call
    trainer = DistillationTrainer(model=student, teacher=teacher, method="kd", args=tiny_args(tmp_path),
                                  train_dataset=ClassBlobs(), processing_class=processor)
    trainer.save_model(str(tmp_path / "student"))
    assert (tmp_path / "student" / "preprocessor_config.json").is_file()
    from PIL import Image

    predictions = pipeline("image-classification", model=str(tmp_path / "student"))(Image.new("RGB", (32, 32)))
    assert len(predictions) == 4
    # The install is large and the quick start's time depends on the CPU: both said where they are claimed.
    setup = text.split("## Set up and run", 1)[1].split("<!-- quickstart-results:begin", 1)[0]
    assert "GB" in setup and "a few minutes" not in setup
    after = text.split("<!-- quickstart-results:end -->", 1)[1].split("## Distil a student", 1)[0]
    assert "AVX2" in after and "AVX-512" in after


def test_config_errors_name_the_field(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 0.1\nmethod: vanilla\n")
    with pytest.raises(ConfigError, match=r"'learning_rate' \(did you mean 'training.learning_rate'\?\)"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"baselines.kd_top1 takes float, got 'high'"):
        load_config(None, {"method": "vanilla", "baselines": {"kd_top1": "high"}})
