import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settings_table_in_readme_is_generated_from_the_settings_list():
    result = subprocess.run(
        [sys.executable, "scripts/gen_settings_table.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_readme_quick_start_commands_exist():
    readme = (ROOT / "README.md").read_text()
    for script in ("scripts/dev.sh", "scripts/test.sh"):
        assert script in readme and (ROOT / script).exists()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
