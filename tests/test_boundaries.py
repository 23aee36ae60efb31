"""Where modules meet: no import cycles, importing icd_hf leaves transformers as it was, the fast path's resume hook
lives only inside its own training, the initialisation stage records JSON, and the private Trainer methods the
trainer overrides still exist with the signatures it was written for."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import transformers
import transformers.trainer
from trainer_helpers import ClassBlobs, fast_path_trainer, tiny_args, tiny_pair

from icd_hf.trainer import INIT_STAGE_MARKER, DistillationTrainer

PACKAGE = Path(__file__).resolve().parents[1] / "icd_hf"


def _module_name(path: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def import_graph() -> dict[str, set[str]]:
    """``module -> icd_hf modules it imports``, function-level imports included (they are cycles too)."""
    modules = {_module_name(p)[0]: p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = _module_name(path)[1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert {"icd_hf.hub.export", "icd_hf.hub.push", "icd_hf.runs", "icd_hf.trainer"} <= set(graph)
    assert "icd_hf.hub.export" in graph["icd_hf.hub.push"]  # the graph sees real edges...
    assert _cycles(graph) == []  # ...and no cycle, function-level imports included


ARCHITECTURE = PACKAGE.parent / "ARCHITECTURE.md"


def _outside_parentheses(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        if depth == 0:
            out.append(ch)
        depth -= ch == ")" and depth > 0
    return "".join(out)


def _module_of(ref: str) -> str | None:
    """``runs/``, ``hub_ids.py``, ``models/modeling_outputs.py``, ``fast`` -> the icd_hf module, if it exists."""
    rel = ref.rstrip("/").removesuffix(".py")
    if (PACKAGE / rel).is_dir() or (PACKAGE / f"{rel}.py").is_file():
        return "icd_hf." + rel.replace("/", ".")
    return None


def layer_table() -> dict[str, tuple[list[str], list[str] | None]]:
    """ARCHITECTURE.md's layer table: ``{layer: (its modules, what it may import; None: everything)}``, read from
    the claims themselves (backticked names outside parentheses, and layer names in the imports column)."""
    rows = re.findall(r"^\| ([a-z ]+) \| (.+) \| (.+) \|$", ARCHITECTURE.read_text(), re.M)
    rows = [(n.strip(), m, i) for n, m, i in rows if n.strip() != "layer"]
    modules = {name: [m for ref in re.findall(r"`([\w/.]+)`", _outside_parentheses(mods)) if (m := _module_of(ref))]
               for name, mods, _ in rows}
    table: dict[str, tuple[list[str], list[str] | None]] = {}
    for name, _, imports in rows:
        imports = _outside_parentheses(imports)
        if imports.strip() == "everything":
            table[name] = (modules[name], None)
            continue
        allowed = [m for ref in re.findall(r"`([\w/.]+)`", imports) if (m := _module_of(ref))]
        named = [layer for layer in modules if re.search(rf"(^|, ){layer}(,|$)", imports.strip())]
        allowed += [m for layer in named for m in modules[layer]]
        table[name] = (modules[name], allowed)
    return table


def _within(module: str, prefixes: list[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_layer_table_is_read_from_architecture_md():
    table = layer_table()
    assert list(table) == ["foundations", "models", "data", "losses", "training", "publishing and analysis",
                           "orchestration"]
    assert table["foundations"][1] == [] and table["orchestration"][1] is None
    assert "icd_hf.runs" in table["foundations"][0] and "icd_hf.models" in table["models"][0]
    assert table["losses"][1] == ["icd_hf.models.modeling_outputs"]
    assert "icd_hf.losses" in table["training"][1] and "icd_hf.runs" in table["publishing and analysis"][1]


def test_every_module_imports_only_what_architecture_md_says():
    """The claims of ARCHITECTURE.md's layer table hold for every import (function-level ones included), and every
    module of the package is in the table."""
    table = layer_table()
    owner = {prefix: layer for layer, (mods, _) in table.items() for prefix in mods}
    wrong, unplaced = [], []
    for module, targets in import_graph().items():
        prefix = max((p for p in owner if _within(module, [p])), key=len, default=None)
        if prefix is None:
            if module != "icd_hf":
                unplaced.append(module)
            continue
        mods, allowed = table[owner[prefix]]
        if allowed is None:
            continue
        wrong += [f"{module} -> {t}" for t in targets if not _within(t, mods + allowed)]
    assert unplaced == [], "add these modules to ARCHITECTURE.md's layer table"
    assert wrong == []


def test_modeling_files_import_only_each_other():
    """What save_pretrained copies next to a model's weights (modeling_*/configuration_* and what they import) must
    load with trust_remote_code where icd-hf is not installed: relative imports inside models/ only."""
    wrong = []
    for path in sorted((PACKAGE / "models").glob("*.py")):
        if not path.name.startswith(("modeling_", "configuration_")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 1 or (node.module or "").startswith("icd_hf")):
                wrong.append(f"{path.name}: from {'.' * node.level}{node.module or ''}")
            elif isinstance(node, ast.Import) and any(a.name.startswith("icd_hf") for a in node.names):
                wrong.append(f"{path.name}: import icd_hf")
    assert wrong == []


def test_the_cycle_check_sees_function_level_imports():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "b"]]


def test_importing_icd_hf_changes_nothing_in_transformers():
    """Every attribute of every transformers module loaded before the import is the same object after it (the
    Auto-class registrations are transformers' own extension API and change no attribute)."""
    script = """
import sys, transformers, transformers.trainer, transformers.modeling_utils, transformers.training_args
before = {n: dict(vars(m)) for n, m in list(sys.modules.items()) if n.startswith("transformers") and m is not None}
import icd_hf, icd_hf.trainer, icd_hf.experiment, icd_hf.fast, icd_hf.hub, icd_hf.evaluation, icd_hf.sweep
changed = sorted(f"{n}.{k}" for n, attrs in before.items() for k, v in attrs.items()
                 if getattr(sys.modules[n], k, v) is not v and not k.startswith("__"))
print("\\n".join(changed))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_fast_path_resume_hook_is_scoped_to_its_training(tmp_path, monkeypatch):
    original = transformers.trainer.skip_first_batches
    seen = []
    inner = DistillationTrainer._inner_training_loop

    def spy(self, *args, **kwargs):
        seen.append(transformers.trainer.skip_first_batches)
        return inner(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "_inner_training_loop", spy)
    trainer, _ = fast_path_trainer(tmp_path, method="kd")
    assert transformers.trainer.skip_first_batches is original  # enabling the fast path patches nothing
    trainer.train()
    assert transformers.trainer.skip_first_batches is original  # and training restores it
    assert seen and seen[0] is not original
    loader = trainer.get_train_dataloader()
    assert len(list(seen[0](loader, 2))) == len(loader) - 2  # the device loader skips by itself
    plain, _ = tiny_pair()
    DistillationTrainer(model=plain, method="vanilla", args=tiny_args(tmp_path / "plain"),
                        train_dataset=ClassBlobs()).train()
    assert seen[-1] is original  # a run without the fast path trains with transformers' own function


def test_init_stage_writes_json_and_survives_an_empty_loader(tmp_path, caplog):
    student, teacher = tiny_pair()
    args = tiny_args(tmp_path, init_epochs=1, init_max_steps=2)
    trainer = DistillationTrainer(model=student, teacher=teacher, method="ab", args=args, train_dataset=ClassBlobs())
    results = trainer.run_init_stage()
    assert set(results) == {"init_ab_loss"} and results["init_ab_loss"] > 0
    assert json.loads((tmp_path / INIT_STAGE_MARKER).read_text()) == results
    empty = DistillationTrainer(model=tiny_pair()[0], teacher=teacher, method="fsp", train_dataset=ClassBlobs(),
                                args=tiny_args(tmp_path / "empty", init_epochs=1, init_max_steps=0))
    with caplog.at_level(logging.WARNING, logger="icd_hf.trainer"):
        assert empty.run_init_stage() == {"init_fsp_loss": None}
    assert "ran no step" in caplog.text
    assert json.loads((tmp_path / "empty" / INIT_STAGE_MARKER).read_text()) == {"init_fsp_loss": None}
    assert DistillationTrainer(model=tiny_pair()[0], teacher=teacher, method="kd", train_dataset=ClassBlobs(),
                               args=tiny_args(tmp_path / "none")).run_init_stage() == {}


# Private transformers.Trainer methods DistillationTrainer overrides or calls, with the parameters it relies on.
# setup.py allows any transformers 5.x: a release that renames one fails here, not silently in a run.
PRIVATE_TRAINER_CONTRACT = {
    "_save": ("self", "output_dir", "state_dict"),
    "_issue_warnings_after_load": ("self", "load_result"),
    "_prepare_inputs": ("self", "inputs"),
}
PRIVATE_NAMES_USED = ("_created_lr_scheduler", "_train_batch_size")


@pytest.mark.parametrize("name", sorted(PRIVATE_TRAINER_CONTRACT))
def test_private_trainer_methods_keep_their_signatures(name):
    method = getattr(transformers.Trainer, name, None)
    assert callable(method), f"transformers {transformers.__version__} has no Trainer.{name}"
    params = list(inspect.signature(method).parameters)
    expected = PRIVATE_TRAINER_CONTRACT[name]
    assert params[: len(expected)] == list(expected), f"Trainer.{name}{inspect.signature(method)} changed"
    ours = getattr(DistillationTrainer, name)
    if ours is not method:  # overridden: ours accepts what transformers passes
        assert list(inspect.signature(ours).parameters)[: len(expected)] == list(expected)


def test_private_trainer_attributes_still_exist(tmp_path):
    student, _ = tiny_pair()
    trainer = DistillationTrainer(model=student, method="vanilla", args=tiny_args(tmp_path), train_dataset=ClassBlobs())
    source = inspect.getsource(transformers.Trainer)
    for name in PRIVATE_NAMES_USED:
        assert hasattr(trainer, name) or f"self.{name}" in source, name


def test_architecture_md_names_what_exists():
    """ARCHITECTURE.md stays true to the code: every file, folder and class it names is there."""
    root = PACKAGE.parent
    text = (root / "ARCHITECTURE.md").read_text()
    for ref in set(re.findall(r"`([\w/]+(?:\.py|/))(?:::(\w+))?`", text)):
        path, name = ref
        candidates = [root / path, PACKAGE / path, *(root / part / path for part in ("recipes", "benchmarks"))]
        if "/" not in path.rstrip("/"):  # a file named inside its folder's sentence (`presets.py` of losses/)
            candidates += sorted(PACKAGE.rglob(path.rstrip("/")))
        found = next((c for c in candidates if c.exists()), None)
        assert found is not None, f"ARCHITECTURE.md names {path}, which does not exist"
        if name:
            assert re.search(rf"^((class|def) {name}\b|{name}\b[^=\n]*=)", found.read_text(), re.M), \
                f"{path} has no {name}"
    for decorator in ("register_loss", "register_model", "register_layout"):
        assert f"@{decorator}" in text
    for name in ("StagewiseLoss", "ZooPreTrainedModel", "ZooConfig", "RunResults", "DataSource", "KnownDataset"):
        assert name in text
