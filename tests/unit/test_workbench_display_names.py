"""The workbench keeps its own display names of letter kinds and states (it imports nothing from
supervision, issue #20); they must name exactly the kinds and states supervision has."""

from __future__ import annotations

from services.supervision.levels import circulation
from services.workbench import letters


def test_the_workbench_names_every_letter_kind_and_state_as_supervision_does() -> None:
    assert letters.KINDS == {kind: names[0] for kind, names in circulation.KINDS.items()}
    assert letters.STATE_NAMES == circulation.STATE_NAMES


def test_the_workbench_names_every_case_state_as_the_lifecycle_does() -> None:
    from services.supervision.cases.lifecycle import LABELS
    from services.workbench import core

    assert core.STATE_LABELS == LABELS
    assert set(core.Action) <= set(actions_of_lifecycle())  # every form is keyed by an action the API may offer


def actions_of_lifecycle() -> set[str]:
    from services.supervision.cases.lifecycle import Action

    return {str(a) for a in Action}
