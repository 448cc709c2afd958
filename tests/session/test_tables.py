"""The state tables (iso15118.secc.{iso20,iso2,din}, iso15118.evcc.{iso20,iso2,din}) against the
handlers' code: every state a handler can return, and every request a car's handler can send, is
declared in its table; the diagrams in docs/sessions.md are drawn from the tables and up to date."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from iso15118.evcc import din as ev_din, iso2 as ev_iso2, iso20 as ev_iso20
from iso15118.secc import din as secc_din, iso2 as secc_iso2, iso20 as secc_iso20
from iso15118.secc.context import State
from iso15118.statetable import StateTable, Transition, UndeclaredTransition

SECC_TABLES = {"iso20": secc_iso20.TABLE, "iso2": secc_iso2.TABLE, "din": secc_din.TABLE}
EVCC_TABLES = {"iso20": ev_iso20.TABLE, "iso2": ev_iso2.TABLE, "din": ev_din.TABLE}

ROOT = Path(__file__).resolve().parents[2]


def _functions(module) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(inspect.getsource(module))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _source(handler) -> tuple[ast.FunctionDef, dict[str, ast.FunctionDef]]:
    """A handler's function node and the functions of its own module."""
    fn = _unwrap(handler)
    funcs = _functions(inspect.getmodule(fn))
    return funcs[fn.__name__], funcs


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


@pytest.mark.parametrize("protocol", SECC_TABLES)
def test_every_state_a_charger_handler_returns_is_declared(protocol):
    for (state, request), t in SECC_TABLES[protocol]:
        fn, funcs = _source(t.handler)
        returned = set()
        for node in _reachable(fn, funcs, set()):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "State":
                returned.add(State[node.attr])
            if isinstance(node, ast.Attribute) and node.attr == "state" and getattr(node.value, "id", "") == "s":
                returned.add(state)  # 's.state': stays where it is
        undeclared = returned - t.next - {State.ENDED}
        assert not undeclared, f"{state.value} / {request}: {fn.name} may lead to undeclared {undeclared}"


# the request builders (EVCCSession methods for -20, handlers_iso2 functions for -2 and DIN) → the
# responses their requests are answered with, per protocol
ISO20_BUILDERS = {
    "first_request": {"SessionSetupRes"},
    "session_setup_req": {"SessionSetupRes"}, "authorization_req": {"AuthorizationRes"},
    "certificate_installation_req": {"CertificateInstallationRes"},
    "service_discovery_req": {"ServiceDiscoveryRes"}, "schedule_exchange_req": {"ScheduleExchangeRes"},
    "cpd_req": {"DC_ChargeParameterDiscoveryRes", "AC_ChargeParameterDiscoveryRes"},
    "precharge_req": {"DC_PreChargeRes"}, "power_delivery_req": {"PowerDeliveryRes"},
    "charge_loop_req": {"DC_ChargeLoopRes", "AC_ChargeLoopRes"}, "session_stop_req": {"SessionStopRes"},
}
ISO2_BUILDERS = {
    "first_request": {"SessionSetupRes"},
    "session_setup_req": {"SessionSetupRes"}, "service_discovery_req": {"ServiceDiscoveryRes"},
    "payment_selection_req": {"PaymentServiceSelectionRes"}, "payment_details_req": {"PaymentDetailsRes"},
    "authorization_req": {"AuthorizationRes"}, "cpd_req": {"ChargeParameterDiscoveryRes"},
    "cable_check_req": {"CableCheckRes"}, "precharge_req": {"PreChargeRes"}, "power_delivery_req": {"PowerDeliveryRes"},
    "loop_req": {"CurrentDemandRes", "ChargingStatusRes"}, "metering_receipt_req": {"MeteringReceiptRes"},
    "welding_detection_req": {"WeldingDetectionRes"}, "session_stop_req": {"SessionStopRes"},
    "certificate_installation_req": {"CertificateInstallationRes"}, "certificate_update_req": {"CertificateUpdateRes"},
}
# DIN: its own names; DC only (the loop is CurrentDemand); no Plug & Charge, so the shared handlers'
# PaymentDetails and MeteringReceipt branches are never taken (EVCCSession refuses pnc with DIN alone)
DIN_BUILDERS = {**ISO2_BUILDERS, "payment_selection_req": {"ServicePaymentSelectionRes"},
                "authorization_req": {"ContractAuthenticationRes"}, "loop_req": {"CurrentDemandRes"},
                "payment_details_req": set(), "metering_receipt_req": set(), "certificate_installation_req": set(),
                "certificate_update_req": set()}
BUILDERS = {"iso20": ISO20_BUILDERS, "iso2": ISO2_BUILDERS, "din": DIN_BUILDERS}
LOOPS = {"CurrentDemandRes", "ChargingStatusRes"}


@pytest.mark.parametrize("protocol", EVCC_TABLES)
def test_every_request_a_car_handler_sends_is_declared(protocol):
    builders = BUILDERS[protocol]
    for response, t in EVCC_TABLES[protocol]:
        fn, funcs = _source(t.handler)
        sends = set()
        for node in _reachable(fn, funcs, set()):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in builders:
                sends |= builders[name]
            elif isinstance(node.func, ast.Attribute) and name.endswith("Req") and isinstance(node.func.value, ast.Name):
                sends.add(name[:-3] + "Res")  # CM.ServiceDetailReq(...), DC.DC_CableCheckReq(...)
        if response[:3] in ("DC_", "AC_"):  # a handler shared by DC and AC sends its own kind's request
            sends = {x for x in sends if x[:3] not in ("DC_", "AC_") or x[:3] == response[:3]}
        if response in LOOPS:  # -2: the DC loop continues with CurrentDemand, the AC loop with ChargingStatus
            sends -= LOOPS - {response}
        undeclared = sends - t.next
        assert not undeclared, f"{response}: {fn.name} may send requests answered by undeclared {undeclared}"


def test_an_undeclared_transition_is_refused_at_run_time():
    table = StateTable("t", {("A", "m"): Transition(lambda: None, "B")}, end="End")
    table.check(("A", "m"), "B")
    table.check(("A", "m"), "End")
    with pytest.raises(UndeclaredTransition, match="A / m led to C"):
        table.check(("A", "m"), "C")


@pytest.mark.parametrize("protocol", SECC_TABLES)
def test_every_table_entry_is_reached_by_a_state_the_table_can_get_to(protocol):
    """No dead entries: each (state, request) key's state is the start or reached by some entry."""
    secc, evcc = SECC_TABLES[protocol], EVCC_TABLES[protocol]
    reached = {State.WAIT_SAP} | {n for _, t in secc for n in t.next}
    assert {state for (state, _), _ in secc} <= reached
    awaited = {"supportedAppProtocolRes"} | {n for _, t in evcc for n in t.next}
    assert {response for response, _ in evcc} <= awaited


def test_the_diagrams_in_the_docs_are_drawn_from_the_tables():
    r = subprocess.run([sys.executable, "-m", "tools.session_diagrams", "--check"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (ROOT / "docs" / "sessions.md").read_text()
    assert "WaitSessionSetup --> WaitAuthorizationSetup: SessionSetupReq" in text
    assert "DC_ChargeLoopRes --> PowerDeliveryRes: DC_ChargeLoopRes" in text
    assert "ChargeLoop --> WaitMeteringReceipt: CurrentDemandReq" in text  # -2
    assert "WaitAuthorization --> WaitChargeParameterDiscovery: ContractAuthenticationReq" in text  # DIN
