"""Ansible's linear strategy run by Mitogen, the project's default (ansible.cfg).

Mitogen keeps one Python interpreter per host for the whole run and sends each task to it
over that connection, instead of a new `docker exec` or SSH command, a fresh interpreter and
a module upload per task: a playbook of a few hundred tasks on seven hosts does in tens of
seconds what takes minutes without it. Plays, tasks and results are Ansible's own.

Without the `mitogen` package (it is in the project's tool chain) this falls back to
Ansible's own linear strategy and says so. `ANSIBLE_STRATEGY=linear` chooses that
explicitly.
"""

from __future__ import annotations

from ansible.utils.display import Display

try:
    # Imported under their real names, as Mitogen's own strategy modules do, so that its plugins
    # are not loaded a second time under the names Ansible's plugin loader gives them.
    import ansible_mitogen.loaders
    import ansible_mitogen.strategy
except ImportError as exc:
    from ansible.plugins.strategy.linear import StrategyModule

    Display().warning(f"Mitogen is not installed ({exc}): running Ansible's own linear strategy")
else:

    class StrategyModule(
        ansible_mitogen.strategy.StrategyMixin,
        ansible_mitogen.loaders.strategy_loader.get("linear", class_only=True),
    ):
        """Ansible's linear strategy on Mitogen's connections."""
