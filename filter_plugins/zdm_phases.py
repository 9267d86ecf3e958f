"""The migration's phase table and the rules for moving between phases, in one place."""

from __future__ import annotations

DOCUMENTATION = r"""
name: zdm_phase
short_description: Settings of a migration phase, and whether a move between phases is allowed
description:
  - C(zdm_phase) returns what a phase means for the proxy and the demo application.
  - C(zdm_phase_transition) checks a move from the recorded phase to a desired one and returns
    its kind (C(forward), C(rerun), C(rollback)); it fails with a message naming the variable to set.
  - C(zdm_phase_drift) lists what the proxies and applications run that belongs neither to the
    recorded phase nor to the phase being moved to.
  - C(zdm_validation_problems) lists why a recorded phase-2 validation does not let phase 4 go on
    (empty when it does): it must have passed and compared every row of every table.
"""

EXAMPLES = r"""
- name: Read the settings of phase 3
  ansible.builtin.debug:
    msg: "{{ 3 | zdm_phase }}"   # primary_cluster ORIGIN, read_mode DUAL_ASYNC_ON_SECONDARY, app_mode ZDM_PROXY

- name: Refuse to skip phase 2
  ansible.builtin.debug:
    msg: "{{ 1 | zdm_phase_transition(4, validation=last_validation) }}"

- name: Say what the last validation lacks for phase 4
  ansible.builtin.debug:
    msg: "{{ last_validation | zdm_validation_problems }}"
"""

from ansible.errors import AnsibleFilterError

# phase -> what the proxy and the application do in it. primary_cluster/read_mode are None
# where no proxy serves the application.
PHASES: dict[int, dict] = {
    0: {"primary_cluster": None, "read_mode": None, "app_mode": "CASSANDRA", "proxy": False,
        "writer_prefix": "ModeCassandra_",
        "description": "before the migration: the application uses Origin directly"},
    1: {"primary_cluster": "ORIGIN", "read_mode": "PRIMARY_ONLY", "app_mode": "ZDM_PROXY", "proxy": True,
        "writer_prefix": "ModeProxy_", "description": "dual writes through the proxy; reads from Origin"},
    2: {"primary_cluster": "ORIGIN", "read_mode": "PRIMARY_ONLY", "app_mode": "ZDM_PROXY", "proxy": True,
        "writer_prefix": "ModeProxy_", "description": "existing data copied to Target and validated"},
    3: {"primary_cluster": "ORIGIN", "read_mode": "DUAL_ASYNC_ON_SECONDARY", "app_mode": "ZDM_PROXY",
        "proxy": True, "writer_prefix": "ModeProxy_",
        "description": "reads also sent asynchronously to Target (optional phase)"},
    4: {"primary_cluster": "TARGET", "read_mode": "PRIMARY_ONLY", "app_mode": "ZDM_PROXY", "proxy": True,
        "writer_prefix": "ModeProxy_",
        "description": "Target is the source of truth; Origin still receives every write"},
    5: {"primary_cluster": None, "read_mode": None, "app_mode": "TARGET", "proxy": False,
        "writer_prefix": "ModeTarget_",
        "description": "the application uses Target directly; Origin no longer receives writes"},
}
# Application modes that mean the same connection (Origin directly; Target directly).
_APP_MODE_ALIASES = {"ORIGIN": "CASSANDRA", "ASTRA_DB": "TARGET"}
LAST_REVERSIBLE = 4


def _phase_number(value, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"{what} must be a phase number 0-5, got {value!r}") from None
    if number not in PHASES or str(value).strip() != str(number):
        raise AnsibleFilterError(f"{what} must be a phase number 0-5, got {value!r}")
    return number


def zdm_phase(phase) -> dict:
    """The settings of a phase, with its number."""
    number = _phase_number(phase, "the phase")
    return {"phase": number, **PHASES[number]}


def _count(validation: dict, key: str) -> int | None:
    try:
        return int(validation[key])
    except (KeyError, TypeError, ValueError):
        return None


def _true(value) -> bool:
    return value is True or str(value).strip().lower() == "true"


def zdm_validation_problems(validation) -> list[str]:
    """Why a phase-2 validation record does not let phase 4 go on; empty when it does.

    Phase 4 needs a validation that passed and compared every row: every token range of every
    table of the migrated keyspaces (no table restriction, the whole token ring), with zero rows
    missing, mismatched, failed to read or skipped because they changed while being compared.
    The record is the same whatever engine validated (zdmkit, Spark or CDM's DiffData).
    """
    if not isinstance(validation, dict) or not validation:
        return ["no validation is recorded"]
    problems = []
    if validation.get("status") != "passed":
        problems.append(f"its status is {validation.get('status', 'unknown')!r}, not 'passed'")
    for key, what in (("missing", "rows missing on Target"), ("mismatch", "rows that differ"),
                      ("error", "rows that could not be read"),
                      ("skipped", "rows skipped because they changed while being compared")):
        count = _count(validation, key)
        if count is None:
            problems.append(f"it does not say how many {what} it found ({key})")
        elif count:
            problems.append(f"{count} {what}")
    if not _true(validation.get("complete")):
        problems.append("it did not compare every token range of every table (complete is not true)")
    tables = validation.get("tables")
    if tables != "all":
        problems.append(f"it covered only the tables {tables} (data_migration_tables), not all of them"
                        if tables else "it does not say which tables it covered")
    if _count(validation, "token_coverage_percent") != 100:
        problems.append(f"it read {validation.get('token_coverage_percent', 'an unknown share of')}% of the "
                        "token ring, not 100%")
    return problems


def zdm_phase_transition(current, desired, validation=None, force_reason: str = "") -> dict:
    """Check a move from the recorded phase ``current`` to ``desired``.

    Forward moves go one phase at a time, except that the optional phase 3 may be skipped
    (2 -> 4). Phase 4 needs a passed phase-2 validation with zero missing and zero mismatched
    rows, unless ``force_reason`` says why not. Moves back are rollbacks, allowed from any
    phase up to 4 to any phase from 1 to 4. Nothing leaves phase 5.
    """
    cur = _phase_number(current, "the recorded phase")
    want = _phase_number(desired, "zdm_target_phase")
    if cur == want:
        return {"kind": "rerun", "from": cur, "to": want}
    if cur == 5:
        raise AnsibleFilterError(
            "the migration is in phase 5: clients use Target directly and Origin no longer receives "
            "writes, so no phase can follow it")
    if want < cur:
        if want == 0:
            raise AnsibleFilterError("a rollback goes back to phase 1-4; phase 0 is left for good once "
                                     "clients use the proxy (run teardown.yml to start over)")
        return {"kind": "rollback", "from": cur, "to": want}
    allowed_next = {cur + 1} | ({4} if cur == 2 else set())
    if want not in allowed_next:
        missing = ", ".join(str(p) for p in range(cur + 1, want) if p != 3)  # phase 3 is optional
        raise AnsibleFilterError(
            f"phase {want} cannot follow phase {cur}: run phase {missing} first "
            f"(playbooks/phase{cur + 1}.yml)")
    problems = zdm_validation_problems(validation) if want == 4 else []
    if problems:
        if not str(force_reason or "").strip():
            raise AnsibleFilterError(
                "phase 4 makes Target the primary cluster and needs a passed phase-2 validation that compared "
                f"every row, with zero missing and zero mismatched; the last one does not: {'; '.join(problems)}. "
                "Run playbooks/phase2.yml, or set zdm_force_reason to say why to go on without it")
        return {"kind": "forward", "from": cur, "to": want, "forced": str(force_reason)}
    return {"kind": "forward", "from": cur, "to": want}


def _proxy_state(phase: int) -> str:
    settings = PHASES[phase]
    if not settings["proxy"]:
        return "not running"
    return f"primary {settings['primary_cluster']}, read mode {settings['read_mode']}"


def _observed_proxy_state(proxy: dict) -> str:
    if not proxy.get("running"):
        return "not running"
    primary, read_mode = (str(proxy.get(key) or "?").upper() for key in ("primary_cluster", "read_mode"))
    return f"primary {primary}, read mode {read_mode}"


def zdm_phase_drift(observed: dict, recorded, desired) -> list[str]:
    """What the proxies and the applications run that belongs to neither the recorded phase nor
    the phase being moved to (a move interrupted half-way leaves some instances at each).

    ``observed`` is ``{"proxies": [{host, installed, running, primary_cluster, read_mode}],
    "apps": [{host, installed, mode}]}``; returns one line per disagreement (empty when everything
    agrees). A host where nothing is installed yet runs nothing that disagrees: applying the phase
    installs it.
    """
    allowed = sorted({_phase_number(recorded, "the recorded phase"), _phase_number(desired, "zdm_target_phase")})
    where = f"phase {allowed[0]}" + (f" or phase {allowed[1]}" if len(allowed) > 1 else "")
    problems = []
    proxy_states = {_proxy_state(p) for p in allowed}
    for proxy in (observed or {}).get("proxies", []):
        if not proxy.get("installed", True):
            continue
        state = _observed_proxy_state(proxy)
        if state not in proxy_states:
            problems.append(f"proxy {proxy.get('host')} runs {state}; {where} has "
                            + " or ".join(sorted(proxy_states)))
    app_modes = {PHASES[p]["app_mode"] for p in allowed}
    for app in (observed or {}).get("apps", []):
        if not app.get("installed", True):
            continue
        mode = str(app.get("mode") or "").upper()
        if _APP_MODE_ALIASES.get(mode, mode) not in app_modes:
            problems.append(f"application {app.get('host')} runs in mode {mode or 'unknown (not answering)'}; "
                            f"{where} has " + " or ".join(sorted(app_modes)))
    return problems


class FilterModule:
    def filters(self):
        return {"zdm_phase": zdm_phase, "zdm_phase_transition": zdm_phase_transition,
                "zdm_phase_drift": zdm_phase_drift, "zdm_validation_problems": zdm_validation_problems}
