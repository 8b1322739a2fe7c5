"""The template deploys in one pass: no resource depends on itself through others.

CloudFormation refuses a template with a dependency cycle only at deploy time, and the likely
cycle here (API Lambda -> state machine -> FFmpeg Lambda -> API URL -> API Lambda) is exactly
what the callback URL's design avoids; this test keeps it avoided.
"""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.infra, pytest.mark.timeout(300)]

SUB_REFERENCE = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def references(value, known: set[str]) -> set[str]:
    """Logical ids that ``value`` refers to by Ref, Fn::GetAtt or Fn::Sub."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in known:
                found.add(inner)
            elif key == "Fn::GetAtt" and inner[0] in known:
                found.add(inner[0])
            elif key == "Fn::Sub":
                text = inner if isinstance(inner, str) else inner[0]
                found.update(name for name in SUB_REFERENCE.findall(text) if name in known)
                if not isinstance(inner, str):
                    found.update(references(inner[1], known))
            else:
                found.update(references(inner, known))
    elif isinstance(value, list):
        for item in value:
            found.update(references(item, known))
    return found


def dependency_graph(resources: dict[str, dict]) -> dict[str, set[str]]:
    known = set(resources)
    graph = {}
    for key, resource in resources.items():
        depends = resource.get("DependsOn", [])
        edges = set(depends if isinstance(depends, list) else [depends])
        edges |= references(resource.get("Properties", {}), known)
        graph[key] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "active"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "active":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_template_has_no_dependency_cycle(synthesized):
    assert find_cycle(dependency_graph(synthesized.resources)) == []


def test_the_cycle_finder_finds_a_cycle():
    resources = {
        "Api": {"Properties": {"Env": {"Ref": "Machine"}}},
        "Machine": {"Properties": {"Fn": {"Fn::GetAtt": ["Worker", "Arn"]}}},
        "Worker": {"Properties": {"Url": {"Fn::Sub": "https://${Api}.example"}}},
    }
    assert find_cycle(dependency_graph(resources)) == ["Api", "Machine", "Worker", "Api"]


def test_the_state_machine_does_not_depend_on_the_api(synthesized):
    stack = synthesized.stack
    graph = dependency_graph(synthesized.resources)
    reachable: set[str] = set()
    frontier = [synthesized.logical_id(stack.pipeline.state_machine)]
    while frontier:
        node = frontier.pop()
        for target in graph[node] - reachable:
            reachable.add(target)
            frontier.append(target)
    api_ids = {
        synthesized.logical_id(stack.rest_api.api),
        synthesized.logical_id(stack.rest_api.function),
    }
    assert not reachable & api_ids
