"""Property-based run of the OpenAPI schema (schemathesis): no input produces a 500 -- on every
route, POST /runs included (issue 10, finding 8: a NUL byte in a path was a 500)."""
from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from api.config import Settings
from api.main import create_app
from api_helpers import bearer, build_service_db

pytestmark = pytest.mark.api
ROLES = ("admin", "township", "analyst", "dashboard", None)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db, tokens = build_service_db(tmp_path_factory.mktemp("schema"))
    # an empty data root: a generated POST /runs gets through every check of its input and
    # then stops at the missing files, instead of screening the sample on each call
    app = create_app(Settings(db=db, runs_dir=tmp_path_factory.mktemp("schema_runs"),
                              data_root=tmp_path_factory.mktemp("schema_data")))
    with TestClient(app) as client:  # runs the lifespan: the database stays open for the generated calls
        listed = client.get("/api/v1/lists/2022?page_size=1", headers=bearer(tokens["township"])).json()
        yield app, {**tokens, "_listed": listed["items"][0]["uscc"]}


def _operations():
    spec = create_app(Settings()).openapi()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_input_makes_a_server_error(served, method, path):
    app, tokens = served
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]

    real = {"year": 2022, "uscc": tokens["_listed"]}

    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        # random path values mostly miss; the same case again with a real year and firm reaches the code
        variants = [dict(case.path_parameters or {})]
        if case.path_parameters:
            variants.append({k: real.get(k, v) for k, v in case.path_parameters.items()})
        for params in variants:
            case.path_parameters = params
            for role in ROLES:  # every role, and no token at all
                headers = bearer(tokens[role]) if role else {}
                case.call_and_validate(headers=headers, checks=[not_a_server_error])

    check()


_PATHLIKE = st.lists(st.sampled_from(["\x00", "\n", "/", "\\", ".", "..", "a", "~", ":", "*", "%00", ".yaml", "etc",
                                      "passwd"]), max_size=12).map("".join)


def test_paths_in_a_run_request_never_make_a_server_error(served):
    """Path-like text (NUL, control characters, ``..``, absolute) as the data directory and as a
    method file: always a 4xx for admin, never a 500."""
    app, tokens = served
    headers = bearer(tokens["admin"])
    with TestClient(app) as client:
        @given(data=_PATHLIKE, method=_PATHLIKE)
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(data, method):
            answer = client.post("/api/v1/runs", headers=headers, json={
                "year": 2022, "data": data or None,
                "set": ["below_scale_consecutive_c_grade.grade_source=computed",
                        f"below_scale_consecutive_c_grade.grade_method={method}"]})
            assert 400 <= answer.status_code < 500, (data, method, answer.text)

        check()
