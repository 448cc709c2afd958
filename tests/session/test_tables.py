"""The state tables (iso15118.secc.iso20, iso15118.evcc.iso20) against the handlers' code: every
state a handler can return, and every request a car's handler can send, is declared in its
table; the diagrams in docs/sessions.md are drawn from the tables and up to date."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from iso15118.evcc import handlers as ev_handlers
from iso15118.evcc.iso20 import TABLE as EVCC
from iso15118.secc import handlers as secc_handlers
from iso15118.secc.context import State
from iso15118.secc.iso20 import TABLE as SECC
from iso15118.statetable import StateTable, Transition, UndeclaredTransition

ROOT = Path(__file__).resolve().parents[2]


def _functions(module) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(inspect.getsource(module))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _reachable(fn: ast.FunctionDef, funcs: dict[str, ast.FunctionDef], seen: set[str]) -> list[ast.AST]:
    """The nodes of ``fn`` and of the module's private helpers it calls."""
    nodes = list(ast.walk(fn))
    for node in nodes[:]:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("_") \
                and node.func.id in funcs and node.func.id not in seen:
            seen.add(node.func.id)
            nodes += _reachable(funcs[node.func.id], funcs, seen)
    return nodes


def _unwrap(handler):
    return getattr(handler, "__wrapped__", handler)


def test_every_state_a_charger_handler_returns_is_declared():
    funcs = _functions(secc_handlers)
    for (state, request), t in SECC:
        fn = funcs[_unwrap(t.handler).__name__]
        returned = set()
        for node in _reachable(fn, funcs, set()):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "State":
                returned.add(State[node.attr])
            if isinstance(node, ast.Attribute) and node.attr == "state" and getattr(node.value, "id", "") == "s":
                returned.add(state)  # 's.state': stays where it is
        undeclared = returned - t.next - {State.ENDED}
        assert not undeclared, f"{state.value} / {request}: {fn.name} may lead to undeclared {undeclared}"


REQUEST_BUILDERS = {  # EVCCSession methods → the responses their requests are answered with
    "session_setup_req": {"SessionSetupRes"}, "authorization_req": {"AuthorizationRes"},
    "service_discovery_req": {"ServiceDiscoveryRes"}, "schedule_exchange_req": {"ScheduleExchangeRes"},
    "cpd_req": {"DC_ChargeParameterDiscoveryRes", "AC_ChargeParameterDiscoveryRes"},
    "precharge_req": {"DC_PreChargeRes"}, "power_delivery_req": {"PowerDeliveryRes"},
    "charge_loop_req": {"DC_ChargeLoopRes", "AC_ChargeLoopRes"}, "session_stop_req": {"SessionStopRes"},
}


def test_every_request_a_car_handler_sends_is_declared():
    funcs = _functions(ev_handlers)
    for response, t in EVCC:
        fn = funcs[t.handler.__name__]
        sends = set()
        for node in _reachable(fn, funcs, set()):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in REQUEST_BUILDERS:
                    sends |= REQUEST_BUILDERS[node.func.attr]
                elif node.func.attr.endswith("Req") and isinstance(node.func.value, ast.Name):
                    sends.add(node.func.attr[:-3] + "Res")  # CM.ServiceDetailReq(...), DC.DC_CableCheckReq(...)
        if response[:3] in ("DC_", "AC_"):  # a handler shared by DC and AC sends its own kind's request
            sends = {x for x in sends if x[:3] not in ("DC_", "AC_") or x[:3] == response[:3]}
        undeclared = sends - t.next
        assert not undeclared, f"{response}: {fn.name} may send requests answered by undeclared {undeclared}"


def test_an_undeclared_transition_is_refused_at_run_time():
    table = StateTable("t", {("A", "m"): Transition(lambda: None, "B")}, end="End")
    table.check(("A", "m"), "B")
    table.check(("A", "m"), "End")
    with pytest.raises(UndeclaredTransition, match="A / m led to C"):
        table.check(("A", "m"), "C")


def test_every_table_entry_is_reached_by_a_state_the_table_can_get_to():
    """No dead entries: each (state, request) key's state is the start or reached by some entry."""
    reached = {State.WAIT_SAP} | {n for _, t in SECC for n in t.next}
    assert {state for (state, _), _ in SECC} <= reached
    awaited = {"supportedAppProtocolRes"} | {n for _, t in EVCC for n in t.next}
    assert {response for response, _ in EVCC} <= awaited


def test_the_diagrams_in_the_docs_are_drawn_from_the_tables():
    r = subprocess.run([sys.executable, "-m", "tools.session_diagrams", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (ROOT / "docs" / "sessions.md").read_text()
    assert "WaitSessionSetup --> WaitAuthorizationSetup: SessionSetupReq" in text
    assert "DC_ChargeLoopRes --> PowerDeliveryRes: DC_ChargeLoopRes" in text
