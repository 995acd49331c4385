"""The notebooks run end to end on a real (tiny) training run, so they never rot.

One run of `python -m rltf_jax.train` on configs/tiny.py (2 steps, the real local sandbox) writes a
workdir; each notebook is executed with nbclient in the project's Python after its ``parameters``
cell is rewritten to point at that run (the papermill convention, without papermill).
"""

import json
import os
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A finished 2-step tiny training run: metrics.jsonl with eval events, checkpoints 2."""
    path = tmp_path_factory.mktemp("run")
    command = [sys.executable, "-m", "rltf_jax.cli.train", "--config", os.path.join(ROOT, "configs/tiny.py"),
               "--config.total_steps=2", "--workdir", str(path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return path


def parameter_cell(notebook):
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
    return cells[0]


def execute(name: str, parameters: dict, cwd) -> nbformat.NotebookNode:
    """Runs notebooks/<name>.ipynb with ``parameters`` replacing its parameters cell's assignments."""
    notebook = nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)
    cell = parameter_cell(notebook)
    declared = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line}
    assert set(parameters) <= declared, f"{name} has no parameters {set(parameters) - declared}"
    cell.source += "\n# injected by tests/integration/test_notebooks.py\n" + "\n".join(
        f"{key} = {value!r}" for key, value in parameters.items())
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def outputs(notebook, output_type=None):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
            if output_type is None or output.output_type == output_type]


def images(notebook) -> list[str]:
    return [output.data["image/png"] for output in outputs(notebook)
            if output.output_type in ("display_data", "execute_result") and "image/png" in output.data]


def last_json_line(notebook) -> dict:
    text = "".join(output.text for output in outputs(notebook, "stream") if output.name == "stdout")
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def test_training_curves_plot_the_run(workdir, tmp_path):
    figure = tmp_path / "curves.png"
    notebook = execute("training_curves", {"WORKDIR": str(workdir), "OUTPUT": str(figure)}, NOTEBOOKS)
    assert len(images(notebook)) == 1
    assert figure.stat().st_size > 10_000
    summary = last_json_line(notebook)
    assert summary["steps"] == 2
    for key in ("reward/outcome", "reward/coarse", "reward/fine_grained", "reward/adaptive",
                "samples/pass_rate", "kl/k1", "kl/k3", "loss/policy"):
        assert summary["plotted"].get(key) == 2, key
    # the tiny config evaluates before and after training: marked at steps 0 and 2
    assert [(e["label"], e["step"]) for e in summary["evaluations"]] == [("before", 0), ("after", 2)]
    assert summary["plotted"]["heldout/pass@1"] == 2


def test_evaluate_checkpoint_plots_pass_at_k_by_difficulty(workdir, tmp_path):
    """The trained checkpoint on the APPS fixture (one problem per difficulty, stdio and call mode);
    plain completions of the tiny policy are graded by the real sandbox."""
    output = tmp_path / "eval.json"
    notebook = execute("evaluate_checkpoint", {
        "CHECKPOINT": str(workdir), "DATASET": "apps:tests/fixtures/apps.jsonl", "NUM_SAMPLES": 2,
        "KS": [1, 2], "TEMPERATURE": 1.0, "MAX_NEW_TOKENS": 8, "STYLE": "plain", "OUTPUT": str(output)},
        NOTEBOOKS)  # the DATASET path is relative to the repository root, as the notebook documents
    assert len(images(notebook)) == 1
    markdown = [o for o in outputs(notebook, "display_data") if "text/markdown" in o.data]
    assert markdown and "| **all** | 3 |" in markdown[0].data["text/markdown"]
    pass_at_k = last_json_line(notebook)
    assert set(pass_at_k) == {"pass@1", "pass@2"}
    result = json.loads(output.read_text())
    assert {key: result[key] for key in pass_at_k} == pass_at_k
    assert 0.0 <= result["pass@1"] <= result["pass@2"] <= 1.0
    assert result["num_problems"] == 3 and result["num_samples"] == 2
    assert set(result["by_difficulty"]) == {"introductory", "interview", "competition"}
    for stats in result["by_difficulty"].values():
        assert set(stats) == {"pass@1", "pass@2"} and stats["pass@1"]["num_problems"] == 1
    verdicts = result["verdicts"]
    assert sum(verdicts.values()) == 6 and verdicts.get("no_code", 0) < 6  # programs reached the sandbox
    assert result["sandbox_errors"] == 0
    assert result["model"] == str(workdir)
