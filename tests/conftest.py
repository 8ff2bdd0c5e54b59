"""Collect the golden rule cases (tests/rules/**/test_*.yaml) as pytest items."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from golden import CaseFile, ProjectCaseFile, run_case, run_project_case  # noqa: E402


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    if file_path.suffix == ".yaml" and file_path.name.startswith("test_") and "rules" in file_path.parts:
        return GoldenFile.from_parent(parent, path=file_path)
    return None


class GoldenFile(pytest.File):
    def collect(self):
        data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        if data.get("rule") == "projects":  # 拟建项目: projects, not firms
            spec = ProjectCaseFile.model_validate(data)
            for case in spec.cases:
                yield GoldenCase.from_parent(self, name=case.name, case=case, rule=spec.rule)
            return
        spec = CaseFile.model_validate(data)
        for case in spec.cases:
            yield GoldenCase.from_parent(self, name=case.name, case=case, rule=spec.rule)


class GoldenCase(pytest.Item):
    def __init__(self, *, case, rule, **kwargs):
        super().__init__(**kwargs)
        self.case, self.rule = case, rule
        self.add_marker(pytest.mark.golden)

    def runtest(self):
        tmp = Path(self.config._tmp_path_factory.mktemp("golden"))
        if self.rule == "projects":
            problems = run_project_case(self.case, tmp)
        else:
            problems = run_case(self.case, self.rule, tmp)
        if problems:
            raise GoldenMismatch(problems)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, GoldenMismatch):
            return f"golden case {self.name!r} ({self.path.name}):\n  " + "\n  ".join(excinfo.value.args[0])
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"golden: {self.name}"


class GoldenMismatch(Exception):
    pass


@pytest.fixture
def ruleset_copy(tmp_path: Path) -> Path:
    """A copy of the shipped rule set that a test may edit."""
    import shutil

    from screening.paths import default_ruleset

    target = tmp_path / "rs"
    shutil.copytree(default_ruleset(), target)
    return target
